//! One normalizer per honeypot channel: raw payload bytes → [`Normalized`] records.
//!
//! Every normalizer is a plain synchronous function `fn(&RawEvent, &mut Vec<Normalized>)`,
//! picked by [`normalize`] with a `match` on the channel name, so each one is testable with
//! literal payloads (see the `tests` module of each file).
//!
//! # Rules every normalizer follows
//! - Payloads are hostile. Every string is cut with [`apiary_model::bounded`] (usernames and
//!   passwords `SHORT`, URLs/paths/commands/signatures `MEDIUM`, bodies `LONG`), every list is
//!   capped at `MAX_ITEMS`, JSON kept verbatim (`ics`, `extra`) is bounded by
//!   [`fields::bounded_json`]. Invalid UTF-8 is decoded lossily. Text is stored verbatim:
//!   `<script>` stays `<script>`, escaping is the web layer's job.
//! - A wrong JSON type (an object where a string belongs, a string where a list belongs) is a
//!   [`NormalizeError`], never a panic. Numeric strings are accepted where producers send them
//!   (`"445"` ports), numbers where text is expected are kept as text.
//! - Ports: `0`, negative and > 65535 become `None` (the rest of the event is still worth
//!   keeping); a port that is not a number at all is [`NormalizeError::BadField`].
//! - Addresses go through [`apiary_model::event::parse_ip`] (`::ffff:` unmapped). An
//!   unspecified destination (`0.0.0.0`, `::`) is `None`. RFC 1918 sources are kept and
//!   marked `internal` (mnemosyne as configured by MHN kept them too, but unmarked).
//! - Timestamps: `raw.received_at` unless the honeypot supplies one we can parse; a sensor
//!   time more than a day ahead of `received_at` is a broken sensor clock and is replaced by
//!   `received_at` ([`fields::event_time`]). Naive sensor times are taken as UTC.
//! - `protocol` is the application protocol: the honeypot's own label when it has one, else
//!   the destination port looked up in [`fields::port_service`].
//! - Sessions get `channel = raw.channel`; the pipeline sets `sensor` and geolocation.

// Payload data is hostile: no panicking shortcuts outside tests.
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::panic
    )
)]

use apiary_model::{Normalized, RawEvent};

mod agave;
mod amun;
mod apiary;
pub use apiary::{parse_heartbeat, Heartbeat};
mod beeswarm;
mod conpot;
mod cowrie;
mod cowrie_json;
mod dionaea;
mod elastichoney;
pub mod fields;
mod glastopf;
mod kippo;
mod p0f;
mod shockpot;
mod snort;
mod suricata;
mod thug;
mod wordpot;

