//! Every normalizer against generated hostile payloads. Valid messages of every channel
//! (`data/hostile_seeds.json`, taken from the normalizers' own tests) are mutated: values
//! anywhere in them replaced by values of every type and edge (huge and negative numbers,
//! out-of-range ports and times, address forms, long multi-byte strings, nesting), fields
//! dropped or added; text formats get tokens spliced in. Objects built from the field
//! names alone, token soup and random bytes go to every channel too. A payload may be
//! rejected; it may not panic, a rejected one yields nothing, and what is kept is
//! length-bounded.

use std::sync::OnceLock;

use apiary_ingest::normalize::{known_channels, normalize};
use apiary_model::bounded::LONG;
use apiary_model::{Normalized, RawEvent};
use bytes::Bytes;
use chrono::{TimeZone, Utc};
use proptest::prelude::*;
use serde_json::{Map, Number, Value};

/// Field names and values the normalizers look for (their string literals).
const WORDS: &[&str] = &[
    "AgaveApp",
    "AgavePassword",
    "AgaveUsername",
    "Analysis",
    "Body",
    "Code_Segment",
    "Code_Snippet",
    "DestIp",
    "DestPort",
    "Header",
    "Host",
    "Method",
    "Path",
    "Protocol",
    "RawQuery",
    "RequestJson",
    "Sensor",
    "Signature",
    "SrcIp",
    "SrcPort",
    "URI",
    "URL",
    "accept_language",
    "action",
    "agave_app",
    "agave_password",
    "agave_username",
    "alert",
    "app",
    "app_proto",
    "attack",
    "attackerIP",
    "attackerPort",
    "attacker_ip",
    "attacker_source_port",
    "body",
    "bytes_in",
    "category",
    "class",
    "classification",
    "cli",
    "client_ip",
    "client_version",
    "command",
    "command_data",
    "commands",
    "connect",
    "connection",
    "connection_protocol",
    "connection_transport",
    "connection_type",
    "conpot_session",
    "content_type",
    "cowrie.client.version",
    "cowrie.command.input",
    "cowrie.login.failed",
    "cowrie.login.success",
    "cowrie.session.connect",
    "cowrie.session.file_download",
    "cowrie.session.file_upload",
    "credentials",
    "daddr",
    "data",
    "data_type",
    "date",
    "dest_host",
    "dest_ip",
    "dest_port",
    "destination_ip",
    "destination_port",
    "downloadURL",
    "dport",
    "dst_addr",
    "dst_ap",
    "dst_ip",
    "dst_port",
    "duration_ms",
    "endTime",
    "end_time",
    "event_type",
    "eventid",
    "extra",
    "filename",
    "flow_id",
    "form",
    "function_code",
    "header",
    "headers",
    "honey_ip",
    "honey_port",
    "honeypot",
    "host",
    "hostIP",
    "hostPort",
    "hostname",
    "http",
    "http_method",
    "http_request_body_printable",
    "http_user_agent",
    "id",
    "input",
    "is_shellshock",
    "keys",
    "language",
    "link",
    "listen",
    "local",
    "local_host",
    "local_port",
    "logged_in",
    "loggedin",
    "login",
    "login_attempts",
    "md5",
    "md5hash",
    "method",
    "mod",
    "msg",
    "name",
    "os",
    "pass",
    "password",
    "path",
    "pattern",
    "payload",
    "payloadBinary",
    "payloadCommand",
    "payloadMd5",
    "payloadResource",
    "payload_hex",
    "peerIP",
    "peerPort",
    "port",
    "priority",
    "proto",
    "protocol",
    "public_ip",
    "query_string",
    "remote",
    "remote_host",
    "remote_port",
    "request",
    "request_json",
    "request_raw",
    "request_url",
    "rev",
    "rule",
    "saddr",
    "seconds",
    "sensor",
    "sensor_extra",
    "server_ip",
    "service",
    "session",
    "severity",
    "sha512",
    "shasum",
    "shellcode",
    "shellcodeName",
    "sid",
    "signature",
    "signature_id",
    "signature_rev",
    "source",
    "source_ip",
    "source_port",
    "sport",
    "src_addr",
    "src_ap",
    "src_ip",
    "src_port",
    "srv",
    "ssh_version",
    "startTime",
    "subj",
    "subject",
    "time",
    "timestamp",
    "transport",
    "type",
    "unknownCommands",
    "unknown_commands",
    "uptime",
    "uptime_s",
    "url",
    "urls",
    "user",
    "user_agent",
    "username",
    "version",
    "victimIP",
    "victimPort",
    "vulnName",
    "vulnerability",
    "ssh",
    "telnet",
    "http",
    "tcp",
    "udp",
    "modbus",
    "s7comm",
    "NEW_CONNECTION",
    "CONNECTION_LOST",
];

