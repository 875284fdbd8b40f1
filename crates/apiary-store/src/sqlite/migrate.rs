//! Versioned migrations: `migrations/sqlite/NNNN_name.sql`, embedded, each applied once
//! in its own transaction and recorded in `schema_migrations`.

use std::time::{Duration, Instant};

use rusqlite::{Connection, TransactionBehavior};

use crate::hours::us;
use crate::schema::{self, Migration};
use crate::Result;

/// (version, name, SQL). Append only; never edit an applied file.
const MIGRATIONS: &[Migration] = &[
    (
        1,
        "initial",
        include_str!("../../migrations/sqlite/0001_initial.sql"),
    ),
    (
        2,
        "accounts",
        include_str!("../../migrations/sqlite/0002_accounts.sql"),
    ),
    (
        3,
        "ingest_speed",
        include_str!("../../migrations/sqlite/0003_ingest_speed.sql"),
    ),
    (
        4,
        "source_by_day",
        include_str!("../../migrations/sqlite/0004_source_by_day.sql"),
    ),
    (
        5,
        "deploy",
        include_str!("../../migrations/sqlite/0005_deploy.sql"),
    ),
    (
        6,
        "credentials_by_day",
        include_str!("../../migrations/sqlite/0006_credentials_by_day.sql"),
    ),
    (
        7,
        "rollup_window",
        include_str!("../../migrations/sqlite/0007_rollup_window.sql"),
    ),
    (
        8,
        "sessions_with_urls",
        include_str!("../../migrations/sqlite/0008_sessions_with_urls.sql"),
    ),
    (
        9,
        "rollup_window_postgres",
        include_str!("../../migrations/sqlite/0009_rollup_window_postgres.sql"),
    ),
    (
        10,
        "covering_source_index",
        include_str!("../../migrations/sqlite/0010_covering_source_index.sql"),
    ),
    (
        11,
        "rollup_file",
        include_str!("../../migrations/sqlite/0011_rollup_file.sql"),
    ),
    (
        12,
        "geo_places",
        include_str!("../../migrations/sqlite/0012_geo_places.sql"),
    ),
    (
        13,
        "credential_terms",
        include_str!("../../migrations/sqlite/0013_credential_terms.sql"),
    ),
    (
        14,
        "source_by_run",
        include_str!("../../migrations/sqlite/0014_source_by_run.sql"),
    ),
    (
        15,
        "asn_by_run",
        include_str!("../../migrations/sqlite/0015_asn_by_run.sql"),
    ),
];

/// How often a long migration logs that it is still running.
const PROGRESS_EVERY: Duration = Duration::from_secs(10);

