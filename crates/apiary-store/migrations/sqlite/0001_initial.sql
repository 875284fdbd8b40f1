-- Initial schema. Times are INTEGER microseconds since the Unix epoch (UTC); roll-up
-- hours are INTEGER hours since the epoch.

-- Small counters read by pollers and /metrics: 'idents_version' is bumped in every
-- transaction that changes idents; the others are row counts kept exact by the writer.
CREATE TABLE counters (
    name  TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO counters (name, value) VALUES
    ('idents_version', 0), ('raw_messages', 0), ('sessions', 0), ('credentials', 0);

CREATE TABLE idents (
    ident      TEXT PRIMARY KEY,
    secret     TEXT NOT NULL,
    publish    TEXT NOT NULL DEFAULT '[]',   -- JSON array of channel names
    subscribe  TEXT NOT NULL DEFAULT '[]',   -- JSON array of channel names
    owner      TEXT NOT NULL DEFAULT '',
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE sensors (
    uuid       TEXT PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    hostname   TEXT NOT NULL,
    ip         TEXT,
    honeypot   TEXT NOT NULL,
    ident      TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    last_seen  INTEGER,
    heartbeat  TEXT,                         -- JSON object
    latitude   REAL,
    longitude  REAL
);
CREATE INDEX sensors_ident ON sensors (ident);

CREATE TABLE raw_messages (
    id          INTEGER PRIMARY KEY,
    channel     TEXT NOT NULL,
    ident       TEXT NOT NULL,
    received_at INTEGER NOT NULL,
    payload     BLOB NOT NULL,               -- exactly as published
    status      TEXT NOT NULL CHECK (status IN ('pending', 'normalized', 'error')),
    error       TEXT
);
CREATE INDEX raw_messages_received ON raw_messages (received_at);
CREATE INDEX raw_messages_channel ON raw_messages (channel);      -- + rowid: ordered by id
CREATE INDEX raw_messages_unfinished ON raw_messages (status) WHERE status <> 'normalized';

CREATE TABLE sessions (
    id               INTEGER PRIMARY KEY,
    ts               INTEGER NOT NULL,
    source_ip        TEXT,                   -- canonical text (IPv4-mapped unmapped)
    source_key       BLOB,                   -- 16-byte IPv6 form, IPv4 mapped: CIDR = range
    source_port      INTEGER,
    destination_ip   TEXT,
    destination_port INTEGER,
    protocol         TEXT,
    honeypot         TEXT NOT NULL,
    channel          TEXT NOT NULL,
    sensor           TEXT NOT NULL,          -- hpfeeds ident
    internal         INTEGER NOT NULL DEFAULT 0,
    country_code     TEXT,
    country          TEXT,
    city             TEXT,
    latitude         REAL,
    longitude        REAL,
    asn              INTEGER,
    as_org           TEXT,
    destination_geo  TEXT,                   -- JSON GeoInfo
    signature        TEXT,                   -- IDS signature, copied out of details
    raw_id           INTEGER,                -- raw_messages.id; dangles once raw is pruned
    details          TEXT NOT NULL DEFAULT '{}'  -- JSON SessionDetails
);
-- Each index ends in ts (+ the implicit rowid) so a filter on its first column also
-- yields rows in keyset order (ts desc, id desc) without sorting.
CREATE INDEX sessions_ts ON sessions (ts);
CREATE INDEX sessions_sensor ON sessions (sensor, ts);
CREATE INDEX sessions_honeypot ON sessions (honeypot, ts);
CREATE INDEX sessions_source ON sessions (source_key, ts);
CREATE INDEX sessions_destination_port ON sessions (destination_port, ts);
CREATE INDEX sessions_protocol ON sessions (protocol, ts);
CREATE INDEX sessions_country ON sessions (country_code, ts);
CREATE INDEX sessions_asn ON sessions (asn, ts);
CREATE INDEX sessions_signature ON sessions (ts) WHERE signature IS NOT NULL;
CREATE INDEX sessions_raw ON sessions (raw_id);

CREATE TABLE credentials (
    session_id INTEGER NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    ts         INTEGER NOT NULL,
    username   TEXT NOT NULL,
    password   TEXT NOT NULL
);
CREATE INDEX credentials_session ON credentials (session_id);
CREATE INDEX credentials_username ON credentials (username, session_id);
CREATE INDEX credentials_password ON credentials (password, session_id);

CREATE TABLE files (
    id            INTEGER PRIMARY KEY,
    sha512        TEXT NOT NULL UNIQUE,
    sha256        TEXT NOT NULL,
    sha1          TEXT NOT NULL,
    md5           TEXT NOT NULL,
    size          INTEGER NOT NULL,
    content_guess TEXT,
    data          BLOB,
    url           TEXT,
    first_seen    INTEGER NOT NULL,
    last_seen     INTEGER NOT NULL,
    count         INTEGER NOT NULL
);
CREATE INDEX files_sha256 ON files (sha256);
CREATE INDEX files_sha1 ON files (sha1);
CREATE INDEX files_md5 ON files (md5);
CREATE INDEX files_last_seen ON files (last_seen);

CREATE TABLE urls (
    id         INTEGER PRIMARY KEY,
    url        TEXT NOT NULL UNIQUE,
    first_seen INTEGER NOT NULL,
    last_seen  INTEGER NOT NULL,
    count      INTEGER NOT NULL
);
CREATE INDEX urls_last_seen ON urls (last_seen);

CREATE TABLE url_files (
    url_id INTEGER NOT NULL REFERENCES urls (id) ON DELETE CASCADE,
    sha512 TEXT NOT NULL,
    PRIMARY KEY (url_id, sha512)
) WITHOUT ROWID;

CREATE TABLE dorks (
    id         INTEGER PRIMARY KEY,
    content    TEXT NOT NULL,
    kind       TEXT NOT NULL,
    first_seen INTEGER NOT NULL,
    last_seen  INTEGER NOT NULL,
    count      INTEGER NOT NULL,
    UNIQUE (content, kind)
);
CREATE INDEX dorks_last_seen ON dorks (last_seen);

CREATE TABLE p0f_metadata (
    id         INTEGER PRIMARY KEY,
    ip         TEXT NOT NULL UNIQUE,
    os         TEXT,
    app        TEXT,
    link       TEXT,
    uptime     TEXT,
    first_seen INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX p0f_metadata_updated ON p0f_metadata (updated_at);

-- Sessions per (dimension, hour, value). dim codes are apiary_store::Dimension::code:
-- 0 all, 1 honeypot, 2 sensor, 3 destination_port, 4 source_ip, 5 country, 6 protocol,
-- 7 channel, 8 signature, 9 username, 10 password (9 and 10 count attempts).
CREATE TABLE rollup_hourly (
    dim   INTEGER NOT NULL,
    hour  INTEGER NOT NULL,
    value TEXT NOT NULL,
    count INTEGER NOT NULL,
    PRIMARY KEY (dim, hour, value)
) WITHOUT ROWID;
CREATE INDEX rollup_hourly_value ON rollup_hourly (dim, value, hour);
