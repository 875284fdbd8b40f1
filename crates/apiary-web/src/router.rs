//! Every route of the HTTP server.

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderValue, Request, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::state::AppState;
use crate::{api, deploy, live, pages};

/// Builds the application router.
///
/// Every request gets a tracing span (method and path; never the query, which may hold an
/// `api_key`) and, except the never-ending live stream, a deadline
/// (`AppState::request_timeout`): a handler stuck on the database answers 503 instead of
/// holding its connection, and shutdown cannot hang on it. The deadline covers producing
/// the response head; streamed bodies (exports) are not cut off.
pub fn router(state: AppState) -> Router {
    let timeout = state.request_timeout;
    // The live stream never ends, so it stays outside the timeout layer.
    let live = Router::new().route("/api/live", get(live::stream));
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        // ---- JSON auth (MHN's /auth/) ----
        .route("/auth/login/", post(api::auth::login))
        .route(
            "/auth/logout/",
            get(api::auth::logout).post(api::auth::logout),
        )
        .route("/auth/me/", get(api::auth::me))
        // ---- REST API (MHN's /api/) ----
        .route("/api/openapi.json", get(api::openapi::openapi))
        .route("/api/session/", get(api::sessions))
        .route("/api/session/{id}/", get(api::session))
        .route("/api/feed/", get(api::feed))
        .route("/api/feed/{id}/", get(api::feed_one))
        .route("/api/top_attackers/", get(api::top_attackers))
        .route("/api/attacker_stats/{ip}/", get(api::attacker_stats))
        .route("/api/intel_feed/", get(api::intel_feed))
        .route("/api/intel_feed.csv/", get(api::intel_feed_csv))
        .route("/api/file/", get(api::files))
        .route("/api/url/", get(api::urls))
        .route("/api/dork/", get(api::dorks))
        .route("/api/metadata/", get(api::metadata))
        .route("/api/stats/", get(api::stats))
        .route(
            "/api/sensor/",
            get(api::sensors::list).post(api::sensors::create),
        )
        .route(
            "/api/sensor/{uuid}/",
            get(api::sensors::get)
                .put(api::sensors::update)
                .delete(api::sensors::delete),
        )
        .route(
            "/api/sensor/{uuid}/rotate_secret/",
            post(api::sensors::rotate),
        )
        .route("/api/deploy/script/", get(deploy::api_scripts))
        .route("/api/deploy/token/", post(deploy::api_create_token))
        .route(
            "/api/deploy/token/{id}/revoke/",
            post(deploy::api_revoke_token),
        )
        .route("/deploy/{file}", get(deploy::script))
        .route("/deploy/{token}/apiary-sensor", get(deploy::binary))
        .route(
            "/ui/deploy/",
            get(pages::deploy::list).post(pages::deploy::create),
        )
        .route(
            "/ui/deploy/{id}/",
            get(pages::deploy::show).post(pages::deploy::save),
        )
        .route("/ui/deploy/{id}/token/", post(pages::deploy::new_token))
        .route(
            "/ui/deploy/tokens/{id}/revoke/",
            post(pages::deploy::revoke),
        )
        .route("/api/live/history", get(live::history))
        .route("/static/map/{name}", get(live::static_map))
        .route("/api/{*rest}", get(api_not_found).post(api_not_found))
        // ---- pages ----
        .route("/", get(|| async { Redirect::to("/ui/dashboard/") }))
        .route(
            "/ui/login/",
            get(pages::login::show).post(pages::login::submit),
        )
        .route("/ui/logout/", post(pages::login::logout))
        .route("/ui/dashboard/", get(pages::dashboard::show))
        .route("/ui/map/", get(pages::map::show))
        .route("/ui/attacks/", get(pages::attacks::report))
        .route("/ui/attacks/export.csv", get(pages::attacks::export_csv))
        .route("/ui/attacks/export.json", get(pages::attacks::export_json))
        .route("/ui/session/{id}/", get(pages::attacks::detail))
        .route("/ui/payloads/", get(pages::payloads::show))
        .route("/ui/attacker/{ip}/", get(pages::attacker::show))
        .route(
            "/ui/sensors/",
            get(pages::sensors::list).post(pages::sensors::add),
        )
        .route("/ui/sensors/{uuid}/rename/", post(pages::sensors::rename))
        .route("/ui/sensors/{uuid}/delete/", post(pages::sensors::delete))
        .route("/ui/sensors/{uuid}/rotate/", post(pages::sensors::rotate))
        .route("/ui/settings/", get(pages::settings::show))
        .route(
            "/ui/settings/password/",
            post(pages::settings::change_password),
        )
        .route("/ui/settings/apikeys/", post(pages::settings::create_key))
        .route(
            "/ui/settings/apikeys/{id}/delete/",
            post(pages::settings::delete_key),
        )
        .route("/ui/settings/users/", post(pages::settings::add_user))
        .route(
            "/ui/settings/users/{id}/role/",
            post(pages::settings::set_role),
        )
        .route(
            "/ui/settings/users/{id}/delete/",
            post(pages::settings::delete_user),
        )
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            timeout,
        ))
        .layer(axum::middleware::map_response(timed_out_body))
        .merge(live)
        .layer(axum::middleware::map_response(security_headers))
        .layer(TraceLayer::new_for_http().make_span_with(span))
        .with_state(state)
}

