-- Credential search moves from two day-led indexes on credentials (username, password),
-- which took an insert at a random place per credential and, at 10M+ sessions, dirtied a
-- page per credential in every commit (a third of all pages written), to one day-led term
-- table filled in bulk, in key order, every `merge_every` sessions (sqlite/credential_terms.rs).
-- Sessions above `merged` are searched in credentials directly (a bounded range scan).
CREATE TABLE credential_terms (
    day        INTEGER NOT NULL,             -- ts / 86400000000
    term       TEXT NOT NULL,                -- a username or a password
    session_id INTEGER NOT NULL,
    PRIMARY KEY (day, term, session_id)
) WITHOUT ROWID;

CREATE TABLE credential_terms_state (
    merged      INTEGER NOT NULL,            -- sessions up to this id are in credential_terms
    merge_every INTEGER NOT NULL             -- merge once this many sessions are newer
);

-- Nothing merged yet: the store merges stored credentials on open, in chunks, logging
-- progress (credential_terms::catch_up); searches are exact meanwhile.
INSERT INTO credential_terms_state (merged, merge_every) VALUES (0, 100000);

DROP INDEX credentials_username_day;
DROP INDEX credentials_password_day;
