-- A sweep's jobs in id order, for the pages of ListResults (`sweep_id = ?
-- AND id > ? ORDER BY id LIMIT ?`): a range on this index, where the index
-- on (sweep_id, status) made every page sort the whole sweep.
CREATE INDEX jobs_sweep_order ON jobs (sweep_id, id);
