//! Snort: the legacy hpfeeds channel `snort.alerts` and Snort 3 `alert_json` lines on
//! `snort.alert_json`.
//!
//! Both map to a session with an [`IdsAlert`]. `protocol` is the service of the destination
//! port (or Snort 3's `service`), falling back to the lower-cased transport (`icmp`); the
//! transport itself goes to `extra.transport`. Snort prints sensor-local time without a zone;
//! it is taken as UTC (and clamped when in the future).

use super::fields::{self as f, Obj};
use super::{NormalizeError, Result};
use apiary_model::bounded::{MEDIUM, SHORT};
use apiary_model::{IdsAlert, Normalized, RawEvent, Session};
use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveTime, Utc};
use serde_json::Value;

/// `(gid, sid, rev)` from `"gid:sid:rev"`; unparseable parts are `None`.
pub(super) fn parse_rule(s: &str) -> (Option<u64>, Option<u64>, Option<u64>) {
    let mut it = s.trim().split(':').map(|p| p.trim().parse::<u64>().ok());
    (
        it.next().flatten(),
        it.next().flatten(),
        it.next().flatten(),
    )
}

/// Application protocol of an IDS event: an explicit service label, else the destination
/// port's, else the transport.
pub(super) fn ids_protocol(
    service: Option<&str>,
    port: Option<u16>,
    proto: Option<&str>,
) -> Option<String> {
    service
        .filter(|s| {
            !matches!(
                s.trim().to_ascii_lowercase().as_str(),
                "" | "unknown" | "failed"
            )
        })
        .and_then(f::proto_label)
        .or_else(|| port.and_then(f::port_service).map(str::to_string))
        .or_else(|| proto.and_then(f::proto_label))
}

/// Common end of both IDS readers: protocol, transport, push.
pub(super) fn finish_ids(
    out: &mut Vec<Normalized>,
    mut s: Session,
    service: Option<&str>,
    proto: Option<String>,
) {
    s.protocol = ids_protocol(service, s.destination_port, proto.as_deref());
    if let Some(p) = proto.as_deref().and_then(f::proto_label) {
        let mut extra = match s.details.extra.take() {
            Some(Value::Object(m)) => m,
            _ => serde_json::Map::new(),
        };
        extra.insert("transport".into(), Value::String(p));
        s.details.extra = Some(Value::Object(extra));
    }
    f::push_session(out, s);
}

/// Legacy `snort.alerts` (threatstream `spo_hpfeeds` / snort_hpfeeds):
/// `{sensor, timestamp|date, header: "gid:sid:rev", classification, priority, signature,
///   proto, source_ip, source_port, destination_ip, destination_port, ...}`.
///
/// Fix against mnemosyne: `protocol` is an application protocol (mnemosyne stored the
/// transport, `TCP`), and the alert's `timestamp` is used instead of receipt time.
pub fn alerts(raw: &RawEvent, out: &mut Vec<Normalized>) -> Result<()> {
    let o = f::json_object(raw)?;
    let time_key = if f::get(&o, "timestamp").is_some() {
        "timestamp"
    } else {
        "date"
    };
    let ts = f::time_field(&o, time_key, raw.received_at)?;
    let mut s = f::new_session(raw, "snort", ts);
    s.source_ip = Some(f::source_ip(&o, "source_ip")?);
    s.source_port = f::port(&o, "source_port")?;
    s.destination_ip = f::ip(&o, "destination_ip")?;
    s.destination_port = f::port(&o, "destination_port")?;
    let (gid, sid, rev) = f::text(&o, "header", SHORT)?
        .map(|h| parse_rule(&h))
        .unwrap_or_default();
    s.details.ids = Some(IdsAlert {
        signature: f::text(&o, "signature", MEDIUM)?.unwrap_or_default(),
        signature_id: sid,
        generator_id: gid,
        revision: rev,
        classification: f::text_nonempty(&o, "classification", SHORT)?,
        priority: f::int(&o, "priority")?,
        action: None,
    });
    let proto = f::text(&o, "proto", 16)?;
    finish_ids(out, s, None, proto);
    Ok(())
}

