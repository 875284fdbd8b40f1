-- The sliding 24-hour roll-up (sqlite 0007), here too: top-N source addresses, usernames
-- and passwords over the last day read the window ordered by count instead of summing
-- one hourly row per value (at scale the sum took seconds). The writer builds it on its
-- first batch (W = -1 means "not built"). The value is matched by md5 like
-- rollup_hourly's (a btree entry cannot hold a long value).
CREATE TABLE rollup_window (
    dim   SMALLINT NOT NULL,
    value TEXT NOT NULL,
    count BIGINT NOT NULL
);
CREATE UNIQUE INDEX rollup_window_key ON rollup_window (dim, md5(value));
CREATE INDEX rollup_window_top ON rollup_window (dim, count DESC);
INSERT INTO counters (name, value) VALUES ('rollup_window_hour', -1);
