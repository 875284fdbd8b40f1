//! Conversions between model values and SQLite columns, and driver error mapping.

use std::net::IpAddr;

use chrono::{DateTime, Utc};
use ipnet::IpNet;
use rusqlite::ErrorCode;

use crate::StoreError;

pub(crate) const HOUR_US: i64 = 3_600_000_000;

/// The day bucket leading the source-address index: `ts / 86400000000` in SQL, which
/// truncates toward zero exactly like Rust's `/`. Queries must spell the expression
/// [`SOURCE_DAY`] exactly for SQLite to use the index.
pub(crate) fn day_of(t_us: i64) -> i64 {
    t_us / 86_400_000_000
}

/// The indexed expression of the source-address index (migration 0004).
/// The `[lo, hi)` microseconds whose [`day_of`] is `d` (truncating division: day 0 spans
/// both sides of the epoch).
pub(crate) fn day_bounds(d: i64) -> (i64, i64) {
    const DAY_US: i64 = 86_400_000_000;
    let lo = if d > 0 {
        d * DAY_US
    } else {
        (d - 1) * DAY_US + 1
    };
    let hi = if d >= 0 {
        (d + 1) * DAY_US
    } else {
        d * DAY_US + 1
    };
    (lo, hi)
}

pub(crate) const SOURCE_DAY: &str = "ts / 86400000000";

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        match &e {
            rusqlite::Error::QueryReturnedNoRows => StoreError::NotFound,
            rusqlite::Error::SqliteFailure(f, msg) if f.code == ErrorCode::ConstraintViolation => {
                StoreError::Conflict(msg.clone().unwrap_or_else(|| e.to_string()))
            }
            _ => StoreError::Other(format!("sqlite: {e}")),
        }
    }
}

pub(crate) fn json_err(e: serde_json::Error) -> StoreError {
    StoreError::Other(format!("stored JSON is unreadable: {e}"))
}

/// Microseconds since the epoch.
pub(crate) fn us(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

/// Back from microseconds; out-of-range values (never written by us) clamp to the epoch.
pub(crate) fn from_us(v: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(v).unwrap_or_default()
}

/// The hour bucket holding `t_us`.
pub(crate) fn hour_of(t_us: i64) -> i64 {
    t_us.div_euclid(HOUR_US)
}

/// Hour buckets overlapping `[since, until)`: `lo <= hour < hi`.
pub(crate) fn hour_range(since: DateTime<Utc>, until: DateTime<Utc>) -> (i64, i64) {
    let lo = hour_of(us(since));
    let u = us(until);
    let hi = u.div_euclid(HOUR_US) + i64::from(u.rem_euclid(HOUR_US) != 0);
    (lo, hi)
}

/// 16-byte sortable form of an address: IPv4 as IPv4-mapped IPv6.
pub(crate) fn ip_key(ip: IpAddr) -> [u8; 16] {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    }
}

/// Inclusive key range of a network.
pub(crate) fn net_range(net: IpNet) -> ([u8; 16], [u8; 16]) {
    let net = net.trunc();
    (ip_key(net.network()), ip_key(net.broadcast()))
}

/// Escapes `%`, `_` and `\` for `LIKE ... ESCAPE '\'`.
pub(crate) fn like_contains(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('%');
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hour_ranges() {
        let t = |s: &str| s.parse::<DateTime<Utc>>().unwrap();
        let (lo, hi) = hour_range(t("2024-01-01T10:00:00Z"), t("2024-01-01T12:00:00Z"));
        assert_eq!(hi - lo, 2);
        let (lo2, hi2) = hour_range(t("2024-01-01T10:30:00Z"), t("2024-01-01T12:00:01Z"));
        assert_eq!((lo2, hi2), (lo, hi + 1));
    }

    #[test]
    fn keys_sort_and_ranges_cover() {
        let a = ip_key("10.0.0.255".parse().unwrap());
        let b = ip_key("10.0.1.0".parse().unwrap());
        assert!(a < b);
        let (lo, hi) = net_range("10.0.0.7/24".parse().unwrap());
        assert!(lo <= a && a <= hi && b > hi);
        let (lo, hi) = net_range("2001:db8::/32".parse().unwrap());
        let k = ip_key("2001:db8:ffff::1".parse().unwrap());
        assert!(lo <= k && k <= hi);
    }

    #[test]
    fn day_bounds_match_day_of() {
        const D: i64 = 86_400_000_000;
        for t in [
            -2 * D - 1,
            -2 * D,
            -D - 1,
            -D,
            -D + 1,
            -1,
            0,
            1,
            D - 1,
            D,
            D + 1,
            5 * D + 7,
        ] {
            let (lo, hi) = day_bounds(day_of(t));
            assert!(lo <= t && t < hi, "{t}");
            assert_eq!(day_of(lo), day_of(t));
            assert_eq!(day_of(hi - 1), day_of(t));
            assert_ne!(day_of(lo - 1), day_of(t));
            assert_ne!(day_of(hi), day_of(t));
        }
    }

    #[test]
    fn like_escapes() {
        assert_eq!(like_contains("50%_a\\"), "%50\\%\\_a\\\\%");
    }
}
