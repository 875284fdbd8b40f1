//! The roll-ups' own database file, `<database>-rollups`, with its own writer.
//!
//! SQLite has one writer per file. With the hourly roll-ups and the 24-hour window in the
//! main file, their upserts ran inside the ingest transaction, on the one core the writer
//! keeps busy, while the second core sat mostly idle. Here they live in a second file
//! whose writes run after the main commit, in parallel with the next batch's.
//!
//! # Staying exact across crashes and processes
//! Each main transaction that changes roll-ups appends its summed increments, encoded
//! ([`Rollups::encode`]), to `rollup_log` in the main file, in the same transaction as
//! the sessions they count. Applying ([`apply_pending`]) reads the log rows after the
//! roll-up file's `applied_log_id`, adds them and moves `applied_log_id` on, in one
//! roll-up transaction: each increment is applied exactly once, by whichever process
//! gets there first, and a crash between the two commits is mended by the next apply
//! (every open runs one). Applied log rows are deleted by a later main transaction.
//!
//! The main file holds a random `database_id`; the roll-up file records which database
//! it belongs to. A missing roll-up file, or one that belongs to another database, is
//! rebuilt from the sessions (and a database from before this file existed has its
//! roll-up tables moved over once).

use std::path::{Path, PathBuf};
use std::time::Instant;

use rusqlite::{params, Connection, OpenFlags, OptionalExtension, TransactionBehavior};

use crate::hours::HOUR_US;
use crate::rollups::Rollups;
use crate::types::Dimension;
use crate::{Result, StoreError};

/// Schema alias of the roll-up file on connections whose main schema is the main file.
pub(super) const ALIAS: &str = "ru";

/// Schema alias of the main file on the roll-up writer's connection.
const SOURCE: &str = "src";

/// The roll-up file's schema, all `IF NOT EXISTS` (applied on every open). The tables are
/// those of the main file's migrations 0001, 0003 and 0007, which move here.
///
/// The window's count index holds only rows of at least [`super::window::HOT`] sessions;
/// files made before lose the full index (`rollup_window_top`) on open and get this one,
/// built from the window's rows.
///
/// `rollup_window_tier` lists the window's warm values (see [`super::window::WARM`]) by
/// power-of-two tier; it is rebuilt from the window whenever the roll-up file is opened.
///
/// No index by value: no query reads the hourly rows by value across hours (per-value
/// series probe the primary key hour by hour), and migration 0003 dropped it for ingest
/// speed. Files made before it was noticed that the move had brought it back lose it on
/// open: it cost every source-address, credential and ASN increment a second B-tree insert
/// and every pruned hour a random page per value.
const SCHEMA: &str = "
    CREATE TABLE IF NOT EXISTS {s}.rollup_hourly (
        dim   INTEGER NOT NULL,
        hour  INTEGER NOT NULL,
        value TEXT NOT NULL,
        count INTEGER NOT NULL,
        PRIMARY KEY (dim, hour, value)
    ) WITHOUT ROWID;
    DROP INDEX IF EXISTS {s}.rollup_hourly_value;
    CREATE TABLE IF NOT EXISTS {s}.rollup_window (
        dim   INTEGER NOT NULL,
        value TEXT NOT NULL,
        count INTEGER NOT NULL,
        PRIMARY KEY (dim, value)
    ) WITHOUT ROWID;
    DROP INDEX IF EXISTS {s}.rollup_window_top;
    CREATE INDEX IF NOT EXISTS {s}.rollup_window_hot ON rollup_window (dim, count DESC, value)
        WHERE count >= {hot};
    CREATE TABLE IF NOT EXISTS {s}.rollup_window_tier (
        dim   INTEGER NOT NULL,
        tier  INTEGER NOT NULL,
        value TEXT NOT NULL,
        PRIMARY KEY (dim, tier, value)
    ) WITHOUT ROWID;
    CREATE TABLE IF NOT EXISTS {s}.rollup_state (
        name  TEXT PRIMARY KEY,
        value INTEGER NOT NULL
    ) WITHOUT ROWID;
";

/// [`SCHEMA`] for the roll-up file attached as `alias`.
fn schema(alias: &str) -> String {
    SCHEMA
        .replace("{s}", alias)
        .replace("{hot}", &super::window::HOT.to_string())
}

/// `rollup_state` names.
const APPLIED: &str = "applied_log_id";
const BELONGS_TO: &str = "database_id";

/// WAL bytes after which the roll-up writer checkpoints inline; the checkpoint thread
/// normally does it first.
const AUTOCHECKPOINT: u64 = 64 * 1024 * 1024;

