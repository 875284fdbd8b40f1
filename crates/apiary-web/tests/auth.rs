//! Sign-in, sessions, API keys, CSRF, roles and rate limits, against the real router.

mod common;

use axum::http::{Method, StatusCode};
use common::*;
use serde_json::json;

#[tokio::test]
async fn login_sets_a_hardened_cookie_and_logout_ends_it() {
    let app = App::new().await;
    let r = app
        .post_login(json!({"email": ADMIN, "password": PASSWORD}))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let body = r.json();
    assert_eq!(body["email"], ADMIN);
    assert_eq!(body["roles"], json!(["admin"]));
    let set = r.set_cookies().join("\n");
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict") && set.contains("Max-Age="),
        "{set}"
    );
    let token = set
        .split(';')
        .next()
        .unwrap()
        .trim_start_matches("apiary_session=");
    assert_eq!(token.len(), 64, "256-bit token, hex");

    let who = app.login(ADMIN).await;
    assert_eq!(app.get("/auth/me/", &who).await.status, StatusCode::OK);
    let As::Cookie { cookie, .. } = &who else {
        unreachable!()
    };
    // The store keeps only the hash of the token.
    assert!(app
        .store
        .web_session(cookie.trim_start_matches("apiary_session="))
        .await
        .unwrap()
        .is_none());

    let r = app.get("/auth/logout/", &who).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        app.get("/auth/me/", &who).await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn wrong_password_is_401_and_unknown_user_looks_the_same() {
    let app = App::new().await;
    for email in [ADMIN, "nobody@example.org"] {
        let r = app
            .post_login(json!({"email": email, "password": "wrong password"}))
            .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        assert_eq!(
            r.json(),
            json!({"error": "Incorrect username or password."})
        );
    }
    let r = app.post_login(json!({"email": ADMIN})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.json()["error"].is_string());
}

#[tokio::test]
async fn login_is_rate_limited_per_account() {
    let app = App::new().await;
    for _ in 0..5 {
        let r = app
            .post_login(json!({"email": ANALYST, "password": "nope nope"}))
            .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    }
    // Even the right password is refused now, without being checked.
    let r = app
        .post_login(json!({"email": ANALYST, "password": PASSWORD}))
        .await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(r.json()["error"].is_string());
}

