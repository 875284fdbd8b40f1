-- sqlite 0014 led its source-address index by the run of the session id; PostgreSQL keeps
-- its index. Kept so schema versions match across backends.
SELECT 1;
