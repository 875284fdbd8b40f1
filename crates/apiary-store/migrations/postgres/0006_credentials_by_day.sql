-- sqlite 0006 led the credential indexes by the day to keep inserts on one part of them;
-- the PostgreSQL credential indexes stay as in 0001/0003. Kept so schema versions match
-- across backends.
SELECT 1;
