//! p0f passive fingerprints: `p0f.events` (JSON from MHN's patched p0f) and `p0f.log` (raw
//! p0f 3 log lines, e.g. tailed from `p0f -o`).
//!
//! Both yield only a [`P0fMetadata`] record for the fingerprinted ("subject") address, and
//! only when at least one of `os`, `app`, `link`, `uptime` is known (not `???`).
//!
//! Fix against mnemosyne: no session. mnemosyne turned every p0f observation into a
//! `protocol: pcap` "attack", so a sensor's ordinary traffic inflated the attack counts.

use super::fields::{self as f, Obj};
use super::{NormalizeError, Result};
use apiary_model::bounded::{bounded, MAX_ITEMS, SHORT};
use apiary_model::event::parse_ip;
use apiary_model::{Normalized, P0fMetadata, RawEvent};
use std::net::IpAddr;

fn known(v: Option<&str>) -> Option<String> {
    v.map(str::trim)
        .filter(|v| !v.is_empty() && *v != "???")
        .map(|v| bounded(v, SHORT))
}

fn metadata(ip: IpAddr, get: impl Fn(&str) -> Option<String>) -> Option<P0fMetadata> {
    let m = P0fMetadata {
        ip: ip.to_string(),
        os: get("os"),
        app: get("app"),
        link: get("link"),
        uptime: get("uptime"),
    };
    (m.os.is_some() || m.app.is_some() || m.link.is_some() || m.uptime.is_some()).then_some(m)
}

/// `p0f.events`: `{timestamp, mod, client_ip, client_port, server_ip, server_port,
/// subject ("cli"|"srv"), os, dist, params, raw_sig, app, lang, link, raw_mtu, uptime, ...}`.
pub fn events(raw: &RawEvent, out: &mut Vec<Normalized>) -> Result<()> {
    let o = f::json_object(raw)?;
    let subject_field = match f::str_field(&o, "subject")? {
        Some("srv") => "server_ip",
        _ => "client_ip",
    };
    let ip = f::source_ip(&o, subject_field)?;
    let text = |o: &Obj, k: &'static str| -> Result<Option<String>> { f::text(o, k, SHORT) };
    let fields = [
        ("os", text(&o, "os")?),
        ("app", text(&o, "app")?),
        ("link", text(&o, "link")?),
        ("uptime", text(&o, "uptime")?),
    ];
    let get = |k: &str| {
        fields
            .iter()
            .find(|(name, _)| *name == k)
            .and_then(|(_, v)| known(v.as_deref()))
    };
    out.extend(metadata(ip, get).map(Normalized::Metadata));
    Ok(())
}

/// `p0f.log`: one or more lines
/// `[YYYY/MM/DD HH:MM:SS] mod=syn|cli=ip/port|srv=ip/port|subj=cli|os=...|...`.
/// A malformed line rejects the message.
pub fn log(raw: &RawEvent, out: &mut Vec<Normalized>) -> Result<()> {
    let text = String::from_utf8_lossy(&raw.payload);
    let mut mine = Vec::new();
    for line in text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .take(MAX_ITEMS)
    {
        mine.extend(parse_line(line)?.map(Normalized::Metadata));
    }
    out.append(&mut mine);
    Ok(())
}

fn parse_line(line: &str) -> Result<Option<P0fMetadata>> {
    let bad = NormalizeError::BadPayload("not a p0f log line");
    let line = line.trim();
    let rest = line.strip_prefix('[').ok_or(bad.clone())?;
    let (_time, rest) = rest.split_once(']').ok_or(bad.clone())?;
    let pairs: Vec<(&str, &str)> = rest
        .trim()
        .split('|')
        .filter_map(|kv| kv.split_once('='))
        .collect();
    let get = |k: &str| pairs.iter().find(|(key, _)| *key == k).map(|(_, v)| *v);
    get("mod").ok_or(bad.clone())?;
    let subject = match get("subj") {
        Some("srv") => "srv",
        _ => "cli",
    };
    let addr = get(subject).ok_or(NormalizeError::MissingField("cli"))?;
    let host = addr.rsplit_once('/').map_or(addr, |(h, _port)| h);
    let ip = parse_ip(host).ok_or(NormalizeError::BadField {
        field: "cli",
        reason: "not an IP address",
    })?;
    Ok(metadata(ip, |k| known(get(k))))
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::super::NormalizeError;
    use apiary_model::{Normalized, P0fMetadata};

    #[test]
    fn json_event() {
        let out = run(
            "p0f.events",
            r#"{"timestamp": "2019/06/20 12:00:00", "mod": "syn", "client_ip": "::ffff:198.51.100.7", "server_ip": "203.0.113.5",
 "client_port": 51234, "server_port": 22, "subject": "cli", "os": "Linux 3.11 and newer",
 "dist": "0", "params": "none", "raw_sig": "4:64+0:0:1460:mss*20,7:mss,sok,ts,nop,ws:df,id+:0"}"#,
        );
        assert_eq!(
            out,
            vec![Normalized::Metadata(P0fMetadata {
                ip: "198.51.100.7".into(),
                os: Some("Linux 3.11 and newer".into()),
                app: None,
                link: None,
                uptime: None,
            })]
        );
        assert!(run(
            "p0f.events",
            r#"{"mod": "mtu", "client_ip": "198.51.100.7", "subject": "cli", "link": "???"}"#
        )
        .is_empty());
        let out = run(
            "p0f.events",
            r#"{"mod": "http response", "client_ip": "198.51.100.7", "server_ip": "2001:db8::5", "subject": "srv", "app": "nginx 1.x"}"#,
        );
        assert_eq!(
            out,
            vec![Normalized::Metadata(P0fMetadata {
                ip: "2001:db8::5".into(),
                app: Some("nginx 1.x".into()),
                ..Default::default()
            })]
        );
        assert_eq!(
            fail("p0f.events", r#"{"os": "Linux"}"#),
            NormalizeError::MissingField("client_ip")
        );
    }

    #[test]
    fn log_lines() {
        let out = run(
            "p0f.log",
            "[2026/11/28 13:53:07] mod=syn|cli=198.51.100.7/56526|srv=203.0.113.5/28080|subj=cli|os=Linux 2.2.x-3.x|dist=0|params=generic|raw_sig=4:64+0:0:65495:mss*1,10:mss,sok,ts,nop,ws:df,id+:0\n",
        );
        assert_eq!(
            out,
            vec![Normalized::Metadata(P0fMetadata {
                ip: "198.51.100.7".into(),
                os: Some("Linux 2.2.x-3.x".into()),
                ..Default::default()
            })]
        );
        let out = run(
            "p0f.log",
            "[2026/11/28 13:53:07] mod=syn+ack|cli=198.51.100.7/56526|srv=203.0.113.5/28080|subj=srv|os=???|dist=0\n\
             [2026/11/28 13:53:07] mod=uptime|cli=[2001:db8::7]/1|srv=203.0.113.5/80|subj=cli|uptime=12 days 3 hrs|raw_freq=1000.00 Hz",
        );
        assert_eq!(
            out,
            vec![Normalized::Metadata(P0fMetadata {
                ip: "2001:db8::7".into(),
                uptime: Some("12 days 3 hrs".into()),
                ..Default::default()
            })]
        );
        assert_eq!(
            fail("p0f.log", "hello"),
            NormalizeError::BadPayload("not a p0f log line")
        );
        assert!(matches!(
            fail("p0f.log", "[x] mod=syn|cli=nonsense/1|subj=cli|os=Linux"),
            NormalizeError::BadField { field: "cli", .. }
        ));
    }
}
