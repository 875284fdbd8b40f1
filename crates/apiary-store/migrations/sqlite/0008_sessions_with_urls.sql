-- Free-text search (SessionFilter::text) looks for URLs in the sessions that have any:
-- a partial index of those sessions in time order, so a search reads them newest first
-- and never the sessions without URLs (most of them). Its WHERE is a byte search in the
-- details JSON, which omits the "urls" key when the list is empty; a session whose other
-- details merely contain that key as well is indexed needlessly but not found wrongly
-- (the query checks $.urls itself). Inserts of sessions without URLs pay only that byte
-- search; those with URLs append to the end of this small index.
CREATE INDEX sessions_with_urls ON sessions (ts) WHERE instr(details, '"urls":') > 0;
