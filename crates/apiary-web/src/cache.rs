//! A small time-bounded cache for figures that many clients ask for at once and that may
//! lag a few seconds (the dashboard's last-24-hours aggregates).
//!
//! One value, refreshed by one caller at a time (single flight): while it is fresh every
//! request gets it as is; once older than `ttl` the first request refreshes it in the
//! background and everyone keeps getting the previous value until the new one is in, up
//! to `max_stale`, after which requests wait for the refresh. Without this, N concurrent
//! dashboards over millions of sessions ran N identical sets of roll-up scans.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::error::AppError;

/// A cached value of type `T`; share it as `Arc<Cached<T>>`.
pub struct Cached<T> {
    ttl: Duration,
    max_stale: Duration,
    slot: Mutex<Option<(Instant, Arc<T>)>>,
    // A tokio mutex: the refresh awaits store queries while holding it.
    refresh: Arc<tokio::sync::Mutex<()>>,
}

impl<T: Send + Sync + 'static> Cached<T> {
    /// A cache whose value is fresh for `ttl` and served stale for at most `max_stale`
    /// (from when it was computed) while a refresh runs. A zero `ttl` disables caching.
    pub fn new(ttl: Duration, max_stale: Duration) -> Self {
        Self {
            ttl,
            max_stale: max_stale.max(ttl),
            slot: Mutex::new(None),
            refresh: Arc::new(tokio::sync::Mutex::new(())),
        }
    }

    fn current(&self) -> Option<(Duration, Arc<T>)> {
        self.slot
            .lock()
            .as_ref()
            .map(|(at, v)| (at.elapsed(), v.clone()))
    }

    fn put(&self, v: Arc<T>) {
        *self.slot.lock() = Some((Instant::now(), v));
    }

    /// The cached value, or `load()`'s (see the module docs for when each).
    pub async fn get<F, Fut>(self: &Arc<Self>, load: F) -> Result<Arc<T>, AppError>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, AppError>> + Send + 'static,
    {
        if self.ttl.is_zero() {
            return Ok(Arc::new(load().await?));
        }
        match self.current() {
            Some((age, v)) if age < self.ttl => return Ok(v),
            Some((age, v)) if age < self.max_stale => {
                if let Ok(guard) = self.refresh.clone().try_lock_owned() {
                    let me = self.clone();
                    tokio::spawn(async move {
                        let _guard = guard;
                        match load().await {
                            Ok(fresh) => me.put(Arc::new(fresh)),
                            Err(e) => tracing::warn!(error = ?e, "cache refresh failed"),
                        }
                    });
                }
                return Ok(v);
            }
            _ => {}
        }
        let _guard = self.refresh.lock().await;
        // Whoever held the lock before us may just have loaded it.
        if let Some((age, v)) = self.current() {
            if age < self.ttl {
                return Ok(v);
            }
        }
        let v = Arc::new(load().await?);
        self.put(v.clone());
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn counting(n: &Arc<AtomicU32>) -> impl Future<Output = Result<u32, AppError>> + Send {
        let n = n.clone();
        async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            Ok(n.fetch_add(1, Ordering::SeqCst) + 1)
        }
    }

    #[tokio::test]
    async fn concurrent_callers_share_one_load() {
        let c = Arc::new(Cached::new(
            Duration::from_secs(60),
            Duration::from_secs(60),
        ));
        let n = Arc::new(AtomicU32::new(0));
        let tasks: Vec<_> = (0..20)
            .map(|_| {
                let (c, n) = (c.clone(), n.clone());
                tokio::spawn(async move { *c.get(move || counting(&n)).await.unwrap() })
            })
            .collect();
        for t in tasks {
            assert_eq!(t.await.unwrap(), 1);
        }
        assert_eq!(n.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn stale_value_is_served_while_refreshing() {
        let c = Arc::new(Cached::new(
            Duration::from_millis(30),
            Duration::from_secs(60),
        ));
        let n = Arc::new(AtomicU32::new(0));
        let get = |c: &Arc<Cached<u32>>| {
            let n = n.clone();
            let c = c.clone();
            async move { *c.get(move || counting(&n)).await.unwrap() }
        };
        assert_eq!(get(&c).await, 1);
        tokio::time::sleep(Duration::from_millis(40)).await;
        // Stale: answered at once with the old value, refresh started.
        assert_eq!(get(&c).await, 1);
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert_eq!(get(&c).await, 2);
    }

    #[tokio::test]
    async fn zero_ttl_always_loads_and_errors_are_not_cached() {
        let c = Arc::new(Cached::<u32>::new(Duration::ZERO, Duration::ZERO));
        let n = Arc::new(AtomicU32::new(0));
        let n2 = n.clone();
        assert_eq!(*c.get(move || counting(&n2)).await.unwrap(), 1);
        let n3 = n.clone();
        assert_eq!(*c.get(move || counting(&n3)).await.unwrap(), 2);
        let c = Arc::new(Cached::<u32>::new(
            Duration::from_secs(60),
            Duration::from_secs(60),
        ));
        let r = c
            .get(|| async { Err(AppError::Internal("boom".into())) })
            .await;
        assert!(r.is_err());
        assert_eq!(*c.get(|| async { Ok(7) }).await.unwrap(), 7);
    }
}
