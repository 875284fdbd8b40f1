-- The source-address index led by the run of the session id (id >> 16, 65,536 sessions)
-- instead of the day: under sustained ingest today's part of the day-led index was millions
-- of entries and every commit dirtied one page of it per session (71 % of the pages a
-- commit wrote at 20M sessions). The newest run's part stays a few megabytes. Readers probe
-- once per run whose time span (session_runs) overlaps their range; see sqlite/runs.rs.
-- Rebuilding the index takes about a minute per 10 million sessions.
DROP INDEX sessions_source_day;
CREATE INDEX sessions_source_run ON sessions
    (id >> 16, source_key, ts, honeypot, protocol, destination_port, sensor);
CREATE TABLE session_runs (
    run    INTEGER PRIMARY KEY,
    min_ts INTEGER NOT NULL,
    max_ts INTEGER NOT NULL
);
INSERT INTO session_runs (run, min_ts, max_ts)
    SELECT id >> 16, MIN(ts), MAX(ts) FROM sessions GROUP BY 1;
