-- postgres 0016 adds the (source address, honeypot) roll-up to rollup_hourly. With SQLite
-- the roll-ups live in their own file, which gains it when it is opened (see
-- src/sqlite/rollup_db.rs, add_missing_dims). Kept so schema versions match across
-- backends.
SELECT 1;