#[tokio::test]
async fn anonymous_gets_401_on_every_api_endpoint_and_a_redirect_on_every_page() {
    let app = App::new().await;
    for uri in api_gets("198.51.100.7", 1) {
        let r = app.get(&uri, &As::Anon).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{uri}");
        assert!(r.json()["error"].is_string(), "{uri}");
    }
    for (m, uri) in [
        (Method::POST, "/api/sensor/"),
        (Method::PUT, "/api/sensor/x/"),
        (Method::DELETE, "/api/sensor/x/"),
        (Method::POST, "/api/sensor/x/rotate_secret/"),
    ] {
        let r = app
            .json(
                m,
                uri,
                &As::Anon,
                json!({"name": "a", "hostname": "b", "honeypot": "cowrie"}),
                false,
            )
            .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{uri}");
    }
    for uri in pages("198.51.100.7", 1)
        .into_iter()
        .chain(["/".to_string()])
    {
        let r = app.get(&uri, &As::Anon).await;
        assert!(r.status.is_redirection(), "{uri}: {}", r.status);
        if uri != "/" {
            assert!(
                r.location().starts_with("/ui/login/?next="),
                "{uri}: {}",
                r.location()
            );
        }
    }
    // Anonymous form posts are refused too.
    for uri in [
        "/ui/sensors/",
        "/ui/settings/users/",
        "/ui/settings/apikeys/",
        "/ui/logout/",
    ] {
        let r = app.form(uri, &As::Anon, &[("csrf", "x")]).await;
        assert!(r.status.is_redirection(), "{uri}");
    }
    assert_eq!(app.get("/healthz", &As::Anon).await.status, StatusCode::OK);
    assert_eq!(
        app.get("/ui/login/", &As::Anon).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn api_keys_work_by_header_and_query_and_are_never_echoed() {
    let app = App::new().await;
    let As::Key(key) = app.key(ANALYST).await else {
        unreachable!()
    };
    let r = app.get("/api/session/", &As::Key(key.clone())).await;
    assert_eq!(r.status, StatusCode::OK);
    let r = app
        .get(&format!("/api/session/?api_key={key}&limit=5"), &As::Anon)
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(!r.text().contains(&key), "api_key echoed");
    assert_eq!(r.json()["meta"]["query"]["limit"], "5");
    let r = app
        .get("/api/session/?api_key=0123456789abcdef", &As::Anon)
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    // The store has only the hash.
    let keys = app.store.list_api_keys(None).await.unwrap();
    assert!(keys
        .iter()
        .all(|k| k.prefix.len() == 8 && !key.eq(&k.prefix)));
    assert!(app.store.user_by_api_key(&key).await.unwrap().is_none());
}

#[tokio::test]
async fn analyst_cannot_change_anything() {
    let app = App::new().await;
    let admin = app.key(ADMIN).await;
    let r = app.post_sensor_s1(&admin, false).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let uuid = r.json()["uuid"].as_str().unwrap().to_owned();

    for who in [app.key(ANALYST).await, app.login(ANALYST).await] {
        for (m, uri) in [
            (Method::POST, "/api/sensor/".to_string()),
            (Method::PUT, format!("/api/sensor/{uuid}/")),
            (Method::DELETE, format!("/api/sensor/{uuid}/")),
            (Method::POST, format!("/api/sensor/{uuid}/rotate_secret/")),
        ] {
            let r = app
                .json(
                    m.clone(),
                    &uri,
                    &who,
                    json!({"name": "x", "hostname": "y", "honeypot": "cowrie"}),
                    true,
                )
                .await;
            assert_eq!(r.status, StatusCode::FORBIDDEN, "{m} {uri}");
            assert!(r.json()["error"].is_string());
        }
        // Secrets are not shown to analysts.
        let list = app.get("/api/sensor/", &who).await.json();
        assert!(list[0]["secret"].is_null());
    }
    let analyst = app.login(ANALYST).await;
    let csrf = csrf_of(&analyst);
    let (u, _) = app.store.user_with_password(ADMIN).await.unwrap().unwrap();
    for (uri, extra) in [
        (
            "/ui/sensors/".to_string(),
            vec![("name", "n"), ("hostname", "h"), ("honeypot", "cowrie")],
        ),
        (
            format!("/ui/sensors/{uuid}/rename/"),
            vec![("name", "n"), ("hostname", "h")],
        ),
        (format!("/ui/sensors/{uuid}/delete/"), vec![]),
        (format!("/ui/sensors/{uuid}/rotate/"), vec![]),
        (
            "/ui/settings/users/".to_string(),
            vec![
                ("email", "x@y"),
                ("password", "longenough1"),
                ("role", "admin"),
            ],
        ),
        (
            format!("/ui/settings/users/{}/role/", u.id),
            vec![("role", "analyst")],
        ),
        (format!("/ui/settings/users/{}/delete/", u.id), vec![]),
    ] {
        let mut pairs = vec![("csrf", csrf.as_str())];
        pairs.extend(extra);
        let r = app.form(&uri, &analyst, &pairs).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{uri}");
    }
    // Nothing changed.
    assert_eq!(app.store.list_sensors().await.unwrap().len(), 1);
    assert_eq!(app.store.list_users().await.unwrap().len(), 2);
    // And the pages show no mutating forms.
    for uri in ["/ui/sensors/", "/ui/settings/"] {
        let t = app.get(uri, &analyst).await.text();
        assert!(
            !t.contains("/rename/")
                && !t.contains("/ui/settings/users/")
                && !t.contains("Rotate secret"),
            "{uri}"
        );
    }
}

#[tokio::test]
async fn csrf_is_required_for_cookie_callers() {
    let app = App::new().await;
    let admin = app.login(ADMIN).await;
    // JSON API without the header.
    let r = app.post_sensor_s1(&admin, false).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(r.json()["error"].as_str().unwrap().contains("CSRF"));
    // With it.
    let r = app.post_sensor_s1(&admin, true).await;
    assert_eq!(r.status, StatusCode::OK);
    // Forms without or with a wrong token.
    for pairs in [
        vec![("name", "s2"), ("hostname", "h"), ("honeypot", "cowrie")],
        vec![
            ("csrf", "forged"),
            ("name", "s2"),
            ("hostname", "h"),
            ("honeypot", "cowrie"),
        ],
    ] {
        let r = app.form("/ui/sensors/", &admin, &pairs).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);
    }
    for uri in [
        "/ui/settings/apikeys/",
        "/ui/logout/",
        "/ui/settings/password/",
    ] {
        let r = app.form(uri, &admin, &[("csrf", "forged")]).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{uri}");
    }
    assert_eq!(app.store.list_sensors().await.unwrap().len(), 1);
    assert!(app.store.list_api_keys(None).await.unwrap().is_empty());
    // A token from another session does not work either.
    let other = app.login(ADMIN).await;
    let r = app
        .form(
            "/ui/settings/apikeys/",
            &admin,
            &[("csrf", &csrf_of(&other))],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn login_form_uses_double_submit_and_redirects_locally() {
    let app = App::new().await;
    let r = app.get("/ui/login/?next=/ui/attacks/", &As::Anon).await;
    let set = r
        .set_cookies()
        .into_iter()
        .find(|c| c.starts_with("apiary_login="))
        .unwrap();
    let pre = set.split(';').next().unwrap().to_owned();
    let token = pre.trim_start_matches("apiary_login=").to_owned();
    assert!(r.text().contains(&token));
    let who = As::Cookie {
        cookie: pre.clone(),
        csrf: String::new(),
    };
    // Missing token → refused.
    let r = app
        .form(
            "/ui/login/",
            &who,
            &[("email", ADMIN), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = app
        .form(
            "/ui/login/",
            &who,
            &[
                ("csrf", &token),
                ("email", ADMIN),
                ("password", PASSWORD),
                ("next", "https://evil.example/"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(r.location(), "/ui/dashboard/");
    let session = r
        .set_cookies()
        .into_iter()
        .find(|c| c.starts_with("apiary_session="))
        .unwrap();
    let cookie = session.split(';').next().unwrap().to_owned();
    let r = app
        .get(
            "/ui/dashboard/",
            &As::Cookie {
                cookie,
                csrf: String::new(),
            },
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = app
        .form(
            "/ui/login/",
            &who,
            &[
                ("csrf", &token),
                ("email", ADMIN),
                ("password", "bad password"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(r.text().contains("Incorrect username or password."));
}

#[tokio::test]
async fn settings_flows_password_keys_users() {
    let app = App::new().await;
    let admin = app.login(ADMIN).await;
    let csrf = csrf_of(&admin);
    // Create a key: shown once on the page.
    let r = app
        .form(
            "/ui/settings/apikeys/",
            &admin,
            &[("csrf", &csrf), ("label", "ci")],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let t = r.text();
    let start = t.find("<pre class=\"secret\">").unwrap() + "<pre class=\"secret\">".len();
    let key = t[start..start + 64].to_owned();
    assert_eq!(
        app.get("/api/session/", &As::Key(key.clone())).await.status,
        StatusCode::OK
    );
    assert!(!app.get("/ui/settings/", &admin).await.text().contains(&key));
    // Add an analyst.
    let r = app
        .form(
            "/ui/settings/users/",
            &admin,
            &[
                ("csrf", &csrf),
                ("email", "new@example.org"),
                ("password", "new password 1"),
                ("role", "analyst"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let users = app.store.list_users().await.unwrap();
    let new = users.iter().find(|u| u.email == "new@example.org").unwrap();
    assert_eq!(new.role, apiary_model::Role::Analyst);
    // Promote, then delete.
    let r = app
        .form(
            &format!("/ui/settings/users/{}/role/", new.id),
            &admin,
            &[("csrf", &csrf), ("role", "admin")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(
        app.store.user_by_id(new.id).await.unwrap().unwrap().role,
        apiary_model::Role::Admin
    );
    let r = app
        .form(
            &format!("/ui/settings/users/{}/delete/", new.id),
            &admin,
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert!(app.store.user_by_id(new.id).await.unwrap().is_none());
    // Change password: sessions end, the new password works.
    let r = app
        .form(
            "/ui/settings/password/",
            &admin,
            &[
                ("csrf", &csrf),
                ("current", PASSWORD),
                ("password", "another long one"),
                ("password_repeat", "another long one"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
    assert!(app
        .get("/ui/dashboard/", &admin)
        .await
        .status
        .is_redirection());
    let r = app
        .post_login(json!({"email": ADMIN, "password": "another long one"}))
        .await;
    assert_eq!(r.status, StatusCode::OK);
}

#[tokio::test]
async fn first_admin_is_created_once() {
    let store = apiary_store::open("sqlite::memory:").await.unwrap();
    let (email, pw) = apiary_web::auth::bootstrap_admin(&*store, None, None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(email, "admin@localhost");
    let pw = pw.unwrap();
    assert!(pw.len() >= 16);
    let (_, hash) = store.user_with_password(&email).await.unwrap().unwrap();
    assert!(hash.starts_with("$argon2id$") && !hash.contains(&pw));
    assert!(apiary_web::auth::verify_password(&pw, &hash));
    assert!(apiary_web::auth::bootstrap_admin(&*store, None, None)
        .await
        .unwrap()
        .is_none());

    let store = apiary_store::open("sqlite::memory:").await.unwrap();
    let r = apiary_web::auth::bootstrap_admin(
        &*store,
        Some("ops@example.org".into()),
        Some("given password".into()),
    )
    .await
    .unwrap();
    assert_eq!(r, Some(("ops@example.org".into(), None)));
}
