//! The PostgreSQL backend (tokio-postgres with a deadpool connection pool).
//!
//! Same tables and behaviour as the SQLite backend (`migrations/postgres/` mirrors
//! `migrations/sqlite/` number for number) and the same contract suite. Differences that
//! callers never see: times are TIMESTAMPTZ, addresses INET (CIDR filters with `<<=`),
//! JSON columns JSONB, and text is stored NUL-escaped (see `text`).
//!
//! # Connections
//! `postgres://user[:password]@host[:port]/db[?options]` in libpq's URL form; a schema
//! other than `public` is chosen with the standard `options=-c search_path=NAME` (the
//! contract tests use one fresh schema per test this way). TLS is not supported yet:
//! connections use NoTls, so run the database on the same host or a trusted network.
//!
//! # Writes
//! A batch is one transaction: ids come from the sequences in one round trip each, raw
//! messages, sessions and credentials go in with binary COPY, side records with upserts,
//! and roll-up increments are summed in memory and written with one upsert, then added to
//! the sliding 24 h window (`window`). The part of the transaction that updates shared
//! rows (side records, roll-ups, the window, counters, sensors)
//! runs under a transaction-scoped advisory lock, so concurrent writers queue there
//! instead of deadlocking; the COPYs before it run in parallel. A batch whose COMMIT
//! fails with the outcome unknown (the connection dropped after PostgreSQL got it) is
//! checked before it is written again, so a retry never stores it twice (`unsure`).

mod admin;
mod migrate;
mod read;
mod text;
mod unsure;
mod window;
mod write;

use std::net::IpAddr;
use std::time::Duration;

use apiary_model::{ApiKey, Ident, RawEvent, Role, Session, User, WebSession};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use deadpool_postgres::{Manager, ManagerConfig, Pool, PoolError, RecyclingMethod};
use tokio_postgres::error::SqlState;
use tokio_postgres::NoTls;

use crate::prune::PruneBatches;
use crate::types::*;
use crate::{Outcome, Result, Store, StoreError};
use unsure::{Fingerprint, Unsure};

/// Pooled connections per store.
const POOL_SIZE: usize = 16;

/// How long opening a connection may take when the URL does not say.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a caller waits for a free pooled connection.
const WAIT_TIMEOUT: Duration = Duration::from_secs(30);

impl From<tokio_postgres::Error> for StoreError {
    fn from(e: tokio_postgres::Error) -> Self {
        if let Some(db) = e.as_db_error() {
            // Class 23: integrity constraint violations (unique, foreign key, check).
            if db.code().code().starts_with("23") {
                let detail = db.detail().map(|d| format!(" ({d})")).unwrap_or_default();
                return StoreError::Conflict(format!("{}{detail}", db.message()));
            }
            return StoreError::Other(format!("postgres: {}", db.message()));
        }
        // tokio-postgres never puts the connection's password in an error.
        StoreError::Other(format!("postgres: {e}"))
    }
}

fn pool_err(e: PoolError) -> StoreError {
    match e {
        PoolError::Backend(e) => e.into(),
        PoolError::Closed => closed(),
        other => StoreError::Other(format!("postgres pool: {other}")),
    }
}

fn closed() -> StoreError {
    StoreError::Other("the store is closed".into())
}

pub(super) fn json_err(e: serde_json::Error) -> StoreError {
    StoreError::Other(format!("stored JSON is unreadable: {e}"))
}

/// `true` for a unique-key violation (a `Conflict` the caller may want to reword).
pub(super) fn is_unique_violation(e: &tokio_postgres::Error) -> bool {
    e.code() == Some(&SqlState::UNIQUE_VIOLATION)
}

/// `url` with its password (if any) replaced, for messages.
fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "(unparsable URL)".into();
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
            format!("{scheme}://{user}:***@{host}{tail}")
        }
        None => url.to_owned(),
    }
}

/// The password part of `url`, to scrub from messages that might echo it.
fn password_of(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    let authority = &rest[..rest.find(['/', '?']).unwrap_or(rest.len())];
    let userinfo = authority.rsplit_once('@')?.0;
    userinfo
        .split_once(':')
        .map(|(_, p)| p)
        .filter(|p| !p.is_empty())
}

