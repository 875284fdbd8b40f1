-- Deploy scripts (every edit is a new row in deploy_script_versions; the script row points
-- at its newest version) and per-script enrollment tokens. Tokens are random 256-bit
-- values; only their SHA-256 is stored. deploy_enrollments remembers which sensor a token
-- registered for a host, so running the same deploy command twice reuses the sensor.

CREATE TABLE deploy_scripts (
    id         INTEGER PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    honeypot   TEXT NOT NULL,
    version    INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

CREATE TABLE deploy_script_versions (
    script_id  INTEGER NOT NULL REFERENCES deploy_scripts (id) ON DELETE CASCADE,
    version    INTEGER NOT NULL,
    body       TEXT NOT NULL,
    notes      TEXT NOT NULL DEFAULT '',
    author     TEXT NOT NULL DEFAULT '',
    created_at INTEGER NOT NULL,
    PRIMARY KEY (script_id, version)
) WITHOUT ROWID;

CREATE TABLE enrollment_tokens (
    id         INTEGER PRIMARY KEY,
    script_id  INTEGER NOT NULL REFERENCES deploy_scripts (id) ON DELETE CASCADE,
    token_hash TEXT NOT NULL UNIQUE,
    prefix     TEXT NOT NULL,
    label      TEXT NOT NULL DEFAULT '',
    created_by TEXT NOT NULL DEFAULT '',
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    revoked    INTEGER NOT NULL DEFAULT 0,
    uses       INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX enrollment_tokens_script ON enrollment_tokens (script_id);

CREATE TABLE deploy_enrollments (
    token_id    INTEGER NOT NULL REFERENCES enrollment_tokens (id) ON DELETE CASCADE,
    hostname    TEXT NOT NULL,
    sensor_uuid TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (token_id, hostname)
) WITHOUT ROWID;
CREATE INDEX deploy_enrollments_sensor ON deploy_enrollments (sensor_uuid);
