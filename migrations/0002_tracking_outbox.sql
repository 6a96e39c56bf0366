-- The tracking outbox: every record meant for the MLflow server is written here first, in
-- the same database as the run store, and sent from here (during the sweep, or later by
-- `netsec sync`). A record is marked `sent` only after the server accepted all of it.

CREATE TABLE tracking_outbox (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    dedup_key     TEXT UNIQUE,        -- records that exist once per run store (a trial's run)
    sweep_id      INTEGER,            -- the local sweep that wrote it
    kind          TEXT NOT NULL CHECK (kind IN ('open_sweep', 'close_sweep', 'trial', 'artifacts')),
    server        TEXT,               -- base URL configured at the time (never credentials)
    payload       TEXT NOT NULL,      -- JSON RunRecord
    state         TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'sent', 'failed')),
    attempts      INTEGER NOT NULL DEFAULT 0,
    last_error    TEXT,
    created_at_ms INTEGER NOT NULL,
    sent_at_ms    INTEGER
);

CREATE INDEX tracking_outbox_by_state ON tracking_outbox (state, id);

-- MLflow run ids of records already created on a server, by idempotency key.
CREATE TABLE tracking_runs (
    server        TEXT NOT NULL,
    run_key       TEXT NOT NULL,
    experiment_id TEXT NOT NULL,
    run_id        TEXT NOT NULL,
    artifact_uri  TEXT NOT NULL,
    PRIMARY KEY (server, run_key)
);
