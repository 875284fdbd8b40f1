-- The credential indexes led by the username / password put every credential insert on a
-- random leaf, like the source-address index before 0004: measured with benches/ingest.rs
-- they were the two most expensive indexes of a batch. Led by the day (as sessions_source_day),
-- new credentials only touch today's part. Lookups by credential probe one day at a time.
DROP INDEX credentials_username;
DROP INDEX credentials_password;
CREATE INDEX credentials_username_day ON credentials (ts / 86400000000, username, session_id);
CREATE INDEX credentials_password_day ON credentials (ts / 86400000000, password, session_id);
