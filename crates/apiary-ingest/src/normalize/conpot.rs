//! Conpot (ICS honeypot): `conpot.events`.

use super::fields::{self as f};
use super::Result;
use apiary_model::bounded::SHORT;
use apiary_model::{Normalized, RawEvent};
use serde_json::Value;

/// Port a Conpot protocol listens on by default, for events that do not say (`local` is
/// absent from Conpot 0.6 events).
fn default_port(data_type: &str) -> Option<u16> {
    Some(match data_type.to_ascii_lowercase().as_str() {
        "modbus" => 502,
        "s7comm" => 102,
        "http" => 80,
        "snmp" => 161,
        "bacnet" => 47808,
        "ipmi" => 623,
        "enip" => 44818,
        "iec104" => 2404,
        "kamstrup_protocol" => 1025,
        "kamstrup_management_protocol" => 50100,
        "guardian_ast" => 10001,
        "ftp" => 21,
        "tftp" => 69,
        _ => return None,
    })
}

/// One protocol event: `{id, remote: [ip, port], local: [ip, port], data_type, timestamp,
/// public_ip, data}` → a session whose `protocol` is `data_type` (lower-cased), `ics` the
/// bounded `data` (PDUs, or `{"type": "NEW_CONNECTION"}`), `extra.conpot_session` the id.
/// `timestamp` is the payload's (Conpot logs UTC).
///
/// Fixes against mnemosyne: `destination_port` is `local[1]`, else the protocol's default
/// port (mnemosyne wrote 502 for every protocol); `destination_ip` is `public_ip`, else
/// `local[0]` unless it is a wildcard. A `{"type": "CONNECTION_LOST"}` event yields nothing:
/// it closes a connection already counted by its `NEW_CONNECTION`.
pub fn events(raw: &RawEvent, out: &mut Vec<Normalized>) -> Result<()> {
    let o = f::json_object(raw)?;
    let data = f::get(&o, "data");
    if let Some(Value::Object(d)) = data {
        if d.get("type").and_then(Value::as_str) == Some("CONNECTION_LOST") {
            return Ok(());
        }
    }
    let ts = f::time_field(&o, "timestamp", raw.received_at)?;
    let mut s = f::new_session(raw, "conpot", ts);
    let remote = f::array_field(&o, "remote")?;
    s.source_ip = Some(f::source_ip_value(
        remote.first().filter(|v| !v.is_null()),
        "remote",
    )?);
    s.source_port = match remote.get(1) {
        Some(p) => f::port_value(p, "remote")?,
        None => None,
    };
    let local = f::array_field(&o, "local")?;
    let local_ip = match local.first() {
        Some(v) => f::ip_value(v, "local")?,
        None => None,
    };
    let local_port = match local.get(1) {
        Some(p) => f::port_value(p, "local")?,
        None => None,
    };
    let data_type = f::text_nonempty(&o, "data_type", SHORT)?;
    s.destination_ip = f::dest(f::ip(&o, "public_ip")?).or(local_ip);
    s.destination_port = local_port.or_else(|| data_type.as_deref().and_then(default_port));
    s.protocol = data_type.as_deref().and_then(f::proto_label);
    s.details.ics = data.map(f::bounded_json);
    s.details.extra = f::extra(vec![(
        "conpot_session",
        f::text_nonempty(&o, "id", 64)?.map(Value::String),
    )]);
    f::push_session(out, s);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::super::NormalizeError;
    use apiary_model::{Session, SessionDetails};
    use serde_json::json;

    #[test]
    fn modbus_request() {
        let s = one_session(
            "conpot.events",
            r#"{"id": "069db6a6-5faa-4f3a-8de0-ce90af0e7b2c", "remote": ["12.34.43.21", 45358], "local": ["0.0.0.0", 5020],
 "data_type": "modbus", "timestamp": "2019-06-20T12:00:00.123456", "public_ip": "203.0.113.5",
 "data": {"request": "000100000006010300000001", "slave_id": 1, "function_code": 3, "response": "0103020000"}}"#,
        );
        assert_eq!(
            s,
            Session {
                timestamp: ts("2019-06-20T12:00:00.123456Z"),
                source_ip: ip("12.34.43.21"),
                source_port: Some(45358),
                destination_ip: ip("203.0.113.5"),
                destination_port: Some(5020),
                protocol: Some("modbus".into()),
                honeypot: "conpot".into(),
                channel: "conpot.events".into(),
                details: SessionDetails {
                    ics: Some(
                        json!({"request": "000100000006010300000001", "slave_id": 1, "function_code": 3, "response": "0103020000"})
                    ),
                    extra: Some(json!({"conpot_session": "069db6a6-5faa-4f3a-8de0-ce90af0e7b2c"})),
                    ..Default::default()
                },
                ..Default::default()
            }
        );
    }

    #[test]
    fn default_ports_per_protocol() {
        for (dt, port, proto) in [
            ("s7comm", 102, "s7comm"),
            ("IEC104", 2404, "iec104"),
            ("bacnet", 47808, "bacnet"),
            ("snmp", 161, "snmp"),
        ] {
            let s = one_session(
                "conpot.events",
                json!({"remote": ["198.51.100.3", 1000], "data_type": dt, "public_ip": null,
                       "data": {"type": "NEW_CONNECTION"}})
                .to_string(),
            );
            assert_eq!(s.destination_port, Some(port));
            assert_eq!(s.protocol.as_deref(), Some(proto));
            assert_eq!(s.destination_ip, None);
        }
        let s = one_session(
            "conpot.events",
            r#"{"remote": ["198.51.100.3", 1000], "data_type": "weird", "data": [{"request_pdu": "03"}]}"#,
        );
        assert_eq!(s.destination_port, None);
        assert_eq!(s.details.ics, Some(json!([{"request_pdu": "03"}])));
    }

    #[test]
    fn connection_lost_and_errors() {
        assert!(run(
            "conpot.events",
            r#"{"remote": ["198.51.100.3", 1000], "data_type": "modbus", "data": {"type": "CONNECTION_LOST"}}"#
        )
        .is_empty());
        assert_eq!(
            fail("conpot.events", r#"{"data_type": "modbus"}"#),
            NormalizeError::MissingField("remote")
        );
        assert!(matches!(
            fail("conpot.events", r#"{"remote": "1.2.3.4"}"#),
            NormalizeError::BadField {
                field: "remote",
                ..
            }
        ));
    }
}
