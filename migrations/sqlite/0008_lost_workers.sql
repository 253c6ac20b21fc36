-- Losing a worker is not a training error. A lease that expires (a worker
-- killed, frozen, preempted or out of time) spends one of the job's
-- attempts only when the attempt stored no checkpoint newer than the one
-- it was leased with: a job that keeps making progress on preemptible
-- machines is never failed for it, and a job that keeps losing its worker
-- without progress still ends.

-- The job's latest checkpoint when the current attempt leased it (NULL: none).
ALTER TABLE jobs ADD COLUMN lease_checkpoint_id INTEGER;
-- Leases of the job that expired, progress or not.
ALTER TABLE jobs ADD COLUMN lost_leases INTEGER NOT NULL DEFAULT 0;
