//! The REST API on real ingested data: filters, paging, shapes, sensors, errors.

mod common;

use std::collections::HashSet;

use axum::http::{Method, StatusCode};
use common::*;
use serde_json::{json, Value};

async fn seeded() -> (App, As) {
    let app = App::new().await;
    let mut batch = Vec::new();
    for i in 0..60i64 {
        let ip = ["198.51.100.7", "198.51.100.8", "203.0.113.9"][(i % 3) as usize];
        let port = [22u16, 80, 23][(i % 3) as usize % 2];
        let hp = if i % 2 == 0 { "cowrie" } else { "dionaea" };
        let sensor = if i % 4 == 0 { "sensor-a" } else { "sensor-b" };
        let mut s = session(i * 10, ip, port, hp, sensor);
        if i % 5 == 0 {
            s.details.credentials.push(apiary_model::Credential {
                username: "root".into(),
                password: format!("pw{i}"),
            });
        }
        batch.push((s, format!("{{\"n\":{i}}}").into_bytes()));
    }
    app.insert(batch).await;
    let key = app.key(ANALYST).await;
    (app, key)
}

fn ids(v: &Value) -> Vec<i64> {
    v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_i64().unwrap())
        .collect()
}

/// `PUT /api/sensor/{uuid}/` with `body` (no CSRF header).
async fn put_sensor(app: &App, who: &As, uuid: &str, body: Value) -> Resp {
    app.json(
        Method::PUT,
        &format!("/api/sensor/{uuid}/"),
        who,
        body,
        false,
    )
    .await
}

#[tokio::test]
async fn session_filters_return_exactly_the_matching_sessions() {
    let (app, key) = seeded().await;
    let all = app.get("/api/session/?limit=1000", &key).await.json();
    let all = all["data"].as_array().unwrap().clone();
    assert_eq!(all.len(), 60);
    let check = |q: &str, pred: &dyn Fn(&Value) -> bool| {
        let want: HashSet<i64> = all
            .iter()
            .filter(|s| pred(s))
            .map(|s| s["id"].as_i64().unwrap())
            .collect();
        (q.to_owned(), want)
    };
    let cases = vec![
        check("honeypot=cowrie", &|s| s["honeypot"] == "cowrie"),
        check("source_ip=198.51.100.7", &|s| {
            s["source_ip"] == "198.51.100.7"
        }),
        check("source_ip=198.51.100.0/24", &|s| {
            s["source_ip"].as_str().unwrap().starts_with("198.51.100.")
        }),
        check("destination_port=22", &|s| s["destination_port"] == 22),
        check("protocol=http", &|s| s["protocol"] == "http"),
        check("identifier=sensor-a", &|s| s["identifier"] == "sensor-a"),
        check("honeypot=dionaea&destination_port=80", &|s| {
            s["honeypot"] == "dionaea" && s["destination_port"] == 80
        }),
        check("country=nl&asn=64500", &|_| true),
    ];
    for (q, want) in cases {
        let r = app
            .get(&format!("/api/session/?limit=1000&{q}"), &key)
            .await;
        assert_eq!(r.status, StatusCode::OK, "{q}");
        let got: HashSet<i64> = ids(&r.json()).into_iter().collect();
        assert_eq!(got, want, "{q}");
    }
    // Credentials and free text: 12 sessions have a root credential (every 5th).
    let r = app
        .get("/api/session/?limit=1000&credential=root", &key)
        .await
        .json();
    assert_eq!(ids(&r).len(), 12);
    let r = app
        .get("/api/session/?limit=1000&q=pw10", &key)
        .await
        .json();
    assert_eq!(ids(&r).len(), 1);
    // Time window: sessions are 10 minutes apart, newest now.
    let r = app
        .get("/api/session/?limit=1000&hours_ago=2", &key)
        .await
        .json();
    let n = ids(&r).len();
    assert!((12..=13).contains(&n), "{n}");
    // Bad values are 400 with the error shape.
    for q in [
        "destination_port=x",
        "source_ip=nope",
        "limit=0",
        "limit=10001",
        "hours_ago=z",
        "cursor=zz",
    ] {
        let r = app.get(&format!("/api/session/?{q}"), &key).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{q}");
        assert!(r.json()["error"].is_string(), "{q}");
    }
}

