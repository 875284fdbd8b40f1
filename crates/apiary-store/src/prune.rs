//! The retention pass behind [`crate::Store::prune`]: the same batches in the same order on
//! both backends, each batch a short transaction of the backend's own.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::types::{Dimension, PruneResult};
use crate::Result;

/// One batch of each kind of deletion, at most `limit` rows, committed on its own.
#[async_trait]
pub(crate) trait PruneBatches: Sync {
    /// Raw messages received before `before`; how many were deleted.
    async fn raw(&self, before: DateTime<Utc>, limit: usize) -> Result<u64>;

    /// Sessions older than `before`; (sessions, credentials) deleted.
    async fn sessions(&self, before: DateTime<Utc>, limit: usize) -> Result<(u64, u64)>;

    /// Roll-up rows of `dim` for hours before `before`; how many were deleted.
    async fn rollups(&self, dim: Dimension, before: DateTime<Utc>, limit: usize) -> Result<u64>;
}

/// Deletes in batches until a batch comes back short. One short transaction per batch
/// so ingest interleaves with a long pass.
pub(crate) async fn prune(
    store: &impl PruneBatches,
    raw_older_than: Option<DateTime<Utc>>,
    sessions_older_than: Option<DateTime<Utc>>,
    batch_limit: usize,
) -> Result<PruneResult> {
    let limit = batch_limit.clamp(1, 100_000);
    let mut total = PruneResult::default();
    if let Some(t) = raw_older_than {
        loop {
            let n = store.raw(t, limit).await?;
            total.raw += n;
            if n < limit as u64 {
                break;
            }
        }
    }
    if let Some(t) = sessions_older_than {
        loop {
            let (s, cr) = store.sessions(t, limit).await?;
            total.sessions += s;
            total.credentials += cr;
            if s < limit as u64 {
                break;
            }
        }
        for dim in Dimension::ALL {
            loop {
                let n = store.rollups(dim, t, limit).await?;
                total.rollups += n;
                if n < limit as u64 {
                    break;
                }
            }
        }
    }
    Ok(total)
}
