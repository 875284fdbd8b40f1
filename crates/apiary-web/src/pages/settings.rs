//! `/ui/settings/`: your account, API keys, and (admins) users.
//!
//! Analysts may change their own password and manage their own API keys (self-service,
//! no effect on data or other people); everything else here is admin-only.

use apiary_model::Role;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use serde::Deserialize;

use crate::auth::{self, PageCaller};
use crate::error::{AppError, AppForm};
use crate::query::human;
use crate::state::AppState;

use super::{csrf_field, layout, CsrfForm, HtmlError, Page, PageResult};

/// `GET /ui/settings/`.
pub async fn show(State(st): State<AppState>, PageCaller(c): PageCaller) -> PageResult {
    let admin = c.is_admin();
    let keys = st
        .store
        .list_api_keys(if admin { None } else { Some(c.user.id) })
        .await?;
    let users = if admin {
        st.store.list_users().await?
    } else {
        vec![c.user.clone()]
    };
    let storage = if admin {
        Some(Storage::read(&st).await?)
    } else {
        None
    };
    let email_of = |id: i64| {
        users
            .iter()
            .find(|u| u.id == id)
            .map_or("?".to_owned(), |u| u.email.clone())
    };
    let body = html! {
        h2 { "Your account" }
        p { (c.user.email) " — role " strong { (c.user.role.as_str()) } }
        h2 { "Change password" }
        form method="post" action="/ui/settings/password/" {
            (csrf_field(&c))
            p { label { "Current password " input type="password" name="current" autocomplete="current-password" required; } }
            p { label { "New password " input type="password" name="password" autocomplete="new-password" required; } }
            p { label { "New password again " input type="password" name="password_repeat" autocomplete="new-password" required; } }
            button type="submit" { "Change password" }
        }
        h2 { "API keys" }
        p { "Use a key as " code { "Authorization: Bearer KEY" } " or " code { "?api_key=KEY" } ". Keys are shown once, when created." }
        table {
            tr { th { "Key starts with" } th { "Label" } @if admin { th { "Owner" } } th { "Created (UTC)" } th { "" } }
            @for k in &keys {
                tr {
                    td { code { (k.prefix) "…" } } td { (k.label) } @if admin { td { (email_of(k.user_id)) } } td { (human(k.created_at)) }
                    td { form method="post" action=(format!("/ui/settings/apikeys/{}/delete/", k.id)) { (csrf_field(&c)) button type="submit" { "Revoke" } } }
                }
            }
        }
        form method="post" action="/ui/settings/apikeys/" {
            (csrf_field(&c))
            label { "Label " input type="text" name="label" maxlength="100"; }
            " " button type="submit" { "Create API key" }
        }
        @if let Some(s) = &storage {
            (s.render(&st.retention))
        }
        @if admin {
            h2 { "Users" }
            table {
                tr { th { "Email" } th { "Role" } th { "Created (UTC)" } th { "" } }
                @for u in &users {
                    tr {
                        td { (u.email) @if u.id == c.user.id { " (me)" } }
                        td { @if u.id == c.user.id { (u.role.as_str()) } @else {
                            form method="post" action=(format!("/ui/settings/users/{}/role/", u.id)) {
                                (csrf_field(&c))
                                select name="role" { @for r in ["admin", "analyst"] { option value=(r) selected[r == u.role.as_str()] { (r) } } }
                                button type="submit" { "Set" }
                            }
                        } }
                        td { (human(u.created_at)) }
                        td { @if u.id != c.user.id {
                            form method="post" action=(format!("/ui/settings/users/{}/delete/", u.id)) { (csrf_field(&c)) button type="submit" { "Delete" } }
                        } }
                    }
                }
            }
            h3 { "Add user" }
            form method="post" action="/ui/settings/users/" {
                (csrf_field(&c))
                p { label { "Email " input type="text" name="email" required; } }
                p { label { "Password " input type="password" name="password" autocomplete="new-password" required; } }
                p { label { "Role " select name="role" { option value="analyst" { "analyst (read-only)" } option value="admin" { "admin" } } } }
                button type="submit" { "Add user" }
            }
        }
    };
    Ok(Page(layout("Settings", &c, body)))
}

/// The change-password form.
#[derive(Deserialize)]
pub struct PasswordForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    current: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    password_repeat: String,
}

/// `POST /ui/settings/password/`: signs out every session of the user.
pub async fn change_password(
    State(st): State<AppState>,
    PageCaller(c): PageCaller,
    AppForm(f): AppForm<PasswordForm>,
) -> Result<Response, HtmlError> {
    c.check_csrf(Some(&f.csrf))?;
    if f.password != f.password_repeat {
        return Err(AppError::BadRequest("Passwords do not match.".into()).into());
    }
    auth::check_new_password(&f.password)?;
    // Re-check the current password (rate limited like a sign-in).
    auth::authenticate(&st, None, &c.user.email, &f.current).await?;
    let hash = auth::hash_password_blocking(f.password, st.auth.argon2.clone()).await?;
    st.store.set_password(c.user.id, &hash).await?;
    st.store.delete_user_sessions(c.user.id).await?;
    tracing::info!(user = c.user.id, "password changed");
    Ok(Redirect::to("/ui/login/").into_response())
}

/// The new-key form.
#[derive(Deserialize)]
pub struct KeyForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    label: String,
}

/// `POST /ui/settings/apikeys/`: shows the key once.
pub async fn create_key(
    State(st): State<AppState>,
    PageCaller(c): PageCaller,
    AppForm(f): AppForm<KeyForm>,
) -> PageResult {
    c.check_csrf(Some(&f.csrf))?;
    let (key, _) = auth::create_api_key(&*st.store, c.user.id, &f.label).await?;
    let body = html! {
        p.flash { "Copy the key now: it is not stored and will not be shown again." }
        pre.secret { (key) }
        p { a href="/ui/settings/" { "Back to settings" } }
    };
    Ok(Page(layout("New API key", &c, body)))
}

