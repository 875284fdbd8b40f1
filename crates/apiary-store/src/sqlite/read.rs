//! Read path (in progress).
#![allow(unused_variables)]
use std::net::IpAddr;

use apiary_model::{RawEvent, Session};
use chrono::{DateTime, Utc};
use rusqlite::Connection;

use crate::types::*;
use crate::{Result, StoreError};

fn todo() -> StoreError {
    StoreError::Other("not implemented yet".into())
}
type Paged<T> = Result<(Vec<T>, Option<Cursor>)>;
pub(super) fn raw_for_renormalize(
    c: &Connection,
    f: &RawFilter,
    a: i64,
    l: usize,
) -> Result<Vec<RawEvent>> {
    Err(todo())
}
pub(super) fn sessions(c: &Connection, f: &SessionFilter, p: &Page) -> Paged<Session> {
    Err(todo())
}
pub(super) fn session(c: &Connection, id: i64) -> Result<Option<Session>> {
    Err(todo())
}
pub(super) fn raw(c: &Connection, id: i64) -> Result<Option<StoredRaw>> {
    Err(todo())
}
pub(super) fn raw_messages(c: &Connection, q: &RawQuery, p: &Page) -> Paged<StoredRaw> {
    Err(todo())
}
pub(super) fn top(
    c: &Connection,
    d: Dimension,
    s: DateTime<Utc>,
    u: DateTime<Utc>,
    l: usize,
) -> Result<Vec<(String, u64)>> {
    Err(todo())
}
pub(super) fn counts_per_hour(
    c: &Connection,
    s: DateTime<Utc>,
    u: DateTime<Utc>,
    f: Option<(Dimension, String)>,
) -> Result<Vec<HourCount>> {
    Err(todo())
}
pub(super) fn total_sessions(c: &Connection, s: DateTime<Utc>, u: DateTime<Utc>) -> Result<u64> {
    Err(todo())
}
pub(super) fn attacker_stats(
    c: &Connection,
    ip: IpAddr,
    s: Option<DateTime<Utc>>,
) -> Result<AttackerStats> {
    Err(todo())
}
pub(super) fn files(c: &Connection, p: &Page) -> Paged<FileRow> {
    Err(todo())
}
pub(super) fn file(c: &Connection, h: &str) -> Result<Option<FileRow>> {
    Err(todo())
}
pub(super) fn urls(c: &Connection, p: &Page) -> Paged<UrlRow> {
    Err(todo())
}
pub(super) fn dorks(c: &Connection, p: &Page) -> Paged<DorkRow> {
    Err(todo())
}
pub(super) fn metadata(c: &Connection, p: &Page) -> Paged<MetadataRow> {
    Err(todo())
}
pub(super) fn metadata_for(c: &Connection, ip: &str) -> Result<Option<MetadataRow>> {
    Err(todo())
}
pub(super) fn table_counts(c: &Connection) -> Result<Vec<(String, u64)>> {
    Err(todo())
}
pub(super) fn database_size(c: &Connection) -> Result<u64> {
    Err(todo())
}
