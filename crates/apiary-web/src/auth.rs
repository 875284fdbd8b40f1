//! Sign-in, sessions, API keys, CSRF and roles.
//!
//! - Passwords: argon2id PHC strings; verification runs on the blocking pool.
//! - Browser sessions: a random 256-bit token in an `HttpOnly; SameSite=Strict` cookie;
//!   the store keeps its SHA-256 only, with an expiry. Each session has its own random
//!   synchronizer token that every state-changing form (field `csrf`) or cookie-authenticated
//!   API call (header `X-CSRF-Token`) must echo.
//! - API keys: random 256-bit, `Authorization: Bearer <key>` or `?api_key=` (MHN style);
//!   stored as SHA-256, shown once at creation. Key-authenticated calls need no CSRF token
//!   (no ambient credential a browser would attach).
//! - Sign-in attempts: at most `max_failures` failures per `failure_window`, counted per
//!   client address and per account; more get 429 without the password being checked.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use apiary_model::{Role, User, WebSession};
use apiary_store::Store;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use axum::extract::{ConnectInfo, FromRef, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{header, Method};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::Utc;
use parking_lot::Mutex;
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::AppError;
use crate::state::AppState;

/// Name of the session cookie.
pub const SESSION_COOKIE: &str = "apiary_session";
/// Name of the pre-sign-in CSRF cookie (double-submit for the login form).
pub const LOGIN_COOKIE: &str = "apiary_login";
/// Header carrying the CSRF token on cookie-authenticated API calls.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// Shortest password accepted for new passwords.
pub const MIN_PASSWORD_LEN: usize = 8;
/// Longest password accepted (bounds hashing work).
pub const MAX_PASSWORD_LEN: usize = 1024;

/// Sign-in settings.
pub struct AuthConfig {
    /// argon2id cost for new hashes (existing hashes carry their own).
    pub argon2: Params,
    /// How long a browser session lasts.
    pub session_ttl: chrono::Duration,
    /// Adds `Secure` to cookies (set when served over HTTPS).
    pub secure_cookies: bool,
    /// Failed sign-ins allowed per window, per address and per account.
    pub max_failures: usize,
    /// The window.
    pub failure_window: Duration,
    dummy_hash: OnceLock<String>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            argon2: Params::default(),
            session_ttl: chrono::Duration::hours(12),
            secure_cookies: false,
            max_failures: 5,
            failure_window: Duration::from_secs(15 * 60),
            dummy_hash: OnceLock::new(),
        }
    }
}

impl AuthConfig {
    /// These settings with browser sessions lasting `ttl` and cookies marked `Secure`
    /// when `secure` (the server's `http.session_hours` and `http.secure_cookies`).
    pub fn with_sessions(mut self, ttl: chrono::Duration, secure: bool) -> Self {
        self.session_ttl = ttl;
        self.secure_cookies = secure;
        self
    }

    /// Cheap hashing for tests only: never use in production.
    pub fn insecure_fast_for_tests() -> Self {
        Self {
            argon2: fast_params(),
            ..Self::default()
        }
    }
}

/// The cheapest argon2 parameters (tests).
pub fn fast_params() -> Params {
    Params::new(8, 1, 1, None).unwrap_or_default()
}

fn hasher(params: &Params) -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
}

/// Checks a new password against the length policy.
pub fn check_new_password(pw: &str) -> Result<(), AppError> {
    let n = pw.chars().count();
    if n < MIN_PASSWORD_LEN {
        return Err(AppError::BadRequest(format!(
            "Password must be at least {MIN_PASSWORD_LEN} characters."
        )));
    }
    if pw.len() > MAX_PASSWORD_LEN {
        return Err(AppError::BadRequest("Password is too long.".into()));
    }
    Ok(())
}

/// Hashes a password into an argon2id PHC string.
pub fn hash_password(pw: &str, params: &Params) -> Result<String, AppError> {
    let mut salt = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(|e| AppError::Internal(e.to_string()))?;
    hasher(params)
        .hash_password(pw.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| AppError::Internal(format!("password hashing failed: {e}")))
}

/// [`hash_password`] on the blocking pool: argon2 is slow by design and must not stall
/// the async workers.
pub async fn hash_password_blocking(pw: String, params: Params) -> Result<String, AppError> {
    tokio::task::spawn_blocking(move || hash_password(&pw, &params))
        .await
        .map_err(|e| AppError::Internal(e.to_string()))?
}