/// `POST /ui/settings/apikeys/<id>/delete/`: your own keys; admins any key.
pub async fn delete_key(
    State(st): State<AppState>,
    PageCaller(c): PageCaller,
    Path(id): Path<i64>,
    AppForm(f): AppForm<CsrfForm>,
) -> Result<Response, HtmlError> {
    c.check_csrf(Some(&f.csrf))?;
    let owner = if c.is_admin() { None } else { Some(c.user.id) };
    if !st.store.delete_api_key(id, owner).await? {
        return Err(AppError::NotFound.into());
    }
    Ok(Redirect::to("/ui/settings/").into_response())
}

/// The add-user form.
#[derive(Deserialize)]
pub struct UserForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    role: String,
}

/// `POST /ui/settings/users/` (admin).
pub async fn add_user(
    State(st): State<AppState>,
    PageCaller(c): PageCaller,
    AppForm(f): AppForm<UserForm>,
) -> Result<Response, HtmlError> {
    c.require_form_write(&f.csrf)?;
    let role = Role::parse(&f.role).ok_or_else(|| AppError::BadRequest("Unknown role.".into()))?;
    auth::check_new_password(&f.password)?;
    let hash = auth::hash_password_blocking(f.password, st.auth.argon2.clone()).await?;
    st.store.create_user(&f.email, role, &hash).await?;
    Ok(Redirect::to("/ui/settings/").into_response())
}

/// The role form.
#[derive(Deserialize)]
pub struct RoleForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    role: String,
}

/// `POST /ui/settings/users/<id>/role/` (admin, not yourself).
pub async fn set_role(
    State(st): State<AppState>,
    PageCaller(c): PageCaller,
    Path(id): Path<i64>,
    AppForm(f): AppForm<RoleForm>,
) -> Result<Response, HtmlError> {
    c.require_form_write(&f.csrf)?;
    if id == c.user.id {
        return Err(AppError::BadRequest("You cannot change your own role.".into()).into());
    }
    let role = Role::parse(&f.role).ok_or_else(|| AppError::BadRequest("Unknown role.".into()))?;
    st.store.set_role(id, role).await?;
    Ok(Redirect::to("/ui/settings/").into_response())
}

/// `POST /ui/settings/users/<id>/delete/` (admin, not yourself).
pub async fn delete_user(
    State(st): State<AppState>,
    PageCaller(c): PageCaller,
    Path(id): Path<i64>,
    AppForm(f): AppForm<CsrfForm>,
) -> Result<Response, HtmlError> {
    c.require_form_write(&f.csrf)?;
    if id == c.user.id {
        return Err(AppError::BadRequest("You cannot delete yourself.".into()).into());
    }
    if !st.store.delete_user(id).await? {
        return Err(AppError::NotFound.into());
    }
    Ok(Redirect::to("/ui/settings/").into_response())
}

/// What the database holds and how long it keeps it (admins).
struct Storage {
    on_disk: u64,
    used: Option<u64>,
    oldest: Option<chrono::DateTime<chrono::Utc>>,
    raw: u64,
    sessions: u64,
    problems: Vec<(&'static str, String)>,
}

impl Storage {
    async fn read(st: &AppState) -> Result<Self, HtmlError> {
        let counts = st.store.table_counts().await?;
        let rows = |t: &str| counts.iter().find(|(n, _)| n == t).map_or(0, |(_, n)| *n);
        Ok(Self {
            on_disk: st.store.database_size_bytes().await?,
            used: st.store.space_used_bytes().await?,
            oldest: st.store.oldest_data().await?,
            raw: rows("raw_messages"),
            sessions: rows("sessions"),
            problems: st.metrics.iter().filter_map(|m| m.problem()).collect(),
        })
    }

    fn render(&self, r: &crate::state::RetentionView) -> maud::Markup {
        let mb = |b: u64| format!("{:.1} MB", b as f64 / 1e6);
        let days = |d: u32| {
            if d == 0 {
                "forever".to_owned()
            } else {
                format!("{d} days")
            }
        };
        let budget = (r.max_size_mb > 0).then(|| r.max_size_mb.saturating_mul(1_000_000));
        html! {
            h2 { "Storage" }
            table.storage {
                tr { th { "Database on disk" } td { (mb(self.on_disk)) } }
                tr {
                    th { "Data in use" }
                    td {
                        @match (self.used, budget) {
                            (Some(u), Some(b)) => {
                                (mb(u)) " of a " (mb(b)) " budget "
                                meter min="0" max=(b) high=(b * 9 / 10) value=(u.min(b)) title=(format!("{:.0} %", u as f64 * 100.0 / b as f64)) {}
                            }
                            (Some(u), None) => { (mb(u)) " (no disk budget: retention.max_size_mb)" }
                            (None, _) => { "not measured for this database" }
                        }
                    }
                }
                tr { th { "Oldest data" } td { @match self.oldest { Some(t) => { (human(t)) " UTC" }, None => { "none yet" } } } }
                tr { th { "Raw messages" } td { (self.raw) " stored, kept " (days(r.raw_days)) } }
                tr { th { "Sessions and roll-ups" } td { (self.sessions) " sessions stored, kept " (days(r.session_days)) } }
                tr {
                    th { "Ingest" }
                    td {
                        @if self.problems.is_empty() { "working" }
                        @for (what, text) in &self.problems { strong { (what) ": " (text) } br; }
                    }
                }
            }
        }
    }
}
