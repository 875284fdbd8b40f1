//! The backend-independent half of free-text session search (`SessionFilter::text`):
//! each backend reads the credential, signature and URL matches newest first from their
//! own indexes, one keyset page each, and this merges them into one page.

use apiary_model::Session;

use crate::types::Cursor;

/// One of the three kinds of match of a free-text search (`SessionFilter::text`); each
/// backend reads each kind from an index of its own.
#[derive(Clone, Copy)]
pub(crate) enum TextPart<'a> {
    /// Username or password equal to it.
    Credential(&'a str),
    /// IDS signature containing it.
    Signature(&'a str),
    /// A URL containing it (migration 0008 indexes sessions with URLs).
    Url(&'a str),
}

impl<'a> TextPart<'a> {
    /// The parts a search for `text` reads, one page each, before [`merge`].
    pub(crate) fn all(text: &'a str) -> [Self; 3] {
        [
            Self::Credential(text),
            Self::Signature(text),
            Self::Url(text),
        ]
    }
}

/// Keyset position of a session: (ts in microseconds, id), compared descending.
fn key(s: &Session) -> (i64, i64) {
    (s.timestamp.timestamp_micros(), s.id.unwrap_or_default())
}

/// Merges pages (each newest first, each from the same cursor, each with its own next
/// cursor) into the newest `limit` distinct sessions and the cursor after them. The
/// cursor is `Some` only when more sessions match: a part had more rows, or the merged
/// rows did not fit.
pub(crate) fn merge(
    parts: Vec<(Vec<Session>, Option<Cursor>)>,
    limit: usize,
) -> (Vec<Session>, Option<Cursor>) {
    let mut more = false;
    let mut rows = Vec::new();
    for (part, next) in parts {
        more |= next.is_some();
        rows.extend(part);
    }
    rows.sort_by_key(|s| std::cmp::Reverse(key(s)));
    rows.dedup_by_key(|s| s.id);
    more |= rows.len() > limit;
    rows.truncate(limit);
    let next = if more {
        rows.last().map(|s| {
            let (ts, id) = key(s);
            Cursor::encode(ts, id)
        })
    } else {
        None
    };
    (rows, next)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    fn s(id: i64, secs: i64) -> Session {
        Session {
            id: Some(id),
            timestamp: Utc.timestamp_opt(secs, 0).unwrap(),
            ..Session::default()
        }
    }

    #[test]
    fn newest_first_without_duplicates() {
        let a = (vec![s(5, 50), s(3, 30)], None);
        let b = (vec![s(5, 50), s(4, 40), s(1, 10)], None);
        let (rows, next) = merge(vec![a, b], 3);
        let ids: Vec<_> = rows.iter().map(|r| r.id.unwrap()).collect();
        assert_eq!(ids, vec![5, 4, 3]);
        assert_eq!(next, Some(Cursor::encode(30_000_000, 3)));
        let (rows, next) = merge(vec![(vec![s(2, 20)], None), (vec![], None)], 3);
        assert_eq!(rows.len(), 1);
        assert_eq!(next, None);
    }

    #[test]
    fn a_part_with_more_rows_keeps_the_cursor() {
        let (rows, next) = merge(vec![(vec![s(2, 20)], Some(Cursor::encode(1, 1)))], 1);
        assert_eq!(rows.len(), 1);
        assert_eq!(next, Some(Cursor::encode(20_000_000, 2)));
    }
}
