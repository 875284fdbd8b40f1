//! Address canonicalization and the "never in a geo database" ranges.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The address as looked up: an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) becomes the
/// IPv4 address it carries; everything else is unchanged.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 => v4,
    }
}

/// Whether `ip` (already [`canonical`]) lies in a range that no geo database can place:
/// private, loopback, link-local, shared (CGNAT), documentation, benchmarking, multicast,
/// reserved, unspecified or broadcast.
pub fn is_non_routable(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4_non_routable(v4),
        IpAddr::V6(v6) => v6_non_routable(v6),
    }
}

fn v4_non_routable(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    a == 0                                          // "this network"
        || a == 10                                  // private
        || a == 127                                 // loopback
        || a >= 224                                 // multicast, reserved, broadcast
        || (a == 100 && (64..128).contains(&b))     // shared address space (CGNAT)
        || (a == 169 && b == 254)                   // link-local
        || (a == 172 && (16..32).contains(&b))      // private
        || (a == 192 && b == 168)                   // private
        || (a == 192 && b == 0 && (c == 0 || c == 2)) // IETF protocol assignments, TEST-NET-1
        || (a == 198 && (b == 18 || b == 19))       // benchmarking
        || (a == 198 && b == 51 && c == 100)        // TEST-NET-2
        || (a == 203 && b == 0 && c == 113) // TEST-NET-3
}

fn v6_non_routable(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    ip.is_unspecified()
        || ip.is_loopback()
        || (s[0] & 0xfe00) == 0xfc00 // unique local fc00::/7
        || (s[0] & 0xffc0) == 0xfe80 // link-local fe80::/10
        || (s[0] & 0xff00) == 0xff00 // multicast ff00::/8
        || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation 2001:db8::/32
}

/// The cache key of a canonical address: IPv4 as its mapped IPv6 form, so the two
/// families share one key space without colliding.
pub(crate) fn key(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(v4.to_ipv6_mapped()),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn mapped_addresses_become_ipv4() {
        assert_eq!(canonical(ip("::ffff:8.8.8.8")), ip("8.8.8.8"));
        assert_eq!(canonical(ip("8.8.8.8")), ip("8.8.8.8"));
        assert_eq!(canonical(ip("2001:4860::8888")), ip("2001:4860::8888"));
        // IPv4-compatible (deprecated) is not mapped.
        assert_eq!(canonical(ip("::8.8.8.8")), ip("::8.8.8.8"));
    }

    #[test]
    fn non_routable_ranges() {
        for s in [
            "0.1.2.3",
            "10.1.2.3",
            "100.64.0.1",
            "100.127.255.255",
            "127.0.0.1",
            "169.254.1.1",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "192.0.2.7",
            "198.18.0.1",
            "198.51.100.1",
            "203.0.113.9",
            "224.0.0.1",
            "255.255.255.255",
            "::",
            "::1",
            "fd00::1",
            "fe80::1",
            "ff02::1",
            "2001:db8::1",
        ] {
            assert!(is_non_routable(ip(s)), "{s} should be non-routable");
        }
        for s in [
            "8.8.8.8",
            "1.1.1.1",
            "100.63.0.1",
            "100.128.0.1",
            "172.15.0.1",
            "172.32.0.1",
            "192.0.1.1",
            "223.255.255.255",
            "2001:4860:4860::8888",
            "2a00:1450::1",
        ] {
            assert!(!is_non_routable(ip(s)), "{s} should be routable");
        }
    }

    #[test]
    fn keys_do_not_collide_across_families() {
        assert_ne!(key(ip("8.8.8.8")), key(ip("::8.8.8.8")));
        assert_eq!(key(ip("8.8.8.8")), key(ip("::ffff:8.8.8.8")));
    }
}
