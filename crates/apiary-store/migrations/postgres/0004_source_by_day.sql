-- sqlite 0004 led the source-address index by the day to keep inserts on one part of it;
-- the PostgreSQL index is (source_ip, ts, id) (see 0001). Kept so schema versions match
-- across backends.
SELECT 1;
