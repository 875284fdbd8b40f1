-- Sliding 24-hour sums of the high-cardinality roll-up dimensions (source address,
-- username, password), ordered by count so "top N in the last 24 hours" reads N index
-- entries instead of summing one row per (hour, value). Kept by the writer; see
-- src/sqlite/window.rs for the invariant. The first batch after this migration builds it.
CREATE TABLE rollup_window (
    dim   INTEGER NOT NULL,
    value TEXT NOT NULL,
    count INTEGER NOT NULL,
    PRIMARY KEY (dim, value)
) WITHOUT ROWID;
CREATE INDEX rollup_window_top ON rollup_window (dim, count DESC, value);
INSERT INTO counters (name, value) VALUES ('rollup_window_hour', -1);
