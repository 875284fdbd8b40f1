-- sqlite 0013 replaced its two credential indexes by a term table merged in bulk;
-- PostgreSQL keeps its indexes. Kept so schema versions match across backends.
SELECT 1;
