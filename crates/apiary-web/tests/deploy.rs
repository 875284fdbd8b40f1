//! Deployment over HTTP: token-gated scripts (expiry, revocation), the sensor binary,
//! enrollment-token registration (idempotent), the Deploy page (escaping, roles).

mod common;

use apiary_store::NewEnrollmentToken;
use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use chrono::{Duration, Utc};
use common::*;
use serde_json::json;

async fn app() -> App {
    let mut app = App::new().await;
    let bin = std::env::temp_dir().join(format!("apiary-sensor-test-{}", std::process::id()));
    std::fs::write(&bin, b"\x7fELF fake sensor").unwrap();
    app.state = app
        .state
        .clone()
        .with_deploy(apiary_web::deploy::DeployConfig {
            public_url: None,
            hpfeeds_host: None,
            hpfeeds_port: 10000,
            sensor_binary: Some(bin),
        });
    assert_eq!(apiary_web::deploy::seed(&*app.store).await.unwrap(), 7);
    assert_eq!(apiary_web::deploy::seed(&*app.store).await.unwrap(), 0);
    app
}

/// An upgrade brings seeded scripts nobody edited to the new release's body (as a new
/// version); a script an admin saved stays as the admin left it.
#[tokio::test]
async fn seeding_updates_unedited_scripts_only() {
    use apiary_web::deploy::{seed, SEED_AUTHOR};
    let app = App::new().await;
    let store = &*app.store;
    // As an older release left them: p0f unedited, Snort edited by an admin.
    let old_p0f = store
        .create_deploy_script("p0f", "p0f", "# old p0f\n", "old", SEED_AUTHOR)
        .await
        .unwrap();
    let snort = store
        .create_deploy_script("Snort", "snort", "# old snort\n", "old", SEED_AUTHOR)
        .await
        .unwrap();
    store
        .update_deploy_script(snort.id, "# mine\n", "local change", "admin@example.org")
        .await
        .unwrap();
    // 5 created, p0f updated, Snort kept.
    assert_eq!(seed(store).await.unwrap(), 6);
    let p0f = store.deploy_script(old_p0f.id).await.unwrap().unwrap();
    assert_eq!(p0f.version, 2);
    assert!(p0f.body.contains("p0f"), "{}", p0f.body);
    assert_ne!(p0f.body, "# old p0f\n");
    assert_eq!(
        store
            .deploy_script_versions(old_p0f.id)
            .await
            .unwrap()
            .len(),
        2
    );
    let snort = store.deploy_script(snort.id).await.unwrap().unwrap();
    assert_eq!(snort.body, "# mine\n");
    assert_eq!(snort.version, 2);
    assert_eq!(seed(store).await.unwrap(), 0);
}

