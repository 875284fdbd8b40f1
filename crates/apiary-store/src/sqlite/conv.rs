//! Conversions between model values and SQLite columns, and driver error mapping.

use std::net::IpAddr;

use ipnet::IpNet;
use rusqlite::ErrorCode;

use crate::StoreError;

/// The day bucket leading the credential terms: `ts / 86400000000` in SQL, which
/// truncates toward zero exactly like Rust's `/`.
pub(crate) fn day_of(t_us: i64) -> i64 {
    t_us / 86_400_000_000
}

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
