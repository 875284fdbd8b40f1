//! Batches whose COMMIT failed with the outcome unknown.
//!
//! When the connection drops after PostgreSQL received COMMIT but before its answer
//! arrived, the batch may be stored, and the pipeline's retry would store it a second
//! time. The attempt's ids come from the sequences before anything is written, so the
//! store remembers the failed attempt's result under a fingerprint of the batch; when the
//! same batch comes back, one lookup of its first raw message id tells whether that
//! attempt committed (the transaction is all or nothing): if it did, its result is
//! returned and nothing is written again.

use std::collections::VecDeque;
use std::hash::{DefaultHasher, Hash, Hasher};

use parking_lot::Mutex;

use crate::types::{BatchResult, IngestItem};

/// Attempts remembered at most (the pipeline has two batches in flight).
const KEEP: usize = 16;

/// Identifies a batch across retries: the pipeline hands the same items back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Fingerprint(u64);

impl Fingerprint {
    pub(super) fn of(batch: &[IngestItem]) -> Self {
        let mut h = DefaultHasher::new();
        batch.len().hash(&mut h);
        for item in batch {
            let raw = &item.raw;
            raw.received_at.timestamp_micros().hash(&mut h);
            raw.channel.hash(&mut h);
            raw.ident.hash(&mut h);
            raw.payload.len().hash(&mut h);
        }
        Self(h.finish())
    }
}

/// Failed commits whose outcome is not known yet.
#[derive(Default)]
pub(super) struct Unsure(Mutex<VecDeque<(Fingerprint, BatchResult)>>);

impl Unsure {
    /// Remembers an attempt whose COMMIT failed.
    pub(super) fn remember(&self, fp: Fingerprint, attempt: BatchResult) {
        let mut q = self.0.lock();
        q.retain(|(f, _)| *f != fp);
        if q.len() == KEEP {
            q.pop_front();
        }
        q.push_back((fp, attempt));
    }

    /// The remembered attempt of this batch, if any (left in place until settled).
    pub(super) fn attempt(&self, fp: Fingerprint) -> Option<BatchResult> {
        self.0
            .lock()
            .iter()
            .find(|(f, _)| *f == fp)
            .map(|(_, r)| r.clone())
    }

    /// Forgets the attempt of this batch once its outcome is known.
    pub(super) fn settle(&self, fp: Fingerprint) {
        self.0.lock().retain(|(f, _)| *f != fp);
    }
}
