//! Schema versions: each backend embeds its own numbered migrations and records the
//! applied ones in `schema_migrations`; which of them to apply is decided alike.

use crate::{Result, StoreError};

/// Tables `table_counts` counts with COUNT(*) (small, or only read for /metrics); the
/// big ones have exact counters kept by the writers. Both schemas have all of them.
pub(crate) const COUNTED_TABLES: &[&str] = &[
    "idents",
    "sensors",
    "files",
    "urls",
    "dorks",
    "p0f_metadata",
    "rollup_hourly",
];

/// The big tables' row counts, which the writers keep exact in `counters`; the other
/// counters there (the idents version, the window's hour, delete marks) are not row
/// counts.
pub(crate) const ROW_COUNTERS_SQL: &str = "SELECT name, value FROM counters
     WHERE name IN ('raw_messages', 'sessions', 'credentials') ORDER BY name";

/// (version, name, SQL), ascending by version.
pub(crate) type Migration = (u32, &'static str, &'static str);

/// The version a database has once every migration is applied.
pub(crate) fn latest(migrations: &[Migration]) -> u32 {
    migrations.last().map_or(0, |m| m.0)
}

/// The migrations newer than the database's `current` version, oldest first. A database
/// newer than this build is refused rather than used with a schema we do not know.
pub(crate) fn pending(
    migrations: &'static [Migration],
    current: u32,
) -> Result<impl Iterator<Item = &'static Migration>> {
    let latest = latest(migrations);
    if current > latest {
        return Err(StoreError::Other(format!(
            "database schema version {current} is newer than this build knows ({latest}); \
             upgrade apiary"
        )));
    }
    Ok(migrations.iter().filter(move |m| m.0 > current))
}

/// The error for a migration whose SQL the database refused.
pub(crate) fn failed(version: u32, name: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Other(format!("migration {version:04}_{name} failed: {e}"))
}