/// Verifies a password against a PHC string (false for malformed hashes).
pub fn verify_password(pw: &str, phc: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(h) => Argon2::default().verify_password(pw.as_bytes(), &h).is_ok(),
        Err(_) => false,
    }
}

/// 32 random bytes, hex.
pub fn random_token() -> String {
    let mut b = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut b);
    hex::encode(b)
}

/// SHA-256 hex of a token: what the store keeps.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

fn ct_eq(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// Creates an API key for a user; returns the key (show it once) and its record.
pub async fn create_api_key(
    store: &dyn Store,
    user_id: i64,
    label: &str,
) -> Result<(String, apiary_model::ApiKey), AppError> {
    let key = random_token();
    let prefix: String = key.chars().take(8).collect();
    let label: String = label.trim().chars().take(100).collect();
    let rec = store
        .create_api_key(user_id, &token_hash(&key), &prefix, &label)
        .await?;
    Ok((key, rec))
}

/// Creates the first admin when there are no users. Returns the email and, when the
/// password was generated, the password (to print once).
pub async fn bootstrap_admin(
    store: &dyn Store,
    email: Option<String>,
    password: Option<String>,
) -> Result<Option<(String, Option<String>)>, AppError> {
    if store.count_users().await? > 0 {
        return Ok(None);
    }
    let email = email
        .filter(|e| !e.trim().is_empty())
        .unwrap_or_else(|| "admin@localhost".into());
    let (password, generated) = match password.filter(|p| !p.is_empty()) {
        Some(p) => {
            check_new_password(&p)?;
            (p, false)
        }
        None => (random_token()[..24].to_string(), true),
    };
    let hash = hash_password_blocking(password.clone(), Params::default()).await?;
    let user = store.create_user(&email, Role::Admin, &hash).await?;
    Ok(Some((user.email, generated.then_some(password))))
}

// ---- login rate limiting ----

/// Failed sign-in counters, in memory (a restart forgets them, which is acceptable:
/// the point is to make online guessing slow, and restarts are rare and visible).
pub struct LoginLimiter {
    max: usize,
    window: Duration,
    failures: Mutex<HashMap<String, Vec<Instant>>>,
}

/// Keys kept before old entries are swept, so a flood of addresses cannot grow the map
/// without bound.
const LIMITER_SWEEP_AT: usize = 10_000;

impl LoginLimiter {
    /// `max` failures per `window`.
    pub fn new(max: usize, window: Duration) -> Self {
        Self {
            max: max.max(1),
            window,
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// True when any key has used up its failures.
    pub fn blocked(&self, keys: &[String]) -> bool {
        let now = Instant::now();
        let map = self.failures.lock();
        keys.iter().any(|k| {
            map.get(k).is_some_and(|v| {
                v.iter()
                    .filter(|t| now.duration_since(**t) < self.window)
                    .count()
                    >= self.max
            })
        })
    }

    /// Counts a failure against every key.
    pub fn fail(&self, keys: &[String]) {
        let now = Instant::now();
        let mut map = self.failures.lock();
        if map.len() >= LIMITER_SWEEP_AT {
            let w = self.window;
            map.retain(|_, v| v.iter().any(|t| now.duration_since(*t) < w));
        }
        for k in keys {
            let v = map.entry(k.clone()).or_default();
            v.retain(|t| now.duration_since(*t) < self.window);
            v.push(now);
        }
    }

    /// Forgets a key's failures (after a successful sign-in).
    pub fn reset(&self, key: &str) {
        self.failures.lock().remove(key);
    }
}

/// The client address as the socket saw it (no proxy headers are trusted).
pub fn client_ip(parts: &Parts) -> Option<IpAddr> {
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
}

/// The client address as an extractor (`None` when the server was not started with
/// connect info, as in tests).
pub struct ClientIp(pub Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(client_ip(parts)))
    }
}

/// Checks email and password with rate limiting; returns the user.
pub async fn authenticate(
    state: &AppState,
    ip: Option<IpAddr>,
    email: &str,
    password: &str,
) -> Result<User, AppError> {
    let email = email.trim();
    if email.is_empty() {
        return Err(AppError::BadRequest(
            "Missing required \"email\" parameter.".into(),
        ));
    }
    if password.is_empty() {
        return Err(AppError::BadRequest(
            "Missing required \"password\" parameter.".into(),
        ));
    }
    let keys = [
        format!(
            "ip:{}",
            ip.map_or_else(|| "unknown".into(), |i| i.to_string())
        ),
        format!("acct:{}", email.to_lowercase()),
    ];
    if state.limiter.blocked(&keys) {
        tracing::warn!(client = ?ip, "sign-in refused: too many failures");
        return Err(AppError::TooManyRequests);
    }
    let found = if password.len() > MAX_PASSWORD_LEN {
        None
    } else {
        state.store.user_with_password(email).await?
    };
    // An unknown user costs as much as a known one, so timing does not tell them apart.
    let phc = match &found {
        Some((_, h)) => h.clone(),
        None => dummy_hash(&state.auth),
    };
    let pw = password.to_owned();
    let ok = tokio::task::spawn_blocking(move || verify_password(&pw, &phc))
        .await
        .map_err(|e| AppError::Internal(e.to_string()))?;
    match found {
        Some((user, _)) if ok => {
            state.limiter.reset(&keys[1]);
            Ok(user)
        }
        _ => {
            state.limiter.fail(&keys);
            tracing::info!(client = ?ip, "sign-in failed");
            Err(AppError::Unauthorized(
                "Incorrect username or password.".into(),
            ))
        }
    }
}

fn dummy_hash(cfg: &AuthConfig) -> String {
    cfg.dummy_hash
        .get_or_init(|| hash_password(&random_token(), &cfg.argon2).unwrap_or_default())
        .clone()
}

/// Starts a browser session; returns the `Set-Cookie` value and the session's CSRF token.
pub async fn start_session(state: &AppState, user: &User) -> Result<(String, String), AppError> {
    let token = random_token();
    let now = Utc::now();
    let s = WebSession {
        token_hash: token_hash(&token),
        user_id: user.id,
        csrf: random_token(),
        created_at: now,
        expires_at: now + state.auth.session_ttl,
    };
    state.store.create_web_session(&s).await?;
    let set = cookie(
        SESSION_COOKIE,
        &token,
        state.auth.session_ttl.num_seconds(),
        state.auth.secure_cookies,
    );
    Ok((set, s.csrf))
}

/// A `Set-Cookie` value: HttpOnly, SameSite=Strict, Path=/.
pub fn cookie(name: &str, value: &str, max_age: i64, secure: bool) -> String {
    format!(
        "{name}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{}",
        if secure { "; Secure" } else { "" }
    )
}

/// A cookie's value from the request.
pub fn cookie_value(parts_headers: &axum::http::HeaderMap, name: &str) -> Option<String> {
    parts_headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

// ---- the extractor ----

/// How the caller proved who they are.
#[derive(Debug, Clone)]
pub enum Via {
    /// A browser session (CSRF tokens apply).
    Session(WebSession),
    /// An API key.
    ApiKey,
}

/// An authenticated caller. Extracting it fails with 401 for anonymous requests.
#[derive(Debug, Clone)]
pub struct Caller {
    /// Who.
    pub user: User,
    /// How.
    pub via: Via,
    csrf_header: Option<String>,
    method: Method,
}

impl Caller {
    /// True for admins.
    pub fn is_admin(&self) -> bool {
        self.user.role == Role::Admin
    }

    /// The session's CSRF token (empty for API-key callers).
    pub fn csrf(&self) -> &str {
        match &self.via {
            Via::Session(s) => &s.csrf,
            Via::ApiKey => "",
        }
    }

    /// Refuses a state change whose CSRF token does not match the session's. API-key
    /// callers pass: a browser never attaches a key by itself.
    pub fn check_csrf(&self, token: Option<&str>) -> Result<(), AppError> {
        match &self.via {
            Via::ApiKey => Ok(()),
            Via::Session(s) => match token {
                Some(t) if ct_eq(t, &s.csrf) => Ok(()),
                _ => Err(AppError::Forbidden("Missing or invalid CSRF token.".into())),
            },
        }
    }

    /// For JSON API changes: admin, and for cookie callers the `X-CSRF-Token` header.
    pub fn require_api_write(&self) -> Result<(), AppError> {
        debug_assert!(self.method != Method::GET);
        self.check_csrf(self.csrf_header.as_deref())?;
        if !self.is_admin() {
            return Err(AppError::forbidden());
        }
        Ok(())
    }

    /// For form posts: admin, and the form's `csrf` field.
    pub fn require_form_write(&self, token: &str) -> Result<(), AppError> {
        self.check_csrf(Some(token))?;
        if !self.is_admin() {
            return Err(AppError::forbidden());
        }
        Ok(())
    }
}

fn bearer(parts: &Parts) -> Option<String> {
    let v = parts.headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, key) = v.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| key.trim().to_owned())
}

