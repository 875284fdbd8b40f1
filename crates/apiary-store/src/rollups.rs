//! Which hourly roll-up rows a write changes. Both backends sum the increments of one
//! transaction here and flush the non-zero ones with their own SQL.

use std::collections::HashMap;

use apiary_model::Session;

use crate::hours::hour_of;
use crate::types::Dimension;

/// Roll-up increments of one transaction: (dim code, hour) → value → delta. Nested so that
/// looking up an existing value borrows instead of allocating a key.
#[derive(Default)]
pub(crate) struct Rollups(HashMap<(i64, i64), HashMap<String, i64>>);

/// The roll-up dimensions of one session, borrowed from a model value or a stored row.
pub(crate) struct Dims<'a> {
    pub(crate) hour: i64,
    pub(crate) honeypot: &'a str,
    pub(crate) sensor: &'a str,
    pub(crate) channel: &'a str,
    pub(crate) destination_port: Option<u16>,
    pub(crate) source_ip: Option<&'a str>,
    pub(crate) country: Option<&'a str>,
    pub(crate) protocol: Option<&'a str>,
    pub(crate) signature: Option<&'a str>,
}

/// The channel and sensor a session is stored with (the raw message's when unset).
pub(crate) fn origin_of<'a>(
    s: &'a Session,
    channel: &'a str,
    ident: &'a str,
) -> (&'a str, &'a str) {
    let c = if s.channel.is_empty() {
        channel
    } else {
        &s.channel
    };
    let i = if s.sensor.is_empty() {
        ident
    } else {
        &s.sensor
    };
    (c, i)
}

impl Rollups {
    fn add(&mut self, dim: Dimension, hour: i64, value: &str, delta: i64) {
        let inner = self.0.entry((dim.code(), hour)).or_default();
        match inner.get_mut(value) {
            Some(n) => *n += delta,
            None => {
                inner.insert(value.to_owned(), delta);
            }
        }
    }

    /// The one definition of which roll-up rows a session counts in; used with +1 on
    /// insert and -1 when re-normalization removes it.
    pub(crate) fn session(&mut self, d: &Dims<'_>, delta: i64) {
        let h = d.hour;
        self.add(Dimension::All, h, "", delta);
        self.add(Dimension::Honeypot, h, d.honeypot, delta);
        self.add(Dimension::Sensor, h, d.sensor, delta);
        self.add(Dimension::Channel, h, d.channel, delta);
        if let Some(p) = d.destination_port {
            self.add(Dimension::DestinationPort, h, &p.to_string(), delta);
        }
        let opt = [
            (Dimension::SourceIp, d.source_ip),
            (Dimension::Country, d.country),
            (Dimension::Protocol, d.protocol),
            (Dimension::Signature, d.signature),
        ];
        for (dim, v) in opt {
            if let Some(v) = v {
                self.add(dim, h, v, delta);
            }
        }
    }

    pub(crate) fn credential(&mut self, hour: i64, username: &str, password: &str, delta: i64) {
        self.add(Dimension::Username, hour, username, delta);
        self.add(Dimension::Password, hour, password, delta);
    }

    /// Counts (+1) a session about to be inserted with `channel` and `sensor` (from
    /// [`origin_of`]) and its credentials. `source_ip` is the address as stored text.
    pub(crate) fn new_session(
        &mut self,
        s: &Session,
        channel: &str,
        sensor: &str,
        source_ip: Option<&str>,
    ) {
        let hour = hour_of(s.timestamp.timestamp_micros());
        for cr in &s.details.credentials {
            self.credential(hour, &cr.username, &cr.password, 1);
        }
        self.session(
            &Dims {
                hour,
                honeypot: &s.honeypot,
                sensor,
                channel,
                destination_port: s.destination_port,
                source_ip,
                country: s
                    .source_geo
                    .as_ref()
                    .and_then(|g| g.country_code.as_deref()),
                protocol: s.protocol.as_deref(),
                signature: s.details.ids.as_ref().map(|a| a.signature.as_str()),
            },
            1,
        );
    }

    /// The changed rows as (dim code, hour, value, delta), leaving out those that summed
    /// to zero; in no particular order.
    pub(crate) fn into_changes(self) -> impl Iterator<Item = (i64, i64, String, i64)> {
        self.0.into_iter().flat_map(|((dim, hour), values)| {
            values
                .into_iter()
                .filter(|&(_, n)| n != 0)
                .map(move |(value, n)| (dim, hour, value, n))
        })
    }
}

/// Format version of [`Rollups::encode`].
const DELTAS_V1: u8 = 1;

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_signed(out: &mut Vec<u8>, v: i64) {
    put_varint(out, ((v << 1) ^ (v >> 63)) as u64);
}

