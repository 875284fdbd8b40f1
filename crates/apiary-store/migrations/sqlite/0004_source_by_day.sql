-- The source-address index led by the address put every session insert on a random leaf:
-- at 10 million sessions each batch dirtied (and wrote to the WAL, then checkpointed) about
-- one index page per distinct source address in the batch, and ingest slowed to a third.
-- Led by the day (integer division of ts, in microseconds, by 86,400,000,000), new
-- sessions only touch today's part of the index. Lookups by address probe it once per
-- day of the range asked for (the store loops over days, newest first).
DROP INDEX sessions_source;
CREATE INDEX sessions_source_day ON sessions (ts / 86400000000, source_key, ts);
