//! Live events: the compact, geo-enriched form of a committed session that the live map and
//! the `/api/live` Server-Sent Events stream carry.
//!
//! The sensor's map position is resolved in this order, and an event is never dropped for
//! lack of one: the sensor record's configured location, else the server's own location
//! (`[map] server_latitude/server_longitude`), else the geolocation of the destination
//! address, else none (`sensor_location` is `null`; the map still logs the event and draws
//! its attacker).

use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::event::{GeoInfo, Session};

/// Longest summary, in bytes.
pub const SUMMARY_MAX: usize = 120;

/// A point on the map.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LatLon {
    /// Latitude in degrees.
    pub lat: f64,
    /// Longitude in degrees.
    pub lon: f64,
}

/// Where a sensor's map position came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LocationSource {
    /// The sensor record's configured latitude/longitude.
    Sensor,
    /// The server's configured location.
    Server,
    /// Geolocation of the destination address.
    Destination,
    /// Unknown.
    None,
}

/// Geolocation of the attacker, flattened.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LiveGeo {
    /// ISO alpha-2 country code.
    pub country_code: Option<String>,
    /// Country name.
    pub country: Option<String>,
    /// City.
    pub city: Option<String>,
    /// Latitude.
    pub lat: Option<f64>,
    /// Longitude.
    pub lon: Option<f64>,
    /// AS number.
    pub asn: Option<u32>,
    /// AS organisation.
    pub as_org: Option<String>,
}

impl From<&GeoInfo> for LiveGeo {
    fn from(g: &GeoInfo) -> Self {
        Self {
            country_code: g.country_code.clone(),
            country: g.country.clone(),
            city: g.city.clone(),
            lat: g.latitude,
            lon: g.longitude,
            asn: g.asn,
            as_org: g.as_org.clone(),
        }
    }
}

/// One committed session as the live map sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LiveEvent {
    /// Event time.
    pub time: DateTime<Utc>,
    /// Session store id, when known (history); live events carry `raw_id`.
    pub session_id: Option<i64>,
    /// Store id of the raw message (exists: events are published after commit).
    pub raw_id: Option<i64>,
    /// Attacker address.
    pub source_ip: Option<String>,
    /// Attacker geolocation.
    pub source: LiveGeo,
    /// Sensor ident.
    pub sensor: String,
    /// Sensor map position.
    pub sensor_location: Option<LatLon>,
    /// Where `sensor_location` came from.
    pub location_source: LocationSource,
    /// Destination city/country when the destination address geolocates.
    pub destination: Option<LiveGeo>,
    /// Honeypot software.
    pub honeypot: String,
    /// hpfeeds channel.
    pub channel: String,
    /// Port attacked.
    pub destination_port: Option<u16>,
    /// Protocol.
    pub protocol: Option<String>,
    /// Short human summary, at most [`SUMMARY_MAX`] bytes.
    pub summary: String,
}

fn has_point(g: &GeoInfo) -> Option<LatLon> {
    match (g.latitude, g.longitude) {
        (Some(lat), Some(lon)) if lat.is_finite() && lon.is_finite() => Some(LatLon { lat, lon }),
        _ => None,
    }
}

impl LiveEvent {
    /// Builds the live form of a session. `sensor_location` is the sensor record's
    /// configured position, `server_location` the server's own.
    pub fn from_session(
        s: &Session,
        raw_id: Option<i64>,
        sensor_location: Option<LatLon>,
        server_location: Option<LatLon>,
    ) -> Self {
        let dest_point = s.destination_geo.as_ref().and_then(has_point);
        let (loc, src) = match (sensor_location, server_location, dest_point) {
            (Some(p), _, _) => (Some(p), LocationSource::Sensor),
            (None, Some(p), _) => (Some(p), LocationSource::Server),
            (None, None, Some(p)) => (Some(p), LocationSource::Destination),
            (None, None, None) => (None, LocationSource::None),
        };
        Self {
            time: s.timestamp,
            session_id: s.id,
            raw_id: raw_id.or(s.raw_id),
            source_ip: s.source_ip.map(|ip| ip.to_string()),
            source: s.source_geo.as_ref().map(LiveGeo::from).unwrap_or_default(),
            sensor: s.sensor.clone(),
            sensor_location: loc,
            location_source: src,
            destination: s.destination_geo.as_ref().map(LiveGeo::from),
            honeypot: s.honeypot.clone(),
            channel: s.channel.clone(),
            destination_port: s.destination_port,
            protocol: s.protocol.clone(),
            summary: summary(s),
        }
    }
}

