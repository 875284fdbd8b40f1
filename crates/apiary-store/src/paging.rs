//! Keyset pages: every list query fetches `limit + 1` rows, each with its cursor.

use crate::types::Cursor;

/// Cuts a `limit + 1` fetch to `limit` rows and derives the next cursor.
pub(crate) fn page_of<T>(mut rows: Vec<(T, Cursor)>, limit: usize) -> (Vec<T>, Option<Cursor>) {
    let more = rows.len() > limit;
    rows.truncate(limit);
    let next = if more {
        rows.last().map(|(_, c)| c.clone())
    } else {
        None
    };
    (rows.into_iter().map(|(t, _)| t).collect(), next)
}
