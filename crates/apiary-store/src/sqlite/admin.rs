//! Idents and sensors: small tables edited by operators and the deploy flow.

use apiary_model::{Ident, Secret};
use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension, Row, TransactionBehavior};

use super::conv::json_err;
use crate::hours::{from_us, us};
use crate::types::SensorRecord;
use crate::validate;
use crate::{Result, StoreError};

const BUMP_IDENTS: &str = "UPDATE counters SET value = value + 1 WHERE name = 'idents_version'";

fn ident_row(r: &Row<'_>) -> rusqlite::Result<(String, String, String, String, String)> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
}

fn to_ident(
    (ident, secret, publish, subscribe, owner): (String, String, String, String, String),
) -> Result<Ident> {
    Ok(Ident {
        ident,
        secret: Secret::new(secret),
        publish: serde_json::from_str(&publish).map_err(json_err)?,
        subscribe: serde_json::from_str(&subscribe).map_err(json_err)?,
        owner,
    })
}

pub(super) fn list_idents(c: &Connection) -> Result<Vec<Ident>> {
    let mut st = c.prepare_cached(
        "SELECT ident, secret, publish, subscribe, owner FROM idents ORDER BY ident",
    )?;
    let rows = st.query_map([], ident_row)?;
    rows.map(|r| to_ident(r?)).collect()
}

pub(super) fn get_ident(c: &Connection, ident: &str) -> Result<Option<Ident>> {
    c.prepare_cached(
        "SELECT ident, secret, publish, subscribe, owner FROM idents WHERE ident = ?1",
    )?
    .query_row([ident], ident_row)
    .optional()?
    .map(to_ident)
    .transpose()
}

pub(super) fn upsert_ident(c: &mut Connection, i: &Ident) -> Result<()> {
    validate::ident(i)?;
    let publish = serde_json::to_string(&i.publish).map_err(json_err)?;
    let subscribe = serde_json::to_string(&i.subscribe).map_err(json_err)?;
    let now = us(Utc::now());
    let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
    tx.execute(
        "INSERT INTO idents (ident, secret, publish, subscribe, owner, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)
         ON CONFLICT (ident) DO UPDATE SET secret = excluded.secret,
             publish = excluded.publish, subscribe = excluded.subscribe,
             owner = excluded.owner, updated_at = excluded.updated_at",
        params![i.ident, i.secret.expose(), publish, subscribe, i.owner, now],
    )?;
    tx.execute(BUMP_IDENTS, [])?;
    tx.commit()?;
    Ok(())
}

pub(super) fn delete_ident(c: &mut Connection, ident: &str) -> Result<bool> {
    let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let n = tx.execute("DELETE FROM idents WHERE ident = ?1", [ident])?;
    if n > 0 {
        tx.execute(BUMP_IDENTS, [])?;
    }
    tx.commit()?;
    Ok(n > 0)
}

pub(super) fn idents_version(c: &Connection) -> Result<i64> {
    Ok(
        c.prepare_cached("SELECT value FROM counters WHERE name = 'idents_version'")?
            .query_row([], |r| r.get(0))?,
    )
}

const SENSOR_COLS: &str = "uuid, name, hostname, ip, honeypot, ident, created_at, last_seen, \
                           heartbeat, latitude, longitude";

fn sensor_row(r: &Row<'_>) -> rusqlite::Result<(SensorRecord, Option<String>)> {
    Ok((
        SensorRecord {
            uuid: r.get(0)?,
            name: r.get(1)?,
            hostname: r.get(2)?,
            ip: r.get(3)?,
            honeypot: r.get(4)?,
            ident: r.get(5)?,
            created_at: from_us(r.get(6)?),
            last_seen: r.get::<_, Option<i64>>(7)?.map(from_us),
            heartbeat: None,
            latitude: r.get(9)?,
            longitude: r.get(10)?,
        },
        r.get(8)?,
    ))
}

