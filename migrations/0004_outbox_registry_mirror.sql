-- Registry mirror records in the tracking outbox: kind 'registry' (an alias move of the
-- local registry, to repeat in MLflow's model registry) and state 'skipped' (the server
-- has no model registry; `netsec sync --retry-failed` queues such records again).
-- SQLite cannot change a CHECK constraint in place, so the table is rebuilt as it was
-- with the wider checks; ids (the sending order) are kept.

CREATE TABLE tracking_outbox_new (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    dedup_key     TEXT UNIQUE,
    sweep_id      INTEGER,
    kind          TEXT NOT NULL CHECK (kind IN ('open_sweep', 'close_sweep', 'trial', 'artifacts', 'registry')),
    server        TEXT,
    payload       TEXT NOT NULL,      -- JSON RunRecord, or RegistryRecord for 'registry'
    state         TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'sent', 'failed', 'skipped')),
    attempts      INTEGER NOT NULL DEFAULT 0,
    last_error    TEXT,
    created_at_ms INTEGER NOT NULL,
    sent_at_ms    INTEGER
);

INSERT INTO tracking_outbox_new (id, dedup_key, sweep_id, kind, server, payload, state,
                                 attempts, last_error, created_at_ms, sent_at_ms)
SELECT id, dedup_key, sweep_id, kind, server, payload, state,
       attempts, last_error, created_at_ms, sent_at_ms
FROM tracking_outbox;

DROP TABLE tracking_outbox;
ALTER TABLE tracking_outbox_new RENAME TO tracking_outbox;
CREATE INDEX tracking_outbox_by_state ON tracking_outbox (state, id);