/// Strings that reach address, port and time parsers.
const EDGES: &[&str] = &[
    "198.51.100.7",
    "::ffff:10.0.0.1",
    "::ffff:198.51.100.7",
    "2001:db8::1",
    "[2001:db8::1]:22",
    "1.2.3.4:80",
    "999.1.1.1",
    "1.2.3",
    "",
    " ",
    "0",
    "-1",
    "65535",
    "65536",
    "99999999999999999999999",
    "1e309",
    "NaN",
    "2024-05-01T12:00:00Z",
    "2024-05-01 12:00:00",
    "2024-05-01T12:00:00.123456+02:00",
    "11/12-12:20:52.763616",
    "2024/05/01 12:00:00",
    "+262143-12-31T23:59:59Z",
    "-262143-01-01T00:00:00Z",
    "9999-12-31T23:59:59Z",
    "0000-00-00 00:00:00",
    "1970-01-01T00:00:00Z",
    "1:2:3",
    "a:b",
    "mod=syn|cli=1.2.3.4/5|srv=5.6.7.8/80|subj=cli|os=Linux",
    "<script>alert(1)</script>",
    "é",
    "😀",
    "\u{0}",
    "\r\n",
    "%00",
    "'; DROP TABLE sessions; --",
];

fn number() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::from(0)),
        Just(Value::from(-1)),
        Just(Value::from(22)),
        Just(Value::from(65_535)),
        Just(Value::from(65_536)),
        Just(Value::from(i64::MIN)),
        Just(Value::from(i64::MAX)),
        Just(Value::from(u64::MAX)),
        Just(Value::from(1.5)),
        Just(Value::from(-0.0)),
        Just(Value::from(1e308)),
        Just(Value::from(-1e308)),
        Just(Value::from(1.7e9)),
        Just(Value::from(1.7e15)),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_filter_map("finite", |f| Number::from_f64(f).map(Value::Number)),
    ]
}

/// Long strings: a repeated character (multi-byte ones test cuts at char boundaries).
fn long_string() -> impl Strategy<Value = String> {
    (
        prop::sample::select(vec!["a", "é", "😀", "\u{fffd}", "<", "\"", "A1"]),
        1usize..70_000,
    )
        .prop_map(|(c, n)| c.repeat(n))
}

fn string() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(WORDS).prop_map(str::to_owned),
        4 => prop::sample::select(EDGES).prop_map(str::to_owned),
        2 => ".{0,40}",
        1 => long_string(),
    ]
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        1 => Just(Value::Null),
        1 => any::<bool>().prop_map(Value::Bool),
        3 => number(),
        6 => string().prop_map(Value::String),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(4, 48, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            object(inner),
        ]
    })
}

fn object(inner: impl Strategy<Value = Value>) -> impl Strategy<Value = Value> {
    let key = prop_oneof![
        8 => prop::sample::select(WORDS).prop_map(str::to_owned),
        1 => string(),
    ];
    prop::collection::vec((key, inner), 0..12)
        .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<String, Value>>()))
}

/// Text for the line and XML formats: tokens and separators.
fn soup() -> impl Strategy<Value = Vec<u8>> {
    let token = prop_oneof![
        prop::sample::select(WORDS).prop_map(str::to_owned),
        prop::sample::select(EDGES).prop_map(str::to_owned),
        prop::sample::select(vec![
            "|",
            "=",
            "/",
            ":",
            "[",
            "]",
            "<",
            ">",
            "</",
            "/>",
            " ",
            "\n",
            "\"",
            "<![CDATA[",
            "]]>",
            "&amp;",
            "&#x0;",
            "{",
            "}",
            ",",
        ])
        .prop_map(str::to_owned),
    ];
    prop::collection::vec(token, 0..80).prop_map(|t| t.concat().into_bytes())
}

fn payload() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        6 => object(value()).prop_map(|v| serde_json::to_vec(&v).unwrap()),
        2 => soup(),
        1 => prop::collection::vec(any::<u8>(), 0..200),
    ]
}

struct Seed {
    channel: String,
    payload: String,
}

fn seeds() -> &'static [Seed] {
    static SEEDS: OnceLock<Vec<Seed>> = OnceLock::new();
    SEEDS.get_or_init(|| {
        let v: Vec<Value> = serde_json::from_str(include_str!("data/hostile_seeds.json")).unwrap();
        v.iter()
            .map(|s| Seed {
                channel: s["channel"].as_str().unwrap().to_owned(),
                payload: s["payload"].as_str().unwrap().to_owned(),
            })
            .collect()
    })
}

