-- Free-text search (SessionFilter::text) looks for URLs in the sessions that have any
-- (details omit the "urls" key when the list is empty): a partial index of those
-- sessions in keyset order, as sqlite 0008.
CREATE INDEX sessions_with_urls ON sessions (ts, id) WHERE details ? 'urls';
