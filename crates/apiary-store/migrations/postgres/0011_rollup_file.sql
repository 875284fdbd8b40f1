-- sqlite 0011 moved the roll-ups to their own file; PostgreSQL writes them in the ingest
-- transaction as before. Kept so schema versions match across backends.
SELECT 1;