/// Most events in one [`LiveChunk`]: bounds the memory a lagging client pins and the
/// events it loses at once.
pub const CHUNK_EVENTS: usize = 64;

/// Consecutive live events on their way from ingest to the SSE clients. Each event is
/// serialized once, as a complete Server-Sent Events frame, and every client writes the
/// same bytes (`Bytes` clones share the buffer).
#[derive(Debug)]
pub struct LiveChunk {
    /// Sequence number of the first event; events are numbered without gaps, so a client
    /// that skipped chunks knows exactly how many events it lost.
    pub first_seq: u64,
    /// The events (for filtering).
    pub events: Vec<LiveEvent>,
    /// `event: attack\ndata: <json>\n\n` for each event, back to back.
    pub sse: Bytes,
    /// End offset in `sse` of each event's frame.
    ends: Vec<usize>,
}

impl LiveChunk {
    /// Serializes `events` (numbered from `first_seq`). Events that cannot be serialized
    /// (none can: no maps with non-string keys) are sent as an empty frame-less slot.
    pub fn new(first_seq: u64, events: Vec<LiveEvent>) -> Self {
        let mut buf = Vec::with_capacity(events.len() * 512);
        let mut ends = Vec::with_capacity(events.len());
        for ev in &events {
            let start = buf.len();
            buf.extend_from_slice(b"event: attack\ndata: ");
            // serde_json escapes control characters, so the JSON is a single line.
            if serde_json::to_writer(&mut buf, ev).is_ok() {
                buf.extend_from_slice(b"\n\n");
            } else {
                buf.truncate(start);
            }
            ends.push(buf.len());
        }
        Self {
            first_seq,
            events,
            sse: Bytes::from(buf),
            ends,
        }
    }

    /// Number of events.
    pub fn len(&self) -> usize {
        self.events.len()
    }

    /// Whether there are no events.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// Sequence number after the last event.
    pub fn end_seq(&self) -> u64 {
        self.first_seq + self.events.len() as u64
    }

    /// The SSE frame of event `i` (shares the chunk's buffer).
    pub fn frame(&self, i: usize) -> Bytes {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        self.sse.slice(start..self.ends[i])
    }
}

/// "ssh login root/123456", "http GET /x", "ids: ET SCAN ...", "smb 445", bounded.
pub fn summary(s: &Session) -> String {
    let d = &s.details;
    let proto = s
        .protocol
        .clone()
        .unwrap_or_else(|| s.honeypot.clone())
        .to_ascii_lowercase();
    let text = if let Some(ids) = &d.ids {
        format!("ids: {}", ids.signature)
    } else if let Some(c) = d.credentials.last() {
        let verb = if d.logged_in == Some(true) {
            "login"
        } else {
            "attempt"
        };
        format!("{proto} {verb} {}/{}", c.username, c.password)
    } else if let Some(h) = &d.http {
        format!(
            "{proto} {} {}",
            h.method.as_deref().unwrap_or("?"),
            h.path.as_deref().unwrap_or("/")
        )
    } else if let Some(u) = d.urls.first() {
        format!("{proto} download {u}")
    } else if let Some(c) = d.commands.first() {
        format!("{proto} cmd {c}")
    } else {
        match s.destination_port {
            Some(p) => format!("{proto} connection to port {p}"),
            None => format!("{proto} event"),
        }
    };
    bounded_summary(text)
}

