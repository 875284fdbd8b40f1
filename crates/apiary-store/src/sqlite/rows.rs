//! Row adapters: stored columns back into model values. Private to the backend.

use std::net::IpAddr;

use apiary_model::{GeoInfo, Session};
use rusqlite::Row;

use super::conv::json_err;
use crate::hours::from_us;
use crate::types::Cursor;
use crate::Result;

/// Columns of [`SessionRow::read`], in order, from `sessions` (not aliased). Since
/// migration 0012 `destination_geo` holds a `geo_places` id (as text: the column has TEXT
/// affinity); older rows hold the JSON object itself.
pub(super) const SESSION_COLS: &str = "id, ts, source_ip, source_port, destination_ip, \
    destination_port, protocol, honeypot, channel, sensor, internal, country_code, country, \
    city, latitude, longitude, asn, as_org, \
    CASE WHEN substr(destination_geo, 1, 1) = '{' THEN destination_geo ELSE \
        (SELECT geo FROM geo_places WHERE id = CAST(sessions.destination_geo AS INTEGER)) END, \
    raw_id, details";

/// A sessions row as stored; JSON and addresses are parsed in [`SessionRow::into_session`].
pub(super) struct SessionRow {
    id: i64,
    ts: i64,
    source_ip: Option<String>,
    source_port: Option<u16>,
    destination_ip: Option<String>,
    destination_port: Option<u16>,
    protocol: Option<String>,
    honeypot: String,
    channel: String,
    sensor: String,
    internal: bool,
    geo: GeoInfo,
    destination_geo: Option<String>,
    raw_id: Option<i64>,
    details: String,
}

impl SessionRow {
    pub(super) fn read(r: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            id: r.get(0)?,
            ts: r.get(1)?,
            source_ip: r.get(2)?,
            source_port: r.get(3)?,
            destination_ip: r.get(4)?,
            destination_port: r.get(5)?,
            protocol: r.get(6)?,
            honeypot: r.get(7)?,
            channel: r.get(8)?,
            sensor: r.get(9)?,
            internal: r.get(10)?,
            geo: GeoInfo {
                country_code: r.get(11)?,
                country: r.get(12)?,
                city: r.get(13)?,
                latitude: r.get(14)?,
                longitude: r.get(15)?,
                asn: r.get(16)?,
                as_org: r.get(17)?,
            },
            destination_geo: r.get(18)?,
            raw_id: r.get(19)?,
            details: r.get(20)?,
        })
    }

    /// Keyset position of this row.
    pub(super) fn cursor(&self) -> Cursor {
        Cursor::encode(self.ts, self.id)
    }

    pub(super) fn into_session(self) -> Result<Session> {
        let ip = |s: Option<String>| s.and_then(|s| s.parse::<IpAddr>().ok());
        // A session stored with an all-empty GeoInfo reads back as `None`: same meaning.
        let source_geo = (self.geo != GeoInfo::default()).then_some(self.geo);
        Ok(Session {
            id: Some(self.id),
            timestamp: from_us(self.ts),
            source_ip: ip(self.source_ip),
            source_port: self.source_port,
            destination_ip: ip(self.destination_ip),
            destination_port: self.destination_port,
            protocol: self.protocol,
            honeypot: self.honeypot,
            channel: self.channel,
            sensor: self.sensor,
            internal: self.internal,
            source_geo,
            destination_geo: self
                .destination_geo
                .map(|g| serde_json::from_str(&g))
                .transpose()
                .map_err(json_err)?,
            raw_id: self.raw_id,
            details: serde_json::from_str(&self.details).map_err(json_err)?,
        })
    }
}