/// The roll-up file beside the database at `main`.
pub(super) fn path_for(main: &Path) -> PathBuf {
    let mut p = main.as_os_str().to_owned();
    p.push("-rollups");
    PathBuf::from(p)
}

/// Where the roll-up log is, seen from the roll-up writer's connection.
#[derive(Clone, Copy)]
pub(super) enum Log {
    /// In the attached main file (file databases).
    Attached,
    /// In the connection's own main schema (in-memory databases: one connection).
    Own,
}

impl Log {
    fn table(self) -> String {
        format!("{}.rollup_log", self.schema())
    }

    fn schema(self) -> &'static str {
        match self {
            Log::Attached => SOURCE,
            Log::Own => "main",
        }
    }

    /// The schema the roll-up tables are in.
    fn rollups(self) -> &'static str {
        match self {
            Log::Attached => "main",
            Log::Own => ALIAS,
        }
    }
}

/// Opens the roll-up writer's connection for the main file at `main` (which must be
/// migrated): the roll-up file as its main schema, the main file attached for reading
/// the log.
pub(super) fn open_writer(main: &Path) -> Result<Connection> {
    let path = path_for(main);
    let conn = Connection::open_with_flags(
        &path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| {
        StoreError::Other(format!(
            "cannot open roll-up database {}: {e}",
            path.display()
        ))
    })?;
    conn.busy_timeout(super::BUSY_TIMEOUT)?;
    super::start_file(&conn, &path)?;
    conn.execute_batch("PRAGMA synchronous = NORMAL; PRAGMA cache_size = -131072;")?;
    conn.pragma_update(None, "mmap_size", super::MMAP_SIZE)?;
    super::set_autocheckpoint(&conn, AUTOCHECKPOINT)?;
    conn.pragma_update(None, "journal_size_limit", super::WAL_SIZE_LIMIT)?;
    conn.set_prepared_statement_cache_capacity(super::STATEMENT_CACHE);
    conn.execute(
        &format!("ATTACH DATABASE ?1 AS {SOURCE}"),
        [main.to_string_lossy()],
    )?;
    conn.execute_batch(&schema("main"))?;
    Ok(conn)
}

/// Attaches the roll-up file of `main` to a reader connection.
pub(super) fn attach_to_reader(c: &Connection, main: &Path) -> Result<()> {
    c.execute(
        &format!("ATTACH DATABASE ?1 AS {ALIAS}"),
        [path_for(main).to_string_lossy()],
    )?;
    Ok(())
}

/// Gives the one connection of an in-memory database its in-memory roll-up schema.
pub(super) fn attach_memory(c: &Connection) -> Result<()> {
    c.execute_batch(&format!("ATTACH DATABASE ':memory:' AS {ALIAS};"))?;
    c.execute_batch(&schema(ALIAS))?;
    Ok(())
}

fn state(c: &Connection, schema: &str, name: &str) -> Result<Option<i64>> {
    Ok(c.prepare_cached(&format!(
        "SELECT value FROM {schema}.rollup_state WHERE name = ?1"
    ))?
    .query_row([name], |r| r.get(0))
    .optional()?)
}

fn set_state(c: &Connection, schema: &str, name: &str, value: i64) -> Result<()> {
    c.prepare_cached(&format!(
        "INSERT INTO {schema}.rollup_state (name, value) VALUES (?1, ?2)
         ON CONFLICT (name) DO UPDATE SET value = excluded.value"
    ))?
    .execute(params![name, value])?;
    Ok(())
}

/// Takes the roll-up file's write lock at the start of a deferred transaction on a
/// connection that also sees the main file: IMMEDIATE would lock every attached file, and
/// reading before the first write could fail the upgrade when another process wrote in
/// between. An UPDATE that changes nothing still locks; `rollup_state` exists only in the
/// roll-up file, so the name needs no schema.
pub(super) fn lock_for_write(c: &Connection) -> Result<()> {
    c.prepare_cached(&format!(
        "UPDATE rollup_state SET value = value WHERE name = '{APPLIED}'"
    ))?
    .execute([])?;
    Ok(())
}

fn has_table(c: &Connection, schema: &str, table: &str) -> Result<bool> {
    Ok(c.query_row(
        &format!("SELECT 1 FROM {schema}.sqlite_master WHERE type = 'table' AND name = ?1"),
        [table],
        |_| Ok(()),
    )
    .optional()?
    .is_some())
}

/// What [`adopt`] found and did.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Adopted {
    /// The roll-up file already belonged to this database.
    Current,
    /// The main file's own roll-up tables (from before the split) were copied over.
    Moved,
    /// The roll-ups were recomputed from the stored sessions.
    Rebuilt,
}

