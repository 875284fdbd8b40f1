//! The credential search index: (day, term, session) for every username and password,
//! filled in bulk instead of row by row.
//!
//! Usernames and passwords have long tails, so a per-row index insert lands at a random
//! place in today's part of the index and, once that part outgrows a batch, dirties one
//! page per credential in every commit (at 18.5M sessions the two former indexes were a
//! third of all pages a commit wrote). Here the ingest transaction only appends to
//! `credentials`; once `merge_every` sessions are newer than `merged`, the same transaction
//! copies their terms into `credential_terms` sorted by key, which touches each page of the
//! index once per merge. A search reads the terms up to `merged` and scans the credentials
//! of the newer sessions by primary key (at most `merge_every` sessions' worth).
//!
//! Terms of deleted sessions (retention, re-normalization) are deleted with them.

use rusqlite::{Connection, TransactionBehavior};

use crate::Result;

/// Sessions merged per transaction by [`catch_up`].
const CATCH_UP_CHUNK: i64 = 1_000_000;

/// Condition on `sessions.id`: sessions of day `?` with a credential whose username or
/// password is `?` (arguments: day, term, day, term, term).
pub(super) const CREDENTIAL_IN: &str = "id IN (\
    SELECT session_id FROM credential_terms WHERE day = ? AND term = ? \
    UNION ALL SELECT session_id FROM credentials \
    WHERE session_id > (SELECT merged FROM credential_terms_state) \
    AND ts / 86400000000 = ? AND (username = ? OR password = ?))";

/// Condition on `sessions`: it tried username or password `?` (arguments: term, term),
/// checked per session. For listings already narrowed by another index (address, ASN).
pub(super) const HAS_CREDENTIAL: &str = "EXISTS (SELECT 1 FROM credentials c \
    WHERE c.session_id = sessions.id AND (c.username = ? OR c.password = ?))";

/// The merge state, read once per write transaction.
#[derive(Clone, Copy)]
pub(super) struct State {
    /// Sessions up to this id have their terms in `credential_terms`.
    pub(super) merged: i64,
    /// Merge once this many sessions are newer than `merged`.
    every: i64,
}

impl State {
    pub(super) fn read(c: &Connection) -> Result<Self> {
        Ok(
            c.prepare_cached("SELECT merged, merge_every FROM credential_terms_state")?
                .query_row([], |r| {
                    Ok(State {
                        merged: r.get(0)?,
                        every: r.get::<_, i64>(1)?.max(1),
                    })
                })?,
        )
    }
}

/// Merges the terms of sessions up to `last_session` when enough have gathered; call in
/// the ingest transaction (whose `state` it is) after its sessions and credentials are
/// inserted.
pub(super) fn merge_if_due(c: &Connection, state: State, last_session: i64) -> Result<()> {
    if last_session - state.merged < state.every {
        return Ok(());
    }
    merge(c, state.merged, last_session)
}

/// Merges a backlog larger than one merge (the stored credentials of a database migrated
/// to 0013) in transactions of [`CATCH_UP_CHUNK`] sessions, logging progress. On open,
/// before ingest starts.
pub(super) fn catch_up(c: &mut Connection) -> Result<()> {
    let State { merged, every } = State::read(c)?;
    let last: i64 = c.query_row("SELECT COALESCE(MAX(id), 0) FROM sessions", [], |r| {
        r.get(0)
    })?;
    if last - merged < every {
        return Ok(());
    }
    let total = last - merged;
    tracing::info!(sessions = total, "building the credential search index");
    let mut from = merged;
    while from < last {
        let to = (from + CATCH_UP_CHUNK).min(last);
        let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
        merge(&tx, from, to)?;
        tx.commit()?;
        tracing::info!(
            done = to - merged,
            total,
            "credential search index: {:.0} %",
            (to - merged) as f64 * 100.0 / total as f64
        );
        from = to;
    }
    Ok(())
}

/// Copies the terms of sessions in (`after`, `upto`] into the index, in key order.
fn merge(c: &Connection, after: i64, upto: i64) -> Result<()> {
    c.prepare_cached(
        "INSERT OR IGNORE INTO credential_terms (day, term, session_id)
         SELECT ts / 86400000000, username, session_id FROM credentials
             WHERE session_id > ?1 AND session_id <= ?2
         UNION SELECT ts / 86400000000, password, session_id FROM credentials
             WHERE session_id > ?1 AND session_id <= ?2
         ORDER BY 1, 2, 3",
    )?
    .execute([after, upto])?;
    c.prepare_cached("UPDATE credential_terms_state SET merged = ?1")?
        .execute([upto])?;
    Ok(())
}

/// Adds the terms of one session directly (a session id at or below `merged`).
pub(super) fn insert_direct(
    c: &Connection,
    session_id: i64,
    ts: i64,
    credentials: &[apiary_model::Credential],
) -> Result<()> {
    let mut st = c.prepare_cached(
        "INSERT OR IGNORE INTO credential_terms (day, term, session_id)
         VALUES (?1 / 86400000000, ?2, ?3)",
    )?;
    for cr in credentials {
        for term in [&cr.username, &cr.password] {
            st.execute(rusqlite::params![ts, term, session_id])?;
        }
    }
    Ok(())
}

/// Deletes the terms of the sessions that `sessions_sql` selects (a `SELECT id ...` taking
/// `params`); call before their credentials are deleted.
pub(super) fn delete_for(
    c: &Connection,
    sessions_sql: &str,
    params: impl rusqlite::Params + Clone,
) -> Result<()> {
    for column in ["username", "password"] {
        c.prepare_cached(&format!(
            "DELETE FROM credential_terms WHERE (day, term, session_id) IN (
                 SELECT ts / 86400000000, {column}, session_id FROM credentials
                 WHERE session_id IN ({sessions_sql}))"
        ))?
        .execute(params.clone())?;
    }
    Ok(())
}
