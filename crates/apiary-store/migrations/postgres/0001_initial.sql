-- Initial schema (PostgreSQL). Mirrors migrations/sqlite/0001..0004 as they stand after
-- 0004: same tables and meaning. Differences:
-- * times are TIMESTAMPTZ (microseconds, like the SQLite integers); roll-up hours stay
--   BIGINT hours since the Unix epoch;
-- * addresses are INET; CIDR filters use `<<=` on a btree index;
-- * JSON columns are JSONB; raw payloads BYTEA, byte for byte;
-- * attacker-controlled text can be longer than a btree entry may be (about 2.7 kB), so
--   indexes and unique keys on such text use left(col, 256) or md5(col) and queries
--   recheck the full value;
-- * credentials have no foreign key (as after sqlite 0003) and hash indexes for the
--   equality lookups of the credential filter.
-- Text values are stored with NUL characters escaped (PostgreSQL text cannot hold NUL);
-- the backend encodes and decodes them (src/postgres/text.rs).

CREATE TABLE counters (
    name  TEXT PRIMARY KEY,
    value BIGINT NOT NULL
);
INSERT INTO counters (name, value) VALUES
    ('idents_version', 0), ('raw_messages', 0), ('sessions', 0), ('credentials', 0);

CREATE TABLE idents (
    ident      TEXT PRIMARY KEY,
    secret     TEXT NOT NULL,
    publish    JSONB NOT NULL DEFAULT '[]',
    subscribe  JSONB NOT NULL DEFAULT '[]',
    owner      TEXT NOT NULL DEFAULT '',
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);

CREATE TABLE sensors (
    uuid       TEXT PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    hostname   TEXT NOT NULL,
    ip         TEXT,
    honeypot   TEXT NOT NULL,
    ident      TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    last_seen  TIMESTAMPTZ,
    heartbeat  JSONB,
    latitude   DOUBLE PRECISION,
    longitude  DOUBLE PRECISION
);
CREATE INDEX sensors_ident ON sensors (ident);

CREATE TABLE raw_messages (
    id          BIGSERIAL PRIMARY KEY,
    channel     TEXT NOT NULL,
    ident       TEXT NOT NULL,
    received_at TIMESTAMPTZ NOT NULL,
    payload     BYTEA NOT NULL,              -- exactly as published
    status      TEXT NOT NULL CHECK (status IN ('pending', 'normalized', 'error')),
    error       TEXT
);
CREATE INDEX raw_messages_received ON raw_messages (received_at);
CREATE INDEX raw_messages_channel ON raw_messages (left(channel, 256), id);
CREATE INDEX raw_messages_unfinished ON raw_messages (status, id) WHERE status <> 'normalized';

CREATE TABLE sessions (
    id               BIGSERIAL PRIMARY KEY,
    ts               TIMESTAMPTZ NOT NULL,
    source_ip        INET,
    source_port      INTEGER,
    destination_ip   INET,
    destination_port INTEGER,
    protocol         TEXT,
    honeypot         TEXT NOT NULL,
    channel          TEXT NOT NULL,
    sensor           TEXT NOT NULL,           -- hpfeeds ident
    internal         BOOLEAN NOT NULL DEFAULT FALSE,
    country_code     TEXT,
    country          TEXT,
    city             TEXT,
    latitude         DOUBLE PRECISION,
    longitude        DOUBLE PRECISION,
    asn              BIGINT,
    as_org           TEXT,
    destination_geo  JSONB,                   -- GeoInfo
    signature        TEXT,                    -- IDS signature, copied out of details
    raw_id           BIGINT,                  -- raw_messages.id; dangles once raw is pruned
    details          JSONB NOT NULL DEFAULT '{}'  -- SessionDetails
);
-- Each index ends in (ts, id) so a filter on its leading column also yields rows in
-- keyset order (ts desc, id desc) without sorting.
CREATE INDEX sessions_ts ON sessions (ts, id);
CREATE INDEX sessions_sensor ON sessions (left(sensor, 256), ts, id);
CREATE INDEX sessions_honeypot ON sessions (left(honeypot, 256), ts, id);
CREATE INDEX sessions_source ON sessions (source_ip, ts, id);
CREATE INDEX sessions_destination_port ON sessions (destination_port, ts, id);
CREATE INDEX sessions_protocol ON sessions (left(protocol, 256), ts, id);
CREATE INDEX sessions_country ON sessions (left(country_code, 256), ts, id);
CREATE INDEX sessions_asn ON sessions (asn, ts, id);
CREATE INDEX sessions_channel ON sessions (left(channel, 256), ts, id);
CREATE INDEX sessions_signature ON sessions (ts, id) WHERE signature IS NOT NULL;
CREATE INDEX sessions_raw ON sessions (raw_id);