/// Makes the roll-up file match the main database on `rc` (the roll-up writer's
/// connection), before anything else writes. The main file's legacy roll-up tables, if
/// any, must then be dropped with [`drop_legacy`] (not here: that needs the main file's
/// write lock, which this connection never takes).
pub(super) fn adopt(rc: &mut Connection, log: Log) -> Result<Adopted> {
    let (src, ru) = (log.schema(), log.rollups());
    let id: i64 = rc.query_row(
        &format!("SELECT value FROM {src}.counters WHERE name = ?1"),
        [BELONGS_TO],
        |r| r.get(0),
    )?;
    let tx = rc.transaction_with_behavior(TransactionBehavior::Deferred)?;
    lock_for_write(&tx)?;
    if state(&tx, ru, BELONGS_TO)? == Some(id) {
        super::window::rebuild_tiers(&tx, Some(ru))?;
        tx.commit()?;
        return Ok(Adopted::Current);
    }
    for t in ["rollup_hourly", "rollup_window"] {
        tx.execute(&format!("DELETE FROM {ru}.{t}"), [])?;
    }
    let legacy = has_table(&tx, src, "rollup_hourly")?;
    let how = if legacy {
        tx.execute(
            &format!("INSERT INTO {ru}.rollup_hourly SELECT dim, hour, value, count FROM {src}.rollup_hourly"),
            [],
        )?;
        tx.execute(
            &format!(
                "INSERT INTO {ru}.rollup_window SELECT dim, value, count FROM {src}.rollup_window"
            ),
            [],
        )?;
        let w: Option<i64> = tx
            .query_row(
                &format!("SELECT value FROM {src}.counters WHERE name = ?1"),
                [crate::window::HOUR_COUNTER],
                |r| r.get(0),
            )
            .optional()?;
        set_state(&tx, ru, crate::window::HOUR_COUNTER, w.unwrap_or(-1))?;
        Adopted::Moved
    } else {
        rebuild_hourly(&tx, src, ru)?;
        // An empty window: the next apply rebuilds it from the hourly rows.
        set_state(&tx, ru, crate::window::HOUR_COUNTER, -1)?;
        Adopted::Rebuilt
    };
    // Whatever the log holds is already counted in what was copied or recomputed.
    let last: i64 = tx.query_row(
        &format!("SELECT COALESCE(MAX(id), 0) FROM {}", log.table()),
        [],
        |r| r.get(0),
    )?;
    set_state(&tx, ru, APPLIED, last)?;
    set_state(&tx, ru, BELONGS_TO, id)?;
    super::window::rebuild_tiers(&tx, Some(ru))?;
    tx.commit()?;
    Ok(how)
}

/// Drops the main file's roll-up tables from before the split, once [`adopt`] copied them.
pub(super) fn drop_legacy(main: &mut Connection) -> Result<bool> {
    if !has_table(main, "main", "rollup_hourly")? {
        return Ok(false);
    }
    let tx = main.transaction_with_behavior(TransactionBehavior::Immediate)?;
    tx.execute_batch(
        "DROP TABLE IF EXISTS main.rollup_window;
         DROP TABLE IF EXISTS main.rollup_hourly;",
    )?;
    tx.execute(
        "DELETE FROM main.counters WHERE name = ?1",
        [crate::window::HOUR_COUNTER],
    )?;
    tx.commit()?;
    Ok(true)
}

/// Recomputes `rollup_hourly` from the sessions and credentials: the same rows
/// [`Rollups::session`] and [`Rollups::credential`] count.
fn rebuild_hourly(c: &Connection, src: &str, ru: &str) -> Result<()> {
    let started = Instant::now();
    let sessions: i64 = c.query_row(&format!("SELECT COUNT(*) FROM {src}.sessions"), [], |r| {
        r.get(0)
    })?;
    if sessions > 0 {
        tracing::info!(sessions, "rebuilding the roll-ups from the stored sessions");
    }
    // div_euclid, as hours::hour_of.
    let hour = format!("CASE WHEN ts >= 0 THEN ts / {HOUR_US} ELSE (ts + 1) / {HOUR_US} - 1 END");
    let per_session: [(Dimension, &str); 9] = [
        (Dimension::All, "''"),
        (Dimension::Honeypot, "honeypot"),
        (Dimension::Sensor, "sensor"),
        (Dimension::Channel, "channel"),
        (Dimension::DestinationPort, "CAST(destination_port AS TEXT)"),
        (Dimension::SourceIp, "source_ip"),
        (Dimension::Country, "country_code"),
        (Dimension::Protocol, "protocol"),
        (Dimension::Signature, "signature"),
    ];
    let per_credential = [
        (Dimension::Username, "username"),
        (Dimension::Password, "password"),
    ];
    let sources = per_session
        .iter()
        .map(|(d, col)| (d, col, "sessions"))
        .chain(
            per_credential
                .iter()
                .map(|(d, col)| (d, col, "credentials")),
        );
    for (dim, col, table) in sources {
        c.execute(
            &format!(
                "INSERT INTO {ru}.rollup_hourly (dim, hour, value, count)
                 SELECT ?1, h, v, COUNT(*) FROM (
                     SELECT {hour} AS h, {col} AS v FROM {src}.{table} WHERE {col} IS NOT NULL)
                 GROUP BY h, v"
            ),
            [dim.code()],
        )?;
    }
    if sessions > 0 {
        tracing::info!(
            sessions,
            seconds = started.elapsed().as_secs_f64(),
            "roll-ups rebuilt"
        );
    }
    Ok(())
}

