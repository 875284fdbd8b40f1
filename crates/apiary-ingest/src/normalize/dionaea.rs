//! Dionaea: `dionaea.connections`, `dionaea.capture` (+ `.anon`, `dionaea.captures`) and the
//! raw binaries on `mwbinary.dionaea.sensorunique`.

use super::fields::{self as f, Obj};
use super::{NormalizeError, Result};
use apiary_model::bounded::MEDIUM;
use apiary_model::{Normalized, RawEvent, UrlRecord};
use serde_json::{json, Value};

/// One connection incident:
/// `{connection_type, connection_transport, connection_protocol, remote_host, remote_port,
///   remote_hostname, local_host, local_port}` → a session from `remote_*` to `local_*`.
///
/// Fixes against mnemosyne:
/// - `listen` (dionaea opening a port, no peer) and `connect` (dionaea's *own* outbound
///   connections, e.g. to the hpfeeds broker, MHN issue #539) yield **no session**.
/// - `local_host` becomes `destination_ip` (mnemosyne dropped it).
///
/// `protocol` is the service of dionaea's module (`smbd` → `microsoft-ds`, `httpd` → `http`...,
/// the same names the port table uses, so protocol statistics do not split one service in
/// two), else the port's service, else the module name as is; `transport` and
/// `connection_type` go to `extra`.
pub fn connections(raw: &RawEvent, out: &mut Vec<Normalized>) -> Result<()> {
    let o = f::json_object(raw)?;
    let ctype = f::text(&o, "connection_type", 32)?;
    if matches!(ctype.as_deref(), Some("listen" | "connect")) {
        return Ok(());
    }
    let mut s = f::new_session(raw, "dionaea", raw.received_at);
    s.source_ip = Some(f::source_ip(&o, "remote_host")?);
    s.source_port = f::port(&o, "remote_port")?;
    s.destination_ip = f::ip(&o, "local_host")?;
    s.destination_port = f::port(&o, "local_port")?;
    let module = f::text(&o, "connection_protocol", 64)?;
    s.protocol = protocol(module.as_deref(), s.destination_port);
    let transport = f::text(&o, "connection_transport", 16)?;
    s.details.extra = connection_extra(ctype, transport);
    f::push_session(out, s);
    Ok(())
}

/// One line of dionaea's own JSON log (its `log_json` handler), forwarded by apiary-sensor
/// on `dionaea.json`: `{timestamp, src_ip, src_port, dst_ip, dst_port, connection: {type,
/// transport, protocol}, credentials?: [{username, password}]}`. Same rules as
/// [`connections`]: `listen` and `connect` records are not attacks.
pub fn json_log(raw: &RawEvent, out: &mut Vec<Normalized>) -> Result<()> {
    let o = f::json_object(raw)?;
    let conn = f::obj_field(&o, "connection")?;
    let field = |name: &'static str, max: usize| -> Result<Option<String>> {
        match conn {
            Some(c) => f::text(c, name, max),
            None => Ok(None),
        }
    };
    let ctype = field("type", 32)?;
    if matches!(ctype.as_deref(), Some("listen" | "connect")) {
        return Ok(());
    }
    let ts = f::time_field(&o, "timestamp", raw.received_at)?;
    let mut s = f::new_session(raw, "dionaea", ts);
    s.source_ip = Some(f::source_ip(&o, "src_ip")?);
    s.source_port = f::port(&o, "src_port")?;
    s.destination_ip = f::ip(&o, "dst_ip")?;
    s.destination_port = f::port(&o, "dst_port")?;
    let module = field("protocol", 64)?;
    s.protocol = protocol(module.as_deref(), s.destination_port);
    s.details.credentials = f::credential_list(&o, "credentials")?;
    let transport = field("transport", 16)?;
    s.details.extra = connection_extra(ctype, transport);
    f::push_session(out, s);
    Ok(())
}