/// One change to a seed: at the `at`-th place (modulo their number).
#[derive(Debug, Clone)]
enum Edit {
    Replace(usize, Value),
    Remove(usize),
    Add(String, Value),
    Splice(usize, Vec<u8>),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        6 => (any::<usize>(), value()).prop_map(|(at, v)| Edit::Replace(at, v)),
        2 => any::<usize>().prop_map(Edit::Remove),
        2 => (prop::sample::select(WORDS), value()).prop_map(|(k, v)| Edit::Add(k.into(), v)),
        2 => (any::<usize>(), soup()).prop_map(|(at, t)| Edit::Splice(at, t)),
    ]
}

/// Paths to every value inside `v` (object keys and array indexes), outermost first.
fn paths(v: &Value, here: &mut Vec<Value>, out: &mut Vec<Vec<Value>>) {
    match v {
        Value::Object(o) => {
            for (k, x) in o {
                here.push(Value::String(k.clone()));
                out.push(here.clone());
                paths(x, here, out);
                here.pop();
            }
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                here.push(Value::from(i));
                out.push(here.clone());
                paths(x, here, out);
                here.pop();
            }
        }
        _ => {}
    }
}

/// The parent of `path` and the last step.
fn parent<'a>(root: &'a mut Value, path: &[Value]) -> Option<(&'a mut Value, Value)> {
    let (last, up) = path.split_last()?;
    let mut v = root;
    for step in up {
        v = match step {
            Value::String(k) => v.get_mut(k.as_str())?,
            step => v.get_mut(step.as_u64()? as usize)?,
        };
    }
    Some((v, last.clone()))
}

fn apply(seed: &Seed, edits: &[Edit]) -> Vec<u8> {
    let Ok(mut doc) = serde_json::from_str::<Value>(&seed.payload) else {
        // Text formats: splices only.
        let mut text = seed.payload.clone().into_bytes();
        for e in edits {
            if let Edit::Splice(at, t) = e {
                let at = at % (text.len() + 1);
                text.splice(at..at, t.iter().copied());
            }
        }
        return text;
    };
    for e in edits {
        let mut all = Vec::new();
        paths(&doc, &mut Vec::new(), &mut all);
        let pick = |at: &usize| (!all.is_empty()).then(|| all[at % all.len()].clone());
        match e {
            Edit::Replace(at, new) => {
                if let Some((p, step)) = pick(at).and_then(|path| parent(&mut doc, &path)) {
                    match (p, step) {
                        (Value::Object(o), Value::String(k)) => {
                            o.insert(k, new.clone());
                        }
                        (Value::Array(a), i) => a[i.as_u64().unwrap() as usize] = new.clone(),
                        _ => {}
                    }
                }
            }
            Edit::Remove(at) => {
                if let Some((p, step)) = pick(at).and_then(|path| parent(&mut doc, &path)) {
                    match (p, step) {
                        (Value::Object(o), Value::String(k)) => {
                            o.remove(&k);
                        }
                        (Value::Array(a), i) => {
                            a.remove(i.as_u64().unwrap() as usize);
                        }
                        _ => {}
                    }
                }
            }
            Edit::Add(k, v) => {
                if let Value::Object(o) = &mut doc {
                    o.insert(k.clone(), v.clone());
                }
            }
            Edit::Splice(..) => {}
        }
    }
    serde_json::to_vec(&doc).unwrap()
}

/// Every string of `v`, recursively.
fn strings<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
    match v {
        Value::String(s) => out.push(s),
        Value::Array(a) => a.iter().for_each(|x| strings(x, out)),
        Value::Object(o) => o.iter().for_each(|(k, x)| {
            out.push(k);
            strings(x, out)
        }),
        _ => {}
    }
}

/// A message of `channel` from one sensor, received at one fixed time.
fn raw(channel: &str, payload: Vec<u8>) -> RawEvent {
    RawEvent {
        id: None,
        channel: channel.to_owned(),
        ident: "sensor-1".into(),
        received_at: Utc.with_ymd_and_hms(2026, 11, 28, 12, 0, 0).unwrap(),
        payload: Bytes::from(payload),
    }
}

