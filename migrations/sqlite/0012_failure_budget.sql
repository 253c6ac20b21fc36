-- A sweep's failure budget: once more than max_failed_fraction of its jobs
-- in the spec have failed for good (counting from failed_base, the failures
-- there were at its last resume), the sweep is paused and pause_reason says
-- why. NULL: no budget.
ALTER TABLE sweeps ADD COLUMN max_failed_fraction REAL;
ALTER TABLE sweeps ADD COLUMN failed_base INTEGER NOT NULL DEFAULT 0;
ALTER TABLE sweeps ADD COLUMN pause_reason TEXT;