/// The session protocol (see [`connections`]): the module's service, else the port's
/// service, else the module name as is.
fn protocol(module: Option<&str>, port: Option<u16>) -> Option<String> {
    module
        .and_then(service_of_module)
        .or_else(|| port.and_then(f::port_service))
        .map(str::to_string)
        .or_else(|| module.and_then(f::proto_label))
}

/// `extra` of a connection session: its type and transport.
fn connection_extra(ctype: Option<String>, transport: Option<String>) -> Option<Value> {
    f::extra(vec![
        ("connection_type", ctype.map(|c| json!(c))),
        ("transport", transport.map(|t| json!(t))),
    ])
}

/// Service name of a dionaea protocol module.
fn service_of_module(module: &str) -> Option<&'static str> {
    Some(match module {
        "smbd" => "microsoft-ds",
        "epmapper" => "dcom-scm",
        "httpd" => "http",
        "ftpd" => "ftp",
        "tftpd" => "tftp",
        "mssqld" => "mssql",
        "mysqld" => "mysql",
        "sipd" | "SipSession" => "sip",
        "mqttd" => "mqtt",
        "memcache" | "memcached" => "memcached",
        "upnpd" => "upnp",
        "pptpd" => "pptp",
        "mongod" => "mongodb",
        "printerd" => "ipp",
        _ => return None,
    })
}

/// A completed download: `{saddr, sport, daddr, dport, md5, sha512, url}` (ports are strings)
/// → a session with the URL and hashes, plus a URL record linked to the file's sha512.
///
/// Fixes against mnemosyne: `destination_ip` is an address, not a one-element array
/// (mnemosyne's trailing-comma bug); `saddr` is `::ffff:`-unmapped like everywhere else; the
/// URL is kept (mnemosyne's url code was commented out).
pub fn capture(raw: &RawEvent, out: &mut Vec<Normalized>) -> Result<()> {
    let o = f::json_object(raw)?;
    let mut s = f::new_session(raw, "dionaea", raw.received_at);
    s.source_ip = Some(f::source_ip(&o, "saddr")?);
    s.source_port = f::port(&o, "sport")?;
    s.destination_ip = f::ip(&o, "daddr")?;
    s.destination_port = f::port(&o, "dport")?;
    let sha512 = hash(&o, "sha512")?;
    let md5 = hash(&o, "md5")?;
    s.details.hashes = sha512.iter().chain(md5.iter()).cloned().collect();
    let url = f::text_nonempty(&o, "url", MEDIUM)?;
    if let Some(u) = &url {
        s.details.urls.push(u.clone());
    }
    f::push_session(out, s);
    if let Some(url) = url {
        out.push(Normalized::Url(UrlRecord {
            url,
            file_sha512: sha512.into_iter().filter(|h| h.len() == 128).collect(),
        }));
    }
    Ok(())
}

fn hash(o: &Obj, field: &'static str) -> Result<Option<String>> {
    Ok(f::str_field(o, field)?.and_then(f::hash_hex))
}

