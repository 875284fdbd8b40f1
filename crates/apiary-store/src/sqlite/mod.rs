//! The embedded SQLite backend.
//!
//! # Concurrency
//! SQLite allows one writer at a time, so the backend owns exactly one writer connection
//! behind a mutex; writes run on tokio's blocking pool while holding it. Reads go to a
//! small pool of separate read-only connections: in WAL mode a reader sees the last
//! committed snapshot and never waits for the writer. An in-memory database cannot be
//! shared between connections without SQLite's shared-cache mode (whose table locks would
//! make readers wait anyway), so there everything uses the one connection.
//!
//! The roll-ups live in a second file with their own writer connection, written after
//! each ingest commit while the next batch holds the main writer ([`rollup_db`]).
//!
//! Credential search reads a term table merged in bulk rather than per-row indexes
//! ([`credential_terms`]): a per-row insert at a random place in a large index dirties a
//! page per row in every commit. For the same reason the source-address and ASN indexes
//! are led by the run of the session id ([`runs`]).
//!
//! WAL checkpoints (copying committed pages back into the database file) run on a
//! dedicated thread with its own connection, in parallel with the writer; left to
//! SQLite's auto-checkpoint they ran inside the writer's commits and cost about a fifth of
//! ingest throughput. The writer's auto-checkpoint stays on at a high mark as a backstop.

mod accounts;
mod admin;
mod conv;
mod credential_terms;
mod deploy;
mod migrate;
mod read;
mod rollup_db;
mod rows;
mod run_counts;
mod runs;
mod trouble;
mod turns;
mod window;
mod write;

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use apiary_model::{ApiKey, Ident, RawEvent, Role, Session, User, WebSession};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use parking_lot::Mutex;
use rusqlite::{Connection, OpenFlags};
use tokio::sync::Semaphore;

use crate::prune::PruneBatches;
use crate::types::*;
use crate::{Outcome, Result, Store, StoreError};
use trouble::Trouble;

/// Reader connections per file database. Two cores, and each query is short: a few
/// readers keep the dashboard, the API and /metrics from queueing behind each other.
const READERS: usize = 4;

/// How long a connection waits on a lock held by another process (e.g. `apiary ident add`
/// while the server runs) before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Cached prepared statements per connection; the write path uses about ten.
const STATEMENT_CACHE: usize = 64;

/// How often the checkpoint thread copies the WAL back into the database.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(1000);

/// WAL bytes after which the writer checkpoints itself: only a backstop. A 64 MiB mark
/// made the writer checkpoint inline under sustained ingest and cost a third of the
/// throughput (benches/ingest.rs).
const WRITER_AUTOCHECKPOINT: u64 = 256 * 1024 * 1024;

/// Bytes of the database file each connection maps into memory (reads skip the read(2)
/// copy; the OS page cache is shared by every connection). SQLite maps no more than the
/// file's size, so this is address space, not memory; it needs the bundled SQLite's
/// ceiling raised (`SQLITE_MAX_MMAP_SIZE` in `.cargo/config.toml`), or it is cut to 2 GiB.
const MMAP_SIZE: i64 = 256 * 1024 * 1024 * 1024;

/// Page size of new database files (SQLite's default is 4096; an existing file keeps its
/// own). Fewer, larger pages make every B-tree shallower and cheaper to search: 74.6-74.9
/// -> 66.5-66.7 µs of CPU per ingested event on an empty database (8 KiB 70.0, 32 KiB
/// 68.2, 64 KiB 70.3: larger pages cost more to write than they save).
pub(crate) const PAGE_SIZE: u32 = 16_384;

/// Bytes the WAL file is truncated to when it restarts.
const WAL_SIZE_LIMIT: i64 = 256 * 1024 * 1024;

/// SQLite store. See the module docs for the connection layout.
pub(crate) struct SqliteStore {
    writer: Arc<Mutex<Option<Connection>>>,
    /// The roll-up file's writer (the same connection as `writer` in memory).
    rollups: Arc<RollupWriter>,
    /// Commit order of ingest batches (see [`turns`]).
    turns: Arc<turns::Turns>,
    readers: Option<Arc<ReaderPool>>,
    checkpointer: Option<Checkpointer>,
    path: Option<PathBuf>,
    /// Per-run counts of probed source addresses (see [`run_counts`]).
    run_counts: Arc<run_counts::RunCounts>,
}