#[tokio::test]
async fn paging_is_stable_and_complete() {
    let (app, key) = seeded().await;
    let mut seen = Vec::new();
    let mut uri = "/api/session/?limit=7&honeypot=cowrie".to_string();
    loop {
        let r = app.get(&uri, &key).await.json();
        assert!(r["data"].as_array().unwrap().len() <= 7);
        assert_eq!(r["meta"]["limit"], 7);
        seen.extend(ids(&r));
        // New sessions arriving meanwhile do not shift later pages.
        app.insert(vec![(
            session(0, "192.0.2.1", 22, "cowrie", "sensor-a"),
            b"{}".to_vec(),
        )])
        .await;
        match r["meta"]["next_cursor"].as_str() {
            Some(c) => uri = format!("/api/session/?limit=7&honeypot=cowrie&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(seen.len(), 30);
    let uniq: HashSet<_> = seen.iter().collect();
    assert_eq!(uniq.len(), 30);
    // Seeded newest first (session i is i*10 minutes old), so newest first = ascending id.
    let mut sorted = seen.clone();
    sorted.sort();
    assert_eq!(seen, sorted, "newest first");
    // Default limit is 100.
    let r = app.get("/api/session/", &key).await.json();
    assert_eq!(r["meta"]["limit"], 100);
}

#[tokio::test]
async fn session_detail_feed_and_aggregates() {
    let (app, key) = seeded().await;
    let first = app.get("/api/session/?limit=1", &key).await.json();
    let id = first["data"][0]["id"].as_i64().unwrap();
    let one = app.get(&format!("/api/session/{id}/"), &key).await;
    assert_eq!(one.status, StatusCode::OK);
    let one = one.json();
    for k in [
        "_id",
        "protocol",
        "source_ip",
        "source_port",
        "destination_ip",
        "destination_port",
        "honeypot",
        "timestamp",
        "identifier",
        "details",
    ] {
        assert!(one.get(k).is_some(), "{k}");
    }
    assert_eq!(
        app.get("/api/session/999999/", &key).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.get("/api/session/abc/", &key).await.json()["error"],
        "Requested resource was not found."
    );

    let feed = app.get("/api/feed/?limit=5", &key).await.json();
    assert_eq!(feed["data"].as_array().unwrap().len(), 5);
    assert!(feed["data"][0]["payload"]["n"].is_number());
    let feed = app
        .get("/api/feed/?channel=cowrie.sessions&limit=1000", &key)
        .await
        .json();
    assert_eq!(feed["data"].as_array().unwrap().len(), 30);

    let top = app
        .get("/api/top_attackers/?hours_ago=24", &key)
        .await
        .json();
    let total: u64 = top["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["count"].as_u64().unwrap())
        .sum();
    assert_eq!(total, 60);
    assert!(top["data"][0]["source_ip"].is_string() && top["data"][0]["honeypot"].is_string());

    let stats = app
        .get("/api/attacker_stats/198.51.100.7/", &key)
        .await
        .json();
    assert_eq!(stats["data"]["count"], 20);
    assert_eq!(stats["data"]["ports"], json!([22]));
    assert!(stats["data"]["first_seen"].is_string());
    assert_eq!(
        app.get("/api/attacker_stats/not-an-ip/", &key).await.status,
        StatusCode::BAD_REQUEST
    );

    let intel = app.get("/api/intel_feed/?hours_ago=24", &key).await.json();
    assert!(!intel["data"].as_array().unwrap().is_empty());
    let tsv = app.get("/api/intel_feed.csv/?hours_ago=24", &key).await;
    assert!(tsv.text().starts_with("source_ip\tcount\ttags\n"));
    assert!(tsv.text().contains("port-22"));

    for uri in [
        "/api/file/",
        "/api/url/",
        "/api/dork/",
        "/api/metadata/",
        "/api/stats/",
    ] {
        let r = app.get(uri, &key).await;
        assert_eq!(r.status, StatusCode::OK, "{uri}");
        assert!(
            r.json()["data"].is_array() || r.json()["data"].is_object(),
            "{uri}"
        );
    }
    assert_eq!(
        app.get("/api/nope/", &key).await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn sensor_registration_is_mhn_compatible() {
    let app = App::new().await;
    let admin = app.key(ADMIN).await;
    let r = app.json(Method::POST, "/api/sensor/", &admin, json!({"name": "hp01-cowrie", "hostname": "hp01", "honeypot": "cowrie", "deploy_key": "x"}), false).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let s = r.json();
    let uuid = s["uuid"].as_str().unwrap().to_owned();
    assert_eq!(uuid.len(), 36);
    assert_eq!(s["identifier"], uuid);
    assert_eq!(s["publish"], json!(["cowrie.sessions"]));
    let secret = s["secret"].as_str().unwrap().to_owned();
    // The hpfeeds ident exists with that secret and channels.
    let ident = app.store.get_ident(&uuid).await.unwrap().unwrap();
    assert_eq!(ident.secret.expose(), secret);
    assert_eq!(ident.publish, vec!["cowrie.sessions".to_string()]);

    let r = app
        .json(
            Method::POST,
            "/api/sensor/",
            &admin,
            json!({"name": "x"}),
            false,
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        r.json()["error"],
        "Missing required fields: [hostname, honeypot]."
    );
    let r = app
        .json(
            Method::POST,
            "/api/sensor/",
            &admin,
            json!({"name": "hp01-cowrie", "hostname": "h", "honeypot": "cowrie"}),
            false,
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    let r = app
        .send(
            axum::http::Request::post("/api/sensor/")
                .header(
                    "authorization",
                    match &admin {
                        As::Key(k) => format!("Bearer {k}"),
                        _ => unreachable!(),
                    },
                )
                .body(axum::body::Body::from("{"))
                .unwrap(),
        )
        .await;
    assert!(r.status.is_client_error());
    assert!(r.json()["error"].is_string());

    let list = app.get("/api/sensor/", &admin).await.json();
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["secret"], secret);
    assert_eq!(
        app.get("/api/sensor/?honeypot=dionaea", &admin)
            .await
            .json()
            .as_array()
            .unwrap()
            .len(),
        0
    );

    let r = put_sensor(&app, &admin, &uuid, json!({"name": "renamed"})).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["name"], "renamed");
    let r = put_sensor(&app, &admin, &uuid, json!({"honeypot": "x"})).await;
    assert_eq!(r.json()["error"], "\"honeypot\" field is not editable.");
    let r = put_sensor(&app, &admin, &uuid, json!({"color": "x"})).await;
    assert_eq!(r.json()["error"], "\"color\" invalid field.");
    let r = put_sensor(&app, &admin, "nope", json!({"name": "y"})).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    let r = app
        .json(
            Method::POST,
            &format!("/api/sensor/{uuid}/rotate_secret/"),
            &admin,
            json!({}),
            false,
        )
        .await;
    let new_secret = r.json()["secret"].as_str().unwrap().to_owned();
    assert_ne!(new_secret, secret);
    assert_eq!(
        app.store
            .get_ident(&uuid)
            .await
            .unwrap()
            .unwrap()
            .secret
            .expose(),
        new_secret
    );

    let r = app
        .json(
            Method::DELETE,
            &format!("/api/sensor/{uuid}/"),
            &admin,
            json!({}),
            false,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(app.store.get_sensor(&uuid).await.unwrap().is_none());
    assert!(
        app.store.get_ident(&uuid).await.unwrap().is_none(),
        "credentials deleted with the sensor"
    );
}

#[tokio::test]
async fn openapi_lists_every_api_route() {
    let app = App::new().await;
    let key = app.key(ANALYST).await;
    let doc = app.get("/api/openapi.json", &key).await.json();
    assert_eq!(doc["openapi"], "3.0.3");
    let src = include_str!("../src/router.rs");
    for line in src
        .lines()
        .filter(|l| l.contains(".route(\"/api/") || l.contains(".route(\"/auth/"))
    {
        let path = line.split('"').nth(1).unwrap();
        if path.contains('*') {
            continue;
        }
        assert!(
            doc["paths"].get(path).is_some(),
            "{path} missing from openapi.json"
        );
    }
}

/// Sessions for the aggregate endpoints, with distinct counts per (source, group).
async fn aggregate_fixture() -> (App, As) {
    let app = App::new().await;
    let mut batch = Vec::new();
    let mut add = |n: usize, minutes: i64, ip: &str, port: u16, hp: &str, proto: Option<&str>| {
        for k in 0..n {
            let mut s = session(minutes + k as i64, ip, port, hp, "sensor-a");
            s.protocol = proto.map(str::to_owned);
            batch.push((s, b"{}".to_vec()));
        }
    };
    add(5, 1, "198.51.100.1", 22, "cowrie", Some("ssh"));
    add(2, 10, "198.51.100.1", 80, "dionaea", Some("http"));
    add(4, 20, "198.51.100.2", 22, "cowrie", Some("ssh"));
    add(1, 30, "198.51.100.2", 0, "p0f", Some("pcap"));
    add(3, 40, "2001:db8::3", 3389, "dionaea", None);
    // Outside the default 4 hours.
    add(1, 300, "203.0.113.4", 23, "cowrie", Some("telnet"));
    app.insert(batch).await;
    let key = app.key(ANALYST).await;
    (app, key)
}

#[tokio::test]
async fn top_attackers_gives_exact_figures() {
    let (app, key) = aggregate_fixture().await;
    let rows = |v: Value| -> Vec<(String, String, u64)> {
        v["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["source_ip"].as_str().unwrap().to_owned(),
                    r["honeypot"].as_str().unwrap().to_owned(),
                    r["count"].as_u64().unwrap(),
                )
            })
            .collect()
    };
    let r = |ip: &str, hp: &str, n: u64| (ip.to_owned(), hp.to_owned(), n);
    let top = app.get("/api/top_attackers/", &key).await.json();
    assert_eq!(top["meta"]["query"], "top_attackers");
    assert_eq!(top["meta"]["size"], 5);
    assert_eq!(top["meta"]["truncated"], false);
    assert_eq!(
        rows(top),
        vec![
            r("198.51.100.1", "cowrie", 5),
            r("198.51.100.2", "cowrie", 4),
            r("2001:db8::3", "dionaea", 3),
            r("198.51.100.1", "dionaea", 2),
            r("198.51.100.2", "p0f", 1),
        ]
    );
    // A wider window; ties by address.
    let top = app
        .get("/api/top_attackers/?hours_ago=24", &key)
        .await
        .json();
    assert_eq!(
        rows(top)[4..],
        [r("198.51.100.2", "p0f", 1), r("203.0.113.4", "cowrie", 1)]
    );
    let top = app.get("/api/top_attackers/?limit=2", &key).await.json();
    assert_eq!(
        rows(top),
        vec![
            r("198.51.100.1", "cowrie", 5),
            r("198.51.100.2", "cowrie", 4)
        ]
    );
    let top = app
        .get("/api/top_attackers/?honeypot=dionaea", &key)
        .await
        .json();
    assert_eq!(
        rows(top),
        vec![
            r("2001:db8::3", "dionaea", 3),
            r("198.51.100.1", "dionaea", 2)
        ]
    );
    let top = app
        .get(
            "/api/top_attackers/?source_ip=198.51.100.2&hours_ago=24",
            &key,
        )
        .await
        .json();
    assert_eq!(
        rows(top),
        vec![r("198.51.100.2", "cowrie", 4), r("198.51.100.2", "p0f", 1)]
    );
    let top = app
        .get("/api/top_attackers/?hours_ago=0", &key)
        .await
        .json();
    assert_eq!(rows(top), vec![]);
}

#[tokio::test]
async fn intel_feed_gives_exact_figures() {
    let (app, key) = aggregate_fixture().await;
    let intel = app.get("/api/intel_feed/", &key).await.json();
    assert_eq!(intel["meta"]["query"], "intel_feed");
    assert_eq!(
        intel["data"],
        json!([
            {"source_ip": "198.51.100.1", "honeypot": "cowrie", "protocol": "ssh",
             "destination_port": 22, "count": 5, "meta": []},
            {"source_ip": "198.51.100.2", "honeypot": "cowrie", "protocol": "ssh",
             "destination_port": 22, "count": 4, "meta": []},
            {"source_ip": "2001:db8::3", "honeypot": "dionaea", "protocol": "RDP",
             "destination_port": 3389, "count": 3, "meta": []},
            {"source_ip": "198.51.100.1", "honeypot": "dionaea", "protocol": "http",
             "destination_port": 80, "count": 2, "meta": []},
        ])
    );
    let tsv = app
        .get("/api/intel_feed.csv/?hours_ago=24&limit=10", &key)
        .await
        .text();
    assert_eq!(
        tsv,
        "source_ip\tcount\ttags\n\
         198.51.100.1\t5\tcowrie,ssh,port-22\n\
         198.51.100.2\t4\tcowrie,ssh,port-22\n\
         2001:db8::3\t3\tdionaea,RDP,port-3389\n\
         198.51.100.1\t2\tdionaea,http,port-80\n\
         203.0.113.4\t1\tcowrie,telnet,port-23\n"
    );
}

#[tokio::test]
async fn free_text_matches_credentials_signatures_and_urls() {
    let app = App::new().await;
    let mut batch = Vec::new();
    for i in 0..6i64 {
        let mut s = session(i, "198.51.100.9", 22, "cowrie", "sensor-a");
        match i {
            0 => s.details.credentials.push(apiary_model::Credential {
                username: "root".into(),
                password: "toor".into(),
            }),
            1 => {
                s.details.ids = Some(apiary_model::IdsAlert {
                    signature: "ET SCAN Nmap Scripting Engine".into(),
                    ..Default::default()
                })
            }
            2 => s.details.urls = vec!["http://evil.example/x.sh".into()],
            3 => s.details.commands = vec!["wget toor".into()],
            _ => {}
        }
        batch.push((s, b"{}".to_vec()));
    }
    app.insert(batch).await;
    let key = app.key(ANALYST).await;
    let all = ids(&app.get("/api/session/", &key).await.json());
    assert_eq!(all.len(), 6);
    // Newest first: session i is all[i].
    for (q, want) in [
        ("toor", vec![all[0]]),
        ("root", vec![all[0]]),
        ("too", vec![]),
        ("nmap", vec![all[1]]),
        ("EVIL.example/X", vec![all[2]]),
        ("scan", vec![all[1]]),
        ("wget", vec![]),
    ] {
        let got = ids(&app.get(&format!("/api/session/?q={q}"), &key).await.json());
        assert_eq!(got, want, "q={q}");
    }
}
