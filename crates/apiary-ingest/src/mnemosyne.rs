//! Reading a `mongoexport` dump of mnemosyne's `hpfeed` collection (MHN's raw store).
//!
//! One JSON document per line (Extended JSON, relaxed or canonical):
//! `{"_id": {"$oid": "…"}, "channel": "…", "ident": "…", "payload": …,
//!   "timestamp": {"$date": …}, "normalized": true}`.
//! mnemosyne stored `payload` as a sub-document when it was JSON, as a hex string when one
//! of its first 20 bytes was non-printable (binaries), else as the raw string. Each line is
//! turned back into the bytes the sensor published so today's normalizers can run on it.

use apiary_model::RawEvent;
use bytes::Bytes;
use chrono::{DateTime, TimeZone, Utc};
use serde_json::Value;

/// Why a dump line was skipped.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ImportError {
    /// Not a JSON object.
    #[error("not a JSON object: {0}")]
    NotJson(String),
    /// A required field is absent or of the wrong type.
    #[error("missing or invalid field `{0}`")]
    Field(&'static str),
}

/// Channels whose payload is a binary file (mnemosyne hex-encoded those).
fn is_binary_channel(channel: &str) -> bool {
    channel.starts_with("mwbinary.")
}

/// Parses one dump line into the raw message it was.
pub fn parse_line(line: &str) -> Result<RawEvent, ImportError> {
    let doc: Value = serde_json::from_str(line).map_err(|e| ImportError::NotJson(e.to_string()))?;
    let obj = doc
        .as_object()
        .ok_or(ImportError::NotJson("not an object".into()))?;
    let channel = obj
        .get("channel")
        .and_then(Value::as_str)
        .filter(|c| !c.is_empty() && c.len() <= 255)
        .ok_or(ImportError::Field("channel"))?
        .to_string();
    let ident = obj
        .get("ident")
        .and_then(Value::as_str)
        .map(|s| apiary_model::bounded::bounded(s, 255))
        .unwrap_or_default();
    let received_at = obj
        .get("timestamp")
        .and_then(parse_date)
        .ok_or(ImportError::Field("timestamp"))?;
    let payload = match obj.get("payload") {
        Some(Value::String(s)) => {
            if is_binary_channel(&channel) {
                hex::decode(s)
                    .map(Bytes::from)
                    .unwrap_or_else(|_| Bytes::from(s.clone()))
            } else {
                Bytes::from(s.clone())
            }
        }
        Some(v @ (Value::Object(_) | Value::Array(_))) => Bytes::from(
            serde_json::to_vec(&strip_extended(v)).map_err(|_| ImportError::Field("payload"))?,
        ),
        Some(Value::Null) | None => return Err(ImportError::Field("payload")),
        Some(other) => Bytes::from(other.to_string()),
    };
    Ok(RawEvent {
        id: None,
        channel,
        ident,
        received_at,
        payload,
    })
}

/// `{"$date": "..."}`, `{"$date": {"$numberLong": "ms"}}`, `{"$date": ms}` or a bare string.
fn parse_date(v: &Value) -> Option<DateTime<Utc>> {
    match v {
        Value::String(s) => DateTime::parse_from_rfc3339(s)
            .map(|d| d.with_timezone(&Utc))
            .ok()
            .or_else(|| {
                chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f")
                    .ok()
                    .map(|n| n.and_utc())
            }),
        Value::Number(n) => n
            .as_i64()
            .and_then(|ms| Utc.timestamp_millis_opt(ms).single()),
        Value::Object(o) => {
            if let Some(d) = o.get("$date") {
                return parse_date(d);
            }
            o.get("$numberLong")
                .and_then(Value::as_str)
                .and_then(|s| s.parse::<i64>().ok())
                .and_then(|ms| Utc.timestamp_millis_opt(ms).single())
        }
        _ => None,
    }
}

/// Turns Extended JSON wrappers inside payloads back into plain values
/// (`{"$numberLong": "5"}` → 5, `{"$oid": "x"}` → "x", `{"$date": …}` → RFC 3339 text).
fn strip_extended(v: &Value) -> Value {
    match v {
        Value::Object(o) if o.len() == 1 => {
            if let Some(Value::String(s)) = o.get("$numberLong").or_else(|| o.get("$numberInt")) {
                if let Ok(n) = s.parse::<i64>() {
                    return Value::from(n);
                }
            }
            if let Some(Value::String(s)) = o.get("$numberDouble") {
                if let Ok(f) = s.parse::<f64>() {
                    return Value::from(f);
                }
            }
            if let Some(Value::String(s)) = o.get("$oid") {
                return Value::String(s.clone());
            }
            if let Some(d) = o.get("$date") {
                if let Some(t) = parse_date(d) {
                    return Value::String(t.to_rfc3339());
                }
            }
            Value::Object(
                o.iter()
                    .map(|(k, v)| (k.clone(), strip_extended(v)))
                    .collect(),
            )
        }
        Value::Object(o) => Value::Object(
            o.iter()
                .map(|(k, v)| (k.clone(), strip_extended(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(strip_extended).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_payload_round_trips() {
        let line = r#"{"_id":{"$oid":"5d0b6e2f"},"channel":"cowrie.sessions","ident":"abc","payload":{"peerIP":"198.51.100.7","peerPort":{"$numberLong":"51234"},"credentials":[["root","<script>"]]},"timestamp":{"$date":"2019-06-20T12:00:00.123Z"},"normalized":true}"#;
        let raw = parse_line(line).unwrap();
        assert_eq!(raw.channel, "cowrie.sessions");
        assert_eq!(raw.ident, "abc");
        assert_eq!(
            raw.received_at.to_rfc3339(),
            "2019-06-20T12:00:00.123+00:00"
        );
        let v: Value = serde_json::from_slice(&raw.payload).unwrap();
        assert_eq!(v["peerPort"], 51234);
        assert_eq!(v["credentials"][0][1], "<script>");
    }

    #[test]
    fn binary_and_string_payloads() {
        let line = r#"{"channel":"mwbinary.dionaea.sensorunique","ident":"d","payload":"4d5a9000ff","timestamp":{"$date":{"$numberLong":"1561032000000"}}}"#;
        let raw = parse_line(line).unwrap();
        assert_eq!(&raw.payload[..], &[0x4d, 0x5a, 0x90, 0x00, 0xff]);
        let line = r#"{"channel":"glastopf.files","ident":"g","payload":"abc R0lG","timestamp":"2019-06-20T12:00:00"}"#;
        assert_eq!(&parse_line(line).unwrap().payload[..], b"abc R0lG");
    }

    #[test]
    fn bad_lines_are_errors() {
        assert!(matches!(
            parse_line("{not json"),
            Err(ImportError::NotJson(_))
        ));
        assert_eq!(
            parse_line("[1]").unwrap_err(),
            ImportError::NotJson("not an object".into())
        );
        assert_eq!(
            parse_line(r#"{"ident":"x","payload":"y","timestamp":"2019-01-01T00:00:00Z"}"#)
                .unwrap_err(),
            ImportError::Field("channel")
        );
        assert_eq!(
            parse_line(r#"{"channel":"c","payload":"y","timestamp":"yesterday"}"#).unwrap_err(),
            ImportError::Field("timestamp")
        );
    }
}
