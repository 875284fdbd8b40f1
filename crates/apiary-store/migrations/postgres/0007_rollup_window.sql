-- sqlite 0007 added a sliding 24-hour roll-up for fast top-N; the PostgreSQL backend sums
-- the hourly roll-ups. Kept so schema versions match across backends.
SELECT 1;
