-- The roll-ups move to their own file, <database>-rollups, with its own writer (see
-- src/sqlite/rollup_db.rs). Each write transaction here logs the roll-up increments it
-- makes in rollup_log; the roll-up writer applies them exactly once and later
-- transactions delete what was applied. The old rollup_hourly and rollup_window tables
-- are copied to the new file and dropped by the code on first open, not here: the copy
-- must be committed there first.
-- AUTOINCREMENT: ids must never be reused once the table has been emptied, or a new row
-- would look applied already.
CREATE TABLE rollup_log (
    id     INTEGER PRIMARY KEY AUTOINCREMENT,
    deltas BLOB NOT NULL
);
-- Which database a roll-up file belongs to (a stray or restored one is rebuilt).
INSERT INTO counters (name, value) VALUES ('database_id', random() & 9223372036854775807);
