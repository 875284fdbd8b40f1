//! Suricata: the legacy hpfeeds channel `suricata.events` and EVE JSON lines on
//! `suricata.eve`. Protocol and transport follow the Snort rules (see [`super::snort`]).

use super::fields::{self as f};
use super::snort::finish_ids;
use super::Result;
use apiary_model::bounded::{LONG, MEDIUM, SHORT};
use apiary_model::{HttpRequest, IdsAlert, Normalized, RawEvent};
use serde_json::Value;

/// Legacy `suricata.events` (threatstream `alert-hpfeeds`): `{sensor, timestamp
/// ("YYYY/MM/DD HH:MM:SS.f", sensor-local, taken as UTC), source_ip, destination_ip, proto,
/// source_port, destination_port, action, signature_id, signature_rev, signature, ...}`
/// → a session with an IDS alert.
///
/// Fix against mnemosyne: `protocol` is an application protocol, not the transport, and the
/// alert's own timestamp is used.
pub fn events(raw: &RawEvent, out: &mut Vec<Normalized>) -> Result<()> {
    let o = f::json_object(raw)?;
    let ts = f::time_field(&o, "timestamp", raw.received_at)?;
    let mut s = f::new_session(raw, "suricata", ts);
    s.source_ip = Some(f::source_ip(&o, "source_ip")?);
    s.source_port = f::port(&o, "source_port")?;
    s.destination_ip = f::ip(&o, "destination_ip")?;
    s.destination_port = f::port(&o, "destination_port")?;
    s.details.ids = Some(IdsAlert {
        signature: f::text(&o, "signature", MEDIUM)?.unwrap_or_default(),
        signature_id: f::uint(&o, "signature_id")?,
        generator_id: None,
        revision: f::uint(&o, "signature_rev")?,
        classification: None,
        priority: None,
        action: f::text_nonempty(&o, "action", SHORT)?,
    });
    let proto = f::text(&o, "proto", 16)?;
    finish_ids(out, s, None, proto);
    Ok(())
}

