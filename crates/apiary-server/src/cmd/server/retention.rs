//! Background retention and store statistics for `/metrics`.

use std::sync::Arc;
use std::time::Duration;

use apiary_store::Store;
use chrono::DurationRound;
use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::settings::RetentionSettings;

/// Rows deleted per transaction: small, so ingest never waits long on the writer.
const PRUNE_BATCH: usize = 5_000;

/// Prunes old raw messages and sessions every `interval_minutes`.
pub async fn run(store: Arc<dyn Store>, settings: RetentionSettings, shutdown: CancellationToken) {
    if settings.raw_days == 0 && settings.session_days == 0 {
        info!("retention disabled: data is kept forever");
        return;
    }
    let every = Duration::from_secs(settings.interval_minutes.max(1) * 60);
    let mut tick = tokio::time::interval(every);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let now = chrono::Utc::now();
        let horizon = |days: u32| (days > 0).then(|| now - chrono::Duration::days(days.into()));
        match store
            .prune(
                horizon(settings.raw_days),
                horizon(settings.session_days),
                PRUNE_BATCH,
            )
            .await
        {
            Ok(r) => info!(?r, "retention pass done"),
            Err(e) => warn!(error = %e, "retention pass failed"),
        }
    }
}

/// Share of the budget a pass prunes down to, so one pass frees room for a while instead
/// of an hour at every check.
const BUDGET_LOW_WATER: f64 = 0.95;

/// Keeps the embedded database's data under `max_size_mb` (none when 0): every
/// `budget_check_seconds`, while the bytes in use exceed the budget, the oldest hour of
/// raw messages, sessions and roll-ups is pruned, whatever `raw_days` and
/// `session_days` say. The newest hour is never pruned.
pub async fn keep_within_budget(
    store: Arc<dyn Store>,
    settings: RetentionSettings,
    shutdown: CancellationToken,
) {
    if settings.max_size_mb == 0 {
        return;
    }
    let budget = settings.max_size_mb.saturating_mul(1_000_000);
    let every = Duration::from_secs(settings.budget_check_seconds.max(1));
    let mut tick = tokio::time::interval(every);
    let mut too_small_warned = false;
    info!(max_size_mb = settings.max_size_mb, "disk budget set");
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        match prune_to_budget(&*store, budget, &shutdown).await {
            Ok(Budget::Within) => too_small_warned = false,
            Ok(Budget::Pruned {
                before,
                after,
                up_to,
            }) => info!(
                used_mb = after / 1_000_000,
                was_mb = before / 1_000_000,
                pruned_before = %up_to,
                "disk budget: pruned the oldest data"
            ),
            Ok(Budget::TooSmall { used }) => {
                if !too_small_warned {
                    warn!(
                        used_mb = used / 1_000_000,
                        max_size_mb = settings.max_size_mb,
                        "disk budget too small: the last hour's data alone exceeds retention.max_size_mb; raise it"
                    );
                    too_small_warned = true;
                }
            }
            Err(e) => warn!(error = %e, "disk budget pass failed"),
        }
    }
}

/// What a budget pass did.
#[derive(Debug, PartialEq)]
enum Budget {
    Within,
    Pruned {
        before: u64,
        after: u64,
        up_to: chrono::DateTime<chrono::Utc>,
    },
    TooSmall {
        used: u64,
    },
}

async fn prune_to_budget(
    store: &dyn Store,
    budget: u64,
    shutdown: &CancellationToken,
) -> apiary_store::Result<Budget> {
    let Some(before) = store.space_used_bytes().await? else {
        return Ok(Budget::Within);
    };
    if before <= budget {
        return Ok(Budget::Within);
    }
    let target = (budget as f64 * BUDGET_LOW_WATER) as u64;
    let newest_hour = chrono::Utc::now() - chrono::Duration::hours(1);
    let (mut used, mut up_to, mut logged) = (before, None, std::time::Instant::now());
    let mut last_oldest = None;
    while used > target && !shutdown.is_cancelled() {
        let Some(oldest) = store.oldest_data().await? else {
            break;
        };
        // Never spin on an hour that pruning did not move past.
        if last_oldest == Some(oldest) {
            warn!(%oldest, "disk budget: pruning made no progress; stopping this pass");
            break;
        }
        last_oldest = Some(oldest);
        let hour = oldest
            .duration_trunc(chrono::Duration::hours(1))
            .unwrap_or(oldest);
        let cutoff = hour + chrono::Duration::hours(1);
        if cutoff > newest_hour {
            if up_to.is_none() {
                return Ok(Budget::TooSmall { used });
            }
            break;
        }
        store.prune(Some(cutoff), Some(cutoff), PRUNE_BATCH).await?;
        up_to = Some(cutoff);
        used = store.space_used_bytes().await?.unwrap_or(0);
        if logged.elapsed() >= Duration::from_secs(5) {
            info!(
                used_mb = used / 1_000_000,
                target_mb = target / 1_000_000,
                pruned_before = %cutoff,
                "disk budget: pruning the oldest data"
            );
            logged = std::time::Instant::now();
        }
    }
    Ok(match up_to {
        Some(up_to) => Budget::Pruned {
            before,
            after: used,
            up_to,
        },
        None => Budget::Within,
    })
}

/// Table row counts and database size, refreshed at most every 30 s (COUNT(*) is not free).
pub struct StoreStats {
    store: Arc<dyn Store>,
    cache: Arc<Mutex<(Option<std::time::Instant>, String)>>,
}

impl StoreStats {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self {
            store,
            cache: Arc::default(),
        }
    }
}

impl apiary_web::MetricsSource for StoreStats {
    fn render(&self, out: &mut String) {
        let (fresh, text) = {
            let c = self.cache.lock();
            (
                c.0.is_some_and(|t| t.elapsed() < Duration::from_secs(30)),
                c.1.clone(),
            )
        };
        out.push_str(&text);
        if fresh {
            return;
        }
        // Refresh in the background; the next scrape shows the new figures.
        let (store, cache) = (self.store.clone(), self.cache.clone());
        cache.lock().0 = Some(std::time::Instant::now());
        tokio::spawn(async move {
            use std::fmt::Write;
            let mut s = String::new();
            if let Ok(size) = store.database_size_bytes().await {
                let _ = writeln!(s, "# HELP apiary_store_database_bytes Database size on disk.\n# TYPE apiary_store_database_bytes gauge\napiary_store_database_bytes {size}");
            }
            if let Ok(Some(used)) = store.space_used_bytes().await {
                let _ = writeln!(s, "# HELP apiary_store_used_bytes Bytes the stored data takes (file pages not free for reuse; what retention.max_size_mb limits).\n# TYPE apiary_store_used_bytes gauge\napiary_store_used_bytes {used}");
            }
            if let Ok(counts) = store.table_counts().await {
                let _ = writeln!(
                    s,
                    "# HELP apiary_store_rows Rows per table.\n# TYPE apiary_store_rows gauge"
                );
                for (table, n) in counts {
                    let _ = writeln!(s, "apiary_store_rows{{table=\"{table}\"}} {n}");
                }
            }
            cache.lock().1 = s;
        });
    }
}