fn scrub(msg: String, url: &str) -> String {
    match password_of(url) {
        Some(p) if p.len() >= 3 => msg.replace(p, "***"),
        _ => msg,
    }
}

/// PostgreSQL store.
pub(crate) struct PgStore {
    pool: Pool,
    /// Moves the 24 h window on through quiet hours; aborted on close and drop.
    window_task: tokio::task::JoinHandle<()>,
    /// Batches whose COMMIT failed with the outcome unknown.
    unsure: Unsure,
}

impl Drop for PgStore {
    fn drop(&mut self) {
        self.window_task.abort();
    }
}

/// How often the window catch-up task looks at the clock.
const WINDOW_CATCH_UP_EVERY: Duration = Duration::from_secs(60);

/// Once a minute: keep the 24 h window current while nothing arrives, so top-N over the
/// last day keeps reading it (the writers move it on with every batch otherwise).
fn spawn_window_catch_up(pool: Pool) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(WINDOW_CATCH_UP_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let mut c = match pool.get().await {
                Ok(c) => c,
                Err(PoolError::Closed) => return,
                Err(e) => {
                    tracing::warn!(error = %pool_err(e), "24 h window catch-up: no connection");
                    continue;
                }
            };
            let now_hour = write::hour_of(Utc::now());
            match window::catch_up(&mut c, now_hour).await {
                Ok(true) => tracing::debug!(now_hour, "idle 24 h window moved on"),
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "24 h window catch-up failed"),
            }
        }
    })
}

impl PgStore {
    /// Connects, checks the server answers, and applies migrations.
    pub(crate) async fn open(url: &str) -> Result<Self> {
        let shown = redact(url);
        let mut config: tokio_postgres::Config = url.parse().map_err(|e| {
            StoreError::Invalid(scrub(format!("invalid PostgreSQL URL {shown}: {e}"), url))
        })?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        if config.get_application_name().is_none() {
            config.application_name("apiary");
        }
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .wait_timeout(Some(WAIT_TIMEOUT))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .build()
            .map_err(|e| StoreError::Other(format!("cannot build the PostgreSQL pool: {e}")))?;
        let mut c = pool.get().await.map_err(|e| {
            StoreError::Other(scrub(
                format!("cannot connect to PostgreSQL at {shown}: {}", pool_err(e)),
                url,
            ))
        })?;
        migrate::migrate(&mut c).await?;
        drop(c);
        let window_task = spawn_window_catch_up(pool.clone());
        Ok(Self {
            pool,
            window_task,
            unsure: Unsure::default(),
        })
    }

    async fn conn(&self) -> Result<deadpool_postgres::Client> {
        self.pool.get().await.map_err(pool_err)
    }
}

#[async_trait]
impl Store for PgStore {
    async fn migrate(&self) -> Result<u32> {
        let mut c = self.conn().await?;
        migrate::migrate(&mut c).await
    }

    async fn close(&self) {
        self.window_task.abort();
        self.pool.close();
    }

    async fn list_idents(&self) -> Result<Vec<Ident>> {
        admin::list_idents(&self.conn().await?).await
    }

    async fn get_ident(&self, ident: &str) -> Result<Option<Ident>> {
        admin::get_ident(&self.conn().await?, ident).await
    }

    async fn upsert_ident(&self, ident: &Ident) -> Result<()> {
        admin::upsert_ident(&mut self.conn().await?, ident).await
    }

    async fn delete_ident(&self, ident: &str) -> Result<bool> {
        admin::delete_ident(&mut self.conn().await?, ident).await
    }

    async fn idents_version(&self) -> Result<i64> {
        admin::idents_version(&self.conn().await?).await
    }

    async fn list_sensors(&self) -> Result<Vec<SensorRecord>> {
        admin::list_sensors(&self.conn().await?).await
    }

    async fn get_sensor(&self, uuid: &str) -> Result<Option<SensorRecord>> {
        admin::get_sensor(&self.conn().await?, uuid).await
    }

