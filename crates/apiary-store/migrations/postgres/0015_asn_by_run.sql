-- sqlite 0015 led its ASN index by the run of the session id; PostgreSQL keeps its index.
-- Kept so schema versions match across backends.
SELECT 1;
