//! The HTTP side of Apiary: health, Prometheus metrics, the web app and the REST API.
//!
//! # Layout
//! - [`router`]: `router(state)`, the one place that lists every route.
//! - [`cache`]: a short-lived single-flight cache (dashboard figures).
//! - [`state`]: what handlers share (store, metric sources, sign-in settings).
//! - [`auth`]: passwords, browser sessions, API keys, CSRF, roles, sign-in rate limits;
//!   the [`auth::Caller`] extractor.
//! - [`error`]: [`error::AppError`] and its one status mapping; JSON/form extractors.
//! - [`query`]: query strings → store filters and pages (MHN's filter names).
//! - [`live`]: `/api/live` (SSE), `/api/live/history` and the map's static assets.
//! - [`ops`]: sensor registration, free-text session search, shared by API and pages.
//! - [`export`]: CSV (formula-guarded) export of sessions.
//! - [`api`]: `/api/` and `/auth/` JSON handlers.
//! - [`pages`]: server-rendered HTML (maud, escaped by construction).

pub mod api;
pub mod auth;
pub mod cache;
pub mod deploy;
pub mod error;
pub mod export;
pub mod live;
pub mod ops;
pub mod pages;
pub mod query;
pub mod router;
pub mod state;

pub use router::router;
pub use state::{AppState, MetricsSource, RetentionView};
