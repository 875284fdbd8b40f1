//! Every page on real data, and hostile data escaped everywhere (pages, CSV, JSON).

mod common;

use axum::http::StatusCode;
use common::*;

async fn seeded() -> (App, i64) {
    let app = App::new().await;
    let mut batch = Vec::new();
    for i in 0..20i64 {
        let mut s = session(
            i * 30,
            "198.51.100.7",
            if i % 2 == 0 { 22 } else { 80 },
            "cowrie",
            "sensor-a",
        );
        s.details.credentials.push(apiary_model::Credential {
            username: "root".into(),
            password: "123456".into(),
        });
        s.details.ids = Some(apiary_model::IdsAlert {
            signature: "ET SCAN test".into(),
            ..Default::default()
        });
        batch.push((s, b"{\"x\":1}".to_vec()));
    }
    app.insert(batch).await;
    let key = app.key(ADMIN).await;
    let id = app.get("/api/session/?limit=1", &key).await.json()["data"][0]["id"]
        .as_i64()
        .unwrap();
    (app, id)
}

#[tokio::test]
async fn every_page_renders_for_admin_and_analyst() {
    let (app, id) = seeded().await;
    for email in [ADMIN, ANALYST] {
        let who = app.login(email).await;
        for uri in pages("198.51.100.7", id) {
            let r = app.get(&uri, &who).await;
            assert_eq!(r.status, StatusCode::OK, "{email} {uri}: {}", r.text());
            let csp = r
                .headers
                .get("content-security-policy")
                .unwrap()
                .to_str()
                .unwrap();
            assert!(csp.contains("default-src 'none'"));
        }
    }
    let who = app.login(ADMIN).await;
    let dash = app.get("/ui/dashboard/", &who).await.text();
    assert!(dash.contains("Attacks in the last 24 hours"));
    assert!(dash.contains(">20<"), "count shown");
    assert!(dash.contains("/ui/attacks/?source_ip=198.51.100.7"));
    assert!(dash.contains("/ui/attacks/?destination_port=22"));
    assert!(dash.contains("/ui/attacks/?credential=root"));
    assert!(dash.contains("<svg"));
    assert!(dash.contains("NL"));
    let rep = app
        .get("/ui/attacks/?destination_port=22", &who)
        .await
        .text();
    assert_eq!(rep.matches("/ui/session/").count(), 10);
    assert!(rep.contains("value=\"22\""), "filters kept in the form");
    assert!(rep.contains("export.csv?destination_port=22"));
    let page1 = app.get("/ui/attacks/?limit=15", &who).await.text();
    assert!(page1.contains("Older"));
    let att = app.get("/ui/attacker/198.51.100.7/", &who).await.text();
    assert!(att.contains("123456") && att.contains("AS64500") || att.contains("64500"));
    let det = app.get(&format!("/ui/session/{id}/"), &who).await.text();
    assert!(
        det.contains("ET SCAN test") && det.contains("&quot;x&quot;: 1")
            || det.contains("\"x\": 1")
    );
    assert_eq!(
        app.get("/ui/session/999999/", &who).await.status,
        StatusCode::NOT_FOUND
    );
    let csv = app
        .get("/ui/attacks/export.csv?destination_port=80", &who)
        .await
        .text();
    assert_eq!(csv.lines().count(), 11);
    let json = app
        .get("/ui/attacks/export.json?destination_port=80", &who)
        .await
        .json();
    assert_eq!(json["data"].as_array().unwrap().len(), 10);
}

