-- The local run store: every finished trial keyed by its deterministic trial key, and
-- every sweep (one `netsec experiment run`) with the trial keys it planned.

CREATE TABLE trials (
    key             TEXT PRIMARY KEY NOT NULL,
    experiment      TEXT NOT NULL,
    algorithm       TEXT NOT NULL,
    params          TEXT NOT NULL,          -- JSON object, resolved (defaults filled in)
    status          TEXT NOT NULL CHECK (status IN ('finished', 'failed')),
    cv              TEXT,                   -- JSON {metric: {mean, std}}
    test            TEXT,                   -- JSON metrics on the held-out test set
    fit_seconds     REAL,
    predict_seconds REAL,
    error           TEXT,
    data_fingerprint TEXT NOT NULL,
    finished_at_ms  INTEGER NOT NULL
);

CREATE TABLE sweeps (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    experiment      TEXT NOT NULL,
    grid_path       TEXT NOT NULL,
    data_source     TEXT NOT NULL,
    data_fingerprint TEXT NOT NULL,
    schema_hash     TEXT NOT NULL,
    select_metric   TEXT NOT NULL,
    shard           TEXT,
    status          TEXT NOT NULL CHECK (status IN ('running', 'finished', 'failed', 'killed')),
    pid             INTEGER NOT NULL,
    started_at_ms   INTEGER NOT NULL,
    finished_at_ms  INTEGER,
    best_trial      TEXT,
    best_model_path TEXT,
    best_model_sha256 TEXT
);

CREATE TABLE sweep_trials (
    sweep_id  INTEGER NOT NULL REFERENCES sweeps (id),
    position  INTEGER NOT NULL,
    trial_key TEXT NOT NULL,
    PRIMARY KEY (sweep_id, position)
);

CREATE INDEX sweeps_by_experiment ON sweeps (experiment, id);
