//! Write path (in progress).
#![allow(unused_variables)]
use chrono::{DateTime, Utc};
use rusqlite::Connection;

use crate::types::*;
use crate::{Outcome, Result, StoreError};

fn todo() -> StoreError {
    StoreError::Other("not implemented yet".into())
}
pub(super) fn insert_batch(c: &mut Connection, b: Vec<IngestItem>) -> Result<BatchResult> {
    Err(todo())
}
pub(super) fn renormalize_batch(c: &mut Connection, b: Vec<(i64, Outcome)>) -> Result<BatchResult> {
    Err(todo())
}
pub(super) fn prune_raw(c: &mut Connection, t: DateTime<Utc>, l: usize) -> Result<u64> {
    Err(todo())
}
pub(super) fn prune_sessions(c: &mut Connection, t: DateTime<Utc>, l: usize) -> Result<(u64, u64)> {
    Err(todo())
}
pub(super) fn prune_rollups(
    c: &mut Connection,
    d: Dimension,
    t: DateTime<Utc>,
    l: usize,
) -> Result<u64> {
    Err(todo())
}
