-- widesweep schema v1 (PostgreSQL). Never edit after release: fixes are new migrations.
-- Times are integer milliseconds since the Unix epoch; errors are fractions in [0, 1].

CREATE TABLE sweeps (
    id             BIGSERIAL PRIMARY KEY,
    name           TEXT    NOT NULL UNIQUE,
    dataset        TEXT    NOT NULL,
    state          TEXT    NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'paused', 'cancelled')),
    priority       BIGINT  NOT NULL DEFAULT 0,
    max_attempts   BIGINT  NOT NULL DEFAULT 3,
    spec_toml      TEXT    NOT NULL,
    created_at_ms  BIGINT  NOT NULL,
    updated_at_ms  BIGINT  NOT NULL
);

CREATE TABLE workers (
    id                BIGSERIAL PRIMARY KEY,
    hostname          TEXT    NOT NULL,
    devices           TEXT    NOT NULL,
    version           TEXT    NOT NULL,
    registered_at_ms  BIGINT  NOT NULL,
    last_seen_at_ms   BIGINT  NOT NULL
);

CREATE TABLE jobs (
    id                      BIGSERIAL PRIMARY KEY,
    sweep_id                BIGINT  NOT NULL REFERENCES sweeps (id),
    cell_hash               TEXT    NOT NULL,
    -- the cell's hyperparameters
    block                   TEXT    NOT NULL,
    deepening               BIGINT  NOT NULL,
    blocks_per_group        BIGINT  NOT NULL,
    depth                   BIGINT  NOT NULL,
    depth_convention        TEXT    NOT NULL,
    width                   BIGINT  NOT NULL,
    dropout                 DOUBLE PRECISION NOT NULL,
    dataset                 TEXT    NOT NULL,
    seed                    BIGINT  NOT NULL,
    -- the recipe
    epochs                  BIGINT  NOT NULL,
    batch_size              BIGINT  NOT NULL,
    lr                      DOUBLE PRECISION NOT NULL,
    lr_milestones           TEXT    NOT NULL,
    lr_gamma                DOUBLE PRECISION NOT NULL,
    momentum                DOUBLE PRECISION NOT NULL,
    nesterov                BIGINT  NOT NULL,
    weight_decay            DOUBLE PRECISION NOT NULL,
    reset_momentum_on_drop  BIGINT  NOT NULL,
    train_subset            BIGINT  NOT NULL,
    checkpoint_every        BIGINT  NOT NULL,
    config_json             TEXT    NOT NULL,
    -- costs from the shared architecture plan
    params                  BIGINT  NOT NULL,
    forward_macs            BIGINT  NOT NULL,
    -- queue state
    in_spec                 BIGINT  NOT NULL DEFAULT 1,
    status                  TEXT    NOT NULL DEFAULT 'pending'
                            CHECK (status IN ('pending', 'running', 'succeeded', 'failed', 'cancelled')),
    priority                BIGINT  NOT NULL DEFAULT 0,
    attempt                 BIGINT  NOT NULL DEFAULT 0,
    attempts_spent          BIGINT  NOT NULL DEFAULT 0,
    max_attempts            BIGINT  NOT NULL,
    worker_id               BIGINT  REFERENCES workers (id),
    device                  TEXT,
    lease_expires_at_ms     BIGINT,
    created_at_ms           BIGINT  NOT NULL,
    started_at_ms           BIGINT,
    finished_at_ms          BIGINT,
    last_error              TEXT,
    -- results
    epochs_done             BIGINT  NOT NULL DEFAULT 0,
    final_train_loss        DOUBLE PRECISION,
    final_train_error       DOUBLE PRECISION,
    final_test_loss         DOUBLE PRECISION,
    final_test_error        DOUBLE PRECISION,
    best_test_error         DOUBLE PRECISION,
    train_seconds           DOUBLE PRECISION,
    UNIQUE (sweep_id, cell_hash)
);

-- The claim path reads only pending jobs, in priority order.
CREATE INDEX jobs_pending ON jobs (priority DESC, id) WHERE status = 'pending' AND in_spec = 1;
-- The reaper reads only running jobs, by expiry.
CREATE INDEX jobs_running ON jobs (lease_expires_at_ms) WHERE status = 'running';
CREATE INDEX jobs_sweep ON jobs (sweep_id, status);

CREATE TABLE epochs (
    job_id             BIGINT  NOT NULL REFERENCES jobs (id),
    epoch              BIGINT  NOT NULL,
    attempt            BIGINT  NOT NULL,
    train_loss         DOUBLE PRECISION NOT NULL,
    train_error        DOUBLE PRECISION NOT NULL,
    test_loss          DOUBLE PRECISION NOT NULL,
    test_error         DOUBLE PRECISION NOT NULL,
    lr                 DOUBLE PRECISION NOT NULL,
    epoch_seconds      DOUBLE PRECISION NOT NULL,
    images_per_second  DOUBLE PRECISION NOT NULL,
    recorded_at_ms     BIGINT  NOT NULL,
    PRIMARY KEY (job_id, epoch)
);

CREATE TABLE checkpoints (
    id             BIGSERIAL PRIMARY KEY,
    job_id         BIGINT  NOT NULL REFERENCES jobs (id),
    attempt        BIGINT  NOT NULL,
    epoch          BIGINT  NOT NULL,
    sha256         TEXT    NOT NULL,
    size_bytes     BIGINT  NOT NULL,
    created_at_ms  BIGINT  NOT NULL
);
CREATE INDEX checkpoints_job ON checkpoints (job_id, id);

-- One row per finished job with its hyperparameters and final metrics.
CREATE VIEW results AS
SELECT s.name AS sweep, j.id AS job_id, j.cell_hash, j.block, j.deepening, j.blocks_per_group,
       j.depth, j.depth_convention, j.width, j.dropout, j.dataset, j.seed, j.epochs, j.batch_size,
       j.lr, j.weight_decay, j.params, j.forward_macs, j.attempt,
       j.final_train_loss, j.final_train_error, j.final_test_loss, j.final_test_error,
       j.best_test_error, j.train_seconds,
       j.train_seconds / NULLIF(j.epochs_done, 0) AS epoch_seconds,
       j.finished_at_ms
FROM jobs j JOIN sweeps s ON s.id = j.sweep_id
WHERE j.status = 'succeeded';

-- One row per cell of a sweep (its jobs aggregated over seeds). Medians
-- need window functions per dialect and are computed by `widesweep table`.
CREATE VIEW cells AS
SELECT s.name AS sweep, j.block, j.deepening, j.blocks_per_group, j.depth, j.width, j.dropout,
       j.dataset, MIN(j.params) AS params,
       COUNT(*) AS jobs,
       SUM(CASE WHEN j.status = 'succeeded' THEN 1 ELSE 0 END) AS succeeded,
       AVG(j.final_test_error) AS mean_test_error,
       MIN(j.final_test_error) AS min_test_error,
       MAX(j.final_test_error) AS max_test_error,
       AVG(j.best_test_error) AS mean_best_test_error,
       AVG(j.train_seconds / NULLIF(j.epochs_done, 0)) AS mean_epoch_seconds
FROM jobs j JOIN sweeps s ON s.id = j.sweep_id
WHERE j.in_spec = 1
GROUP BY s.name, j.block, j.deepening, j.blocks_per_group, j.depth, j.width, j.dropout, j.dataset;