fn to_sensor((mut s, hb): (SensorRecord, Option<String>)) -> Result<SensorRecord> {
    s.heartbeat = hb
        .map(|h| serde_json::from_str(&h))
        .transpose()
        .map_err(json_err)?;
    Ok(s)
}

pub(super) fn list_sensors(c: &Connection) -> Result<Vec<SensorRecord>> {
    let mut st = c.prepare_cached(&format!("SELECT {SENSOR_COLS} FROM sensors ORDER BY name"))?;
    let rows = st.query_map([], sensor_row)?;
    rows.map(|r| to_sensor(r?)).collect()
}

pub(super) fn get_sensor(c: &Connection, uuid: &str) -> Result<Option<SensorRecord>> {
    c.prepare_cached(&format!(
        "SELECT {SENSOR_COLS} FROM sensors WHERE uuid = ?1"
    ))?
    .query_row([uuid], sensor_row)
    .optional()?
    .map(to_sensor)
    .transpose()
}

fn heartbeat_text(s: &SensorRecord) -> Result<Option<String>> {
    s.heartbeat
        .as_ref()
        .map(serde_json::to_string)
        .transpose()
        .map_err(json_err)
}

pub(super) fn create_sensor(c: &mut Connection, s: &SensorRecord) -> Result<()> {
    validate::new_sensor(s)?;
    c.execute(
        &format!("INSERT INTO sensors ({SENSOR_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"),
        params![
            s.uuid,
            s.name,
            s.hostname,
            s.ip,
            s.honeypot,
            s.ident,
            us(s.created_at),
            s.last_seen.map(us),
            heartbeat_text(s)?,
            s.latitude,
            s.longitude
        ],
    )
    .map_err(|e| match StoreError::from(e) {
        StoreError::Conflict(_) => {
            StoreError::Conflict(format!("a sensor with uuid {:?} or name {:?} exists", s.uuid, s.name))
        }
        other => other,
    })?;
    Ok(())
}

pub(super) fn update_sensor(c: &mut Connection, s: &SensorRecord) -> Result<()> {
    let n = c
        .execute(
            "UPDATE sensors SET name = ?2, hostname = ?3, ip = ?4, honeypot = ?5, ident = ?6,
                 latitude = ?7, longitude = ?8
             WHERE uuid = ?1",
            params![
                s.uuid,
                s.name,
                s.hostname,
                s.ip,
                s.honeypot,
                s.ident,
                s.latitude,
                s.longitude
            ],
        )
        .map_err(|e| match StoreError::from(e) {
            StoreError::Conflict(_) => {
                StoreError::Conflict(format!("a sensor named {:?} exists", s.name))
            }
            other => other,
        })?;
    if n == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

pub(super) fn delete_sensor(c: &mut Connection, uuid: &str) -> Result<bool> {
    Ok(c.execute("DELETE FROM sensors WHERE uuid = ?1", [uuid])? > 0)
}

pub(super) fn touch_sensor(c: &Connection, ident: &str, at: DateTime<Utc>) -> Result<()> {
    c.prepare_cached(
        "UPDATE sensors SET last_seen = ?2
         WHERE ident = ?1 AND (last_seen IS NULL OR last_seen < ?2)",
    )?
    .execute(params![ident, us(at)])?;
    Ok(())
}

pub(super) fn record_heartbeat(
    c: &Connection,
    uuid: &str,
    at: DateTime<Utc>,
    info: &serde_json::Value,
) -> Result<bool> {
    let text = serde_json::to_string(info).map_err(json_err)?;
    let n = c.execute(
        "UPDATE sensors SET heartbeat = ?2,
             last_seen = CASE WHEN last_seen IS NULL OR last_seen < ?3 THEN ?3 ELSE last_seen END
         WHERE uuid = ?1",
        params![uuid, text, us(at)],
    )?;
    Ok(n > 0)
}