CREATE TABLE credentials (
    session_id BIGINT NOT NULL,
    seq        INTEGER NOT NULL,
    ts         TIMESTAMPTZ NOT NULL,
    username   TEXT NOT NULL,
    password   TEXT NOT NULL,
    PRIMARY KEY (session_id, seq)
);
CREATE INDEX credentials_username ON credentials USING hash (username);
CREATE INDEX credentials_password ON credentials USING hash (password);

CREATE TABLE files (
    id            BIGSERIAL PRIMARY KEY,
    sha512        TEXT NOT NULL UNIQUE,
    sha256        TEXT NOT NULL,
    sha1          TEXT NOT NULL,
    md5           TEXT NOT NULL,
    size          BIGINT NOT NULL,
    content_guess TEXT,
    data          BYTEA,
    url           TEXT,
    first_seen    TIMESTAMPTZ NOT NULL,
    last_seen     TIMESTAMPTZ NOT NULL,
    count         BIGINT NOT NULL
);
CREATE INDEX files_sha256 ON files (sha256);
CREATE INDEX files_sha1 ON files (sha1);
CREATE INDEX files_md5 ON files (md5);
CREATE INDEX files_last_seen ON files (last_seen, id);

CREATE TABLE urls (
    id         BIGSERIAL PRIMARY KEY,
    url        TEXT NOT NULL,
    first_seen TIMESTAMPTZ NOT NULL,
    last_seen  TIMESTAMPTZ NOT NULL,
    count      BIGINT NOT NULL
);
CREATE UNIQUE INDEX urls_url ON urls (md5(url));
CREATE INDEX urls_last_seen ON urls (last_seen, id);

CREATE TABLE url_files (
    url_id BIGINT NOT NULL REFERENCES urls (id) ON DELETE CASCADE,
    sha512 TEXT NOT NULL,
    PRIMARY KEY (url_id, sha512)
);

CREATE TABLE dorks (
    id         BIGSERIAL PRIMARY KEY,
    content    TEXT NOT NULL,
    kind       TEXT NOT NULL,
    first_seen TIMESTAMPTZ NOT NULL,
    last_seen  TIMESTAMPTZ NOT NULL,
    count      BIGINT NOT NULL
);
CREATE UNIQUE INDEX dorks_content_kind ON dorks (md5(content), md5(kind));
CREATE INDEX dorks_last_seen ON dorks (last_seen, id);

CREATE TABLE p0f_metadata (
    id         BIGSERIAL PRIMARY KEY,
    ip         TEXT NOT NULL UNIQUE,
    os         TEXT,
    app        TEXT,
    link       TEXT,
    uptime     TEXT,
    first_seen TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX p0f_metadata_updated ON p0f_metadata (updated_at, id);

-- Sessions per (dimension, hour, value). dim codes are apiary_store::Dimension::code:
-- 0 all, 1 honeypot, 2 sensor, 3 destination_port, 4 source_ip, 5 country, 6 protocol,
-- 7 channel, 8 signature, 9 username, 10 password (9 and 10 count attempts).
-- Keyed by md5(value): values are attacker text of any length.
CREATE TABLE rollup_hourly (
    dim   SMALLINT NOT NULL,
    hour  BIGINT NOT NULL,
    value TEXT NOT NULL,
    count BIGINT NOT NULL
);
CREATE UNIQUE INDEX rollup_hourly_key ON rollup_hourly (dim, hour, md5(value));