fn check(channel: &str, payload: Vec<u8>) -> Result<(), TestCaseError> {
    let raw = raw(channel, payload);
    let mut out = Vec::new();
    if normalize(&raw, &mut out).is_err() {
        prop_assert!(
            out.is_empty(),
            "{channel}: records kept from a rejected message"
        );
        return Ok(());
    }
    for record in &mut out {
        if let Normalized::File(f) = record {
            f.data = None; // a captured binary is kept whole, by design
        }
        let v = serde_json::to_value(&*record).unwrap();
        let mut all = Vec::new();
        strings(&v, &mut all);
        for s in all {
            prop_assert!(s.len() <= LONG, "{channel}: a {} byte string kept", s.len());
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn mutated_valid_messages_are_rejected_or_bounded(
        i in any::<usize>(),
        edits in prop::collection::vec(edit(), 1..5),
    ) {
        let seed = &seeds()[i % seeds().len()];
        check(&seed.channel, apply(seed, &edits))?;
    }

    #[test]
    fn made_up_payloads_are_rejected_or_bounded(
        channel in prop::sample::select(known_channels()),
        payload in payload(),
    ) {
        check(channel, payload)?;
    }
}

/// The seeds are valid: each channel's is accepted with records, so mutations start from
/// messages that reach the normalizers' every field.
#[test]
fn every_channel_has_an_accepted_seed() {
    for channel in known_channels() {
        let accepted = seeds().iter().filter(|s| s.channel == *channel).any(|s| {
            let mut out = Vec::new();
            normalize(&raw(&s.channel, s.payload.clone().into_bytes()), &mut out).is_ok()
                && !out.is_empty()
        });
        assert!(
            accepted || *channel == "apiary.heartbeat",
            "{channel}: no accepted seed"
        );
    }
}

/// `n` hostile messages, the same every run: mutated seeds and made-up payloads.
fn hostile_messages(n: usize) -> Vec<RawEvent> {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let mutated = (any::<usize>(), prop::collection::vec(edit(), 1..5));
    let made_up = (prop::sample::select(known_channels()), payload());
    (0..n)
        .map(|k| {
            let (channel, payload) = if k % 4 == 3 {
                let (c, p) = made_up.new_tree(&mut runner).unwrap().current();
                (c.to_owned(), p)
            } else {
                let (i, edits) = mutated.new_tree(&mut runner).unwrap().current();
                let seed = &seeds()[i % seeds().len()];
                (seed.channel.clone(), apply(seed, &edits))
            };
            raw(&channel, payload)
        })
        .collect()
}

/// Hostile messages through the pipeline's own processing into each backend: every batch
/// commits (a record a backend refused would stall ingest, retried forever), every raw
/// message and every session is there afterwards.
async fn stores_everything(store: &dyn apiary_store::Store) {
    use apiary_ingest::pipeline::{process, IngestMetrics};
    let geo = apiary_geo::GeoDb::disabled();
    let metrics = IngestMetrics::default();
    let items: Vec<_> = hostile_messages(1_500)
        .into_iter()
        .map(|raw| process(raw, &geo, &metrics))
        .collect();
    let sessions = items
        .iter()
        .filter_map(|i| i.outcome.as_ref().ok())
        .flatten()
        .filter(|r| matches!(r, Normalized::Session(_)))
        .count() as u64;
    assert!(
        sessions > 150,
        "too few accepted to test the store: {sessions}"
    );
    for batch in items.chunks(100) {
        store.insert_batch(batch.to_vec()).await.unwrap();
    }
    let counts: std::collections::HashMap<String, u64> =
        store.table_counts().await.unwrap().into_iter().collect();
    assert_eq!(counts["raw_messages"], 1_500);
    assert_eq!(counts["sessions"], sessions);
    // And they read back: every page of the listing.
    let mut page = apiary_store::Page::first(500);
    let mut read = 0;
    loop {
        let (rows, next) = store
            .sessions(apiary_store::SessionFilter::default(), page)
            .await
            .unwrap();
        read += rows.len() as u64;
        match next {
            Some(c) => page = apiary_store::Page::after(500, c),
            None => break,
        }
    }
    assert_eq!(read, sessions);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_messages_are_stored_in_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("hostile.db").display());
    let store = apiary_store::open(&url).await.unwrap();
    stores_everything(&*store).await;
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_messages_are_stored_in_postgres() {
    let Ok(url) = std::env::var("APIARY_TEST_DATABASE_URL") else {
        return;
    };
    let schema = apiary_testdata::pg::PgSchema::create(&url).await;
    let store = apiary_store::open(&apiary_testdata::pg::scoped_url(&url, schema.name()))
        .await
        .unwrap();
    stores_everything(&*store).await;
    store.close().await;
}
