//! `/ui/deploy/`: deploy scripts (view, edit with version history, create) and enrollment
//! tokens (create with expiry, revoke, the one-line command). Admins change things;
//! analysts read.

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use chrono::Utc;
use maud::html;
use serde::Deserialize;

use crate::auth::PageCaller;
use crate::deploy;
use crate::error::{AppError, AppForm};
use crate::query::human;
use crate::state::AppState;

use super::{csrf_field, layout, CsrfForm, HtmlError, Page, PageResult};

/// `GET /ui/deploy/`.
pub async fn list(State(st): State<AppState>, PageCaller(c): PageCaller) -> PageResult {
    let scripts = st.store.list_deploy_scripts().await?;
    let tokens = st.store.list_enrollment_tokens(None).await?;
    let now = Utc::now();
    let admin = c.is_admin();
    let name_of = |id: i64| {
        scripts
            .iter()
            .find(|s| s.id == id)
            .map_or("?", |s| s.name.as_str())
    };
    let body = html! {
        p { "Pick a script, create an enrollment token for it, and paste the one-line command on a fresh host as root. "
            "Tokens expire and can be revoked; the command registers the host once however often it runs." }
        h2 { "Scripts" }
        table {
            tr { th { "Name" } th { "Honeypot" } th { "Version" } th { "Last edit (UTC)" } th { "By" } th { "Notes" } }
            @for s in &scripts {
                tr {
                    td { a href=(format!("/ui/deploy/{}/", s.id)) { (s.name) } }
                    td { (s.honeypot) }
                    td.n { (s.version) }
                    td { (human(s.updated_at)) }
                    td { (s.author) }
                    td { (s.notes) }
                }
            }
        }
        h2 { "Enrollment tokens" }
        table {
            tr { th { "Token" } th { "Script" } th { "Label" } th { "Created by" } th { "Created" } th { "Expires" } th { "Status" } th { "Uses" } @if admin { th { "" } } }
            @for t in &tokens {
                @let status = if t.revoked { "revoked" } else if t.is_valid(now) { "active" } else { "expired" };
                tr {
                    td { code { (t.prefix) "…" } }
                    td { (name_of(t.script_id)) }
                    td { (t.label) }
                    td { (t.created_by) }
                    td { (human(t.created_at)) }
                    td { (human(t.expires_at)) }
                    td { span class=(if status == "active" { "online" } else { "offline" }) { (status) } }
                    td.n { (t.uses) }
                    @if admin { td { @if status == "active" {
                        form method="post" action=(format!("/ui/deploy/tokens/{}/revoke/", t.id)) { (csrf_field(&c)) button type="submit" { "Revoke" } }
                    } } }
                }
            }
        }
        @if tokens.is_empty() { p { "No tokens yet." } }
        @if admin {
            h2 { "New script" }
            form method="post" action="/ui/deploy/" {
                (csrf_field(&c))
                p { label { "Name " input type="text" name="name" required; } " "
                    label { "Honeypot " input type="text" name="honeypot" required placeholder="apiary, cowrie, ..."; } }
                p { "Placeholders: " code { "{{SERVER_URL}} {{TOKEN}} {{HPF_HOST}} {{HPF_PORT}}" } }
                p { textarea name="body" rows="12" cols="100" required {} }
                button type="submit" { "Create" }
            }
        }
    };
    Ok(Page(layout("Deploy", &c, body)))
}

/// `GET /ui/deploy/<id>/`.
pub async fn show(
    State(st): State<AppState>,
    PageCaller(c): PageCaller,
    Path(id): Path<i64>,
) -> PageResult {
    let s = st
        .store
        .deploy_script(id)
        .await?
        .ok_or(AppError::NotFound)?;
    let versions = st.store.deploy_script_versions(id).await?;
    let admin = c.is_admin();
    let body = html! {
        p { "Honeypot: " strong { (s.honeypot) } " · version " (s.version) " · " a href="/ui/deploy/" { "all scripts" } }
        @if admin {
            h2 { "Deploy command" }
            form method="post" action=(format!("/ui/deploy/{}/token/", s.id)) {
                (csrf_field(&c))
                label { "Token valid for (hours) " input type="number" name="hours" value="24" min="1" max="8784"; } " "
                label { "Label " input type="text" name="label"; } " "
                button type="submit" { "Create token and show the command" }
            }
            h2 { "Edit (saves a new version)" }
            form method="post" action=(format!("/ui/deploy/{}/", s.id)) {
                (csrf_field(&c))
                p { textarea name="body" rows="30" cols="120" { (s.body) } }
                p { label { "What changed " input type="text" name="notes" size="80"; } }
                button type="submit" { "Save" }
            }
        } @else {
            h2 { "Script" }
            pre { (s.body) }
        }
        h2 { "History" }
        @for v in &versions {
            details {
                summary { "Version " (v.version) " · " (human(v.created_at)) " · " (v.author) @if !v.notes.is_empty() { " · " (v.notes) } }
                pre { (v.body) }
            }
        }
    };
    Ok(Page(layout(
        &format!("Deploy script: {}", s.name),
        &c,
        body,
    )))
}

