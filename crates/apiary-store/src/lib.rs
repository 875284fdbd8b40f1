//! Apiary's storage: one object-safe [`Store`] trait, one backend per database.
//!
//! Callers hold an `Arc<dyn Store>` from [`open`], which picks the backend from the URL
//! scheme. Methods speak `apiary-model` types and the filter structs in [`types`]; SQL
//! never leaves a backend module, so a PostgreSQL backend can implement the same trait and
//! run the same contract suite (`tests/contract.rs`).
//!
//! # Layout
//! - [`types`]: filters, pages and cursors, roll-up dimensions, result rows.
//! - `ranking`, `search`: the backend-independent halves of [`Store::top_sources`]
//!   (early stop over roll-up candidates) and of free-text search (merging the
//!   credential, signature and URL matches into one keyset page).
//! - `rollups`, `prune`, `hours`, `paging`, `like`, `validate`, `schema`: the rest that
//!   both backends do alike (which roll-up rows a write changes, the retention loop, hour
//!   buckets, keyset page cuts, LIKE patterns, input checks, which migrations to apply),
//!   so a backend holds only its SQL and driver code.
//! - `sqlite`: the embedded backend (rusqlite). One writer connection behind a mutex,
//!   a small pool of WAL readers; `migrations/sqlite/NNNN_name.sql` embedded and applied on
//!   open.
//!
//! # Data shape
//! Raw messages are kept byte for byte. Each normalized session is a row with the
//! filterable fields as columns and per-channel details as JSON; credentials are also a
//! table of their own so they can be searched. Every session insert also bumps hourly
//! roll-up counters (per honeypot, sensor, port, source, country, protocol, channel,
//! signature, username, password) in the same transaction, so dashboards read small
//! tables instead of scanning sessions.

#![deny(missing_docs)]

use std::net::IpAddr;
use std::sync::Arc;

use apiary_model::{ApiKey, Ident, Normalized, RawEvent, Role, Session, User, WebSession};
use async_trait::async_trait;
use chrono::{DateTime, Utc};

pub mod deploy;
mod hours;
mod like;
mod paging;
#[cfg(feature = "postgres")]
mod postgres;
mod prune;
mod ranking;
mod rollups;
mod schema;
mod search;
mod sqlite;
pub mod types;
mod validate;
mod window;

pub use deploy::{DeployScript, EnrollmentToken, NewEnrollmentToken, ScriptVersion};
pub use types::{
    AttackerStats, BatchResult, Cursor, Dimension, DorkRow, FileRow, HourCount, IngestItem,
    MetadataRow, Page, PruneResult, RawFilter, RawQuery, RawStatus, SensorRecord, SessionFilter,
    SourceGroupCount, SourceGrouping, StoredRaw, TopSources, TopSourcesQuery, UrlRow,
};

/// Errors callers branch on. Driver errors are mapped inside each backend.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The row to update or delete does not exist.
    #[error("not found")]
    NotFound,
    /// A unique key is already taken.
    #[error("conflict: {0}")]
    Conflict(String),
    /// The request itself is wrong (bad cursor, bad URL, limits).
    #[error("invalid: {0}")]
    Invalid(String),
    /// Anything else: IO, corruption, a closed store.
    #[error("{0}")]
    Other(String),
}

/// Result alias for store operations.
pub type Result<T> = std::result::Result<T, StoreError>;

/// What a normalizer made of one raw message: records, or its error text.
pub type Outcome = std::result::Result<Vec<Normalized>, String>;

/// Everything Apiary persists. Object-safe; get one from [`open`].
///
/// Times are UTC and kept to the microsecond. Roll-up queries (`top`, `counts_per_hour`,
/// `total_sessions`) work on whole hours: they count every hour bucket that overlaps
/// `[since, until)`.
#[async_trait]
pub trait Store: Send + Sync {
    // ---- lifecycle ----

    /// Applies pending migrations (open already does) and returns the schema version.
    async fn migrate(&self) -> Result<u32>;

    /// Checkpoints and closes every connection. Later calls fail with `Other`.
    async fn close(&self);

    // ---- hpfeeds idents ----

    /// Every ident, sorted by name.
    async fn list_idents(&self) -> Result<Vec<Ident>>;

    /// One ident.
    async fn get_ident(&self, ident: &str) -> Result<Option<Ident>>;

    /// Creates or replaces an ident (keeps its creation time) and bumps the version.
    async fn upsert_ident(&self, ident: &Ident) -> Result<()>;

    /// Deletes an ident; `false` when there was none. Bumps the version when one was deleted.
    async fn delete_ident(&self, ident: &str) -> Result<bool>;

