//! Amun: `amun.events`.

use super::fields::{self as f};
use super::Result;
use apiary_model::bounded::{MEDIUM, SHORT};
use apiary_model::{Normalized, RawEvent, UrlRecord};
use serde_json::Value;

/// Three message shapes share the channel: connection `{attackerIP, attackerPort, victimIP,
/// victimPort}`, exploit (+ `vulnName, shellcodeName, downloadMethod, attackerID`) and
/// download (+ `downloadURL, md5hash, filelength, ...`). Each → one session (protocol from
/// the port table); `vulnName`/`shellcodeName` go to `extra`, `downloadURL` to `urls` (and a
/// URL record), `md5hash` to `hashes`.
pub fn events(raw: &RawEvent, out: &mut Vec<Normalized>) -> Result<()> {
    let o = f::json_object(raw)?;
    let mut s = f::new_session(raw, "amun", raw.received_at);
    s.source_ip = Some(f::source_ip(&o, "attackerIP")?);
    s.source_port = f::port(&o, "attackerPort")?;
    s.destination_ip = f::ip(&o, "victimIP")?;
    s.destination_port = f::port(&o, "victimPort")?;
    let url = f::text_nonempty(&o, "downloadURL", MEDIUM)?;
    s.details.urls.extend(url.clone());
    s.details
        .hashes
        .extend(f::str_field(&o, "md5hash")?.and_then(f::hash_hex));
    s.details.extra = f::extra(vec![
        (
            "vulnerability",
            f::text_nonempty(&o, "vulnName", SHORT)?.map(Value::String),
        ),
        (
            "shellcode",
            f::text_nonempty(&o, "shellcodeName", SHORT)?.map(Value::String),
        ),
    ]);
    f::push_session(out, s);
    out.extend(url.map(|url| {
        Normalized::Url(UrlRecord {
            url,
            file_sha512: Vec::new(),
        })
    }));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use apiary_model::{Normalized, Session, SessionDetails, UrlRecord};
    use serde_json::json;

    #[test]
    fn connection() {
        let s = one_session(
            "amun.events",
            r#"{"attackerPort": 40013, "victimPort": "445", "victimIP": "92.12.12.50", "attackerIP": "188.24.58.132"}"#,
        );
        assert_eq!(
            s,
            Session {
                timestamp: received(),
                source_ip: ip("188.24.58.132"),
                source_port: Some(40013),
                destination_ip: ip("92.12.12.50"),
                destination_port: Some(445),
                protocol: Some("microsoft-ds".into()),
                honeypot: "amun".into(),
                channel: "amun.events".into(),
                ..Default::default()
            }
        );
    }

    #[test]
    fn download() {
        let out = run(
            "amun.events",
            r#"{"attackerPort": 1, "victimPort": 4444, "victimIP": "92.12.12.50", "attackerIP": "188.24.58.132",
                "vulnName": "DCOM", "downloadURL": "tftp://188.24.58.132/a.exe", "md5hash": "0724c68f973e4e35391849cfb5259f86"}"#,
        );
        assert_eq!(
            out,
            vec![
                Normalized::Session(Box::new(Session {
                    timestamp: received(),
                    source_ip: ip("188.24.58.132"),
                    source_port: Some(1),
                    destination_ip: ip("92.12.12.50"),
                    destination_port: Some(4444),
                    protocol: None,
                    honeypot: "amun".into(),
                    channel: "amun.events".into(),
                    details: SessionDetails {
                        urls: vec!["tftp://188.24.58.132/a.exe".into()],
                        hashes: vec!["0724c68f973e4e35391849cfb5259f86".into()],
                        extra: Some(json!({"vulnerability": "DCOM"})),
                        ..Default::default()
                    },
                    ..Default::default()
                })),
                Normalized::Url(UrlRecord {
                    url: "tftp://188.24.58.132/a.exe".into(),
                    file_sha512: vec![]
                }),
            ]
        );
    }
}