/// Snort 3 `alert_json` time: `MM/DD-HH:MM:SS.ffffff`, or `YY/MM/DD-...` with `-y`. Without
/// a year, the receipt year is used, or the year before when that would put the alert more
/// than a day after receipt (an alert from Dec 31 received on Jan 1).
pub(super) fn snort_time(s: &str, received: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let (date, time) = s.trim().split_once('-')?;
    let time = NaiveTime::parse_from_str(time, "%H:%M:%S%.f").ok()?;
    let parts: Vec<&str> = date.split('/').collect();
    let num = |i: usize| parts.get(i).and_then(|p| p.parse::<u32>().ok());
    let (year, month, day) = match parts.len() {
        2 => (None, num(0)?, num(1)?),
        3 => {
            let y = i32::try_from(num(0)?).ok()?;
            (Some(if y < 100 { 2000 + y } else { y }), num(1)?, num(2)?)
        }
        _ => return None,
    };
    let at = |y: i32| NaiveDate::from_ymd_opt(y, month, day).map(|d| d.and_time(time).and_utc());
    match year {
        Some(y) => at(y),
        None => {
            let this = at(received.year());
            match this {
                Some(t) if t <= received + Duration::days(1) => Some(t),
                _ => at(received.year() - 1),
            }
        }
    }
}

/// Address and port from `*_addr`/`*_port`, else from `*_ap` (`"ip:port"`).
fn ap(
    o: &Obj,
    addr: &'static str,
    port: &'static str,
    ap: &'static str,
) -> Result<(Option<std::net::IpAddr>, Option<u16>)> {
    let (mut ip, mut p) = (f::ip(o, addr)?, f::port(o, port)?);
    if ip.is_none() || p.is_none() {
        if let Some(text) = f::str_field(o, ap)? {
            let (aip, aport) = f::split_addr_port(text);
            ip = ip.or(aip);
            p = p.or(aport);
        }
    }
    Ok((ip, p))
}

