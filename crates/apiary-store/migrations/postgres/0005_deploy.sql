-- Deploy scripts with version history, per-script enrollment tokens (SHA-256 only) and
-- the enrollments they made (as sqlite 0005).

CREATE TABLE deploy_scripts (
    id         BIGSERIAL PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    honeypot   TEXT NOT NULL,
    version    BIGINT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);

CREATE TABLE deploy_script_versions (
    script_id  BIGINT NOT NULL REFERENCES deploy_scripts (id) ON DELETE CASCADE,
    version    BIGINT NOT NULL,
    body       TEXT NOT NULL,
    notes      TEXT NOT NULL DEFAULT '',
    author     TEXT NOT NULL DEFAULT '',
    created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (script_id, version)
);

CREATE TABLE enrollment_tokens (
    id         BIGSERIAL PRIMARY KEY,
    script_id  BIGINT NOT NULL REFERENCES deploy_scripts (id) ON DELETE CASCADE,
    token_hash TEXT NOT NULL UNIQUE,
    prefix     TEXT NOT NULL,
    label      TEXT NOT NULL DEFAULT '',
    created_by TEXT NOT NULL DEFAULT '',
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    revoked    BOOLEAN NOT NULL DEFAULT FALSE,
    uses       BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX enrollment_tokens_script ON enrollment_tokens (script_id);

CREATE TABLE deploy_enrollments (
    token_id    BIGINT NOT NULL REFERENCES enrollment_tokens (id) ON DELETE CASCADE,
    hostname    TEXT NOT NULL,
    sensor_uuid TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (token_id, hostname)
);
CREATE INDEX deploy_enrollments_sensor ON deploy_enrollments (sensor_uuid);