/// One EVE JSON line. Common fields `timestamp` (`2017-04-07T22:24:37.251547+0100`),
/// `event_type`, `src_ip`, `src_port`, `dest_ip`, `dest_port`, `proto`, `app_proto`,
/// `flow_id`.
///
/// - `alert` → a session with an IDS alert (`alert.{action, gid, signature_id, rev,
///   signature, category, severity}`; category → classification, severity → priority), the
///   `http` sub-object as the HTTP request when present, `flow_id` in `extra`;
/// - `anomaly` → a session with the bounded `anomaly` object in `extra` (malformed traffic
///   aimed at the sensor is worth seeing);
/// - every other type (`flow`, `netflow`, `dns`, `http`, `tls`, `fileinfo`, `stats`...) →
///   nothing. Flow records would duplicate every honeypot's own sessions and alerts many
///   times over; they stay in the raw store.
///
/// `protocol` is `app_proto` unless Suricata could not tell (`failed`), then the port table,
/// then the transport.
pub fn eve(raw: &RawEvent, out: &mut Vec<Normalized>) -> Result<()> {
    let o = f::json_object(raw)?;
    let event_type =
        f::str_field(&o, "event_type")?.ok_or(super::NormalizeError::MissingField("event_type"))?;
    if !matches!(event_type, "alert" | "anomaly") {
        return Ok(());
    }
    let ts = f::time_field(&o, "timestamp", raw.received_at)?;
    let mut s = f::new_session(raw, "suricata", ts);
    s.source_ip = Some(f::source_ip(&o, "src_ip")?);
    s.source_port = f::port(&o, "src_port")?;
    s.destination_ip = f::ip(&o, "dest_ip")?;
    s.destination_port = f::port(&o, "dest_port")?;
    let flow_id = f::uint(&o, "flow_id")?.map(Value::from);
    if event_type == "alert" {
        let a = f::obj_field(&o, "alert")?.ok_or(super::NormalizeError::MissingField("alert"))?;
        s.details.ids = Some(IdsAlert {
            signature: f::text(a, "signature", MEDIUM)?.unwrap_or_default(),
            signature_id: f::uint(a, "signature_id")?,
            generator_id: f::uint(a, "gid")?,
            revision: f::uint(a, "rev")?,
            classification: f::text_nonempty(a, "category", SHORT)?,
            priority: f::int(a, "severity")?,
            action: f::text_nonempty(a, "action", SHORT)?,
        });
        if let Some(h) = f::obj_field(&o, "http")? {
            let mut http = HttpRequest {
                method: f::text(h, "http_method", SHORT)?,
                path: f::text(h, "url", MEDIUM)?,
                host: f::text(h, "hostname", MEDIUM)?,
                user_agent: f::text(h, "http_user_agent", MEDIUM)?,
                ..Default::default()
            };
            if let Some(body) = f::text_nonempty(h, "http_request_body_printable", LONG)? {
                http.body = Some(body);
            }
            s.details.http = Some(http);
        }
        s.details.extra = f::extra(vec![("flow_id", flow_id)]);
    } else {
        s.details.extra = f::extra(vec![
            ("flow_id", flow_id),
            ("anomaly", f::get(&o, "anomaly").map(f::bounded_json)),
        ]);
    }
    let app = f::text(&o, "app_proto", SHORT)?;
    let proto = f::text(&o, "proto", 16)?;
    finish_ids(out, s, app.as_deref(), proto);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::super::NormalizeError;
    use apiary_model::{IdsAlert, Session, SessionDetails};
    use serde_json::json;

    #[test]
    fn legacy_event() {
        let s = one_session(
            "suricata.events",
            r#"{"sensor": "9b2e", "timestamp": "2019/06/20 12:00:00.123456", "source_ip": "198.51.100.7",
 "destination_ip": "10.0.0.6", "ip_tos": 0, "ip_ttl": 50, "ip_id": 4321, "proto": "TCP",
 "tcp_len": 40, "source_port": 51234, "destination_port": 23, "tcp_flags": "******S*",
 "action": "allowed", "signature_id": 2402000, "signature_rev": 5213,
 "signature": "ET DROP Dshield Block Listed Source group 1"}"#,
        );
        assert_eq!(
            s,
            Session {
                timestamp: ts("2019-06-20T12:00:00.123456Z"),
                source_ip: ip("198.51.100.7"),
                source_port: Some(51234),
                destination_ip: ip("10.0.0.6"),
                destination_port: Some(23),
                protocol: Some("telnet".into()),
                honeypot: "suricata".into(),
                channel: "suricata.events".into(),
                details: SessionDetails {
                    ids: Some(IdsAlert {
                        signature: "ET DROP Dshield Block Listed Source group 1".into(),
                        signature_id: Some(2402000),
                        generator_id: None,
                        revision: Some(5213),
                        classification: None,
                        priority: None,
                        action: Some("allowed".into()),
                    }),
                    extra: Some(json!({"transport": "tcp"})),
                    ..Default::default()
                },
                ..Default::default()
            }
        );
    }

    #[test]
    fn eve_alert() {
        let s = one_session(
            "suricata.eve",
            r#"{"timestamp":"2017-04-07T22:24:37.251547+0100","flow_id":586497171462735,"pcap_cnt":53381,
   "event_type":"alert","src_ip":"192.168.2.14","src_port":50096,"dest_ip":"209.53.113.5",
   "dest_port":80,"proto":"TCP","metadata":{"flowbits":["http.dottedquadhost"]},"tx_id":4,
   "alert":{"action":"allowed","gid":1,"signature_id":2018358,"rev":10,
   "signature":"ET HUNTING GENERIC SUSPICIOUS POST to Dotted Quad with Fake Browser 1",
   "category":"Potentially Bad Traffic","severity":2},"app_proto":"http"}"#,
        );
        assert_eq!(
            s,
            Session {
                timestamp: ts("2017-04-07T21:24:37.251547Z"),
                source_ip: ip("192.168.2.14"),
                source_port: Some(50096),
                destination_ip: ip("209.53.113.5"),
                destination_port: Some(80),
                protocol: Some("http".into()),
                honeypot: "suricata".into(),
                channel: "suricata.eve".into(),
                internal: true,
                details: SessionDetails {
                    ids: Some(IdsAlert {
                        signature:
                            "ET HUNTING GENERIC SUSPICIOUS POST to Dotted Quad with Fake Browser 1"
                                .into(),
                        signature_id: Some(2018358),
                        generator_id: Some(1),
                        revision: Some(10),
                        classification: Some("Potentially Bad Traffic".into()),
                        priority: Some(2),
                        action: Some("allowed".into()),
                    }),
                    extra: Some(json!({"flow_id": 586497171462735u64, "transport": "tcp"})),
                    ..Default::default()
                },
                ..Default::default()
            }
        );
    }

    #[test]
    fn eve_anomaly_and_others() {
        let s = one_session(
            "suricata.eve",
            r#"{"timestamp":"2024-05-01T11:00:00.000000+0000","event_type":"anomaly","src_ip":"::ffff:198.51.100.7","src_port":1,"dest_ip":"203.0.113.5","dest_port":443,"proto":"TCP","app_proto":"failed","anomaly":{"type":"stream","event":"stream.pkt_invalid_timestamp"}}"#,
        );
        assert_eq!(s.protocol.as_deref(), Some("https"));
        assert_eq!(s.source_ip, ip("198.51.100.7"));
        assert_eq!(
            s.details.extra,
            Some(
                json!({"anomaly": {"type":"stream","event":"stream.pkt_invalid_timestamp"}, "transport": "tcp"})
            )
        );
        assert_eq!(s.details.ids, None);
        for t in ["flow", "stats", "dns", "netflow"] {
            assert!(run("suricata.eve", json!({"event_type": t}).to_string()).is_empty());
        }
        assert_eq!(
            fail(
                "suricata.eve",
                r#"{"event_type":"alert","src_ip":"1.2.3.4"}"#
            ),
            NormalizeError::MissingField("alert")
        );
        assert!(matches!(
            fail(
                "suricata.eve",
                r#"{"event_type":"alert","src_ip":"1.2.3.4","alert":{"signature_id":-4}}"#
            ),
            NormalizeError::BadField {
                field: "signature_id",
                ..
            }
        ));
        assert_eq!(
            fail("suricata.eve", r#"{"src_ip":"1.2.3.4"}"#),
            NormalizeError::MissingField("event_type")
        );
    }
}