    async fn create_sensor(&self, sensor: &SensorRecord) -> Result<()> {
        admin::create_sensor(&self.conn().await?, sensor).await
    }

    async fn update_sensor(&self, sensor: &SensorRecord) -> Result<()> {
        admin::update_sensor(&self.conn().await?, sensor).await
    }

    async fn delete_sensor(&self, uuid: &str) -> Result<bool> {
        admin::delete_sensor(&self.conn().await?, uuid).await
    }

    async fn touch_sensor(&self, ident: &str, at: DateTime<Utc>) -> Result<()> {
        admin::touch_sensor(&self.conn().await?, ident, at).await
    }

    async fn record_heartbeat(
        &self,
        uuid: &str,
        at: DateTime<Utc>,
        info: serde_json::Value,
    ) -> Result<bool> {
        admin::record_heartbeat(&self.conn().await?, uuid, at, &info).await
    }

    async fn insert_batch(&self, batch: Vec<IngestItem>) -> Result<BatchResult> {
        self.insert_batch_ref(&batch).await
    }

    async fn insert_batch_owned(
        &self,
        batch: Vec<IngestItem>,
    ) -> (Vec<IngestItem>, Result<BatchResult>) {
        let r = self.insert_batch_ref(&batch).await;
        (batch, r)
    }

    async fn renormalize_batch(&self, items: Vec<(i64, Outcome)>) -> Result<BatchResult> {
        if items.is_empty() {
            return Ok(BatchResult::default());
        }
        write::renormalize_batch(&mut self.conn().await?, items).await
    }

    async fn raw_for_renormalize(
        &self,
        filter: RawFilter,
        after_id: i64,
        limit: usize,
    ) -> Result<Vec<RawEvent>> {
        read::raw_for_renormalize(&self.conn().await?, &filter, after_id, limit).await
    }

    async fn sessions(
        &self,
        filter: SessionFilter,
        page: Page,
    ) -> Result<(Vec<Session>, Option<Cursor>)> {
        read::sessions(&self.conn().await?, &filter, &page).await
    }

    async fn session(&self, id: i64) -> Result<Option<Session>> {
        read::session(&self.conn().await?, id).await
    }

    async fn raw(&self, id: i64) -> Result<Option<StoredRaw>> {
        read::raw(&self.conn().await?, id).await
    }

    async fn raw_messages(
        &self,
        query: RawQuery,
        page: Page,
    ) -> Result<(Vec<StoredRaw>, Option<Cursor>)> {
        read::raw_messages(&self.conn().await?, &query, &page).await
    }

