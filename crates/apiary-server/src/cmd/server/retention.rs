//! Background retention and store statistics for `/metrics`.

use std::sync::Arc;
use std::time::Duration;

use apiary_store::Store;
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
