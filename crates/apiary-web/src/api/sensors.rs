//! `/api/sensor/`: MHN's sensor registration and management.

use apiary_model::Ident;
use apiary_store::SensorRecord;
use axum::extract::{Path, State};
use axum::Json;
use chrono::Utc;
use serde_json::{json, Map, Value};

use crate::auth::Caller;
use crate::error::{AppError, AppJson, AppResult};
use crate::ops::{self, NewSensor};
use crate::query::{iso, Params};
use crate::state::AppState;

/// A sensor in MHN's shape. `secret` is filled only when `show_secret`.
pub fn sensor_json(s: &SensorRecord, ident: Option<&Ident>, show_secret: bool) -> Value {
    json!({
        "uuid": s.uuid,
        "name": s.name,
        "hostname": s.hostname,
        "ip": s.ip,
        "honeypot": s.honeypot,
        "identifier": s.ident,
        "created_date": s.created_at.format("%Y-%m-%d %H:%M:%S%.6f").to_string(),
        "last_seen": s.last_seen.map(iso),
        "status": ops::sensor_status(s.last_seen, Utc::now()),
        "publish": ident.map(|i| i.publish.clone()).unwrap_or_default(),
        "secret": if show_secret { ident.map(|i| i.secret.expose().to_owned()) } else { None },
        "latitude": s.latitude,
        "longitude": s.longitude,
    })
}

/// `GET /api/sensor/`: a bare JSON array, like MHN. Filters by any sensor field given.
pub async fn list(State(st): State<AppState>, c: Caller, p: Params) -> AppResult<Json<Value>> {
    let idents = st.store.list_idents().await?;
    let admin = c.is_admin();
    let mut out = Vec::new();
    for s in st.store.list_sensors().await? {
        let ident = idents.iter().find(|i| i.ident == s.ident);
        let v = sensor_json(&s, ident, admin);
        let keep = ["uuid", "name", "hostname", "ip", "honeypot", "identifier"]
            .iter()
            .all(|k| match p.get(k) {
                Some(want) => v[*k].as_str() == Some(want),
                None => true,
            });
        if keep {
            out.push(v);
        }
    }
    Ok(Json(Value::Array(out)))
}

/// `POST /api/sensor/`: `{name, hostname, honeypot[, ip]}` → the sensor with its hpfeeds
/// identifier and secret (shown to this call; later only to admins).
pub async fn create(
    State(st): State<AppState>,
    c: Result<Caller, AppError>,
    headers: axum::http::HeaderMap,
    crate::auth::ClientIp(client_ip): crate::auth::ClientIp,
    AppJson(body): AppJson<Map<String, Value>>,
) -> AppResult<Json<Value>> {
    // A deploy script (or MHN's registration flow) brings an enrollment token instead of
    // an admin's credentials.
    let c = match (c, crate::deploy::enrollment_from(&headers, &body)) {
        (Ok(c), _) if c.is_admin() => c,
        (_, Some(token)) => return crate::deploy::enroll(&st, &token, &body, client_ip).await,
        (c, None) => c?,
    };
    c.require_api_write()?;
    let field = |k: &str| body.get(k).and_then(Value::as_str).map(str::to_owned);
    let missing: Vec<&str> = ["name", "hostname", "honeypot"]
        .into_iter()
        .filter(|k| field(k).is_none_or(|v| v.trim().is_empty()))
        .collect();
    if !missing.is_empty() {
        return Err(AppError::BadRequest(format!(
            "Missing required fields: [{}].",
            missing.join(", ")
        )));
    }
    let (rec, ident) = ops::create_sensor(
        &*st.store,
        NewSensor {
            name: field("name").unwrap_or_default(),
            hostname: field("hostname").unwrap_or_default(),
            honeypot: field("honeypot").unwrap_or_default(),
            ip: field("ip"),
        },
    )
    .await?;
    Ok(Json(sensor_json(&rec, Some(&ident), true)))
}

async fn load(st: &AppState, uuid: &str) -> AppResult<(SensorRecord, Option<Ident>)> {
    let rec = ops::sensor(&*st.store, uuid).await?;
    let ident = st.store.get_ident(&rec.ident).await?;
    Ok((rec, ident))
}

/// `GET /api/sensor/<uuid>/`.
pub async fn get(
    State(st): State<AppState>,
    c: Caller,
    Path(uuid): Path<String>,
) -> AppResult<Json<Value>> {
    let (rec, ident) = load(&st, &uuid).await?;
    Ok(Json(sensor_json(&rec, ident.as_ref(), c.is_admin())))
}

/// `PUT /api/sensor/<uuid>/`: `name` and `hostname` are editable.
pub async fn update(
    State(st): State<AppState>,
    c: Caller,
    Path(uuid): Path<String>,
    AppJson(body): AppJson<Map<String, Value>>,
) -> AppResult<Json<Value>> {
    c.require_api_write()?;
    let (mut rec, ident) = load(&st, &uuid).await?;
    for (k, v) in &body {
        match k.as_str() {
            "name" | "hostname" => {
                let v = v.as_str().map(str::trim).unwrap_or_default();
                if !ops::valid_sensor_label(v) {
                    return Err(AppError::BadRequest(format!(
                        "\"{k}\" must be 1 to 255 characters."
                    )));
                }
                if k == "name" {
                    rec.name = v.to_owned();
                } else {
                    rec.hostname = v.to_owned();
                }
            }
            "uuid" | "created_date" | "ip" | "honeypot" | "identifier" | "secret" => {
                return Err(AppError::BadRequest(format!(
                    "\"{k}\" field is not editable."
                )))
            }
            _ => return Err(AppError::BadRequest(format!("\"{k}\" invalid field."))),
        }
    }
    st.store.update_sensor(&rec).await?;
    Ok(Json(sensor_json(&rec, ident.as_ref(), c.is_admin())))
}

/// `DELETE /api/sensor/<uuid>/`: the sensor and its hpfeeds credentials.
pub async fn delete(
    State(st): State<AppState>,
    c: Caller,
    Path(uuid): Path<String>,
) -> AppResult<Json<Value>> {
    c.require_api_write()?;
    ops::delete_sensor(&*st.store, &uuid).await?;
    Ok(Json(json!({})))
}

/// `POST /api/sensor/<uuid>/rotate_secret/`: a new hpfeeds secret, returned once.
pub async fn rotate(
    State(st): State<AppState>,
    c: Caller,
    Path(uuid): Path<String>,
) -> AppResult<Json<Value>> {
    c.require_api_write()?;
    let ident = ops::rotate_secret(&*st.store, &uuid).await?;
    let (rec, _) = load(&st, &uuid).await?;
    Ok(Json(sensor_json(&rec, Some(&ident), true)))
}
