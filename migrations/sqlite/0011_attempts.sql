-- Every attempt of a job, kept: which worker, host and device ran it, when,
-- how it ended, and for a failure the error and its class: the job's own
-- ('job': divergence, a cell the trainer refuses), the machine's
-- ('machine': data missing or corrupt, out of memory, CUDA, disk), or
-- 'unknown'. jobs.last_error keeps only the latest.
CREATE TABLE attempts (
    job_id        INTEGER NOT NULL REFERENCES jobs (id),
    attempt       INTEGER NOT NULL,
    worker_id     INTEGER,
    hostname      TEXT    NOT NULL,
    device        TEXT    NOT NULL,
    leased_at_ms  INTEGER NOT NULL,
    ended_at_ms   INTEGER,
    -- running, succeeded, failed, lost (the lease expired) or released
    outcome       TEXT    NOT NULL DEFAULT 'running',
    error_class   TEXT,
    error         TEXT,
    PRIMARY KEY (job_id, attempt)
);
CREATE INDEX attempts_by_worker ON attempts (worker_id, outcome);
-- Failures are few: status, the dashboard and the claim find a sweep's or
-- a job's failed attempts without reading every attempt.
CREATE INDEX attempts_failed ON attempts (job_id, attempt) WHERE outcome = 'failed';

-- Attempts that failed with a machine's error: they do not spend the job's
-- own attempts (a broken machine must not fail a healthy job), and are
-- bounded on their own.
ALTER TABLE jobs ADD COLUMN machine_failures INTEGER NOT NULL DEFAULT 0;