    /// A number that changes whenever any ident changes; one indexed row, cheap to poll.
    async fn idents_version(&self) -> Result<i64>;

    // ---- sensors ----

    /// Every sensor, sorted by name.
    async fn list_sensors(&self) -> Result<Vec<SensorRecord>>;

    /// One sensor by uuid.
    async fn get_sensor(&self, uuid: &str) -> Result<Option<SensorRecord>>;

    /// Creates a sensor; `Conflict` when the uuid or name is taken.
    async fn create_sensor(&self, sensor: &SensorRecord) -> Result<()>;

    /// Replaces a sensor's editable fields (everything but uuid, created_at, last_seen,
    /// heartbeat); `NotFound` or `Conflict` (name taken).
    async fn update_sensor(&self, sensor: &SensorRecord) -> Result<()>;

    /// Deletes a sensor; `false` when there was none. Its sessions stay.
    async fn delete_sensor(&self, uuid: &str) -> Result<bool>;

    /// Moves `last_seen` of the sensors publishing as `ident` forward to `at`.
    /// `insert_batch` does this itself for the idents in the batch.
    async fn touch_sensor(&self, ident: &str, at: DateTime<Utc>) -> Result<()>;

    /// Stores a heartbeat body and moves `last_seen` forward; `false` for an unknown uuid.
    async fn record_heartbeat(
        &self,
        uuid: &str,
        at: DateTime<Utc>,
        info: serde_json::Value,
    ) -> Result<bool>;

    // ---- write path ----

    /// Stores a batch in one transaction: every raw message, its sessions and side records,
    /// the roll-ups, and sensor last-seen times.
    async fn insert_batch(&self, batch: Vec<IngestItem>) -> Result<BatchResult>;

    /// [`Store::insert_batch`] that hands the batch back, committed or not, so a caller
    /// can retry a failed commit or use the items afterwards without keeping a copy.
    /// (The batch comes back empty only if the backend's task panicked.) The default
    /// implementation clones; backends override it.
    async fn insert_batch_owned(
        &self,
        batch: Vec<IngestItem>,
    ) -> (Vec<IngestItem>, Result<BatchResult>) {
        let copy = batch.clone();
        let r = self.insert_batch(batch).await;
        (copy, r)
    }

    /// Replaces what earlier normalization made of stored raw messages: their sessions
    /// (and roll-up counts) are deleted and the new outcome is stored, in one transaction.
    /// Side records are upserted again without counting a new sighting. Ids that no longer
    /// exist are skipped (`raw_ids` lists the ones done).
    async fn renormalize_batch(&self, items: Vec<(i64, Outcome)>) -> Result<BatchResult>;

