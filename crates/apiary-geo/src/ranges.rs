//! ASN from range CSV files: the `@ip-location-db/asn` package (no `.mmdb` ASN package is
//! published on the npm registry) ships `asn-ipv4.csv` and `asn-ipv6.csv`, one range per
//! line:
//!
//! ```text
//! 1.0.0.0,1.0.0.255,13335,"Cloudflare, Inc."
//! 2001:4:112::,2001:4:112:ffff:ffff:ffff:ffff:ffff,112,DNS-OARC
//! ```
//!
//! Loaded into sorted vectors (about 0.5 M ranges, ~15 MB) and looked up by binary
//! search; organization names are stored once each. Lines that do not parse are skipped
//! and counted (reported once in the log).

use std::borrow::Cow;
use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;

use crate::status::{DatabaseStatus, DbRole, Layout};
use crate::{GeoError, Result};

/// The ranges of one or more CSV files.
#[derive(Default)]
pub(crate) struct AsnRanges {
    /// (start, end, asn, org index), sorted by start.
    v4: Vec<(u32, u32, u32, u32)>,
    v6: Vec<(u128, u128, u32, u32)>,
    orgs: Vec<Box<str>>,
    pub(crate) status: Vec<DatabaseStatus>,
}

/// Whether `path` names a range CSV rather than a MaxMind DB.
pub(crate) fn is_csv(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("csv"))
}

impl AsnRanges {
    /// Loads every file (IPv4 and IPv6 ranges may be in either).
    pub(crate) fn load(paths: &[&Path]) -> Result<AsnRanges> {
        let mut out = AsnRanges::default();
        let mut org_ids: HashMap<Box<str>, u32> = HashMap::new();
        for path in paths {
            let err = |reason: String| GeoError::Open {
                path: path.to_path_buf(),
                reason,
            };
            let bytes = std::fs::read(path).map_err(|e| err(e.to_string()))?;
            let text = String::from_utf8_lossy(&bytes);
            let (mut good, mut bad) = (0usize, 0usize);
            let (mut has_v4, mut has_v6) = (false, false);
            for line in text.lines().filter(|l| !l.trim().is_empty()) {
                let Some((start, end, asn, org)) = parse_line(line) else {
                    bad += 1;
                    continue;
                };
                let org_id = match org_ids.get(org.as_ref()) {
                    Some(&id) => id,
                    None => {
                        let id = org_ids.len() as u32;
                        org_ids.insert(org.into(), id);
                        id
                    }
                };
                match (start, end) {
                    (IpAddr::V4(a), IpAddr::V4(b)) if a <= b => {
                        out.v4.push((a.into(), b.into(), asn, org_id));
                        has_v4 = true;
                    }
                    (IpAddr::V6(a), IpAddr::V6(b)) if a <= b => {
                        out.v6.push((a.into(), b.into(), asn, org_id));
                        has_v6 = true;
                    }
                    _ => {
                        bad += 1;
                        continue;
                    }
                }
                good += 1;
            }
            if good == 0 {
                return Err(err(format!(
                    "no start,end,asn,organization lines ({bad} unreadable)"
                )));
            }
            if bad > 0 {
                tracing::warn!(path = %path.display(), bad, good, "ASN ranges: lines skipped");
            }
            let build_epoch = std::fs::metadata(path)
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_secs());
            out.status.push(DatabaseStatus {
                role: DbRole::Asn,
                path: path.to_path_buf(),
                database_type: "asn ranges (csv)".into(),
                layout: Layout::Csv,
                ip_version: if has_v6 && !has_v4 { 6 } else { 4 },
                build_epoch,
                build_date: crate::status::date_from_epoch(build_epoch),
                node_count: u32::try_from(good).unwrap_or(u32::MAX),
            });
        }
        let mut orgs: Vec<(Box<str>, u32)> = org_ids.into_iter().collect();
        orgs.sort_by_key(|(_, id)| *id);
        out.orgs = orgs.into_iter().map(|(o, _)| o).collect();
        out.v4.sort_unstable_by_key(|r| r.0);
        out.v6.sort_unstable_by_key(|r| r.0);
        Ok(out)
    }

    /// Whether any range is loaded.
    pub(crate) fn is_empty(&self) -> bool {
        self.v4.is_empty() && self.v6.is_empty()
    }

    /// AS number and organization (empty when the file has none) of `ip`.
    pub(crate) fn lookup(&self, ip: IpAddr) -> Option<(u32, &str)> {
        let (asn, org) = match ip {
            IpAddr::V4(a) => find(&self.v4, u32::from(a))?,
            IpAddr::V6(a) => find(&self.v6, u128::from(a))?,
        };
        Some((asn, self.orgs.get(org as usize).map_or("", |o| o)))
    }
}

