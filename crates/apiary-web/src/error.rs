//! One error type for every handler, mapped to a status in one `match`.

use apiary_store::StoreError;
use axum::extract::rejection::{FormRejection, JsonRejection};
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::de::DeserializeOwned;

/// What can go wrong in a handler. JSON handlers render it as `{"error": "..."}`; page
/// handlers wrap it in [`crate::pages::HtmlError`].
#[derive(Debug)]
pub enum AppError {
    /// The request is malformed (bad filter value, missing field).
    BadRequest(String),
    /// No valid credentials.
    Unauthorized(String),
    /// Signed in, but not allowed (analyst, missing CSRF token).
    Forbidden(String),
    /// No such object.
    NotFound,
    /// A unique name is taken.
    Conflict(String),
    /// Too many failed sign-ins.
    TooManyRequests,
    /// A body the extractor refused, with the extractor's status.
    Rejected(StatusCode, String),
    /// Anything else; the detail is logged, never returned.
    Internal(String),
}

impl AppError {
    /// Status and the message safe to show.
    pub fn parts(&self) -> (StatusCode, String) {
        match self {
            Self::BadRequest(m) => (StatusCode::BAD_REQUEST, m.clone()),
            Self::Unauthorized(m) => (StatusCode::UNAUTHORIZED, m.clone()),
            Self::Forbidden(m) => (StatusCode::FORBIDDEN, m.clone()),
            Self::NotFound => (
                StatusCode::NOT_FOUND,
                "Requested resource was not found.".into(),
            ),
            Self::Conflict(m) => (StatusCode::CONFLICT, m.clone()),
            Self::TooManyRequests => (
                StatusCode::TOO_MANY_REQUESTS,
                "Too many failed sign-in attempts; try again later.".into(),
            ),
            Self::Rejected(s, m) => (*s, m.clone()),
            Self::Internal(detail) => {
                tracing::error!(error = %detail, "request failed");
                (StatusCode::INTERNAL_SERVER_ERROR, "internal error".into())
            }
        }
    }

    /// 401 with MHN's message.
    pub fn unauthorized() -> Self {
        Self::Unauthorized("Not authorized to perform this request.".into())
    }

    /// 403 for a signed-in caller without the right.
    pub fn forbidden() -> Self {
        Self::Forbidden("This action needs the admin role.".into())
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let (status, msg) = self.parts();
        (status, Json(serde_json::json!({ "error": msg }))).into_response()
    }
}

impl From<StoreError> for AppError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => Self::NotFound,
            StoreError::Conflict(m) => Self::Conflict(m),
            StoreError::Invalid(m) => Self::BadRequest(m),
            StoreError::Other(m) => Self::Internal(m),
        }
    }
}

/// `Json` whose rejections are [`AppError`]s, so every error has one shape.
pub struct AppJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for AppJson<T> {
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(Self(v)),
            Err(r) => Err(json_rejection(r)),
        }
    }
}

fn json_rejection(r: JsonRejection) -> AppError {
    AppError::Rejected(r.status(), r.body_text())
}

/// `Form` whose rejections are [`AppError`]s.
pub struct AppForm<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for AppForm<T> {
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Form::<T>::from_request(req, state).await {
            Ok(axum::Form(v)) => Ok(Self(v)),
            Err(r) => Err(form_rejection(r)),
        }
    }
}

fn form_rejection(r: FormRejection) -> AppError {
    AppError::Rejected(r.status(), r.body_text())
}

/// Handler result.
pub type AppResult<T> = Result<T, AppError>;
