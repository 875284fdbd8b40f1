//! Sign-in and sign-out pages.

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use serde::Deserialize;

use crate::auth::{self, PageCaller, LOGIN_COOKIE, SESSION_COOKIE};
use crate::error::{AppError, AppForm};
use crate::query::Params;
use crate::state::AppState;

use super::{bare, CsrfForm, HtmlError, Page};

fn login_page(st: &AppState, next: &str, error: Option<&str>, status: StatusCode) -> Response {
    let token = auth::random_token();
    let body = bare(
        "Sign in",
        html! {
            main {
                h1 { "Apiary — sign in" }
                @if let Some(e) = error { p.flash { (e) } }
                form method="post" action="/ui/login/" {
                    input type="hidden" name="csrf" value=(token);
                    input type="hidden" name="next" value=(next);
                    p { label { "Email " input type="text" name="email" autocomplete="username" required; } }
                    p { label { "Password " input type="password" name="password" autocomplete="current-password" required; } }
                    p { button type="submit" { "Sign in" } }
                }
            }
        },
    );
    (
        status,
        [(
            header::SET_COOKIE,
            auth::cookie(LOGIN_COOKIE, &token, 3600, st.auth.secure_cookies),
        )],
        Page(body),
    )
        .into_response()
}

/// `GET /ui/login/`.
pub async fn show(State(st): State<AppState>, headers: HeaderMap, p: Params) -> Response {
    let next = auth::safe_next(p.get("next"));
    let signed_in = match auth::cookie_value(&headers, SESSION_COOKIE) {
        Some(t) => matches!(
            st.store.web_session(&auth::token_hash(&t)).await,
            Ok(Some(_))
        ),
        None => false,
    };
    if signed_in {
        return Redirect::to(&next).into_response();
    }
    login_page(&st, &next, None, StatusCode::OK)
}

/// The sign-in form.
#[derive(Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    next: String,
}

/// `POST /ui/login/`: the form carries the token also set as a cookie by the sign-in page
/// (double submit), so another site cannot sign a browser into an account of its choice.
pub async fn submit(
    State(st): State<AppState>,
    ip: auth::ClientIp,
    headers: HeaderMap,
    AppForm(f): AppForm<LoginForm>,
) -> Response {
    let next = auth::safe_next(Some(&f.next));
    let cookie = auth::cookie_value(&headers, LOGIN_COOKIE).unwrap_or_default();
    if f.csrf.is_empty() || cookie != f.csrf {
        return login_page(
            &st,
            &next,
            Some("The sign-in form expired; please try again."),
            StatusCode::FORBIDDEN,
        );
    }
    let user = match auth::authenticate(&st, ip.0, &f.email, &f.password).await {
        Ok(u) => u,
        Err(e) => {
            let (status, msg) = e.parts();
            return login_page(&st, &next, Some(&msg), status);
        }
    };
    match auth::start_session(&st, &user).await {
        Ok((set, _)) => {
            let mut resp = Redirect::to(&next).into_response();
            let h = resp.headers_mut();
            for v in [
                set,
                auth::cookie(LOGIN_COOKIE, "", 0, st.auth.secure_cookies),
            ] {
                if let Ok(v) = v.parse() {
                    h.append(header::SET_COOKIE, v);
                }
            }
            resp
        }
        Err(e) => HtmlError(e).into_response(),
    }
}

/// `POST /ui/logout/`.
pub async fn logout(
    State(st): State<AppState>,
    PageCaller(c): PageCaller,
    AppForm(f): AppForm<CsrfForm>,
) -> Result<Response, HtmlError> {
    c.check_csrf(Some(&f.csrf))?;
    if let auth::Via::Session(s) = &c.via {
        st.store.delete_web_session(&s.token_hash).await?;
    }
    let mut resp = Redirect::to("/ui/login/").into_response();
    let v = auth::cookie(SESSION_COOKIE, "", 0, st.auth.secure_cookies);
    resp.headers_mut().append(
        header::SET_COOKIE,
        v.parse().map_err(|_| AppError::Internal("cookie".into()))?,
    );
    Ok(resp)
}