/// The background checkpoint thread; stopped by `close` or on drop.
struct Checkpointer {
    stop: Arc<AtomicBool>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Checkpointer {
    fn spawn(path: &Path, rollups: Arc<RollupWriter>) -> Result<Self> {
        let open = |p: &Path| -> Result<Connection> {
            let conn = Connection::open_with_flags(
                p,
                OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )?;
            conn.busy_timeout(BUSY_TIMEOUT)?;
            Ok(conn)
        };
        let conns = [open(path)?, open(&rollup_db::path_for(path))?];
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::Builder::new()
            .name("apiary-sqlite-checkpoint".into())
            .spawn(move || {
                let mut ticks = 0u64;
                let mut trouble = [
                    Trouble::new("WAL checkpoint of the database"),
                    Trouble::new("WAL checkpoint of the roll-up file"),
                ];
                while !stopping.load(Ordering::Acquire) {
                    std::thread::park_timeout(CHECKPOINT_EVERY);
                    // PASSIVE never blocks the writer or readers; it copies what it can.
                    for (conn, trouble) in conns.iter().zip(&mut trouble) {
                        let r = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
                        trouble.record(&r);
                    }
                    // Increments a failed apply left logged would otherwise wait for the
                    // next batch, which may be long in coming.
                    if rollups.failing() {
                        rollups.apply_after_commit();
                    }
                    // Once a minute: keep the 24 h window current while nothing arrives.
                    ticks += 1;
                    if ticks.is_multiple_of(60) {
                        let now_hour = crate::hours::hour_of(crate::hours::us(Utc::now()));
                        match rollups.catch_up(now_hour) {
                            Ok(true) => tracing::debug!(now_hour, "idle 24 h window moved on"),
                            Ok(false) => {}
                            Err(e) => tracing::warn!(error = %e, "24 h window catch-up failed"),
                        }
                    }
                }
            })
            .map_err(|e| StoreError::Other(format!("cannot start the checkpoint thread: {e}")))?;
        Ok(Self {
            stop,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Signals the thread to stop and returns its handle to join.
    fn stop(&self) -> Option<std::thread::JoinHandle<()>> {
        self.stop.store(true, Ordering::Release);
        let handle = self.thread.lock().take();
        if let Some(h) = &handle {
            h.thread().unpark();
        }
        handle
    }
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        // Without close(): let the thread end on its own; never block a dropping task.
        if let Some(c) = &self.checkpointer {
            drop(c.stop());
        }
    }
}

/// The roll-up file's writer connection and what it last applied.
struct RollupWriter {
    conn: Arc<Mutex<Option<Connection>>>,
    log: rollup_db::Log,
    /// The last roll-up log id applied (main transactions delete up to it).
    applied: AtomicI64,
    /// Failed applies, retried by the checkpoint thread.
    trouble: Mutex<Trouble>,
}

impl RollupWriter {
    fn with<T>(&self, f: impl FnOnce(&mut Connection) -> Result<T>) -> Result<T> {
        let mut guard = self.conn.lock();
        f(guard.as_mut().ok_or_else(closed)?)
    }

    /// Applies the pending roll-up log (blocking).
    fn apply(&self) -> Result<()> {
        let now_hour = crate::hours::hour_of(crate::hours::us(Utc::now()));
        let last = self.with(|c| rollup_db::apply_pending(c, self.log, now_hour))?;
        self.applied.fetch_max(last, Ordering::AcqRel);
        Ok(())
    }

    /// [`RollupWriter::apply`] after a main commit that logged increments: a failure
    /// leaves them in the log for the next apply (retrying the batch would store it
    /// twice), so it is reported, not returned.
    fn apply_after_commit(&self) {
        let r = self.apply();
        self.trouble.lock().record(&r);
    }

    /// Whether the last apply failed (its increments are still logged).
    fn failing(&self) -> bool {
        self.trouble.lock().failing()
    }

    fn catch_up(&self, now_hour: i64) -> Result<bool> {
        self.with(|c| window::catch_up(c, now_hour))
    }

    fn applied(&self) -> i64 {
        self.applied.load(Ordering::Acquire)
    }
}

struct ReaderPool {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
    permits: Semaphore,
    closed: Mutex<bool>,
}

fn closed() -> StoreError {
    StoreError::Other("the store is closed".into())
}

fn join_err(e: tokio::task::JoinError) -> StoreError {
    StoreError::Other(format!("database task failed: {e}"))
}

fn open_writer(path: Option<&Path>) -> Result<Connection> {
    let conn = match path {
        Some(p) => Connection::open_with_flags(
            p,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| StoreError::Other(format!("cannot open database {}: {e}", p.display())))?,
        None => Connection::open_in_memory()?,
    };
    conn.busy_timeout(BUSY_TIMEOUT)?;
    if let Some(p) = path {
        start_file(&conn, p)?;
    }
    // NORMAL under WAL: a power cut may lose the last transactions, never corrupt.
    // The 256 MiB page cache keeps the hot end of every session index (for the run-led
    // source and ASN indexes, the newest run's part) in memory; memory-mapped reads make
    // the misses cheap.
    conn.execute_batch(
        "PRAGMA synchronous = NORMAL;
         PRAGMA foreign_keys = ON;
         PRAGMA temp_store = MEMORY;
         PRAGMA cache_size = -262144;",
    )?;
    if path.is_some() {
        conn.pragma_update(None, "mmap_size", MMAP_SIZE)?;
    }
    if path.is_some() {
        set_autocheckpoint(&conn, WRITER_AUTOCHECKPOINT)?;
        // Shrink the WAL file back after a reset so a burst does not keep its disk space.
        conn.pragma_update(None, "journal_size_limit", WAL_SIZE_LIMIT)?;
    }
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(conn)
}

/// Gives a new file [`PAGE_SIZE`] pages (only possible while it is empty: before WAL
/// mode writes its header) and puts the file in WAL mode.
pub(crate) fn start_file(conn: &Connection, path: &Path) -> Result<()> {
    conn.pragma_update(None, "page_size", PAGE_SIZE)?;
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Other(format!(
            "cannot switch {} to WAL mode (got {mode})",
            path.display()
        )));
    }
    Ok(())
}

/// Sets the WAL auto-checkpoint mark (counted in pages) to about `bytes` of WAL for the
/// file's page size.
pub(crate) fn set_autocheckpoint(conn: &Connection, bytes: u64) -> Result<()> {
    let page: u64 = conn.query_row("PRAGMA page_size", [], |r| r.get(0))?;
    conn.pragma_update(None, "wal_autocheckpoint", bytes / page.max(512))?;
    Ok(())
}

fn open_reader(path: &Path) -> Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.execute_batch("PRAGMA temp_store = MEMORY; PRAGMA cache_size = -16384;")?;
    conn.pragma_update(None, "mmap_size", MMAP_SIZE)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    rollup_db::attach_to_reader(&conn, path)?;
    Ok(conn)
}