/// Adds the roll-up log rows not applied yet, in one roll-up transaction, moving the
/// 24-hour window to `now_hour` first. Returns the last applied log id.
pub(super) fn apply_pending(rc: &mut Connection, log: Log, now_hour: i64) -> Result<i64> {
    let ru = log.rollups();
    let tx = rc.transaction_with_behavior(TransactionBehavior::Deferred)?;
    // Before the log is read: another process may be applying the same rows.
    lock_for_write(&tx)?;
    let applied = state(&tx, ru, APPLIED)?.unwrap_or(0);
    let mut sums = Rollups::default();
    let mut last = applied;
    {
        let mut st = tx.prepare_cached(&format!(
            "SELECT id, deltas FROM {} WHERE id > ?1 ORDER BY id",
            log.table()
        ))?;
        let mut rows = st.query([applied])?;
        while let Some(r) = rows.next()? {
            let id: i64 = r.get(0)?;
            let bytes = r.get_ref(1)?.as_blob().map_err(rusqlite::Error::from)?;
            sums.absorb(bytes).map_err(|e| {
                StoreError::Other(format!("roll-up log row {id} is unreadable: {e}"))
            })?;
            last = id;
        }
    }
    if last == applied {
        return Ok(applied);
    }
    super::write::flush(sums, &tx, now_hour)?;
    set_state(&tx, ru, APPLIED, last)?;
    tx.commit()?;
    Ok(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rollup_file_sits_beside_the_database() {
        assert_eq!(
            path_for(Path::new("/var/lib/apiary/apiary.db")),
            PathBuf::from("/var/lib/apiary/apiary.db-rollups")
        );
    }

    #[test]
    fn an_old_rollup_file_loses_the_value_and_full_count_indexes_and_keeps_its_rows() {
        let dir = tempfile::tempdir().unwrap();
        let main = dir.path().join("apiary.db");
        {
            let old = Connection::open(path_for(&main)).unwrap();
            old.execute_batch(
                "CREATE TABLE rollup_hourly (dim INTEGER NOT NULL, hour INTEGER NOT NULL,
                     value TEXT NOT NULL, count INTEGER NOT NULL,
                     PRIMARY KEY (dim, hour, value)) WITHOUT ROWID;
                 CREATE INDEX rollup_hourly_value ON rollup_hourly (dim, value, hour);
                 INSERT INTO rollup_hourly VALUES (4, 7, '192.0.2.1', 3);
                 CREATE TABLE rollup_window (dim INTEGER NOT NULL, value TEXT NOT NULL,
                     count INTEGER NOT NULL, PRIMARY KEY (dim, value)) WITHOUT ROWID;
                 CREATE INDEX rollup_window_top ON rollup_window (dim, count DESC, value);
                 INSERT INTO rollup_window VALUES (4, '192.0.2.1', 3), (4, '192.0.2.2', 99);",
            )
            .unwrap();
        }
        let c = open_writer(&main).unwrap();
        let indexes: Vec<String> = c
            .prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(|r| r.unwrap())
            .collect();
        // The window's full count index became the partial one, holding the hot row only.
        assert_eq!(indexes, ["rollup_window_hot"]);
        let hot: i64 = c
            .query_row(
                "SELECT COUNT(*) FROM rollup_window INDEXED BY rollup_window_hot
                 WHERE dim = 4 AND count >= 64",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(hot, 1);
        let n: i64 = c
            .query_row("SELECT count FROM rollup_hourly WHERE hour = 7", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(n, 3);
    }
}