/// Applies what is missing and returns the resulting schema version.
pub(crate) fn migrate(conn: &mut Connection) -> Result<u32> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version    INTEGER PRIMARY KEY,
             name       TEXT NOT NULL,
             applied_at INTEGER NOT NULL
         )",
    )?;
    let current: u32 = conn.query_row(
        "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
        [],
        |r| r.get(0),
    )?;
    for &(version, name, sql) in schema::pending(MIGRATIONS, current)? {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        // Another process may have migrated between our read and our lock.
        let done: bool = tx.query_row(
            "SELECT EXISTS (SELECT 1 FROM schema_migrations WHERE version = ?1)",
            [version],
            |r| r.get(0),
        )?;
        if done {
            continue;
        }
        tracing::info!(version, name, "applying migration");
        // Some migrations rebuild an index over every session (about a minute per 10M):
        // say it is still working every 10 s.
        let started = Instant::now();
        let mut said = started;
        tx.progress_handler(
            1_000_000,
            Some(move || {
                if said.elapsed() >= PROGRESS_EVERY {
                    said = Instant::now();
                    tracing::info!(
                        version,
                        name,
                        "migration still running ({} s)",
                        started.elapsed().as_secs()
                    );
                }
                false
            }),
        );
        let applied = tx.execute_batch(sql);
        tx.progress_handler(0, None::<fn() -> bool>);
        applied.map_err(|e| schema::failed(version, name, e))?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?1, ?2, ?3)",
            rusqlite::params![version, name, us(chrono::Utc::now())],
        )?;
        tx.commit()?;
        tracing::info!(version, name, "applied migration");
    }
    Ok(schema::latest(MIGRATIONS))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_increase_and_apply_twice() {
        assert!(MIGRATIONS.windows(2).all(|w| w[0].0 < w[1].0));
        let mut conn = Connection::open_in_memory().unwrap();
        assert_eq!(migrate(&mut conn).unwrap(), MIGRATIONS.len() as u32);
        assert_eq!(migrate(&mut conn).unwrap(), MIGRATIONS.len() as u32);
        let n: i64 = conn
            .query_row("SELECT COUNT(*) FROM schema_migrations", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, MIGRATIONS.len() as i64);
    }

    fn plan(conn: &Connection, q: &str) -> Vec<String> {
        conn.prepare(&format!("EXPLAIN QUERY PLAN {q}"))
            .unwrap()
            .query_map([], |r| r.get(3))
            .unwrap()
            .map(|r| r.unwrap())
            .collect()
    }

    /// What counting one address's sessions reads (top attackers by service, attacker
    /// stats) is answered from the source index alone, one search per run.
    #[test]
    fn source_index_covers_the_per_address_counts() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn).unwrap();
        let scope = "id >> 16 = 5 AND source_key = x'00' AND ts >= 1 AND ts < 9";
        let since =
            "sessions.id >> 16 IN (3, 4, 5) AND sessions.source_key = x'00' AND sessions.ts >= 1";
        let index = "sessions INDEXED BY sessions_source_run";
        for q in [
            format!(
                "SELECT honeypot, protocol, destination_port, COUNT(*) FROM {index}
                 WHERE {scope} AND honeypot = 'h' GROUP BY 1, 2, 3"
            ),
            format!("SELECT COUNT(*), MIN(ts), MAX(ts) FROM sessions WHERE {scope}"),
            format!("SELECT DISTINCT sensor FROM sessions WHERE {scope} ORDER BY 1"),
            format!("SELECT DISTINCT destination_port FROM sessions WHERE {scope} ORDER BY 1"),
            format!(
                "SELECT destination_port, honeypot, sensor, COUNT(*), MIN(ts), MAX(ts)
                 FROM {index} WHERE {since} GROUP BY 1, 2, 3"
            ),
        ] {
            let plan = plan(&conn, &q);
            assert!(
                plan.iter().any(|p| p.starts_with(
                    "SEARCH sessions USING COVERING INDEX \
                                                  sessions_source_run (<expr>=? AND source_key=?"
                )),
                "{q}: {plan:?}"
            );
        }
        // Attacker stats that read the rows still search the index run by run (an alias
        // on sessions would turn this into a scan of the whole index).
        for q in [
            format!(
                "SELECT c.username, COUNT(*) FROM {index} JOIN credentials c \
                 ON c.session_id = sessions.id WHERE {since} GROUP BY 1"
            ),
            format!(
                "SELECT DISTINCT j.value FROM {index}, json_each(sessions.details, '$.urls') j \
                 WHERE {since}"
            ),
        ] {
            let plan = plan(&conn, &q);
            assert!(
                plan.iter().any(|p| p.starts_with("SEARCH sessions USING ")
                    && p.contains("INDEX sessions_source_run (<expr>=? AND source_key=?")),
                "{q}: {plan:?}"
            );
        }
    }

    #[test]
    fn credentials_survive_the_clustering_migration() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL,
                 applied_at INTEGER NOT NULL);",
        )
        .unwrap();
        for &(version, name, sql) in MIGRATIONS.iter().filter(|m| m.0 < 3) {
            conn.execute_batch(sql).unwrap();
            conn.execute(
                "INSERT INTO schema_migrations VALUES (?1, ?2, 0)",
                rusqlite::params![version, name],
            )
            .unwrap();
        }
        conn.execute_batch(
            "INSERT INTO sessions (id, ts, honeypot, channel, sensor) VALUES (7, 1, 'h', 'c', 's');
             INSERT INTO credentials (session_id, ts, username, password) VALUES
                 (7, 1, 'root', 'a'), (7, 1, 'root', 'b');",
        )
        .unwrap();
        migrate(&mut conn).unwrap();
        let rows: Vec<(i64, i64, String)> = conn
            .prepare("SELECT session_id, seq, password FROM credentials ORDER BY seq")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(rows, vec![(7, 0, "a".into()), (7, 1, "b".into())]);
    }
}