/// Why a message could not be normalized. The raw message is stored either way.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NormalizeError {
    /// No normalizer for this channel.
    #[error("no normalizer for channel {0:?}")]
    UnknownChannel(String),
    /// The payload is not a JSON object (the parser's message, or what it was instead).
    #[error("payload is not a JSON object: {0}")]
    NotJson(String),
    /// A required field is absent or null.
    #[error("missing field `{0}`")]
    MissingField(&'static str),
    /// A field is present but unusable.
    #[error("bad field `{field}`: {reason}")]
    BadField {
        /// Field name (dotted path for nested fields).
        field: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A non-JSON payload (log line, file, XML) that cannot be read.
    #[error("bad payload: {0}")]
    BadPayload(&'static str),
}

/// Result of one normalizer.
pub type Result<T, E = NormalizeError> = std::result::Result<T, E>;

/// Every channel [`normalize`] understands.
pub fn known_channels() -> &'static [&'static str] {
    &[
        "agave.events",
        "amun.events",
        "apiary.events",
        "apiary.heartbeat",
        "beeswarm.hive",
        "conpot.events",
        "cowrie.events",
        "cowrie.sessions",
        "dionaea.capture",
        "dionaea.capture.anon",
        "dionaea.captures",
        "dionaea.connections",
        "dionaea.json",
        "drupot.events",
        "elastichoney.events",
        "glastopf.events",
        "glastopf.files",
        "kippo.sessions",
        "mwbinary.dionaea.sensorunique",
        "p0f.events",
        "p0f.log",
        "shockpot.events",
        "snort.alert_json",
        "snort.alerts",
        "suricata.eve",
        "suricata.events",
        "thug.events",
        "thug.files",
        "wordpot.events",
    ]
}

/// Normalizes one raw message, appending what it yields to `out`.
///
/// `Ok` with nothing appended is a message that is understood but is not an attack event
/// (a dionaea `listen` record, a sensor heartbeat, a Suricata `stats` line...). On error,
/// `out` may hold nothing from this message: records are only appended once the whole
/// payload has been read.
pub fn normalize(raw: &RawEvent, out: &mut Vec<Normalized>) -> Result<()> {
    let mut mine = Vec::new();
    match raw.channel.as_str() {
        "agave.events" => agave::agave(raw, &mut mine),
        "amun.events" => amun::events(raw, &mut mine),
        "apiary.events" => apiary::events(raw, &mut mine),
        "apiary.heartbeat" => apiary::heartbeat(raw),
        "beeswarm.hive" => beeswarm::hive(raw, &mut mine),
        "conpot.events" => conpot::events(raw, &mut mine),
        "cowrie.events" => cowrie_json::events(raw, &mut mine),
        "cowrie.sessions" => cowrie::sessions(raw, &mut mine),
        "dionaea.capture" | "dionaea.capture.anon" | "dionaea.captures" => {
            dionaea::capture(raw, &mut mine)
        }
        "dionaea.connections" => dionaea::connections(raw, &mut mine),
        "dionaea.json" => dionaea::json_log(raw, &mut mine),
        "drupot.events" => agave::drupot(raw, &mut mine),
        "elastichoney.events" => elastichoney::events(raw, &mut mine),
        "glastopf.events" => glastopf::events(raw, &mut mine),
        "glastopf.files" => glastopf::files(raw, &mut mine),
        "kippo.sessions" => kippo::sessions(raw, &mut mine),
        "mwbinary.dionaea.sensorunique" => dionaea::binary(raw, &mut mine),
        "p0f.events" => p0f::events(raw, &mut mine),
        "p0f.log" => p0f::log(raw, &mut mine),
        "shockpot.events" => shockpot::events(raw, &mut mine),
        "snort.alert_json" => snort::alert_json(raw, &mut mine),
        "snort.alerts" => snort::alerts(raw, &mut mine),
        "suricata.eve" => suricata::eve(raw, &mut mine),
        "suricata.events" => suricata::events(raw, &mut mine),
        "thug.events" => thug::events(raw, &mut mine),
        "thug.files" => thug::files(raw, &mut mine),
        "wordpot.events" => wordpot::events(raw, &mut mine),
        other => Err(NormalizeError::UnknownChannel(
            apiary_model::bounded::bounded(other, apiary_model::bounded::SHORT),
        )),
    }?;
    out.append(&mut mine);
    Ok(())
}

#[cfg(test)]
pub(crate) mod testutil {
    use apiary_model::{Normalized, RawEvent, Session};
    use chrono::{DateTime, TimeZone, Utc};

    /// Receipt time used by every test.
    pub fn received() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2024, 5, 1, 12, 0, 0).unwrap()
    }

    pub fn raw(channel: &str, payload: impl AsRef<[u8]>) -> RawEvent {
        RawEvent {
            id: None,
            channel: channel.to_string(),
            ident: "sensor-1".to_string(),
            received_at: received(),
            payload: bytes::Bytes::copy_from_slice(payload.as_ref()),
        }
    }

    /// Runs the dispatcher and returns what it produced.
    pub fn run(channel: &str, payload: impl AsRef<[u8]>) -> Vec<Normalized> {
        let mut out = Vec::new();
        super::normalize(&raw(channel, payload), &mut out).unwrap();
        out
    }

    /// Runs the dispatcher, expecting an error.
    pub fn fail(channel: &str, payload: impl AsRef<[u8]>) -> super::NormalizeError {
        let mut out = Vec::new();
        let e = super::normalize(&raw(channel, payload), &mut out).unwrap_err();
        assert!(out.is_empty());
        e
    }

    /// Runs the dispatcher, expecting exactly one session.
    pub fn one_session(channel: &str, payload: impl AsRef<[u8]>) -> Session {
        let out = run(channel, payload);
        assert_eq!(out.len(), 1, "{out:?}");
        match out.into_iter().next() {
            Some(Normalized::Session(s)) => *s,
            other => panic!("not a session: {other:?}"),
        }
    }

    pub fn ip(s: &str) -> Option<std::net::IpAddr> {
        Some(s.parse().unwrap())
    }

    pub fn ts(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }
}