/// One Snort 3 `alert_json` object: `{timestamp, src_ap, dst_ap, rule: "gid:sid:rev", msg,
/// class, priority, proto, action, service, src_addr, src_port, gid, sid, rev, ...}` (any
/// subset, depending on the configured `fields`). A source address is required.
pub fn alert_json(raw: &RawEvent, out: &mut Vec<Normalized>) -> Result<()> {
    let o = f::json_object(raw)?;
    let sensor_ts = match f::str_field(&o, "timestamp")? {
        Some(t) => snort_time(t, raw.received_at),
        None => f::int(&o, "seconds")?.and_then(|s| DateTime::from_timestamp(s, 0)),
    };
    let mut s = f::new_session(raw, "snort", f::event_time(sensor_ts, raw.received_at));
    let (src, sport) = ap(&o, "src_addr", "src_port", "src_ap")?;
    s.source_ip = Some(src.ok_or(NormalizeError::MissingField("src_ap"))?);
    s.source_port = sport;
    (s.destination_ip, s.destination_port) = ap(&o, "dst_addr", "dst_port", "dst_ap")?;
    let (mut gid, mut sid, mut rev) = f::text(&o, "rule", SHORT)?
        .map(|h| parse_rule(&h))
        .unwrap_or_default();
    gid = gid.or(f::uint(&o, "gid")?);
    sid = sid.or(f::uint(&o, "sid")?);
    rev = rev.or(f::uint(&o, "rev")?);
    s.details.ids = Some(IdsAlert {
        signature: f::text(&o, "msg", MEDIUM)?.unwrap_or_default(),
        signature_id: sid,
        generator_id: gid,
        revision: rev,
        classification: f::text_nonempty(&o, "class", SHORT)?,
        priority: f::int(&o, "priority")?,
        action: f::text_nonempty(&o, "action", SHORT)?,
    });
    let service = f::text(&o, "service", SHORT)?;
    let proto = f::text(&o, "proto", 16)?;
    finish_ids(out, s, service.as_deref(), proto);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::super::NormalizeError;
    use super::*;
    use apiary_model::SessionDetails;
    use serde_json::json;

    #[test]
    fn legacy_alert() {
        let s = one_session(
            "snort.alerts",
            r#"{"sensor": "f3a1c2d4-935b-11e9-8d4e-0242ac110002", "timestamp": "2019/06/20 12:00:00.123456",
 "header": "1:2402000:5213", "classification": 3, "priority": 2,
 "signature": "ET DROP Dshield Block Listed Source group 1", "proto": "TCP",
 "source_port": 51234, "destination_port": 22, "source_ip": "198.51.100.7", "destination_ip": "10.0.0.5",
 "ttl": 49, "tcpflags": "******S*"}"#,
        );
        assert_eq!(
            s,
            Session {
                timestamp: ts("2019-06-20T12:00:00.123456Z"),
                source_ip: ip("198.51.100.7"),
                source_port: Some(51234),
                destination_ip: ip("10.0.0.5"),
                destination_port: Some(22),
                protocol: Some("ssh".into()),
                honeypot: "snort".into(),
                channel: "snort.alerts".into(),
                details: SessionDetails {
                    ids: Some(IdsAlert {
                        signature: "ET DROP Dshield Block Listed Source group 1".into(),
                        signature_id: Some(2402000),
                        generator_id: Some(1),
                        revision: Some(5213),
                        classification: Some("3".into()),
                        priority: Some(2),
                        action: None,
                    }),
                    extra: Some(json!({"transport": "tcp"})),
                    ..Default::default()
                },
                ..Default::default()
            }
        );
    }

    #[test]
    fn legacy_icmp() {
        let s = one_session(
            "snort.alerts",
            r#"{"header": "junk", "signature": "<script>ping</script>", "proto": "ICMP", "source_ip": "2001:db8::9", "destination_ip": "2001:db8::1", "priority": "3"}"#,
        );
        assert_eq!(s.protocol.as_deref(), Some("icmp"));
        let ids = s.details.ids.unwrap();
        assert_eq!(ids.signature, "<script>ping</script>");
        assert_eq!(ids.signature_id, None);
        assert_eq!(ids.priority, Some(3));
    }

    #[test]
    fn alert_json_line() {
        let s = one_session(
            "snort.alert_json",
            r#"{ "timestamp" : "04/30-23:59:58.763616", "pkt_num" : 42, "proto" : "TCP", "pkt_gen" : "raw", "pkt_len" : 60, "dir" : "C2S", "src_ap" : "198.51.100.7:51234", "dst_ap" : "203.0.113.5:80", "rule" : "1:1000001:2", "action" : "allow", "msg" : "WEB probe", "class" : "Attempted Information Leak", "priority" : 2, "service" : "http" }"#,
        );
        assert_eq!(
            s,
            Session {
                timestamp: ts("2024-04-30T23:59:58.763616Z"),
                source_ip: ip("198.51.100.7"),
                source_port: Some(51234),
                destination_ip: ip("203.0.113.5"),
                destination_port: Some(80),
                protocol: Some("http".into()),
                honeypot: "snort".into(),
                channel: "snort.alert_json".into(),
                details: SessionDetails {
                    ids: Some(IdsAlert {
                        signature: "WEB probe".into(),
                        signature_id: Some(1000001),
                        generator_id: Some(1),
                        revision: Some(2),
                        classification: Some("Attempted Information Leak".into()),
                        priority: Some(2),
                        action: Some("allow".into()),
                    }),
                    extra: Some(json!({"transport": "tcp"})),
                    ..Default::default()
                },
                ..Default::default()
            }
        );
    }

    #[test]
    fn alert_json_years_and_ipv6() {
        let rx = received(); // 2024-05-01T12:00:00Z
        assert_eq!(
            snort_time("12/31-23:00:00.5", rx),
            Some(ts("2023-12-31T23:00:00.5Z"))
        );
        assert_eq!(
            snort_time("24/05/01-11:00:00.000001", rx),
            Some(ts("2024-05-01T11:00:00.000001Z"))
        );
        assert_eq!(snort_time("02/30-00:00:00", rx), None);
        assert_eq!(snort_time("garbage", rx), None);
        let s = one_session(
            "snort.alert_json",
            r#"{"timestamp": "13/45-99:00:00", "src_ap": "2001:db8::7:4444", "dst_ap": "2001:db8::1:0", "proto": "UDP", "rule": "1:2:3", "msg": "x"}"#,
        );
        assert_eq!(s.timestamp, rx);
        assert_eq!(s.source_ip, ip("2001:db8::7"));
        assert_eq!(s.source_port, Some(4444));
        assert_eq!(s.destination_ip, ip("2001:db8::1"));
        assert_eq!(s.destination_port, None);
        assert_eq!(s.protocol.as_deref(), Some("udp"));
        assert_eq!(
            fail("snort.alert_json", r#"{"msg": "x"}"#),
            NormalizeError::MissingField("src_ap")
        );
        assert!(matches!(
            fail("snort.alert_json", r#"{"src_ap": 5}"#),
            NormalizeError::BadField {
                field: "src_ap",
                ..
            }
        ));
    }
}