/// The captured file itself: the payload is the file's bytes (no JSON). Hashes are computed
/// here; mnemosyne's failure on binaries whose first 20 bytes happened to be printable cannot
/// occur since nothing is hex-decoded.
pub fn binary(raw: &RawEvent, out: &mut Vec<Normalized>) -> Result<()> {
    if raw.payload.is_empty() {
        return Err(NormalizeError::BadPayload("empty file"));
    }
    out.push(Normalized::File(f::file_record(
        raw.payload.to_vec(),
        None,
        None,
    )));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::super::NormalizeError;
    use apiary_model::{FileRecord, Normalized, Session, SessionDetails, UrlRecord};
    use serde_json::json;

    #[test]
    fn connection_accept() {
        let s = one_session(
            "dionaea.connections",
            r#"{"connection_type": "accept", "connection_transport": "tcp", "connection_protocol": "smbd",
 "remote_host": "::ffff:198.51.100.23", "remote_port": 51912, "remote_hostname": "",
 "local_host": "::ffff:203.0.113.5", "local_port": 445}"#,
        );
        assert_eq!(
            s,
            Session {
                timestamp: received(),
                source_ip: ip("198.51.100.23"),
                source_port: Some(51912),
                destination_ip: ip("203.0.113.5"),
                destination_port: Some(445),
                protocol: Some("microsoft-ds".into()),
                honeypot: "dionaea".into(),
                channel: "dionaea.connections".into(),
                details: SessionDetails {
                    extra: Some(json!({"connection_type": "accept", "transport": "tcp"})),
                    ..Default::default()
                },
                ..Default::default()
            }
        );
    }

    #[test]
    fn listen_and_connect_are_not_attacks() {
        assert!(run(
            "dionaea.connections",
            r#"{"connection_type":"listen","connection_transport":"tcp","connection_protocol":"httpd","remote_host":"","remote_port":0,"local_host":"0.0.0.0","local_port":80}"#
        )
        .is_empty());
        assert!(run(
            "dionaea.connections",
            r#"{"connection_type":"connect","connection_transport":"tcp","connection_protocol":"","remote_host":"10.0.0.1","remote_port":10000,"local_host":"10.0.0.5","local_port":40000}"#
        )
        .is_empty());
    }

    #[test]
    fn connection_private_ipv6_and_unknown_protocol() {
        let s = one_session(
            "dionaea.connections",
            r#"{"connection_type":"reject","remote_host":"192.168.1.9","remote_port":"-5","local_host":"::","local_port":99999,"connection_protocol":""}"#,
        );
        assert_eq!(s.source_ip, ip("192.168.1.9"));
        assert!(s.internal);
        assert_eq!(s.source_port, None);
        assert_eq!(s.destination_ip, None);
        assert_eq!(s.destination_port, None);
        assert_eq!(s.protocol, None);
        let s = one_session(
            "dionaea.connections",
            r#"{"connection_type":"accept","remote_host":"2001:db8::7","remote_port":1,"local_host":"2001:db8::1","local_port":1433}"#,
        );
        assert_eq!(s.source_ip, ip("2001:db8::7"));
        assert_eq!(s.protocol.as_deref(), Some("mssql"));
        let s = one_session(
            "dionaea.connections",
            r#"{"connection_type":"accept","remote_host":"198.51.100.1","local_port":4444,"connection_protocol":"blackhole"}"#,
        );
        assert_eq!(s.protocol.as_deref(), Some("blackhole"));
    }

    #[test]
    fn connection_errors() {
        assert_eq!(
            fail("dionaea.connections", r#"{"connection_type":"accept"}"#),
            NormalizeError::MissingField("remote_host")
        );
        assert!(matches!(
            fail(
                "dionaea.connections",
                r#"{"connection_type":"accept","remote_host":["1.2.3.4"]}"#
            ),
            NormalizeError::BadField {
                field: "remote_host",
                ..
            }
        ));
        assert!(matches!(
            fail(
                "dionaea.connections",
                r#"{"remote_host":"1.2.3.4","local_port":{"x":1}}"#
            ),
            NormalizeError::BadField {
                field: "local_port",
                ..
            }
        ));
    }

    #[test]
    fn capture_from_mnemosyne_test() {
        let sha512 = "8cbcec5fe75ee97fc3c18bafdd79cdb5d83bfb4190ba5093907d1ee194632813451b3aebfc8145452afae9ac5e413d2673746317c13b64856f3fcae12a109fd2";
        let payload = format!(
            r#"{{"url": "http://118.167.12.21:1852/psgmioap", "daddr": "134.61.128.61", "saddr": "118.167.12.21",
 "dport": "445", "sport": "3006", "md5": "0724C68F973E4E35391849CFB5259F86", "sha512": "{sha512}"}}"#
        );
        for ch in [
            "dionaea.capture",
            "dionaea.capture.anon",
            "dionaea.captures",
        ] {
            let out = run(ch, &payload);
            assert_eq!(
                out,
                vec![
                    Normalized::Session(Box::new(Session {
                        timestamp: received(),
                        source_ip: ip("118.167.12.21"),
                        source_port: Some(3006),
                        destination_ip: ip("134.61.128.61"),
                        destination_port: Some(445),
                        protocol: Some("microsoft-ds".into()),
                        honeypot: "dionaea".into(),
                        channel: ch.into(),
                        details: SessionDetails {
                            urls: vec!["http://118.167.12.21:1852/psgmioap".into()],
                            hashes: vec![sha512.into(), "0724c68f973e4e35391849cfb5259f86".into()],
                            ..Default::default()
                        },
                        ..Default::default()
                    })),
                    Normalized::Url(UrlRecord {
                        url: "http://118.167.12.21:1852/psgmioap".into(),
                        file_sha512: vec![sha512.into()],
                    }),
                ]
            );
        }
    }

    #[test]
    fn capture_hostile() {
        let long_url = format!("http://x/{}", "a".repeat(1 << 20));
        let p = serde_json::json!({"saddr": "::ffff:10.1.2.3", "sport": "70000", "daddr": "x", "md5": "<script>", "url": long_url});
        let out = run("dionaea.capture", p.to_string());
        let Normalized::Session(s) = &out[0] else {
            panic!()
        };
        assert_eq!(s.source_ip, ip("10.1.2.3"));
        assert!(s.internal);
        assert_eq!(s.source_port, None);
        assert_eq!(s.destination_ip, None);
        assert!(s.details.hashes.is_empty());
        assert_eq!(s.details.urls[0].len(), apiary_model::bounded::MEDIUM);
        assert_eq!(
            out[1],
            Normalized::Url(UrlRecord {
                url: s.details.urls[0].clone(),
                file_sha512: vec![]
            })
        );
    }

    #[test]
    fn binary_file() {
        let out = run("mwbinary.dionaea.sensorunique", b"abc");
        assert_eq!(
            out,
            vec![Normalized::File(FileRecord {
                md5: "900150983cd24fb0d6963f7d28e17f72".into(),
                sha1: "a9993e364706816aba3e25717850c26c9cd0d89d".into(),
                sha256: "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad".into(),
                sha512: "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f".into(),
                size: 3,
                content_guess: Some("data".into()),
                data: Some(b"abc".to_vec()),
                url: None,
            })]
        );
        let out = run("mwbinary.dionaea.sensorunique", b"MZ\x90\x00\x03\x00\xff");
        let Normalized::File(file) = &out[0] else {
            panic!()
        };
        assert_eq!(file.content_guess.as_deref(), Some("PE32 executable"));
        assert_eq!(file.size, 7);
        assert_eq!(
            fail("mwbinary.dionaea.sensorunique", b""),
            NormalizeError::BadPayload("empty file")
        );
    }

    #[test]
    fn json_log_lines() {
        let s = one_session(
            "dionaea.json",
            r#"{"timestamp": "2024-05-01T11:59:00.5", "src_ip": "::ffff:198.51.100.23", "src_port": 51912,
                "dst_ip": "203.0.113.5", "dst_port": 21,
                "connection": {"type": "accept", "transport": "tcp", "protocol": "ftpd"},
                "credentials": [{"username": "anonymous", "password": "<script>"}]}"#,
        );
        assert_eq!(s.source_ip, ip("198.51.100.23"));
        assert_eq!(s.destination_port, Some(21));
        assert_eq!(s.protocol.as_deref(), Some("ftp"));
        assert_eq!(s.details.credentials[0].password, "<script>");
        let mut out = vec![];
        let listen = raw(
            "dionaea.json",
            r#"{"src_ip": "", "connection": {"type": "listen", "protocol": "smbd"}}"#,
        );
        super::super::normalize(&listen, &mut out).unwrap();
        assert!(out.is_empty());
        assert!(super::super::normalize(&raw("dionaea.json", "[1]"), &mut out).is_err());
    }
}
