-- Adaptive seeds (a spec's [seeds] start, max, target_ci). A reserve job is
-- stored with its sweep but out of the spec (in_spec = 0, so it is neither
-- leased nor counted) until the coordinator adds it to its cell, because
-- the cell's 95 % interval of the final test error is still wider than
-- the sweep's target; then in_spec = 1 and reserve = 0.
ALTER TABLE jobs ADD COLUMN reserve INTEGER NOT NULL DEFAULT 0;

-- Half-width of the 95 % interval each cell should reach, in percentage
-- points of test error; NULL for a sweep with a fixed list of seeds.
ALTER TABLE sweeps ADD COLUMN seeds_target_ci REAL;