    /// [`Store::renormalize_batch`] for one message; `NotFound` when it does not exist.
    async fn mark_renormalized(&self, raw_id: i64, outcome: Outcome) -> Result<()> {
        let done = self.renormalize_batch(vec![(raw_id, outcome)]).await?;
        if done.raw_ids.is_empty() {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    /// Raw messages matching `filter` with id greater than `after_id`, ascending by id.
    async fn raw_for_renormalize(
        &self,
        filter: RawFilter,
        after_id: i64,
        limit: usize,
    ) -> Result<Vec<RawEvent>>;

    // ---- read path ----

    /// Sessions matching `filter`, newest first (ts desc, id desc). The cursor is `Some`
    /// when there may be more; paging is stable under concurrent inserts.
    async fn sessions(
        &self,
        filter: SessionFilter,
        page: Page,
    ) -> Result<(Vec<Session>, Option<Cursor>)>;

    /// One session.
    async fn session(&self, id: i64) -> Result<Option<Session>>;

    /// One raw message.
    async fn raw(&self, id: i64) -> Result<Option<StoredRaw>>;

    /// Raw messages, newest first (by id).
    async fn raw_messages(
        &self,
        query: RawQuery,
        page: Page,
    ) -> Result<(Vec<StoredRaw>, Option<Cursor>)>;

    /// The `limit` most frequent values of `dimension`, most frequent first (ties by value).
    async fn top(
        &self,
        dimension: Dimension,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<(String, u64)>>;

    /// Sessions per hour (zeros included), optionally only those with `dimension = value`.
    async fn counts_per_hour(
        &self,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
        filter: Option<(Dimension, String)>,
    ) -> Result<Vec<HourCount>>;

    /// Sessions in the hours overlapping `[since, until)`.
    async fn total_sessions(&self, since: DateTime<Utc>, until: DateTime<Utc>) -> Result<u64>;

    /// What one source address did since `since` (all time when `None`).
    async fn attacker_stats(
        &self,
        ip: IpAddr,
        since: Option<DateTime<Utc>>,
    ) -> Result<AttackerStats>;

    /// The `limit` busiest (source address, group) pairs among the sessions matching
    /// `query.filter`, with exact counts. Served from the hourly source roll-up (which
    /// addresses to look at, most active first) and the source index (exact grouped counts
    /// of those few addresses); see [`TopSourcesQuery`] and [`TopSources::truncated`].
    async fn top_sources(&self, query: TopSourcesQuery) -> Result<TopSources>;

    /// Files, most recently seen first, without their bytes.
    async fn files(&self, page: Page) -> Result<(Vec<FileRow>, Option<Cursor>)>;

    /// One file by md5, sha1, sha256 or sha512 (hex), with its bytes.
    async fn file(&self, hash: &str) -> Result<Option<FileRow>>;

    /// URLs, most recently seen first.
    async fn urls(&self, page: Page) -> Result<(Vec<UrlRow>, Option<Cursor>)>;

    /// Dorks, most recently seen first.
    async fn dorks(&self, page: Page) -> Result<(Vec<DorkRow>, Option<Cursor>)>;

    /// p0f fingerprints, most recently updated first.
    async fn metadata(&self, page: Page) -> Result<(Vec<MetadataRow>, Option<Cursor>)>;

    /// The p0f fingerprint of one address.
    async fn metadata_for(&self, ip: &str) -> Result<Option<MetadataRow>>;

    /// Row counts per table, for `/metrics`.
    async fn table_counts(&self) -> Result<Vec<(String, u64)>>;

    /// Bytes the database occupies on disk (0 for in-memory).
    async fn database_size_bytes(&self) -> Result<u64>;

    /// Bytes the stored data takes: the files' pages less those free for reuse (SQLite
    /// keeps freed pages in its files), so the figure falls when rows are deleted; `None`
    /// where the backend cannot tell (PostgreSQL reuses space through VACUUM, which the
    /// relation sizes do not show).
    async fn space_used_bytes(&self) -> Result<Option<u64>>;

    /// The oldest time of any stored raw message (received) or session.
    async fn oldest_data(&self) -> Result<Option<DateTime<Utc>>>;

    /// Writes a consistent copy of the database to `dest`, a new file, while ingest goes
    /// on: one snapshot of everything committed, with a roll-up file of its own beside it
    /// (rebuilt from the copy's sessions), ready to be put in place of the original.
    /// SQLite only: PostgreSQL has `pg_dump`.
    async fn backup_to(&self, dest: &std::path::Path) -> Result<()>;

    // ---- retention ----

    /// Deletes raw messages received before `raw_older_than` and sessions (with their
    /// credentials and whole roll-up hours) before `sessions_older_than`, at most
    /// `batch_limit` rows per transaction so ingest never waits long.
    async fn prune(
        &self,
        raw_older_than: Option<DateTime<Utc>>,
        sessions_older_than: Option<DateTime<Utc>>,
        batch_limit: usize,
    ) -> Result<PruneResult>;

    // ---- web app accounts ----

    /// Number of users (the server creates a first admin when there is none).
    async fn count_users(&self) -> Result<u64>;

    /// Creates a user with an argon2 PHC `password_hash`; `Conflict` when the email is taken
    /// (compared case-insensitively), `Invalid` for an empty or oversized email.
    async fn create_user(&self, email: &str, role: Role, password_hash: &str) -> Result<User>;

    /// One user by id.
    async fn user_by_id(&self, id: i64) -> Result<Option<User>>;

    /// One user by email (case-insensitive) with the stored password hash, for sign-in.
    async fn user_with_password(&self, email: &str) -> Result<Option<(User, String)>>;

    /// Every user, sorted by email.
    async fn list_users(&self) -> Result<Vec<User>>;

    /// Replaces a user's password hash; `NotFound` for an unknown id.
    async fn set_password(&self, user_id: i64, password_hash: &str) -> Result<()>;

    /// Changes a user's role; `NotFound` for an unknown id.
    async fn set_role(&self, user_id: i64, role: Role) -> Result<()>;

    /// Deletes a user with its API keys and web sessions; `false` when there was none.
    async fn delete_user(&self, user_id: i64) -> Result<bool>;

    /// Stores an API key by its hash (the key itself is never stored).
    async fn create_api_key(
        &self,
        user_id: i64,
        key_hash: &str,
        prefix: &str,
        label: &str,
    ) -> Result<ApiKey>;

    /// API keys of one user (all users when `None`), oldest first.
    async fn list_api_keys(&self, user_id: Option<i64>) -> Result<Vec<ApiKey>>;

    /// The owner of the key whose hash is `key_hash`.
    async fn user_by_api_key(&self, key_hash: &str) -> Result<Option<User>>;

    /// Deletes a key (only if owned by `user_id`, when given); `false` when nothing matched.
    async fn delete_api_key(&self, key_id: i64, user_id: Option<i64>) -> Result<bool>;

    /// Stores a web session (and sweeps expired ones).
    async fn create_web_session(&self, session: &WebSession) -> Result<()>;

    /// The unexpired web session whose token hash is `token_hash`, with its user.
    async fn web_session(&self, token_hash: &str) -> Result<Option<(WebSession, User)>>;

    /// Ends one web session (no error when it does not exist).
    async fn delete_web_session(&self, token_hash: &str) -> Result<()>;

    /// Ends every web session of a user (after a password change); returns how many.
    async fn delete_user_sessions(&self, user_id: i64) -> Result<u64>;

    // ---- deploy scripts and enrollment tokens ----

    /// Every deploy script at its newest version, sorted by name.
    async fn list_deploy_scripts(&self) -> Result<Vec<DeployScript>>;

    /// One deploy script at its newest version.
    async fn deploy_script(&self, id: i64) -> Result<Option<DeployScript>>;

    /// Creates a script at version 1; `Conflict` when the name is taken, `Invalid` for an
    /// empty name/honeypot or a body over 1 MiB.
    async fn create_deploy_script(
        &self,
        name: &str,
        honeypot: &str,
        body: &str,
        notes: &str,
        author: &str,
    ) -> Result<DeployScript>;

    /// Saves a new version of a script (older versions are kept); `NotFound`.
    async fn update_deploy_script(
        &self,
        id: i64,
        body: &str,
        notes: &str,
        author: &str,
    ) -> Result<DeployScript>;

    /// Every version of a script, newest first.
    async fn deploy_script_versions(&self, id: i64) -> Result<Vec<ScriptVersion>>;

    /// Stores an enrollment token by its hash; `NotFound` for an unknown script.
    async fn create_enrollment_token(&self, token: &NewEnrollmentToken) -> Result<EnrollmentToken>;

    /// Enrollment tokens (of one script when given), newest first.
    async fn list_enrollment_tokens(&self, script_id: Option<i64>) -> Result<Vec<EnrollmentToken>>;

    /// The token whose hash is `token_hash`, valid or not (callers check
    /// [`EnrollmentToken::is_valid`]).
    async fn enrollment_token(&self, token_hash: &str) -> Result<Option<EnrollmentToken>>;

    /// Revokes a token; `false` when there was none.
    async fn revoke_enrollment_token(&self, id: i64) -> Result<bool>;

    /// The sensor a token registered for `hostname`, if that sensor still exists.
    async fn enrolled_sensor(&self, token_id: i64, hostname: &str) -> Result<Option<String>>;

    /// The token that registered sensor `uuid`, if any.
    async fn sensor_enrollment_token(&self, uuid: &str) -> Result<Option<i64>>;

    /// Records that a token registered (or re-registered) sensor `uuid` for `hostname`
    /// and counts one use of the token.
    async fn record_enrollment(
        &self,
        token_id: i64,
        hostname: &str,
        uuid: &str,
        at: DateTime<Utc>,
    ) -> Result<()>;
}

/// Opens (creating and migrating if needed) the store named by `url`:
/// - `sqlite://PATH` — a file; its directory must exist.
/// - `sqlite::memory:` — a private in-memory database (tests).
/// - `postgres://user[:password]@host[:port]/db` (or `postgresql://`) — PostgreSQL
///   (cargo feature `postgres`, on by default); no TLS yet.
pub async fn open(url: &str) -> Result<Arc<dyn Store>> {
    if url == "sqlite::memory:" || url == "sqlite://:memory:" {
        let store = sqlite::SqliteStore::open(None).await?;
        return Ok(Arc::new(store));
    }
    if let Some(path) = url.strip_prefix("sqlite://") {
        if path.is_empty() {
            return Err(StoreError::Invalid(
                "sqlite:// URL has no path (use sqlite://PATH or sqlite::memory:)".into(),
            ));
        }
        let store = sqlite::SqliteStore::open(Some(path.into())).await?;
        return Ok(Arc::new(store));
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        #[cfg(feature = "postgres")]
        return Ok(Arc::new(postgres::PgStore::open(url).await?));
        #[cfg(not(feature = "postgres"))]
        return Err(StoreError::Invalid(
            "this build has no PostgreSQL backend (cargo feature `postgres`)".into(),
        ));
    }
    let scheme = url.split_once(':').map_or(url, |(s, _)| s);
    Err(StoreError::Invalid(format!(
        "unsupported database URL scheme {scheme:?} (expected sqlite://PATH or sqlite::memory:)"
    )))
}