    async fn top(
        &self,
        dimension: Dimension,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<(String, u64)>> {
        read::top(&self.conn().await?, dimension, since, until, limit).await
    }

    async fn counts_per_hour(
        &self,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
        filter: Option<(Dimension, String)>,
    ) -> Result<Vec<HourCount>> {
        read::counts_per_hour(&self.conn().await?, since, until, filter).await
    }

    async fn total_sessions(&self, since: DateTime<Utc>, until: DateTime<Utc>) -> Result<u64> {
        read::total_sessions(&self.conn().await?, since, until).await
    }

    async fn attacker_stats(
        &self,
        ip: IpAddr,
        since: Option<DateTime<Utc>>,
    ) -> Result<AttackerStats> {
        read::attacker_stats(&self.conn().await?, ip, since).await
    }

    async fn top_sources(&self, query: TopSourcesQuery) -> Result<TopSources> {
        read::top_sources(&self.conn().await?, &query).await
    }

    async fn files(&self, page: Page) -> Result<(Vec<FileRow>, Option<Cursor>)> {
        read::files(&self.conn().await?, &page).await
    }

    async fn file(&self, hash: &str) -> Result<Option<FileRow>> {
        read::file(&self.conn().await?, &hash.to_ascii_lowercase()).await
    }

    async fn urls(&self, page: Page) -> Result<(Vec<UrlRow>, Option<Cursor>)> {
        read::urls(&self.conn().await?, &page).await
    }

    async fn dorks(&self, page: Page) -> Result<(Vec<DorkRow>, Option<Cursor>)> {
        read::dorks(&self.conn().await?, &page).await
    }

    async fn metadata(&self, page: Page) -> Result<(Vec<MetadataRow>, Option<Cursor>)> {
        read::metadata(&self.conn().await?, &page).await
    }

    async fn metadata_for(&self, ip: &str) -> Result<Option<MetadataRow>> {
        read::metadata_for(&self.conn().await?, ip).await
    }

    async fn table_counts(&self) -> Result<Vec<(String, u64)>> {
        read::table_counts(&self.conn().await?).await
    }

    async fn space_used_bytes(&self) -> Result<Option<u64>> {
        Ok(None)
    }

    async fn backup_to(&self, _dest: &std::path::Path) -> Result<()> {
        Err(StoreError::Invalid(
            "backups of a PostgreSQL database are made with pg_dump".into(),
        ))
    }

    async fn oldest_data(&self) -> Result<Option<DateTime<Utc>>> {
        read::oldest_data(&self.conn().await?).await
    }

    async fn database_size_bytes(&self) -> Result<u64> {
        read::database_size(&self.conn().await?).await
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
        admin::count_users(&self.conn().await?).await
    }

    async fn create_user(&self, email: &str, role: Role, password_hash: &str) -> Result<User> {
        admin::create_user(&self.conn().await?, email, role, password_hash).await
    }

    async fn user_by_id(&self, id: i64) -> Result<Option<User>> {
        admin::user_by_id(&self.conn().await?, id).await
    }

    async fn user_with_password(&self, email: &str) -> Result<Option<(User, String)>> {
        admin::user_with_password(&self.conn().await?, email).await
    }

    async fn list_users(&self) -> Result<Vec<User>> {
        admin::list_users(&self.conn().await?).await
    }

    async fn set_password(&self, user_id: i64, password_hash: &str) -> Result<()> {
        admin::set_password(&self.conn().await?, user_id, password_hash).await
    }

    async fn set_role(&self, user_id: i64, role: Role) -> Result<()> {
        admin::set_role(&self.conn().await?, user_id, role).await
    }

    async fn delete_user(&self, user_id: i64) -> Result<bool> {
        admin::delete_user(&self.conn().await?, user_id).await
    }

    async fn create_api_key(
        &self,
        user_id: i64,
        key_hash: &str,
        prefix: &str,
        label: &str,
    ) -> Result<ApiKey> {
        admin::create_api_key(&self.conn().await?, user_id, key_hash, prefix, label).await
    }

    async fn list_api_keys(&self, user_id: Option<i64>) -> Result<Vec<ApiKey>> {
        admin::list_api_keys(&self.conn().await?, user_id).await
    }

    async fn user_by_api_key(&self, key_hash: &str) -> Result<Option<User>> {
        admin::user_by_api_key(&self.conn().await?, key_hash).await
    }

    async fn delete_api_key(&self, key_id: i64, user_id: Option<i64>) -> Result<bool> {
        admin::delete_api_key(&self.conn().await?, key_id, user_id).await
    }

    async fn create_web_session(&self, session: &WebSession) -> Result<()> {
        admin::create_web_session(&self.conn().await?, session).await
    }

    async fn web_session(&self, token_hash: &str) -> Result<Option<(WebSession, User)>> {
        admin::web_session(&self.conn().await?, token_hash, Utc::now()).await
    }

    async fn delete_web_session(&self, token_hash: &str) -> Result<()> {
        admin::delete_web_session(&self.conn().await?, token_hash).await
    }

    async fn delete_user_sessions(&self, user_id: i64) -> Result<u64> {
        admin::delete_user_sessions(&self.conn().await?, user_id).await
    }

    async fn list_deploy_scripts(&self) -> Result<Vec<crate::DeployScript>> {
        admin::list_scripts(&self.conn().await?).await
    }

    async fn deploy_script(&self, id: i64) -> Result<Option<crate::DeployScript>> {
        admin::script(&self.conn().await?, id).await
    }

    async fn create_deploy_script(
        &self,
        name: &str,
        honeypot: &str,
        body: &str,
        notes: &str,
        author: &str,
    ) -> Result<crate::DeployScript> {
        admin::create_script(&mut self.conn().await?, name, honeypot, body, notes, author).await
    }

    async fn update_deploy_script(
        &self,
        id: i64,
        body: &str,
        notes: &str,
        author: &str,
    ) -> Result<crate::DeployScript> {
        admin::update_script(&mut self.conn().await?, id, body, notes, author).await
    }

    async fn deploy_script_versions(&self, id: i64) -> Result<Vec<crate::ScriptVersion>> {
        admin::script_versions(&self.conn().await?, id).await
    }

    async fn create_enrollment_token(
        &self,
        token: &crate::NewEnrollmentToken,
    ) -> Result<crate::EnrollmentToken> {
        admin::create_token(&self.conn().await?, token).await
    }

    async fn list_enrollment_tokens(
        &self,
        script_id: Option<i64>,
    ) -> Result<Vec<crate::EnrollmentToken>> {
        admin::list_tokens(&self.conn().await?, script_id).await
    }

    async fn enrollment_token(&self, token_hash: &str) -> Result<Option<crate::EnrollmentToken>> {
        admin::token_by_hash(&self.conn().await?, token_hash).await
    }

    async fn revoke_enrollment_token(&self, id: i64) -> Result<bool> {
        admin::revoke_token(&self.conn().await?, id).await
    }

    async fn enrolled_sensor(&self, token_id: i64, hostname: &str) -> Result<Option<String>> {
        admin::enrolled_sensor(&self.conn().await?, token_id, hostname).await
    }

    async fn sensor_enrollment_token(&self, uuid: &str) -> Result<Option<i64>> {
        admin::sensor_token(&self.conn().await?, uuid).await
    }

    async fn record_enrollment(
        &self,
        token_id: i64,
        hostname: &str,
        uuid: &str,
        at: DateTime<Utc>,
    ) -> Result<()> {
        admin::record_enrollment(&mut self.conn().await?, token_id, hostname, uuid, at).await
    }
}

impl PgStore {
    async fn insert_batch_ref(&self, batch: &[IngestItem]) -> Result<BatchResult> {
        if batch.is_empty() {
            return Ok(BatchResult::default());
        }
        let fp = Fingerprint::of(batch);
        if let Some(attempt) = self.unsure.attempt(fp) {
            let first = attempt.raw_ids.first().copied().unwrap_or_default();
            let committed = write::raw_exists(&self.conn().await?, first).await?;
            self.unsure.settle(fp);
            if committed {
                tracing::info!(
                    messages = batch.len(),
                    "the batch's earlier attempt had committed (the answer to its COMMIT was lost); not storing it twice"
                );
                return Ok(attempt);
            }
        }
        match write::insert_batch(&mut self.conn().await?, batch).await? {
            Ok(r) => Ok(r),
            Err((e, attempt)) => {
                self.unsure.remember(fp, attempt);
                Err(e)
            }
        }
    }
}

#[async_trait]
impl PruneBatches for PgStore {
    async fn raw(&self, before: DateTime<Utc>, limit: usize) -> Result<u64> {
        write::prune_raw(&mut self.conn().await?, before, limit).await
    }

    async fn sessions(&self, before: DateTime<Utc>, limit: usize) -> Result<(u64, u64)> {
        write::prune_sessions(&mut self.conn().await?, before, limit).await
    }

    async fn rollups(&self, dim: Dimension, before: DateTime<Utc>, limit: usize) -> Result<u64> {
        write::prune_rollups(&self.conn().await?, dim, before, limit).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_redacted() {
        assert_eq!(
            redact("postgres://u:hunter2@h:5432/db?x=1"),
            "postgres://u:***@h:5432/db?x=1"
        );
        assert_eq!(redact("postgres://h/db"), "postgres://h/db");
        assert_eq!(password_of("postgres://u:hunter2@h/db"), Some("hunter2"));
        assert_eq!(password_of("postgres://u@h/db"), None);
    }
}