/// The timeout layer answers 503 with an empty body; say why, in the API's error shape
/// (every handler's own 503 has a content type, so only the deadline's is touched).
async fn timed_out_body(resp: Response) -> Response {
    if resp.status() != StatusCode::SERVICE_UNAVAILABLE
        || resp.headers().contains_key(header::CONTENT_TYPE)
    {
        return resp;
    }
    tracing::warn!("request answered 503 at the http.request_timeout_secs deadline");
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(serde_json::json!({"error": "the request took too long and was cancelled"})),
    )
        .into_response()
}

/// The span of one request: method and path only (a query string may carry an API key).
fn span(req: &Request<Body>) -> tracing::Span {
    tracing::info_span!("http", method = %req.method(), path = %req.uri().path())
}

/// Headers on every response: no sniffing, no framing, no referrer (an `api_key` in a URL
/// must not leak), no caching of authenticated pages, and a CSP that allows no inline script
/// and nothing from elsewhere (same-origin scripts only: the live map and its ticker).
async fn security_headers(mut resp: Response) -> Response {
    let h = resp.headers_mut();
    let set = |h: &mut axum::http::HeaderMap, k: header::HeaderName, v: &'static str| {
        h.insert(k, HeaderValue::from_static(v));
    };
    set(h, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(h, header::X_FRAME_OPTIONS, "DENY");
    set(h, header::REFERRER_POLICY, "no-referrer");
    set(
        h,
        header::CONTENT_SECURITY_POLICY,
        "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'unsafe-inline'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    );
    if !h.contains_key(header::CACHE_CONTROL) {
        set(h, header::CACHE_CONTROL, "no-store");
    }
    resp
}

async fn api_not_found(_c: crate::auth::Caller) -> crate::error::AppError {
    crate::error::AppError::NotFound
}

/// Liveness plus a store round trip: 200 when the database answers, 503 otherwise.
async fn healthz(State(state): State<AppState>) -> impl IntoResponse {
    match state.store.idents_version().await {
        Ok(_) => {
            let problems: serde_json::Map<String, serde_json::Value> = state
                .metrics
                .iter()
                .filter_map(|m| m.problem())
                .map(|(what, text)| (what.to_owned(), text.into()))
                .collect();
            if problems.is_empty() {
                (StatusCode::OK, Json(serde_json::json!({"status": "ok"})))
            } else {
                let mut body = problems;
                body.insert("status".into(), "degraded".into());
                (StatusCode::SERVICE_UNAVAILABLE, Json(body.into()))
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "health check: store unavailable");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(serde_json::json!({"status": "error", "error": "store unavailable"})),
            )
        }
    }
}

async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let mut out = String::with_capacity(8 * 1024);
    for source in state.metrics.iter() {
        source.render(&mut out);
    }
    state.live.render(&mut out);
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        out,
    )
}
