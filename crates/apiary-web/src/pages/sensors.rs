//! `/ui/sensors/`: list, add, rename, delete, rotate secret.

use apiary_model::Ident;
use apiary_store::SensorRecord;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use chrono::Utc;
use maud::{html, Markup};
use serde::Deserialize;

use crate::auth::PageCaller;
use crate::error::AppForm;
use crate::ops::{self, NewSensor};
use crate::query::human;
use crate::state::AppState;

use super::{csrf_field, layout, report_link, thousands, CsrfForm, HtmlError, Page, PageResult};

/// `GET /ui/sensors/`.
pub async fn list(State(st): State<AppState>, PageCaller(c): PageCaller) -> PageResult {
    let sensors = st.store.list_sensors().await?;
    let counts = ops::sessions_per_sensor(&*st.store).await?;
    let now = Utc::now();
    let admin = c.is_admin();
    let body = html! {
        table {
            tr { th { "Name" } th { "Hostname" } th { "IP" } th { "Honeypot" } th { "UUID / ident" } th { "Sessions" } th { "Last event (UTC)" } th { "Status" }
                 @if admin { th { "Actions" } } }
            @for s in &sensors {
                @let status = ops::sensor_status(s.last_seen, now);
                tr {
                    td { @if admin {
                        form method="post" action=(format!("/ui/sensors/{}/rename/", s.uuid)) {
                            (csrf_field(&c))
                            input type="text" name="name" value=(s.name) size="14";
                            input type="text" name="hostname" value=(s.hostname) size="14";
                            button type="submit" { "Rename" }
                        }
                    } @else { (s.name) } }
                    td { (s.hostname) }
                    td { (s.ip.as_deref().unwrap_or("")) }
                    td { (s.honeypot) }
                    td { code { (s.uuid) } @if s.ident != s.uuid { br; code { (s.ident) } } }
                    td.n { a href=(report_link("identifier", &s.ident)) { (thousands(counts.get(&s.ident).copied().unwrap_or(0))) } }
                    td { (s.last_seen.map(human).unwrap_or_else(|| "never".into())) }
                    td { span class=(status) { (status) } }
                    @if admin { td {
                        form method="post" action=(format!("/ui/sensors/{}/rotate/", s.uuid)) { (csrf_field(&c)) button type="submit" { "Rotate secret" } }
                        form method="post" action=(format!("/ui/sensors/{}/delete/", s.uuid)) { (csrf_field(&c)) button type="submit" { "Delete (with credentials)" } }
                    } }
                }
            }
        }
        @if sensors.is_empty() { p { "No sensors yet." } }
        @if admin {
            h2 { "Add a sensor by hand" }
            p { "For a honeypot that is already running: register it here, then paste the hpfeeds settings shown into its configuration." }
            form method="post" action="/ui/sensors/" {
                (csrf_field(&c))
                p { label { "Name " input type="text" name="name" required; } }
                p { label { "Hostname " input type="text" name="hostname" required; } }
                p { label { "Honeypot " input type="text" name="honeypot" required placeholder="cowrie, dionaea, ..."; } }
                p { label { "IP (optional) " input type="text" name="ip"; } }
                button type="submit" { "Create" }
            }
        }
    };
    Ok(Page(layout("Sensors", &c, body)))
}

/// The settings to paste, with the broker address sensors reach: `hpfeeds.public_host`
/// and `hpfeeds.public_port` when configured, else the public URL's or this request's host
/// and the port the broker listens on (the same rules as the deploy scripts).
fn hpfeeds_settings(st: &AppState, headers: &HeaderMap, s: &SensorRecord, ident: &Ident) -> Markup {
    let host = crate::deploy::hpfeeds_host(&st.deploy, headers);
    html! {
        p.flash { "Copy the secret now: it is shown only on this page (admins can rotate it later)." }
        pre.secret {
            "HPFEEDS_HOST=" (host) "\n"
            "HPFEEDS_PORT=" (st.deploy.hpfeeds_port) "\n"
            "HPFEEDS_IDENT=" (ident.ident) "\n"
            "HPFEEDS_SECRET=" (ident.secret.expose()) "\n"
            "HPFEEDS_CHANNELS=" (ident.publish.join(",")) "\n"
            "SENSOR_UUID=" (s.uuid) "\n"
        }
        p { a href="/ui/sensors/" { "Back to sensors" } }
    }
}

/// The add-sensor form.
#[derive(Deserialize)]
pub struct AddForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    hostname: String,
    #[serde(default)]
    honeypot: String,
    #[serde(default)]
    ip: String,
}

/// `POST /ui/sensors/`.
pub async fn add(
    State(st): State<AppState>,
    PageCaller(c): PageCaller,
    headers: HeaderMap,
    AppForm(f): AppForm<AddForm>,
) -> PageResult {
    c.require_form_write(&f.csrf)?;
    let (rec, ident) = ops::create_sensor(
        &*st.store,
        NewSensor {
            name: f.name,
            hostname: f.hostname,
            honeypot: f.honeypot,
            ip: Some(f.ip),
        },
    )
    .await?;
    let title = format!("Sensor {} created", rec.name);
    Ok(Page(layout(
        &title,
        &c,
        hpfeeds_settings(&st, &headers, &rec, &ident),
    )))
}

/// The rename form.
#[derive(Deserialize)]
pub struct RenameForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    hostname: String,
}

/// `POST /ui/sensors/<uuid>/rename/`.
pub async fn rename(
    State(st): State<AppState>,
    PageCaller(c): PageCaller,
    Path(uuid): Path<String>,
    AppForm(f): AppForm<RenameForm>,
) -> Result<Response, HtmlError> {
    c.require_form_write(&f.csrf)?;
    let mut rec = ops::sensor(&*st.store, &uuid).await?;
    for (field, v) in [(&mut rec.name, f.name), (&mut rec.hostname, f.hostname)] {
        let v = v.trim();
        if !ops::valid_sensor_label(v) {
            return Err(crate::error::AppError::BadRequest(
                "Name and hostname must be 1 to 255 characters.".into(),
            )
            .into());
        }
        *field = v.to_owned();
    }
    st.store.update_sensor(&rec).await?;
    Ok(Redirect::to("/ui/sensors/").into_response())
}

/// `POST /ui/sensors/<uuid>/delete/`.
pub async fn delete(
    State(st): State<AppState>,
    PageCaller(c): PageCaller,
    Path(uuid): Path<String>,
    AppForm(f): AppForm<CsrfForm>,
) -> Result<Response, HtmlError> {
    c.require_form_write(&f.csrf)?;
    ops::delete_sensor(&*st.store, &uuid).await?;
    Ok(Redirect::to("/ui/sensors/").into_response())
}

/// `POST /ui/sensors/<uuid>/rotate/`.
pub async fn rotate(
    State(st): State<AppState>,
    PageCaller(c): PageCaller,
    headers: HeaderMap,
    Path(uuid): Path<String>,
    AppForm(f): AppForm<CsrfForm>,
) -> PageResult {
    c.require_form_write(&f.csrf)?;
    let ident = ops::rotate_secret(&*st.store, &uuid).await?;
    let rec = ops::sensor(&*st.store, &uuid).await?;
    let title = format!("New secret for {}", rec.name);
    Ok(Page(layout(
        &title,
        &c,
        hpfeeds_settings(&st, &headers, &rec, &ident),
    )))
}