/// The range holding `x`: the last one starting at or before it, if it ends at or after.
fn find<T: Ord + Copy>(ranges: &[(T, T, u32, u32)], x: T) -> Option<(u32, u32)> {
    let i = ranges.partition_point(|r| r.0 <= x).checked_sub(1)?;
    let (_, end, asn, org) = *ranges.get(i)?;
    (x <= end && asn != 0).then_some((asn, org))
}

/// `start,end,asn,organization`; the organization may be quoted (`""` for a quote).
fn parse_line(line: &str) -> Option<(IpAddr, IpAddr, u32, Cow<'_, str>)> {
    let mut parts = line.splitn(4, ',');
    let start = parts.next()?.trim().parse().ok()?;
    let end = parts.next()?.trim().parse().ok()?;
    let asn = parts.next()?.trim().parse().ok()?;
    let org = parts.next().unwrap_or("").trim();
    let org = match org.strip_prefix('"').and_then(|o| o.strip_suffix('"')) {
        Some(q) if q.contains('"') => Cow::Owned(q.replace("\"\"", "\"")),
        Some(q) => Cow::Borrowed(q),
        None => Cow::Borrowed(org),
    };
    // Names are short; bound what a damaged file could put in every event.
    let org = if org.len() > 128 {
        Cow::Owned(apiary_model::bounded::bounded(&org, 128))
    } else {
        org
    };
    Some((start, end, asn, org))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> AsnRanges {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("asn-ipv4.csv");
        std::fs::write(&p, text).unwrap();
        AsnRanges::load(&[&p]).unwrap()
    }

    #[test]
    fn ranges_quotes_and_gaps() {
        let r = load(
            "1.0.0.0,1.0.0.255,13335,\"Cloudflare, Inc.\"\n\
             1.0.4.0,1.0.7.255,38803,Gtelecom Pty Ltd\n\
             2001:4:112::,2001:4:112:ffff:ffff:ffff:ffff:ffff,112,DNS-OARC\n\
             8.8.8.0,8.8.8.255,15169,\"Say \"\"hi\"\"\"\n",
        );
        let at = |s: &str| r.lookup(s.parse().unwrap());
        assert_eq!(at("1.0.0.1"), Some((13335, "Cloudflare, Inc.")));
        assert_eq!(at("1.0.0.255"), Some((13335, "Cloudflare, Inc.")));
        assert_eq!(at("1.0.1.0"), None, "between ranges");
        assert_eq!(at("1.0.7.255"), Some((38803, "Gtelecom Pty Ltd")));
        assert_eq!(at("0.255.255.255"), None, "before the first");
        assert_eq!(at("9.0.0.0"), None, "after the last");
        assert_eq!(at("8.8.8.8"), Some((15169, "Say \"hi\"")));
        assert_eq!(at("2001:4:112::1"), Some((112, "DNS-OARC")));
        assert_eq!(at("2001:4:113::1"), None);
    }

    #[test]
    fn damaged_lines_are_skipped_not_fatal() {
        let r = load(
            "garbage\n1.2.3.4,1.2.3.0,5,backwards\n1.2.3.0,::1,5,mixed\n\
             1.2.3.0,1.2.3.255,x,not a number\n\u{fffd}\n\n1.2.3.0,1.2.3.255,64500,ok\n",
        );
        assert_eq!(r.lookup("1.2.3.9".parse().unwrap()), Some((64500, "ok")));
        assert_eq!(r.status[0].node_count, 1);
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.csv");
        std::fs::write(&p, "nothing,here\n").unwrap();
        assert!(AsnRanges::load(&[&p]).is_err());
    }
}
