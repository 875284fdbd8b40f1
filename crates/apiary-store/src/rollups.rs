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
