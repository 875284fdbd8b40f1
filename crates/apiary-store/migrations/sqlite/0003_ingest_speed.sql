-- Cheaper ingest, measured with benches/ingest.rs:
-- * credentials become clustered on (session_id, seq): rows are appended in session order
--   and the separate session_id index goes away. The foreign key goes too; the store
--   deletes credentials explicitly with their sessions (prune, re-normalization), and the
--   per-row parent lookup cost ~5% of ingest.
-- * rollup_hourly loses its (dim, value, hour) index: filtered counts per hour probe the
--   primary key once per hour instead, and every roll-up upsert touches one b-tree, not two.

CREATE TABLE credentials_v2 (
    session_id INTEGER NOT NULL,
    seq        INTEGER NOT NULL,
    ts         INTEGER NOT NULL,
    username   TEXT NOT NULL,
    password   TEXT NOT NULL,
    PRIMARY KEY (session_id, seq)
) WITHOUT ROWID;
INSERT INTO credentials_v2 (session_id, seq, ts, username, password)
    SELECT session_id, row_number() OVER (PARTITION BY session_id ORDER BY rowid) - 1,
           ts, username, password
    FROM credentials;
DROP TABLE credentials;
ALTER TABLE credentials_v2 RENAME TO credentials;
CREATE INDEX credentials_username ON credentials (username, session_id);
CREATE INDEX credentials_password ON credentials (password, session_id);

DROP INDEX rollup_hourly_value;