#[cfg(test)]
mod tests {
    use super::testutil::*;
    use super::*;

    #[test]
    fn unknown_channel() {
        assert_eq!(
            fail("beeswarn.feeder", "{}"),
            NormalizeError::UnknownChannel("beeswarn.feeder".into())
        );
    }

    #[test]
    fn every_known_channel_dispatches() {
        for ch in known_channels() {
            let mut out = Vec::new();
            let r = normalize(&raw(ch, "{}"), &mut out);
            assert!(
                !matches!(r, Err(NormalizeError::UnknownChannel(_))),
                "{ch} not dispatched"
            );
        }
    }

    #[test]
    fn invalid_utf8_inside_json_strings() {
        let mut p =
            br#"{"eventid":"cowrie.login.failed","src_ip":"198.51.100.7","username":"ro"#.to_vec();
        p.extend_from_slice(b"\xc3\x28ot");
        p.extend_from_slice(br#"","password":"<script>alert(1)</script>"}"#);
        let s = one_session("cowrie.events", p);
        assert_eq!(s.details.credentials[0].username, "ro\u{fffd}(ot");
        assert_eq!(
            s.details.credentials[0].password,
            "<script>alert(1)</script>"
        );
    }

    /// Every prefix and a sweep of single-byte corruptions of realistic payloads: errors are
    /// fine, panics are not.
    #[test]
    fn mutated_payloads_never_panic() {
        let samples: [(&str, &str); 6] = [
            ("cowrie.sessions", r#"{"peerIP":"198.51.100.7","peerPort":1,"loggedin":["a","b"],"credentials":[["r","p"]],"commands":["ls"],"hashes":["00"]}"#),
            ("glastopf.events", r#"{"time":"2013-06-09 06:06:20","source":["1.2.3.4",5],"request_raw":"GET /a?b HTTP/1.1\r\nHost: x\r\n\r\nbody","request_url":"/a?b"}"#),
            ("snort.alert_json", r#"{"timestamp":"11/12-12:20:52.763616","src_ap":"[2001:db8::1]:1","dst_ap":"1.2.3.4:80","rule":"1:2:3","msg":"m"}"#),
            ("p0f.log", "[2026/11/28 13:53:07] mod=syn|cli=1.2.3.4/5|srv=5.6.7.8/80|subj=cli|os=Linux"),
            ("thug.events", "<Analysis a=\"1\"><URI>http://x/&amp;</URI><Code_Snippet language=\"js\"><Code_Segment><![CDATA[x]]></Code_Segment></Code_Snippet></Analysis>"),
            ("agave.events", r#"{"src_ip":"1.2.3.4","request_json":{"Method":"GET","URL":{"Path":"/"},"Header":{"A":["b"]}}}"#),
        ];
        for (ch, payload) in samples {
            let bytes = payload.as_bytes();
            for cut in 0..bytes.len() {
                let _ = normalize(&raw(ch, &bytes[..cut]), &mut Vec::new());
                for flip in [b'"', b'[', b'{', b'\xff', b'|', b'<', b':'] {
                    let mut m = bytes.to_vec();
                    m[cut] = flip;
                    let _ = normalize(&raw(ch, &m), &mut Vec::new());
                }
            }
        }
    }

    #[test]
    fn garbage_never_panics() {
        let payloads: [&[u8]; 9] = [
            b"",
            b"null",
            b"[]",
            b"\"x\"",
            b"\xff\xfe\x00garbage",
            b"{\"a\":",
            b"[1,2,{\"x\":[]}]",
            b"{\"source\":{},\"remote\":7,\"peerIP\":[],\"src_ip\":{},\"SrcIp\":1}",
            b"[2024/05/01 12:00:00] mod=syn|cli=",
        ];
        for ch in known_channels() {
            for p in payloads {
                let mut out = Vec::new();
                let _ = normalize(&raw(ch, p), &mut out);
            }
        }
    }
}