/// Reads what [`put_varint`] and [`put_signed`] wrote, bounds-checked.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn varint(&mut self) -> Result<u64, String> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let (&b, rest) = self.0.split_first().ok_or("truncated varint")?;
            self.0 = rest;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err("varint longer than 64 bits".into())
    }

    fn signed(&mut self) -> Result<i64, String> {
        let v = self.varint()?;
        Ok(((v >> 1) as i64) ^ -((v & 1) as i64))
    }

    fn bytes(&mut self, n: usize) -> Result<&'a [u8], String> {
        if n > self.0.len() {
            return Err("truncated value".into());
        }
        let (b, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(b)
    }
}

impl Rollups {
    /// True when there is nothing to write.
    pub(crate) fn is_empty(&self) -> bool {
        self.0.values().all(|m| m.values().all(|&n| n == 0))
    }

    /// The non-zero increments as bytes for the SQLite roll-up log: version, then per
    /// (dim, hour) group its varint codes, count and (value, delta) pairs.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = vec![DELTAS_V1];
        for (&(dim, hour), values) in &self.0 {
            let n = values.values().filter(|&&n| n != 0).count();
            if n == 0 {
                continue;
            }
            put_signed(&mut out, dim);
            put_signed(&mut out, hour);
            put_varint(&mut out, n as u64);
            for (value, &delta) in values {
                if delta != 0 {
                    put_varint(&mut out, value.len() as u64);
                    out.extend_from_slice(value.as_bytes());
                    put_signed(&mut out, delta);
                }
            }
        }
        out
    }

    /// Adds increments [`encode`](Self::encode)d earlier; on a malformed input nothing
    /// is added.
    pub(crate) fn absorb(&mut self, bytes: &[u8]) -> Result<(), String> {
        let mut parsed = Vec::new();
        let mut r = Reader(bytes);
        let version = r.bytes(1)?;
        if version != [DELTAS_V1] {
            return Err(format!("unknown roll-up delta format {version:?}"));
        }
        while !r.0.is_empty() {
            let dim = r.signed()?;
            let hour = r.signed()?;
            let n = r.varint()?;
            for _ in 0..n {
                let len = usize::try_from(r.varint()?).map_err(|_| "value too long")?;
                let value = std::str::from_utf8(r.bytes(len)?)
                    .map_err(|_| "value is not UTF-8")?
                    .to_owned();
                parsed.push((dim, hour, value, r.signed()?));
            }
        }
        for (dim, hour, value, delta) in parsed {
            let n = self
                .0
                .entry((dim, hour))
                .or_default()
                .entry(value)
                .or_default();
            *n = n.saturating_add(delta);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sorted(r: Rollups) -> Vec<(i64, i64, String, i64)> {
        let mut v: Vec<_> = r.into_changes().collect();
        v.sort();
        v
    }

    #[test]
    fn deltas_survive_encoding_and_sum_up() {
        let mut a = Rollups::default();
        a.add(Dimension::SourceIp, 493_000, "203.0.113.9", 3);
        a.add(Dimension::SourceIp, -2, "", -7);
        a.add(Dimension::Username, 493_001, "röot\u{0}", i64::MIN + 1);
        a.add(Dimension::Honeypot, 493_000, "cowrie", 0);
        let bytes = a.encode();
        let mut b = Rollups::default();
        b.absorb(&bytes).unwrap();
        assert_eq!(
            sorted(b),
            vec![
                (4, -2, String::new(), -7),
                (4, 493_000, "203.0.113.9".into(), 3),
                (9, 493_001, "röot\u{0}".into(), i64::MIN + 1),
            ]
        );
        let mut twice = Rollups::default();
        twice.absorb(&bytes).unwrap();
        twice.absorb(&bytes).unwrap();
        let twice = sorted(twice);
        assert!(twice.contains(&(4, 493_000, "203.0.113.9".into(), 6)));
        // A corrupt log cannot overflow a sum.
        assert!(twice.contains(&(9, 493_001, "röot\u{0}".into(), i64::MIN)));
        assert!(Rollups::default().is_empty());
        assert_eq!(Rollups::default().encode(), vec![DELTAS_V1]);
    }

    #[test]
    fn malformed_deltas_are_refused_whole() {
        let mut a = Rollups::default();
        a.add(Dimension::SourceIp, 7, "198.51.100.1", 1);
        a.add(Dimension::Password, 7, "hunter2", 1);
        let bytes = a.encode();
        for cut in 0..bytes.len() {
            let mut r = Rollups::default();
            if cut == 0 {
                assert!(r.absorb(&bytes[..cut]).is_err());
            } else if r.absorb(&bytes[..cut]).is_ok() {
                // Only a cut at a group boundary parses; it must hold whole groups.
                assert!(sorted(r).len() < 2, "cut {cut}");
            } else {
                assert!(r.is_empty(), "cut {cut} added something");
            }
        }
        assert!(Rollups::default().absorb(&[9]).is_err());
        assert!(Rollups::default()
            .absorb(&[DELTAS_V1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff])
            .is_err());
    }
}
