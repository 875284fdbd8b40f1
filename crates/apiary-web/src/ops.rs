//! Operations shared by API handlers and page handlers: sensor registration, free-text
//! session search, sensor status.

use std::collections::HashMap;

use apiary_model::{Ident, Secret, Session};
use apiary_store::{Cursor, Dimension, Page, SensorRecord, SessionFilter, Store};
use chrono::{DateTime, Duration, Utc};
use rand::RngCore;

use crate::error::AppError;

/// hpfeeds channels a honeypot publishes on (MHN's `HONEYPOT_CHANNELS`); unknown
/// honeypots get `<name>.events`.
pub fn channels_for(honeypot: &str) -> Vec<String> {
    let list: &[&str] = match honeypot {
        "dionaea" => &[
            "dionaea.connections",
            "dionaea.capture",
            "dionaea.capture.anon",
            "mwbinary.dionaea.sensorunique",
            "dionaea.dcerpcrequests",
            "dionaea.shellcodeprofiles",
        ],
        "cowrie" => &["cowrie.sessions"],
        "kippo" => &["kippo.sessions"],
        "glastopf" => &["glastopf.events", "glastopf.files"],
        "thug" => &["thug.events", "thug.files"],
        "snort" => &["snort.alerts"],
        "beeswarm" => &["beeswarm.hive"],
        _ => &[],
    };
    if list.is_empty() {
        vec![format!("{honeypot}.events")]
    } else {
        list.iter().map(|s| (*s).to_owned()).collect()
    }
}

/// A random UUID (version 4) in canonical text form.
pub fn new_uuid() -> String {
    let mut b = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

fn check_text(field: &str, v: &str, max: usize) -> Result<String, AppError> {
    let v = v.trim();
    if v.is_empty() || v.len() > max || v.chars().any(char::is_control) {
        return Err(AppError::BadRequest(format!(
            "\"{field}\" must be 1 to {max} characters without control characters."
        )));
    }
    Ok(v.to_owned())
}

/// What a new sensor needs.
pub struct NewSensor {
    /// Display name (unique).
    pub name: String,
    /// Host name.
    pub hostname: String,
    /// Honeypot software.
    pub honeypot: String,
    /// Address, when known.
    pub ip: Option<String>,
}

/// Registers a sensor: an hpfeeds ident (named by the uuid, publishing the honeypot's
/// channels, with a fresh secret) and the sensor row.
pub async fn create_sensor(
    store: &dyn Store,
    new: NewSensor,
) -> Result<(SensorRecord, Ident), AppError> {
    let name = check_text("name", &new.name, 200)?;
    let hostname = check_text("hostname", &new.hostname, 255)?;
    let honeypot = check_text("honeypot", &new.honeypot, 64)?;
    if honeypot.contains(|c: char| c.is_whitespace() || c == '"') {
        return Err(AppError::BadRequest(
            "\"honeypot\" must be a single word.".into(),
        ));
    }
    let ip = match new.ip.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        Some(v) => Some(
            apiary_model::event::parse_ip(v)
                .ok_or_else(|| AppError::BadRequest("\"ip\" is not an address.".into()))?
                .to_string(),
        ),
        None => None,
    };
    if store.list_sensors().await?.iter().any(|s| s.name == name) {
        return Err(AppError::Conflict(format!(
            "Sensor with name or hostname \"{name}\" already exists."
        )));
    }
    let uuid = new_uuid();
    let ident = Ident {
        ident: uuid.clone(),
        secret: Secret::new(crate::auth::random_token()),
        publish: channels_for(&honeypot),
        subscribe: Vec::new(),
        owner: format!("sensor {uuid}"),
    };
    let rec = SensorRecord {
        uuid: uuid.clone(),
        name,
        hostname,
        ip,
        honeypot,
        ident: uuid,
        created_at: Utc::now(),
        last_seen: None,
        heartbeat: None,
        latitude: None,
        longitude: None,
    };
    store.upsert_ident(&ident).await?;
    if let Err(e) = store.create_sensor(&rec).await {
        let _ = store.delete_ident(&ident.ident).await;
        return Err(e.into());
    }
    tracing::info!(sensor = %rec.uuid, honeypot = %rec.honeypot, "sensor registered");
    Ok((rec, ident))
}

/// The sensor with this UUID, or [`AppError::NotFound`].
pub async fn sensor(store: &dyn Store, uuid: &str) -> Result<SensorRecord, AppError> {
    store.get_sensor(uuid).await?.ok_or(AppError::NotFound)
}

/// Whether `v` (trimmed) may be a sensor's name or hostname: 1 to 255 bytes, no control
/// characters.
pub fn valid_sensor_label(v: &str) -> bool {
    !v.is_empty() && v.len() <= 255 && !v.chars().any(char::is_control)
}

/// Deletes a sensor and its hpfeeds credentials. Its sessions stay.
pub async fn delete_sensor(store: &dyn Store, uuid: &str) -> Result<(), AppError> {
    let rec = sensor(store, uuid).await?;
    store.delete_sensor(uuid).await?;
    store.delete_ident(&rec.ident).await?;
    tracing::info!(sensor = %uuid, "sensor deleted");
    Ok(())
}

/// Gives a sensor's ident a new secret; returns the ident.
pub async fn rotate_secret(store: &dyn Store, uuid: &str) -> Result<Ident, AppError> {
    let rec = sensor(store, uuid).await?;
    let mut ident = store.get_ident(&rec.ident).await?.unwrap_or_else(|| Ident {
        ident: rec.ident.clone(),
        secret: Secret::default(),
        publish: channels_for(&rec.honeypot),
        subscribe: Vec::new(),
        owner: format!("sensor {uuid}"),
    });
    ident.secret = Secret::new(crate::auth::random_token());
    store.upsert_ident(&ident).await?;
    tracing::info!(sensor = %uuid, "sensor secret rotated");
    Ok(ident)
}

/// online / quiet / offline from last-seen.
pub fn sensor_status(last_seen: Option<DateTime<Utc>>, now: DateTime<Utc>) -> &'static str {
    match last_seen {
        Some(t) if now - t <= Duration::minutes(15) => "online",
        Some(t) if now - t <= Duration::hours(24) => "quiet",
        _ => "offline",
    }
}

/// Sessions per sensor ident, all time (from the hourly roll-ups).
pub async fn sessions_per_sensor(store: &dyn Store) -> Result<HashMap<String, u64>, AppError> {
    let top = store
        .top(
            Dimension::Sensor,
            DateTime::<Utc>::UNIX_EPOCH,
            Utc::now() + Duration::hours(1),
            Page::MAX,
        )
        .await?;
    Ok(top.into_iter().collect())
}

/// Sessions matching `filter` and, when given, the free text `text`: a credential whose
/// username or password equals it, or an IDS signature or URL containing it (ASCII
/// case-insensitive). The store serves it from indexes (`SessionFilter::text`), so pages
/// are full and paging is exact.
pub async fn find_sessions(
    store: &dyn Store,
    mut filter: SessionFilter,
    text: Option<&str>,
    page: Page,
) -> Result<(Vec<Session>, Option<Cursor>), AppError> {
    filter.text = text.map(str::to_owned).filter(|t| !t.is_empty());
    Ok(store.sessions(filter, page).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_shape() {
        let u = new_uuid();
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
    }

    #[test]
    fn channels() {
        assert_eq!(channels_for("cowrie"), vec!["cowrie.sessions"]);
        assert_eq!(channels_for("conpot"), vec!["conpot.events"]);
    }
}