fn query_api_key(parts: &Parts) -> Option<String> {
    let q = parts.uri.query()?;
    serde_urlencoded::from_str::<Vec<(String, String)>>(q)
        .ok()?
        .into_iter()
        .find(|(k, _)| k == "api_key")
        .map(|(_, v)| v)
}

/// Resolves the caller of a request, or `None` when anonymous. A key or cookie that is
/// present but wrong is also `None`.
pub async fn resolve(parts: &Parts, state: &AppState) -> Result<Option<Caller>, AppError> {
    let csrf_header = parts
        .headers
        .get(CSRF_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let mk = |user, via| Caller {
        user,
        via,
        csrf_header: csrf_header.clone(),
        method: parts.method.clone(),
    };
    if let Some(key) = bearer(parts).or_else(|| query_api_key(parts)) {
        if key.is_empty() || key.len() > 256 {
            return Ok(None);
        }
        return Ok(state
            .store
            .user_by_api_key(&token_hash(&key))
            .await?
            .map(|u| mk(u, Via::ApiKey)));
    }
    if let Some(token) = cookie_value(&parts.headers, SESSION_COOKIE) {
        if token.is_empty() || token.len() > 256 {
            return Ok(None);
        }
        return Ok(state
            .store
            .web_session(&token_hash(&token))
            .await?
            .map(|(s, u)| mk(u, Via::Session(s))));
    }
    Ok(None)
}

impl<S> FromRequestParts<S> for Caller
where
    S: Send + Sync,
    AppState: FromRef<S>,
{
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let state = AppState::from_ref(state);
        resolve(parts, &state)
            .await?
            .ok_or_else(AppError::unauthorized)
    }
}