/// Migrates the main database on `writer` and brings the roll-up file (for `path`; an
/// attached in-memory schema on `writer` itself without one) in line with it, applying
/// what its log holds. Returns the roll-up writer's connection for file databases and
/// the last log id applied.
fn prepare_files(
    writer: &mut Connection,
    path: Option<&Path>,
) -> Result<(Option<Connection>, i64)> {
    migrate::migrate(writer)?;
    credential_terms::catch_up(writer)?;
    let now_hour = crate::hours::hour_of(crate::hours::us(Utc::now()));
    let rollups = match path {
        Some(p) => {
            let mut rc = rollup_db::open_writer(p)?;
            let how = rollup_db::adopt(&mut rc, rollup_db::Log::Attached)?;
            if how != rollup_db::Adopted::Current {
                tracing::info!(file = %rollup_db::path_for(p).display(), ?how, "roll-up database prepared");
            }
            rollup_db::drop_legacy(writer)?;
            let applied = rollup_db::apply_pending(&mut rc, rollup_db::Log::Attached, now_hour)?;
            (Some(rc), applied)
        }
        None => {
            rollup_db::attach_memory(writer)?;
            rollup_db::adopt(writer, rollup_db::Log::Own)?;
            rollup_db::drop_legacy(writer)?;
            let applied = rollup_db::apply_pending(writer, rollup_db::Log::Own, now_hour)?;
            (None, applied)
        }
    };
    Ok(rollups)
}

/// A migrated in-memory database with its roll-up schema, for unit tests.
#[cfg(test)]
fn open_memory() -> Result<Connection> {
    let mut c = open_writer(None)?;
    prepare_files(&mut c, None)?;
    Ok(c)
}