/// The new-script form.
#[derive(Deserialize)]
pub struct CreateForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    honeypot: String,
    #[serde(default)]
    body: String,
}

/// `POST /ui/deploy/`.
pub async fn create(
    State(st): State<AppState>,
    PageCaller(c): PageCaller,
    AppForm(f): AppForm<CreateForm>,
) -> Result<Response, HtmlError> {
    c.require_form_write(&f.csrf)?;
    let s = st
        .store
        .create_deploy_script(&f.name, &f.honeypot, &f.body, "created", &c.user.email)
        .await?;
    Ok(Redirect::to(&format!("/ui/deploy/{}/", s.id)).into_response())
}

/// The edit form.
#[derive(Deserialize)]
pub struct SaveForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    body: String,
    #[serde(default)]
    notes: String,
}

/// `POST /ui/deploy/<id>/`: saves a new version.
pub async fn save(
    State(st): State<AppState>,
    PageCaller(c): PageCaller,
    Path(id): Path<i64>,
    AppForm(f): AppForm<SaveForm>,
) -> Result<Response, HtmlError> {
    c.require_form_write(&f.csrf)?;
    // Browsers send CRLF line ends from a textarea; bash wants LF.
    let body = f.body.replace("\r\n", "\n");
    let notes: String = f.notes.trim().chars().take(500).collect();
    st.store
        .update_deploy_script(id, &body, &notes, &c.user.email)
        .await?;
    Ok(Redirect::to(&format!("/ui/deploy/{id}/")).into_response())
}

/// The new-token form.
#[derive(Deserialize)]
pub struct TokenForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    hours: String,
    #[serde(default)]
    label: String,
}

/// `POST /ui/deploy/<id>/token/`: the token and command, shown once.
pub async fn new_token(
    State(st): State<AppState>,
    PageCaller(c): PageCaller,
    headers: HeaderMap,
    Path(id): Path<i64>,
    AppForm(f): AppForm<TokenForm>,
) -> PageResult {
    c.require_form_write(&f.csrf)?;
    let s = st
        .store
        .deploy_script(id)
        .await?
        .ok_or(AppError::NotFound)?;
    let hours: i64 = f
        .hours
        .trim()
        .parse()
        .map_err(|_| AppError::BadRequest("Expiry must be a whole number of hours.".into()))?;
    let (token, rec) =
        deploy::create_token(&*st.store, s.id, hours, &f.label, &c.user.email).await?;
    let url = deploy::server_url(&st.deploy, &headers);
    let body = html! {
        p.flash { "Copy the command now: the token is shown only on this page. It expires " (human(rec.expires_at)) " UTC." }
        pre.secret { (deploy::command(&url, &token)) }
        p { "Run it as root on the host that should become a " (s.honeypot) " sensor. Running it again on the same host does not create a second sensor." }
        p { a href="/ui/deploy/" { "Back to deploy" } }
    };
    Ok(Page(layout(&format!("Deploy {}", s.name), &c, body)))
}

/// `POST /ui/deploy/tokens/<id>/revoke/`.
pub async fn revoke(
    State(st): State<AppState>,
    PageCaller(c): PageCaller,
    Path(id): Path<i64>,
    AppForm(f): AppForm<CsrfForm>,
) -> Result<Response, HtmlError> {
    c.require_form_write(&f.csrf)?;
    if !st.store.revoke_enrollment_token(id).await? {
        return Err(AppError::NotFound.into());
    }
    Ok(Redirect::to("/ui/deploy/").into_response())
}
