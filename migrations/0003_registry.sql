-- The model registry: registered models, their versions (immutable), aliases such as
-- `champion` pointing at a version, and the append-only history of every promotion
-- decision and alias move. Lives in the run store's database unless --registry says
-- otherwise.

CREATE TABLE registered_models (
    name          TEXT PRIMARY KEY NOT NULL,
    created_at_ms INTEGER NOT NULL
);

CREATE TABLE model_versions (
    model            TEXT NOT NULL REFERENCES registered_models (name),
    version          INTEGER NOT NULL CHECK (version >= 1),
    sha256           TEXT NOT NULL,           -- of the model file's bytes
    path             TEXT NOT NULL,           -- content-addressed copy in the state dir
    experiment       TEXT NOT NULL,
    trial_key        TEXT NOT NULL,
    sweep_id         INTEGER,                 -- the sweep it came from, when known
    algorithm        TEXT NOT NULL,
    metrics          TEXT NOT NULL,           -- JSON: metrics on the pinned holdout
    data_fingerprint TEXT NOT NULL,
    split            TEXT NOT NULL,           -- JSON split spec: with the fingerprint, the holdout
    schema_hash      TEXT NOT NULL,
    created_at_ms    INTEGER NOT NULL,
    PRIMARY KEY (model, version),
    UNIQUE (model, sha256)
);

CREATE TABLE aliases (
    model         TEXT NOT NULL,
    alias         TEXT NOT NULL,
    version       INTEGER NOT NULL,
    updated_at_ms INTEGER NOT NULL,
    PRIMARY KEY (model, alias),
    FOREIGN KEY (model, version) REFERENCES model_versions (model, version)
);

CREATE TABLE alias_history (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    model        TEXT NOT NULL,
    alias        TEXT NOT NULL,
    action       TEXT NOT NULL CHECK (action IN ('promote', 'reject', 'rollback')),
    from_version INTEGER,                     -- the alias before (NULL: unset)
    to_version   INTEGER,                     -- the alias after (equal to before on reject)
    candidate    INTEGER,                     -- the version judged (promote / reject)
    at_ms        INTEGER NOT NULL,
    actor        TEXT NOT NULL,
    reason       TEXT NOT NULL,
    evidence     TEXT NOT NULL                -- JSON: every rule with value, threshold, pass
);

CREATE INDEX alias_history_by_model ON alias_history (model, alias, id);

-- Versions and history are facts: the database refuses to change them.
CREATE TRIGGER alias_history_no_update BEFORE UPDATE ON alias_history
BEGIN
    SELECT RAISE(ABORT, 'alias_history is append-only');
END;

CREATE TRIGGER alias_history_no_delete BEFORE DELETE ON alias_history
BEGIN
    SELECT RAISE(ABORT, 'alias_history is append-only');
END;

CREATE TRIGGER model_versions_no_update BEFORE UPDATE ON model_versions
BEGIN
    SELECT RAISE(ABORT, 'model versions are immutable');
END;

CREATE TRIGGER model_versions_no_delete BEFORE DELETE ON model_versions
BEGIN
    SELECT RAISE(ABORT, 'model versions are immutable');
END;