/// A caller on an HTML page: anonymous requests are redirected to the sign-in page.
pub struct PageCaller(pub Caller);

/// Rejection of [`PageCaller`].
pub enum PageRejection {
    /// Go sign in.
    Login(String),
    /// Something failed.
    Error(AppError),
}

impl IntoResponse for PageRejection {
    fn into_response(self) -> Response {
        match self {
            Self::Login(next) => {
                let q = serde_urlencoded::to_string([("next", next)]).unwrap_or_default();
                Redirect::to(&format!("/ui/login/?{q}")).into_response()
            }
            Self::Error(e) => crate::pages::HtmlError(e).into_response(),
        }
    }
}

impl<S> FromRequestParts<S> for PageCaller
where
    S: Send + Sync,
    AppState: FromRef<S>,
{
    type Rejection = PageRejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let state = AppState::from_ref(state);
        match resolve(parts, &state).await {
            Ok(Some(c)) => Ok(Self(c)),
            Ok(None) => Err(PageRejection::Login(
                parts
                    .uri
                    .path_and_query()
                    .map_or("/", |p| p.as_str())
                    .to_owned(),
            )),
            Err(e) => Err(PageRejection::Error(e)),
        }
    }
}

/// Only local paths are followed after sign-in (no open redirect).
pub fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n)
            if n.starts_with('/')
                && !n.starts_with("//")
                && !n.contains('\\')
                && !n.chars().any(char::is_control) =>
        {
            n.to_owned()
        }
        _ => "/ui/dashboard/".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_and_verify() {
        let h = hash_password("correct horse", &fast_params()).unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("correct horse", &h));
        assert!(!verify_password("wrong", &h));
        assert!(!verify_password("x", "not a hash"));
    }

    #[test]
    fn limiter_blocks_after_max() {
        let l = LoginLimiter::new(2, Duration::from_secs(60));
        let k = ["ip:1".to_string()];
        assert!(!l.blocked(&k));
        l.fail(&k);
        l.fail(&k);
        assert!(l.blocked(&k));
        l.reset("ip:1");
        assert!(!l.blocked(&k));
    }

    #[test]
    fn next_is_local_only() {
        assert_eq!(safe_next(Some("/ui/attacks/?a=1")), "/ui/attacks/?a=1");
        assert_eq!(safe_next(Some("//evil.example")), "/ui/dashboard/");
        assert_eq!(safe_next(Some("https://evil.example")), "/ui/dashboard/");
        assert_eq!(safe_next(Some("/\\evil")), "/ui/dashboard/");
    }
}