fn bounded_summary(s: String) -> String {
    // Control characters would break a log line; replace them.
    let s: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if s.len() <= SUMMARY_MAX {
        return s;
    }
    let mut end = SUMMARY_MAX - 3;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &s[..end])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Credential;

    fn session() -> Session {
        Session {
            id: None,
            timestamp: Utc::now(),
            source_ip: Some("198.51.100.7".parse().unwrap()),
            source_port: Some(5000),
            destination_ip: Some("10.0.0.5".parse().unwrap()),
            destination_port: Some(22),
            protocol: Some("ssh".into()),
            honeypot: "cowrie".into(),
            channel: "cowrie.sessions".into(),
            sensor: "s1".into(),
            internal: false,
            source_geo: None,
            destination_geo: None,
            raw_id: None,
            details: Default::default(),
        }
    }

    #[test]
    fn location_order_and_never_dropped() {
        let mut s = session();
        let a = LatLon { lat: 1.0, lon: 2.0 };
        let b = LatLon { lat: 3.0, lon: 4.0 };
        let e = LiveEvent::from_session(&s, Some(7), Some(a), Some(b));
        assert_eq!(
            (e.sensor_location, e.location_source),
            (Some(a), LocationSource::Sensor)
        );
        let e = LiveEvent::from_session(&s, Some(7), None, Some(b));
        assert_eq!(
            (e.sensor_location, e.location_source),
            (Some(b), LocationSource::Server)
        );
        let e = LiveEvent::from_session(&s, Some(7), None, None);
        assert_eq!(
            (e.sensor_location, e.location_source),
            (None, LocationSource::None)
        );
        s.destination_geo = Some(GeoInfo {
            latitude: Some(5.0),
            longitude: Some(6.0),
            ..Default::default()
        });
        let e = LiveEvent::from_session(&s, Some(7), None, None);
        assert_eq!(e.location_source, LocationSource::Destination);
        assert_eq!(e.raw_id, Some(7));
    }

    #[test]
    fn chunk_frames_are_single_sse_events() {
        let mut s = session();
        s.details.commands.push("echo 'a\nb'\r\n".into());
        let a = LiveEvent::from_session(&s, Some(1), None, None);
        let mut b = a.clone();
        b.raw_id = Some(2);
        let c = LiveChunk::new(10, vec![a.clone(), b]);
        assert_eq!((c.len(), c.end_seq()), (2, 12));
        let mut joined = Vec::new();
        for i in 0..c.len() {
            let f = c.frame(i);
            let text = std::str::from_utf8(&f).unwrap();
            let json = text
                .strip_prefix("event: attack\ndata: ")
                .and_then(|t| t.strip_suffix("\n\n"))
                .expect("one SSE frame");
            assert!(!json.contains('\n') && !json.contains('\r'));
            let back: LiveEvent = serde_json::from_str(json).unwrap();
            assert_eq!(back.raw_id, Some(i as i64 + 1));
            joined.extend_from_slice(&f);
        }
        assert_eq!(&joined[..], &c.sse[..]);
        assert_eq!(LiveEvent::from_session(&s, Some(1), None, None), a);
    }

    #[test]
    fn summary_is_bounded_and_clean() {
        let mut s = session();
        s.details.logged_in = Some(true);
        s.details.credentials.push(Credential {
            username: "root".into(),
            password: "123456".into(),
        });
        assert_eq!(summary(&s), "ssh login root/123456");
        s.details.credentials[0].password = "é\n".repeat(200);
        let t = summary(&s);
        assert!(t.len() <= SUMMARY_MAX && t.ends_with("...") && !t.contains('\n'));
        s.details.credentials.clear();
        assert_eq!(summary(&s), "ssh connection to port 22");
    }
}