async fn token(app: &App, admin: &As, script: &str) -> String {
    let r = app
        .json(
            Method::POST,
            "/api/deploy/token/",
            admin,
            json!({"script": script, "hours": 2}),
            false,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let v = r.json();
    let t = v["token"].as_str().unwrap().to_owned();
    assert_eq!(
        v["command"].as_str().unwrap(),
        format!("curl -fsSL http://localhost/deploy/{t}.sh | sudo bash")
    );
    t
}

async fn get_host(app: &App, uri: &str) -> Resp {
    app.send(
        Request::builder()
            .uri(uri)
            .header(header::HOST, "10.77.0.1:8080")
            .body(Body::empty())
            .unwrap(),
    )
    .await
}

#[tokio::test]
async fn scripts_are_token_gated_and_rendered() {
    let app = app().await;
    let admin = app.key(ADMIN).await;
    let analyst = app.key(ANALYST).await;
    let t = token(&app, &admin, "Apiary sensor").await;
    // Analysts cannot mint tokens.
    let r = app
        .json(
            Method::POST,
            "/api/deploy/token/",
            &analyst,
            json!({"script": "Cowrie"}),
            false,
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);

    let r = get_host(&app, &format!("/deploy/{t}.sh")).await;
    assert_eq!(r.status, StatusCode::OK);
    let s = r.text();
    assert!(s.contains("SERVER_URL=\"http://10.77.0.1:8080\""), "{s}");
    assert!(s.contains(&format!("TOKEN=\"{t}\"")));
    assert!(s.contains("HPF_HOST=\"10.77.0.1\""));
    assert!(s.contains("HPF_PORT=\"10000\""));
    assert!(!s.contains("{{"), "placeholders left");

    let bin = get_host(&app, &format!("/deploy/{t}/apiary-sensor")).await;
    assert_eq!(bin.status, StatusCode::OK);
    assert_eq!(bin.body, b"\x7fELF fake sensor");

    // Unknown, malformed, expired and revoked tokens: the same bare 404.
    let unknown = "0".repeat(64);
    let expired = {
        let tok = "e".repeat(64);
        let script = app.store.list_deploy_scripts().await.unwrap()[0].id;
        app.store
            .create_enrollment_token(&NewEnrollmentToken {
                script_id: script,
                token_hash: apiary_web::auth::token_hash(&tok),
                prefix: "eeee".into(),
                label: String::new(),
                created_by: String::new(),
                expires_at: Utc::now() - Duration::seconds(1),
            })
            .await
            .unwrap();
        tok
    };
    let revoked = token(&app, &admin, "Cowrie").await;
    let id = app
        .store
        .enrollment_token(&apiary_web::auth::token_hash(&revoked))
        .await
        .unwrap()
        .unwrap()
        .id;
    let r = app
        .json(
            Method::POST,
            &format!("/api/deploy/token/{id}/revoke/"),
            &admin,
            json!({}),
            false,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let mut bodies = Vec::new();
    for bad in [
        unknown.as_str(),
        "short",
        expired.as_str(),
        revoked.as_str(),
    ] {
        for uri in [
            format!("/deploy/{bad}.sh"),
            format!("/deploy/{bad}/apiary-sensor"),
        ] {
            let r = get_host(&app, &uri).await;
            assert_eq!(r.status, StatusCode::NOT_FOUND, "{uri}");
            bodies.push(r.text());
        }
    }
    assert!(
        bodies.iter().all(|b| *b == bodies[0]),
        "404s differ: {bodies:?}"
    );
    // Registration with them is refused too.
    for bad in [&unknown, &expired, &revoked] {
        let r = app
            .json(
                Method::POST,
                "/api/sensor/",
                &As::Anon,
                json!({"name": "x", "hostname": "h", "honeypot": "apiary", "deploy_key": bad}),
                false,
            )
            .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{bad}");
    }
}

#[tokio::test]
async fn missing_sensor_binary_is_a_clear_json_404() {
    let mut app = app().await;
    app.state = app
        .state
        .clone()
        .with_deploy(apiary_web::deploy::DeployConfig {
            hpfeeds_port: 10000,
            sensor_binary: Some("/nonexistent/apiary-sensor".into()),
            ..Default::default()
        });
    let admin = app.key(ADMIN).await;
    let t = token(&app, &admin, "Apiary sensor").await;
    let r = app
        .get(&format!("/deploy/{t}/apiary-sensor"), &As::Anon)
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(r.json()["error"]
        .as_str()
        .unwrap()
        .contains("deploy.sensor_binary"));
}

#[tokio::test]
async fn enrollment_registration_is_idempotent() {
    let app = app().await;
    let admin = app.key(ADMIN).await;
    let t = token(&app, &admin, "Apiary sensor").await;
    let reg = |body: serde_json::Value, header_token: Option<String>| {
        let mut b = Request::builder()
            .method(Method::POST)
            .uri("/api/sensor/")
            .header(header::CONTENT_TYPE, "application/json");
        if let Some(h) = header_token {
            b = b.header(header::AUTHORIZATION, format!("Enrollment {h}"));
        }
        b.body(Body::from(body.to_string())).unwrap()
    };
    // Header only (no deploy_key), then body only (MHN's flow), then both.
    let r1 = app
        .send(reg(
            json!({"name": "pot-apiary", "hostname": "pot", "honeypot": "apiary"}),
            Some(t.clone()),
        ))
        .await;
    assert_eq!(r1.status, StatusCode::OK, "{}", r1.text());
    let v1 = r1.json();
    let uuid = v1["uuid"].as_str().unwrap().to_owned();
    assert!(!v1["secret"].as_str().unwrap().is_empty());
    let publish: Vec<&str> = v1["publish"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    for c in [
        "apiary.events",
        "apiary.heartbeat",
        "suricata.eve",
        "p0f.log",
    ] {
        assert!(publish.contains(&c), "{publish:?}");
    }
    let r2 = app
        .send(reg(
            json!({"name": "pot-apiary", "hostname": "pot", "honeypot": "apiary", "deploy_key": t}),
            None,
        ))
        .await;
    assert_eq!(r2.json()["uuid"], uuid.as_str());
    assert_eq!(r2.json()["secret"], v1["secret"]);
    let r3 = app
        .send(reg(
            json!({"hostname": "renamed-host", "uuid": uuid, "deploy_key": t}),
            Some(t.clone()),
        ))
        .await;
    assert_eq!(
        r3.json()["uuid"],
        uuid.as_str(),
        "an existing uuid is reused"
    );
    assert_eq!(app.store.list_sensors().await.unwrap().len(), 1);
    // Another host with the same token: a second sensor (the name is made unique).
    let r4 = app
        .send(reg(
            json!({"name": "pot-apiary", "hostname": "pot2", "honeypot": "apiary"}),
            Some(t.clone()),
        ))
        .await;
    assert_eq!(r4.status, StatusCode::OK, "{}", r4.text());
    assert_ne!(r4.json()["uuid"], uuid.as_str());
    assert_eq!(app.store.list_sensors().await.unwrap().len(), 2);
    // A uuid this token did not register is not handed out.
    let t2 = token(&app, &admin, "Cowrie").await;
    let r5 = app
        .send(reg(
            json!({"hostname": "other", "uuid": uuid, "honeypot": "cowrie"}),
            Some(t2.clone()),
        ))
        .await;
    assert_ne!(r5.json()["uuid"], uuid.as_str());
    let used = app.store.list_enrollment_tokens(None).await.unwrap();
    assert!(used.iter().any(|x| x.uses == 4), "{used:?}");
    // Without a token: still 401 for anonymous callers.
    let r = app
        .send(reg(
            json!({"name": "a", "hostname": "b", "honeypot": "c"}),
            None,
        ))
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn deploy_page_escapes_and_enforces_roles() {
    let app = app().await;
    let admin = app.login(ADMIN).await;
    let analyst = app.login(ANALYST).await;
    let evil = "<script>alert(1)</script>";
    let r = app
        .form(
            "/ui/deploy/",
            &admin,
            &[
                ("csrf", &csrf_of(&admin)),
                ("name", evil),
                ("honeypot", "apiary"),
                ("body", "echo '</textarea><script>x()</script>'\n"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
    let loc = r.location();
    for who in [&admin, &analyst] {
        let page = app.get("/ui/deploy/", who).await;
        assert_eq!(page.status, StatusCode::OK);
        let html = page.text();
        assert!(!html.contains(evil), "unescaped name");
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(html.contains("Apiary sensor") && html.contains("Suricata"));
        let detail = app.get(&loc, who).await.text();
        assert!(!detail.contains("<script>x()"), "unescaped body");
    }
    assert!(!app
        .get("/ui/deploy/", &analyst)
        .await
        .text()
        .contains("New script"));
    // Analysts cannot edit, mint or revoke.
    let id: i64 = loc
        .trim_matches('/')
        .rsplit('/')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let r = app
        .form(
            &format!("/ui/deploy/{id}/"),
            &analyst,
            &[("csrf", &csrf_of(&analyst)), ("body", "x")],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = app
        .form(
            &format!("/ui/deploy/{id}/token/"),
            &analyst,
            &[("csrf", &csrf_of(&analyst)), ("hours", "1")],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // Admin without CSRF: refused; with it: a new version, and a token command.
    let r = app
        .form(&format!("/ui/deploy/{id}/"), &admin, &[("body", "x")])
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = app
        .form(
            &format!("/ui/deploy/{id}/"),
            &admin,
            &[
                ("csrf", &csrf_of(&admin)),
                ("body", "echo v2\r\n"),
                ("notes", "second"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let versions = app.store.deploy_script_versions(id).await.unwrap();
    assert_eq!(versions.len(), 2);
    assert_eq!(versions[0].body, "echo v2\n");
    assert_eq!(versions[0].author, ADMIN);
    let r = app
        .form(
            &format!("/ui/deploy/{id}/token/"),
            &admin,
            &[("csrf", &csrf_of(&admin)), ("hours", "3"), ("label", "lab")],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(
        r.text().contains("curl -fsSL http://localhost/deploy/"),
        "{}",
        r.text()
    );
    let tok = app
        .store
        .list_enrollment_tokens(Some(id))
        .await
        .unwrap()
        .remove(0);
    let r = app
        .form(
            &format!("/ui/deploy/tokens/{}/revoke/", tok.id),
            &analyst,
            &[("csrf", &csrf_of(&analyst))],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = app
        .form(
            &format!("/ui/deploy/tokens/{}/revoke/", tok.id),
            &admin,
            &[("csrf", &csrf_of(&admin))],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert!(app.store.list_enrollment_tokens(Some(id)).await.unwrap()[0].revoked);
}
