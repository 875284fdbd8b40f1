//! Versioned migrations: `migrations/postgres/NNNN_name.sql`, embedded, numbered like the
//! SQLite ones (a step SQLite needed and PostgreSQL does not is a no-op file), applied in
//! one transaction under an advisory lock and recorded in `schema_migrations`.

use deadpool_postgres::GenericClient;

use crate::schema::{self, Migration};
use crate::Result;

/// (version, name, SQL). Append only; never edit an applied file.
const MIGRATIONS: &[Migration] = &[
    (
        1,
        "initial",
        include_str!("../../migrations/postgres/0001_initial.sql"),
    ),
    (
        2,
        "accounts",
        include_str!("../../migrations/postgres/0002_accounts.sql"),
    ),
    (
        3,
        "ingest_speed",
        include_str!("../../migrations/postgres/0003_ingest_speed.sql"),
    ),
    (
        4,
        "source_by_day",
        include_str!("../../migrations/postgres/0004_source_by_day.sql"),
    ),
    (
        5,
        "deploy",
        include_str!("../../migrations/postgres/0005_deploy.sql"),
    ),
    (
        6,
        "credentials_by_day",
        include_str!("../../migrations/postgres/0006_credentials_by_day.sql"),
    ),
    (
        7,
        "rollup_window",
        include_str!("../../migrations/postgres/0007_rollup_window.sql"),
    ),
    (
        8,
        "sessions_with_urls",
        include_str!("../../migrations/postgres/0008_sessions_with_urls.sql"),
    ),
    (
        9,
        "rollup_window",
        include_str!("../../migrations/postgres/0009_rollup_window.sql"),
    ),
    (
        10,
        "covering_source_index",
        include_str!("../../migrations/postgres/0010_covering_source_index.sql"),
    ),
    (
        11,
        "rollup_file",
        include_str!("../../migrations/postgres/0011_rollup_file.sql"),
    ),
    (
        12,
        "geo_places",
        include_str!("../../migrations/postgres/0012_geo_places.sql"),
    ),
    (
        13,
        "credential_terms",
        include_str!("../../migrations/postgres/0013_credential_terms.sql"),
    ),
    (
        14,
        "source_by_run",
        include_str!("../../migrations/postgres/0014_source_by_run.sql"),
    ),
    (
        15,
        "asn_by_run",
        include_str!("../../migrations/postgres/0015_asn_by_run.sql"),
    ),
];

/// Advisory lock class of migrations (the second key is the schema's hash).
const LOCK_CLASS: i32 = 0x4150_0001;

/// Applies what is missing and returns the resulting schema version.
pub(super) async fn migrate(c: &mut deadpool_postgres::Client) -> Result<u32> {
    let tx = c.transaction().await?;
    // Serializes concurrent `apiary` processes migrating the same schema.
    tx.execute(
        "SELECT pg_advisory_xact_lock($1, hashtext(coalesce(current_schema(), '')))",
        &[&LOCK_CLASS],
    )
    .await?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version    INTEGER PRIMARY KEY,
             name       TEXT NOT NULL,
             applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
         )",
    )
    .await?;
    let current: i32 = tx
        .query_one(
            "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
            &[],
        )
        .await?
        .get(0);
    let current = current as u32;
    for &(version, name, sql) in schema::pending(MIGRATIONS, current)? {
        tracing::info!(version, name, "applying migration");
        tx.batch_execute(sql)
            .await
            .map_err(|e| schema::failed(version, name, e))?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
            &[&(version as i32), &name],
        )
        .await?;
        tracing::info!(version, name, "applied migration");
    }
    tx.commit().await?;
    Ok(schema::latest(MIGRATIONS))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbered_like_sqlite() {
        assert!(MIGRATIONS.windows(2).all(|w| w[0].0 < w[1].0));
        assert_eq!(MIGRATIONS.len() as u32, MIGRATIONS.last().unwrap().0);
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/sqlite");
        let sqlite = std::fs::read_dir(dir).unwrap().count();
        assert_eq!(
            sqlite,
            MIGRATIONS.len(),
            "every SQLite migration needs a PostgreSQL counterpart with the same number"
        );
    }
}