impl SqliteStore {
    /// Opens `path` (or a private in-memory database) and applies migrations.
    pub(crate) async fn open(path: Option<PathBuf>) -> Result<Self> {
        if let Some(p) = &path {
            if let Some(parent) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
                if !parent.is_dir() {
                    return Err(StoreError::Invalid(format!(
                        "cannot create database {}: directory {} does not exist",
                        p.display(),
                        parent.display()
                    )));
                }
            }
        }
        let p = path.clone();
        let (writer, (rollup_conn, applied)) = tokio::task::spawn_blocking(move || {
            let mut conn = open_writer(p.as_deref())?;
            let rollups = prepare_files(&mut conn, p.as_deref())?;
            Ok::<_, StoreError>((conn, rollups))
        })
        .await
        .map_err(join_err)??;
        let writer = Arc::new(Mutex::new(Some(writer)));
        let rollups = Arc::new(RollupWriter {
            conn: match rollup_conn {
                Some(c) => Arc::new(Mutex::new(Some(c))),
                None => writer.clone(),
            },
            log: if path.is_some() {
                rollup_db::Log::Attached
            } else {
                rollup_db::Log::Own
            },
            applied: AtomicI64::new(applied),
            trouble: Mutex::new(Trouble::new(
                "applying roll-up increments (they stay logged until applied)",
            )),
        });
        let readers = path.as_ref().map(|p| {
            Arc::new(ReaderPool {
                path: p.clone(),
                idle: Mutex::new(Vec::new()),
                permits: Semaphore::new(READERS),
                closed: Mutex::new(false),
            })
        });
        let checkpointer = path
            .as_deref()
            .map(|p| Checkpointer::spawn(p, rollups.clone()))
            .transpose()?;
        Ok(Self {
            writer,
            rollups,
            turns: Arc::default(),
            readers,
            checkpointer,
            path,
            run_counts: Arc::default(),
        })
    }

    /// Runs `f` on the writer connection on the blocking pool.
    async fn write<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    {
        let writer = self.writer.clone();
        tokio::task::spawn_blocking(move || {
            let mut guard = writer.lock();
            let conn = guard.as_mut().ok_or_else(closed)?;
            f(conn)
        })
        .await
        .map_err(join_err)?
    }

    /// Runs `f` on a reader connection (the writer for in-memory databases).
    async fn read<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let Some(pool) = self.readers.clone() else {
            return self.write(move |c| f(c)).await;
        };
        let _permit = pool.permits.acquire().await.map_err(|_| closed())?;
        if *pool.closed.lock() {
            return Err(closed());
        }
        let conn = pool.idle.lock().pop();
        let p2 = pool.clone();
        tokio::task::spawn_blocking(move || {
            let conn = match conn {
                Some(c) => c,
                None => open_reader(&p2.path)?,
            };
            let out = f(&conn);
            // A connection whose closure panicked is dropped with the task instead.
            if !*p2.closed.lock() {
                p2.idle.lock().push(conn);
            }
            out
        })
        .await
        .map_err(join_err)?
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn migrate(&self) -> Result<u32> {
        self.write(migrate::migrate).await
    }

    async fn close(&self) {
        if let Some(pool) = &self.readers {
            *pool.closed.lock() = true;
            pool.idle.lock().clear();
        }
        let writer = self.writer.clone();
        let rollups = self.rollups.clone();
        let file = self.path.is_some();
        let checkpointer = self.checkpointer.as_ref().and_then(Checkpointer::stop);
        let done = tokio::task::spawn_blocking(move || {
            if let Some(t) = checkpointer {
                if t.join().is_err() {
                    tracing::warn!("the checkpoint thread panicked");
                }
            }
            // The roll-up file first (in memory it is the writer, taken below).
            // Two statements: in memory both are one mutex.
            let rollup_conn = rollups.conn.lock().take();
            let main_conn = writer.lock().take();
            for conn in [rollup_conn, main_conn].into_iter().flatten() {
                if file {
                    if let Err(e) =
                        conn.execute_batch("PRAGMA optimize; PRAGMA wal_checkpoint(TRUNCATE);")
                    {
                        tracing::warn!(error = %e, "WAL checkpoint on close failed");
                    }
                }
                if let Err((_, e)) = conn.close() {
                    tracing::warn!(error = %e, "closing the database failed");
                }
            }
        })
        .await;
        if let Err(e) = done {
            tracing::warn!(error = %e, "closing the database failed");
        }
    }

    async fn list_idents(&self) -> Result<Vec<Ident>> {
        self.read(admin::list_idents).await
    }

    async fn get_ident(&self, ident: &str) -> Result<Option<Ident>> {
        let ident = ident.to_owned();
        self.read(move |c| admin::get_ident(c, &ident)).await
    }

    async fn upsert_ident(&self, ident: &Ident) -> Result<()> {
        let ident = ident.clone();
        self.write(move |c| admin::upsert_ident(c, &ident)).await
    }

    async fn delete_ident(&self, ident: &str) -> Result<bool> {
        let ident = ident.to_owned();
        self.write(move |c| admin::delete_ident(c, &ident)).await
    }

    async fn idents_version(&self) -> Result<i64> {
        self.read(admin::idents_version).await
    }

    async fn list_sensors(&self) -> Result<Vec<SensorRecord>> {
        self.read(admin::list_sensors).await
    }

    async fn get_sensor(&self, uuid: &str) -> Result<Option<SensorRecord>> {
        let uuid = uuid.to_owned();
        self.read(move |c| admin::get_sensor(c, &uuid)).await
    }

    async fn create_sensor(&self, sensor: &SensorRecord) -> Result<()> {
        let s = sensor.clone();
        self.write(move |c| admin::create_sensor(c, &s)).await
    }

    async fn update_sensor(&self, sensor: &SensorRecord) -> Result<()> {
        let s = sensor.clone();
        self.write(move |c| admin::update_sensor(c, &s)).await
    }

    async fn delete_sensor(&self, uuid: &str) -> Result<bool> {
        let uuid = uuid.to_owned();
        self.write(move |c| admin::delete_sensor(c, &uuid)).await
    }

    async fn touch_sensor(&self, ident: &str, at: DateTime<Utc>) -> Result<()> {
        let ident = ident.to_owned();
        self.write(move |c| admin::touch_sensor(c, &ident, at))
            .await
    }

    async fn record_heartbeat(
        &self,
        uuid: &str,
        at: DateTime<Utc>,
        info: serde_json::Value,
    ) -> Result<bool> {
        let uuid = uuid.to_owned();
        self.write(move |c| admin::record_heartbeat(c, &uuid, at, &info))
            .await
    }

    async fn insert_batch(&self, batch: Vec<IngestItem>) -> Result<BatchResult> {
        self.insert_batch_owned(batch).await.1
    }

    async fn insert_batch_owned(
        &self,
        batch: Vec<IngestItem>,
    ) -> (Vec<IngestItem>, Result<BatchResult>) {
        if batch.is_empty() {
            return (batch, Ok(BatchResult::default()));
        }
        let writer = self.writer.clone();
        let rollups = self.rollups.clone();
        let (turns, ticket) = (self.turns.clone(), self.turns.take());
        let done = tokio::task::spawn_blocking(move || {
            // JSON, address text and roll-up sums are computed before the writer lock is
            // taken (while an earlier batch may hold it): the lock is held for SQL only.
            let prepared = write::prepare(&batch);
            let r = {
                let _turn = turns.wait(ticket);
                prepared.and_then(|prepared| {
                    let mut guard = writer.lock();
                    let conn = guard.as_mut().ok_or_else(closed)?;
                    write::insert_batch(conn, &batch, prepared, rollups.applied())
                })
            };
            // The turn is passed on: the next batch's main transaction runs while this
            // one's roll-ups are written to their own file. Waiting for them here keeps
            // reads after an insert consistent with it.
            if r.is_ok() {
                rollups.apply_after_commit();
            }
            (batch, r)
        })
        .await;
        // A panicking write (a bug) takes the batch with it.
        done.unwrap_or_else(|e| (Vec::new(), Err(join_err(e))))
    }

    async fn renormalize_batch(&self, items: Vec<(i64, Outcome)>) -> Result<BatchResult> {
        if items.is_empty() {
            return Ok(BatchResult::default());
        }
        let applied = self.rollups.applied();
        let out = self
            .write(move |c| write::renormalize_batch(c, items, applied))
            .await?;
        let rollups = self.rollups.clone();
        tokio::task::spawn_blocking(move || rollups.apply_after_commit())
            .await
            .map_err(join_err)?;
        Ok(out)
    }

    async fn raw_for_renormalize(
        &self,
        filter: RawFilter,
        after_id: i64,
        limit: usize,
    ) -> Result<Vec<RawEvent>> {
        self.read(move |c| read::raw_for_renormalize(c, &filter, after_id, limit))
            .await
    }

    async fn sessions(
        &self,
        filter: SessionFilter,
        page: Page,
    ) -> Result<(Vec<Session>, Option<Cursor>)> {
        self.read(move |c| read::sessions(c, &filter, &page)).await
    }

    async fn session(&self, id: i64) -> Result<Option<Session>> {
        self.read(move |c| read::session(c, id)).await
    }

    async fn raw(&self, id: i64) -> Result<Option<StoredRaw>> {
        self.read(move |c| read::raw(c, id)).await
    }

    async fn raw_messages(
        &self,
        query: RawQuery,
        page: Page,
    ) -> Result<(Vec<StoredRaw>, Option<Cursor>)> {
        self.read(move |c| read::raw_messages(c, &query, &page))
            .await
    }

    async fn top(
        &self,
        dimension: Dimension,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<(String, u64)>> {
        self.read(move |c| read::top(c, dimension, since, until, limit))
            .await
    }

    async fn counts_per_hour(
        &self,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
        filter: Option<(Dimension, String)>,
    ) -> Result<Vec<HourCount>> {
        self.read(move |c| read::counts_per_hour(c, since, until, filter))
            .await
    }

    async fn total_sessions(&self, since: DateTime<Utc>, until: DateTime<Utc>) -> Result<u64> {
        self.read(move |c| read::total_sessions(c, since, until))
            .await
    }

    async fn attacker_stats(
        &self,
        ip: IpAddr,
        since: Option<DateTime<Utc>>,
    ) -> Result<AttackerStats> {
        self.read(move |c| read::attacker_stats(c, ip, since)).await
    }

    async fn top_sources(&self, query: TopSourcesQuery) -> Result<TopSources> {
        let cache = self.run_counts.clone();
        self.read(move |c| read::top_sources(c, &query, &cache))
            .await
    }

    async fn files(&self, page: Page) -> Result<(Vec<FileRow>, Option<Cursor>)> {
        self.read(move |c| read::files(c, &page)).await
    }

    async fn file(&self, hash: &str) -> Result<Option<FileRow>> {
        let hash = hash.to_ascii_lowercase();
        self.read(move |c| read::file(c, &hash)).await
    }

    async fn urls(&self, page: Page) -> Result<(Vec<UrlRow>, Option<Cursor>)> {
        self.read(move |c| read::urls(c, &page)).await
    }

    async fn dorks(&self, page: Page) -> Result<(Vec<DorkRow>, Option<Cursor>)> {
        self.read(move |c| read::dorks(c, &page)).await
    }

    async fn metadata(&self, page: Page) -> Result<(Vec<MetadataRow>, Option<Cursor>)> {
        self.read(move |c| read::metadata(c, &page)).await
    }

    async fn metadata_for(&self, ip: &str) -> Result<Option<MetadataRow>> {
        let ip = ip.to_owned();
        self.read(move |c| read::metadata_for(c, &ip)).await
    }

    async fn table_counts(&self) -> Result<Vec<(String, u64)>> {
        self.read(read::table_counts).await
    }

    async fn space_used_bytes(&self) -> Result<Option<u64>> {
        self.read(read::space_used).await.map(Some)
    }

    async fn oldest_data(&self) -> Result<Option<DateTime<Utc>>> {
        self.read(read::oldest_data).await
    }

    async fn backup_to(&self, dest: &Path) -> Result<()> {
        if self.path.is_none() {
            return Err(StoreError::Invalid(
                "an in-memory database has no file to back up".into(),
            ));
        }
        if dest.exists() {
            return Err(StoreError::Invalid(format!(
                "{} exists; a backup never overwrites a file",
                dest.display()
            )));
        }
        // One read transaction: a snapshot, while the writer goes on (WAL).
        let to = dest.to_string_lossy().into_owned();
        self.read(move |c| {
            c.execute("VACUUM main INTO ?1", [to])?;
            Ok(())
        })
        .await?;
        // The copy gets an identity of its own, so that the original's roll-up file,
        // which may be ahead of the snapshot, is never taken for the copy's: opening
        // the copy builds its roll-ups from its own sessions.
        let copy = dest.to_owned();
        tokio::task::spawn_blocking(move || -> Result<()> {
            let c = Connection::open(&copy)?;
            c.execute(
                "UPDATE counters SET value = random() & 9223372036854775807 \
                 WHERE name = 'database_id'",
                [],
            )?;
            Ok(())
        })
        .await
        .map_err(|e| StoreError::Other(format!("backup task failed: {e}")))??;
        let copy = SqliteStore::open(Some(dest.to_owned())).await?;
        copy.close().await;
        Ok(())
    }

    async fn database_size_bytes(&self) -> Result<u64> {
        let main = self.read(read::database_size).await?;
        let size = |f: &std::ffi::OsStr| std::fs::metadata(f).map_or(0, |m| m.len());
        let wal = |p: &Path| {
            let mut w = p.as_os_str().to_owned();
            w.push("-wal");
            size(&w)
        };
        Ok(match &self.path {
            // The main file's pages (read above), both WALs and the roll-up file.
            Some(p) => {
                let r = rollup_db::path_for(p);
                main + wal(p) + size(r.as_os_str()) + wal(&r)
            }
            None => 0,
        })
    }

    async fn prune(
        &self,
        raw_older_than: Option<DateTime<Utc>>,
        sessions_older_than: Option<DateTime<Utc>>,
        batch_limit: usize,
    ) -> Result<PruneResult> {
        crate::prune::prune(self, raw_older_than, sessions_older_than, batch_limit).await
    }

    async fn count_users(&self) -> Result<u64> {
        self.read(accounts::count_users).await
    }

    async fn create_user(&self, email: &str, role: Role, password_hash: &str) -> Result<User> {
        let (email, hash) = (email.to_owned(), password_hash.to_owned());
        self.write(move |c| accounts::create_user(c, &email, role, &hash))
            .await
    }

    async fn user_by_id(&self, id: i64) -> Result<Option<User>> {
        self.read(move |c| accounts::user_by_id(c, id)).await
    }

    async fn user_with_password(&self, email: &str) -> Result<Option<(User, String)>> {
        let email = email.to_owned();
        self.read(move |c| accounts::user_with_password(c, &email))
            .await
    }

    async fn list_users(&self) -> Result<Vec<User>> {
        self.read(accounts::list_users).await
    }

    async fn set_password(&self, user_id: i64, password_hash: &str) -> Result<()> {
        let hash = password_hash.to_owned();
        self.write(move |c| accounts::set_password(c, user_id, &hash))
            .await
    }

    async fn set_role(&self, user_id: i64, role: Role) -> Result<()> {
        self.write(move |c| accounts::set_role(c, user_id, role))
            .await
    }

    async fn delete_user(&self, user_id: i64) -> Result<bool> {
        self.write(move |c| accounts::delete_user(c, user_id)).await
    }

    async fn create_api_key(
        &self,
        user_id: i64,
        key_hash: &str,
        prefix: &str,
        label: &str,
    ) -> Result<ApiKey> {
        let (h, p, l) = (key_hash.to_owned(), prefix.to_owned(), label.to_owned());
        self.write(move |c| accounts::create_api_key(c, user_id, &h, &p, &l))
            .await
    }

    async fn list_api_keys(&self, user_id: Option<i64>) -> Result<Vec<ApiKey>> {
        self.read(move |c| accounts::list_api_keys(c, user_id))
            .await
    }

    async fn user_by_api_key(&self, key_hash: &str) -> Result<Option<User>> {
        let h = key_hash.to_owned();
        self.read(move |c| accounts::user_by_api_key(c, &h)).await
    }

    async fn delete_api_key(&self, key_id: i64, user_id: Option<i64>) -> Result<bool> {
        self.write(move |c| accounts::delete_api_key(c, key_id, user_id))
            .await
    }

    async fn create_web_session(&self, session: &WebSession) -> Result<()> {
        let s = session.clone();
        self.write(move |c| accounts::create_web_session(c, &s))
            .await
    }

    async fn web_session(&self, token_hash: &str) -> Result<Option<(WebSession, User)>> {
        let h = token_hash.to_owned();
        self.read(move |c| accounts::web_session(c, &h, chrono::Utc::now()))
            .await
    }

    async fn delete_web_session(&self, token_hash: &str) -> Result<()> {
        let h = token_hash.to_owned();
        self.write(move |c| accounts::delete_web_session(c, &h))
            .await
    }

    async fn delete_user_sessions(&self, user_id: i64) -> Result<u64> {
        self.write(move |c| accounts::delete_user_sessions(c, user_id))
            .await
    }

    async fn list_deploy_scripts(&self) -> Result<Vec<crate::DeployScript>> {
        self.read(deploy::list_scripts).await
    }

    async fn deploy_script(&self, id: i64) -> Result<Option<crate::DeployScript>> {
        self.read(move |c| deploy::script(c, id)).await
    }

    async fn create_deploy_script(
        &self,
        name: &str,
        honeypot: &str,
        body: &str,
        notes: &str,
        author: &str,
    ) -> Result<crate::DeployScript> {
        let a: [String; 5] = [name, honeypot, body, notes, author].map(str::to_owned);
        self.write(move |c| deploy::create_script(c, &a[0], &a[1], &a[2], &a[3], &a[4]))
            .await
    }

    async fn update_deploy_script(
        &self,
        id: i64,
        body: &str,
        notes: &str,
        author: &str,
    ) -> Result<crate::DeployScript> {
        let a: [String; 3] = [body, notes, author].map(str::to_owned);
        self.write(move |c| deploy::update_script(c, id, &a[0], &a[1], &a[2]))
            .await
    }

    async fn deploy_script_versions(&self, id: i64) -> Result<Vec<crate::ScriptVersion>> {
        self.read(move |c| deploy::script_versions(c, id)).await
    }

    async fn create_enrollment_token(
        &self,
        token: &crate::NewEnrollmentToken,
    ) -> Result<crate::EnrollmentToken> {
        let t = token.clone();
        self.write(move |c| deploy::create_token(c, &t)).await
    }

    async fn list_enrollment_tokens(
        &self,
        script_id: Option<i64>,
    ) -> Result<Vec<crate::EnrollmentToken>> {
        self.read(move |c| deploy::list_tokens(c, script_id)).await
    }

    async fn enrollment_token(&self, token_hash: &str) -> Result<Option<crate::EnrollmentToken>> {
        let h = token_hash.to_owned();
        self.read(move |c| deploy::token_by_hash(c, &h)).await
    }

    async fn revoke_enrollment_token(&self, id: i64) -> Result<bool> {
        self.write(move |c| deploy::revoke_token(c, id)).await
    }

    async fn enrolled_sensor(&self, token_id: i64, hostname: &str) -> Result<Option<String>> {
        let h = hostname.to_owned();
        self.read(move |c| deploy::enrolled_sensor(c, token_id, &h))
            .await
    }

    async fn sensor_enrollment_token(&self, uuid: &str) -> Result<Option<i64>> {
        let u = uuid.to_owned();
        self.read(move |c| deploy::sensor_token(c, &u)).await
    }

    async fn record_enrollment(
        &self,
        token_id: i64,
        hostname: &str,
        uuid: &str,
        at: DateTime<Utc>,
    ) -> Result<()> {
        let (h, u) = (hostname.to_owned(), uuid.to_owned());
        self.write(move |c| deploy::record_enrollment(c, token_id, &h, &u, at))
            .await
    }
}

