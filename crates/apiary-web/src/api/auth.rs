//! `/auth/`: MHN's JSON sign-in for scripts, sign-out, who am I.

use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use crate::auth::{self, Caller, Via};
use crate::error::{AppJson, AppResult};
use crate::state::AppState;

/// `POST /auth/login/` body.
#[derive(Deserialize)]
pub struct Login {
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
}

/// `POST /auth/login/`: sets the session cookie; the body is the user plus the CSRF token
/// scripts send back as `X-CSRF-Token` on changes. Needs `Content-Type: application/json`,
/// which a cross-site form cannot send.
pub async fn login(
    State(st): State<AppState>,
    ip: auth::ClientIp,
    AppJson(body): AppJson<Login>,
) -> AppResult<Response> {
    let user = auth::authenticate(&st, ip.0, &body.email, &body.password).await?;
    let (set_cookie, csrf) = auth::start_session(&st, &user).await?;
    Ok((
        [(header::SET_COOKIE, set_cookie)],
        Json(json!({
            "email": user.email, "roles": [user.role.as_str()], "active": true,
            "csrf_token": csrf,
        })),
    )
        .into_response())
}

/// `GET|POST /auth/logout/`: ends the session (if any) and clears the cookie.
pub async fn logout(State(st): State<AppState>, headers: HeaderMap) -> AppResult<Response> {
    if let Some(t) = auth::cookie_value(&headers, auth::SESSION_COOKIE) {
        st.store.delete_web_session(&auth::token_hash(&t)).await?;
    }
    Ok((
        [(
            header::SET_COOKIE,
            auth::cookie(auth::SESSION_COOKIE, "", 0, st.auth.secure_cookies),
        )],
        Json(json!({})),
    )
        .into_response())
}

/// `GET /auth/me/`.
pub async fn me(c: Caller) -> Json<serde_json::Value> {
    Json(json!({
        "id": c.user.id,
        "email": c.user.email,
        "roles": [c.user.role.as_str()],
        "active": true,
        "via": match c.via { Via::Session(_) => "session", Via::ApiKey => "api_key" },
    }))
}