#[tokio::test]
async fn sensor_pages_add_rename_rotate_delete() {
    let mut app = App::new().await;
    // The settings to paste name the configured public broker address, not a default.
    app.state = app
        .state
        .clone()
        .with_deploy(apiary_web::deploy::DeployConfig {
            hpfeeds_host: Some("hp.example.net".into()),
            hpfeeds_port: 20443,
            ..Default::default()
        });
    let who = app.login(ADMIN).await;
    let csrf = csrf_of(&who);
    let r = app
        .form(
            "/ui/sensors/",
            &who,
            &[
                ("csrf", &csrf),
                ("name", "hp01"),
                ("hostname", "hp01.lan"),
                ("honeypot", "dionaea"),
                ("ip", ""),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let sensors = app.store.list_sensors().await.unwrap();
    let s = &sensors[0];
    let ident = app.store.get_ident(&s.ident).await.unwrap().unwrap();
    let t = r.text();
    assert!(t.contains(&format!("HPFEEDS_IDENT={}", ident.ident)));
    assert!(t.contains("HPFEEDS_HOST=hp.example.net\n"), "{t}");
    assert!(t.contains("HPFEEDS_PORT=20443\n"), "{t}");
    assert!(t.contains(ident.secret.expose()));
    assert!(t.contains("dionaea.connections"));
    let list = app.get("/ui/sensors/", &who).await.text();
    assert!(
        list.contains("hp01.lan")
            && list.contains("offline")
            && !list.contains(ident.secret.expose())
    );
    let r = app
        .form(
            &format!("/ui/sensors/{}/rename/", s.uuid),
            &who,
            &[("csrf", &csrf), ("name", "hp02"), ("hostname", "h2")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(
        app.store.get_sensor(&s.uuid).await.unwrap().unwrap().name,
        "hp02"
    );
    let r = app
        .form(
            &format!("/ui/sensors/{}/rotate/", s.uuid),
            &who,
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let new = app.store.get_ident(&s.ident).await.unwrap().unwrap();
    assert_ne!(new.secret.expose(), ident.secret.expose());
    assert!(r.text().contains(new.secret.expose()));
    let r = app
        .form(
            &format!("/ui/sensors/{}/delete/", s.uuid),
            &who,
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert!(app.store.list_sensors().await.unwrap().is_empty());
    assert!(app.store.get_ident(&s.ident).await.unwrap().is_none());
}

#[tokio::test]
async fn hostile_data_is_escaped_on_every_page_and_guarded_in_exports() {
    let app = App::new().await;
    let mut batch = Vec::new();
    for (i, evil) in XSS.iter().enumerate() {
        batch.push((hostile_session(i as i64, evil), evil.as_bytes().to_vec()));
    }
    // A 1 MB string and an invalid UTF-8 payload.
    let huge = format!("<script>{}</script>", "A".repeat(1 << 20));
    batch.push((
        hostile_session(5, &huge),
        vec![
            0xff, 0xfe, b'<', b's', b'c', b'r', b'i', b'p', b't', b'>', 0x00, 0x80,
        ],
    ));
    app.insert(batch).await;
    // A hostile sensor name too.
    let admin = app.login(ADMIN).await;
    let csrf = csrf_of(&admin);
    app.form(
        "/ui/sensors/",
        &admin,
        &[
            ("csrf", &csrf),
            ("name", XSS[1]),
            ("hostname", XSS[0]),
            ("honeypot", "cowrie"),
            ("ip", ""),
        ],
    )
    .await;

    let key = app.key(ADMIN).await;
    let ids: Vec<i64> = app.get("/api/session/", &key).await.json()["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids.len(), 5);
    let mut uris: Vec<String> = pages("203.0.113.66", ids[0])
        .into_iter()
        .filter(|u| !u.contains("export"))
        .collect();
    for id in &ids {
        uris.push(format!("/ui/session/{id}/"));
    }
    uris.push("/ui/attacks/?q=script".into());
    uris.push(format!(
        "/ui/attacks/?protocol={}",
        "%3Cscript%3Ealert(1)%3C%2Fscript%3E"
    ));
    for uri in uris {
        let r = app.get(&uri, &admin).await;
        assert_eq!(r.status, StatusCode::OK, "{uri}");
        let t = r.text();
        for bad in ["<script>", "<img src=x", "onerror=alert(1)>"] {
            assert!(!t.contains(bad), "{uri} contains raw {bad}");
        }
        assert!(!t.contains("\"><img"), "{uri} attribute breakout");
    }
    let det = app
        .get(&format!("/ui/session/{}/", ids[0]), &admin)
        .await
        .text();
    assert!(det.contains("&lt;script&gt;") || det.contains("&quot;&gt;&lt;img"));
    // Template syntax is shown literally; the invalid UTF-8 payload is shown as hex.
    let (mut saw_template, mut saw_hex) = (false, false);
    for id in &ids {
        let t = app.get(&format!("/ui/session/{id}/"), &admin).await.text();
        saw_template |= t.contains("{{7*7}}");
        saw_hex |= t.contains("ff fe 3c 73");
    }
    assert!(saw_template, "template syntax shown literally");
    assert!(saw_hex, "binary payload shown as hex");
    let payloads = app.get("/ui/payloads/", &admin).await.text();
    assert!(payloads.contains("ff fe 3c 73"));

    // CSV: every formula-looking cell is prefixed with a quote; nothing starts a cell with =.
    let csv = app.get("/ui/attacks/export.csv", &admin).await;
    assert_eq!(csv.status, StatusCode::OK);
    let t = csv.text();
    assert!(t.contains("\"'=cmd|'/c calc'!A1\""));
    assert!(
        !t.contains(",\"=") && !t.contains(",\"+") && !t.contains(",\"@") && !t.contains(",\"-")
    );
    assert_eq!(
        csv.headers.get("content-type").unwrap(),
        "text/csv; charset=utf-8"
    );
    // JSON export is JSON (escaped by the encoder) with a JSON content type.
    let j = app.get("/ui/attacks/export.json", &admin).await;
    assert_eq!(j.headers.get("content-type").unwrap(), "application/json");
    assert_eq!(j.json()["data"].as_array().unwrap().len(), 5);
    // The TSV intel feed is guarded too.
    let tsv = app
        .get("/api/intel_feed.csv/?hours_ago=24", &key)
        .await
        .text();
    for line in tsv.lines().skip(1) {
        let tags = line.split('\t').nth(2).unwrap();
        assert!(!tags.starts_with('='), "{line}");
    }
}

#[tokio::test]
async fn exports_stream_every_page_of_a_large_set() {
    let app = App::new().await;
    // More than two store pages of the export (2,000 each), plus sessions filtered out.
    let n = 4_321;
    let mut rows: Vec<(apiary_model::Session, Vec<u8>)> = (0..n)
        .map(|i| {
            (
                session(i % 600, "203.0.113.9", 22, "cowrie", "s1"),
                b"{}".to_vec(),
            )
        })
        .collect();
    rows.extend((0..50).map(|i| {
        (
            session(i, "198.51.100.1", 80, "glastopf", "s1"),
            b"{}".to_vec(),
        )
    }));
    app.insert(rows).await;
    let who = app.login(ANALYST).await;
    let r = app
        .get("/ui/attacks/export.csv?destination_port=22", &who)
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let csv = r.text();
    assert_eq!(csv.lines().count(), n as usize + 1, "header + every row");
    let ids: std::collections::HashSet<&str> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap())
        .collect();
    assert_eq!(ids.len(), n as usize, "no row twice");
    let json = app
        .get("/ui/attacks/export.json?destination_port=22", &who)
        .await
        .json();
    assert_eq!(json["data"].as_array().unwrap().len(), n as usize);
    assert_eq!(json["meta"]["size"], n);
    assert_eq!(json["meta"]["query"]["destination_port"], "22");
    let empty = app
        .get("/ui/attacks/export.json?destination_port=1", &who)
        .await
        .json();
    assert_eq!(empty["data"].as_array().unwrap().len(), 0);
    assert_eq!(empty["meta"]["size"], 0);
}

/// A component that reports a problem, as the pipeline does while commits fail.
struct Failing;

impl apiary_web::MetricsSource for Failing {
    fn render(&self, _out: &mut String) {}

    fn problem(&self) -> Option<(&'static str, String)> {
        Some(("ingest", "batch commits failing for 42 s".into()))
    }
}

#[tokio::test]
async fn settings_show_storage_to_admins_and_health_reports_problems() {
    let (mut app, _) = seeded().await;
    app.state = app.state.clone().with_retention(apiary_web::RetentionView {
        raw_days: 30,
        session_days: 0,
        max_size_mb: 500,
    });
    let admin = app.login(ADMIN).await;
    let t = app.get("/ui/settings/", &admin).await.text();
    assert!(t.contains("<h2>Storage</h2>"), "{t}");
    assert!(t.contains("of a 500.0 MB budget"), "{t}");
    assert!(t.contains("<meter"), "the budget is drawn: {t}");
    assert!(t.contains("20 stored, kept 30 days"), "{t}");
    assert!(t.contains("20 sessions stored, kept forever"), "{t}");
    assert!(t.contains("working"), "{t}");
    let analyst = app.login(ANALYST).await;
    let t = app.get("/ui/settings/", &analyst).await.text();
    assert!(!t.contains("Storage"), "admins only: {t}");
    assert_eq!(app.get("/healthz", &As::Anon).await.status, StatusCode::OK);

    // A component in trouble: the page says so and /healthz answers 503.
    app.state.metrics = std::sync::Arc::new(vec![std::sync::Arc::new(Failing)]);
    let t = app.get("/ui/settings/", &admin).await.text();
    assert!(t.contains("ingest: batch commits failing for 42 s"), "{t}");
    let r = app.get("/healthz", &As::Anon).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.json()["status"], "degraded");
    assert_eq!(r.json()["ingest"], "batch commits failing for 42 s");
}