/// Each batch takes the writer mutex on its own, so ingest batches interleave with a
/// long retention pass.
#[async_trait]
impl PruneBatches for SqliteStore {
    async fn raw(&self, before: DateTime<Utc>, limit: usize) -> Result<u64> {
        self.write(move |c| write::prune_raw(c, before, limit))
            .await
    }

    async fn sessions(&self, before: DateTime<Utc>, limit: usize) -> Result<(u64, u64)> {
        self.write(move |c| write::prune_sessions(c, before, limit))
            .await
    }

    async fn rollups(&self, dim: Dimension, before: DateTime<Utc>, limit: usize) -> Result<u64> {
        let rollups = self.rollups.clone();
        tokio::task::spawn_blocking(move || {
            rollups.with(|c| write::prune_rollups(c, dim, before, limit))
        })
        .await
        .map_err(join_err)?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SQLite cuts `mmap_size` to its compile-time ceiling without an error.
    #[test]
    fn connections_map_as_much_of_the_file_as_asked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.db");
        let mut writer = open_writer(Some(&path)).unwrap();
        prepare_files(&mut writer, Some(&path)).unwrap();
        for c in [&writer, &open_reader(&path).unwrap()] {
            let n: i64 = c.query_row("PRAGMA mmap_size", [], |r| r.get(0)).unwrap();
            assert_eq!(n, MMAP_SIZE);
        }
    }
}
