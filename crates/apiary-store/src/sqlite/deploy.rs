//! Deploy scripts with their version history, enrollment tokens and the enrollments they
//! made (migration 0005).

use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension, Row, TransactionBehavior};

use crate::deploy::{DeployScript, EnrollmentToken, NewEnrollmentToken, ScriptVersion};
use crate::hours::{from_us, us};
use crate::validate;
use crate::{Result, StoreError};

const SCRIPT_SELECT: &str = "SELECT s.id, s.name, s.honeypot, s.version, v.body, v.notes, v.author,
        s.created_at, s.updated_at
     FROM deploy_scripts s
     JOIN deploy_script_versions v ON v.script_id = s.id AND v.version = s.version";

fn script_row(r: &Row<'_>) -> rusqlite::Result<DeployScript> {
    Ok(DeployScript {
        id: r.get(0)?,
        name: r.get(1)?,
        honeypot: r.get(2)?,
        version: r.get(3)?,
        body: r.get(4)?,
        notes: r.get(5)?,
        author: r.get(6)?,
        created_at: from_us(r.get(7)?),
        updated_at: from_us(r.get(8)?),
    })
}

const TOKEN_COLS: &str =
    "id, script_id, prefix, label, created_by, created_at, expires_at, revoked, uses";

fn token_row(r: &Row<'_>) -> rusqlite::Result<EnrollmentToken> {
    Ok(EnrollmentToken {
        id: r.get(0)?,
        script_id: r.get(1)?,
        prefix: r.get(2)?,
        label: r.get(3)?,
        created_by: r.get(4)?,
        created_at: from_us(r.get(5)?),
        expires_at: from_us(r.get(6)?),
        revoked: r.get(7)?,
        uses: r.get(8)?,
    })
}

pub(super) fn list_scripts(c: &Connection) -> Result<Vec<DeployScript>> {
    let sql = format!("{SCRIPT_SELECT} ORDER BY s.name");
    let rows = c
        .prepare_cached(&sql)?
        .query_map([], script_row)?
        .collect::<rusqlite::Result<_>>()?;
    Ok(rows)
}

pub(super) fn script(c: &Connection, id: i64) -> Result<Option<DeployScript>> {
    let sql = format!("{SCRIPT_SELECT} WHERE s.id = ?1");
    Ok(c.prepare_cached(&sql)?
        .query_row([id], script_row)
        .optional()?)
}

pub(super) fn create_script(
    c: &mut Connection,
    name: &str,
    honeypot: &str,
    body: &str,
    notes: &str,
    author: &str,
) -> Result<DeployScript> {
    let (name, honeypot) = validate::script_names(name, honeypot)?;
    validate::script_body(body)?;
    let now = us(Utc::now());
    let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let taken: bool = tx.query_row(
        "SELECT EXISTS (SELECT 1 FROM deploy_scripts WHERE name = ?1)",
        [&name],
        |r| r.get(0),
    )?;
    if taken {
        return Err(StoreError::Conflict(format!(
            "a deploy script named {name:?} already exists"
        )));
    }
    tx.execute(
        "INSERT INTO deploy_scripts (name, honeypot, version, created_at, updated_at)
         VALUES (?1, ?2, 1, ?3, ?3)",
        params![name, honeypot, now],
    )?;
    let id = tx.last_insert_rowid();
    tx.execute(
        "INSERT INTO deploy_script_versions (script_id, version, body, notes, author, created_at)
         VALUES (?1, 1, ?2, ?3, ?4, ?5)",
        params![id, body, notes, author, now],
    )?;
    let s = script(&tx, id)?.ok_or(StoreError::NotFound)?;
    tx.commit()?;
    Ok(s)
}

pub(super) fn update_script(
    c: &mut Connection,
    id: i64,
    body: &str,
    notes: &str,
    author: &str,
) -> Result<DeployScript> {
    validate::script_body(body)?;
    let now = us(Utc::now());
    let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let version: Option<i64> = tx
        .query_row(
            "SELECT version FROM deploy_scripts WHERE id = ?1",
            [id],
            |r| r.get(0),
        )
        .optional()?;
    let next = version.ok_or(StoreError::NotFound)? + 1;
    tx.execute(
        "INSERT INTO deploy_script_versions (script_id, version, body, notes, author, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![id, next, body, notes, author, now],
    )?;
    tx.execute(
        "UPDATE deploy_scripts SET version = ?2, updated_at = ?3 WHERE id = ?1",
        params![id, next, now],
    )?;
    let s = script(&tx, id)?.ok_or(StoreError::NotFound)?;
    tx.commit()?;
    Ok(s)
}

pub(super) fn script_versions(c: &Connection, id: i64) -> Result<Vec<ScriptVersion>> {
    let rows = c
        .prepare_cached(
            "SELECT script_id, version, body, notes, author, created_at
             FROM deploy_script_versions WHERE script_id = ?1 ORDER BY version DESC",
        )?
        .query_map([id], |r| {
            Ok(ScriptVersion {
                script_id: r.get(0)?,
                version: r.get(1)?,
                body: r.get(2)?,
                notes: r.get(3)?,
                author: r.get(4)?,
                created_at: from_us(r.get(5)?),
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    Ok(rows)
}

pub(super) fn create_token(c: &mut Connection, t: &NewEnrollmentToken) -> Result<EnrollmentToken> {
    if script(c, t.script_id)?.is_none() {
        return Err(StoreError::NotFound);
    }
    let label: String = t.label.trim().chars().take(100).collect();
    let now = us(Utc::now());
    c.execute(
        "INSERT INTO enrollment_tokens
             (script_id, token_hash, prefix, label, created_by, created_at, expires_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            t.script_id,
            t.token_hash,
            t.prefix,
            label,
            t.created_by,
            now,
            us(t.expires_at)
        ],
    )?;
    let id = c.last_insert_rowid();
    let sql = format!("SELECT {TOKEN_COLS} FROM enrollment_tokens WHERE id = ?1");
    Ok(c.query_row(&sql, [id], token_row)?)
}

pub(super) fn list_tokens(c: &Connection, script_id: Option<i64>) -> Result<Vec<EnrollmentToken>> {
    let sql = format!(
        "SELECT {TOKEN_COLS} FROM enrollment_tokens
         WHERE ?1 IS NULL OR script_id = ?1 ORDER BY id DESC"
    );
    let rows = c
        .prepare_cached(&sql)?
        .query_map([script_id], token_row)?
        .collect::<rusqlite::Result<_>>()?;
    Ok(rows)
}

pub(super) fn token_by_hash(c: &Connection, hash: &str) -> Result<Option<EnrollmentToken>> {
    let sql = format!("SELECT {TOKEN_COLS} FROM enrollment_tokens WHERE token_hash = ?1");
    Ok(c.prepare_cached(&sql)?
        .query_row([hash], token_row)
        .optional()?)
}

pub(super) fn revoke_token(c: &Connection, id: i64) -> Result<bool> {
    Ok(c.execute(
        "UPDATE enrollment_tokens SET revoked = 1 WHERE id = ?1",
        [id],
    )? > 0)
}

pub(super) fn enrolled_sensor(
    c: &Connection,
    token_id: i64,
    hostname: &str,
) -> Result<Option<String>> {
    Ok(c.prepare_cached(
        "SELECT e.sensor_uuid FROM deploy_enrollments e
         JOIN sensors s ON s.uuid = e.sensor_uuid
         WHERE e.token_id = ?1 AND e.hostname = ?2",
    )?
    .query_row(params![token_id, hostname], |r| r.get(0))
    .optional()?)
}

pub(super) fn sensor_token(c: &Connection, uuid: &str) -> Result<Option<i64>> {
    Ok(
        c.prepare_cached("SELECT token_id FROM deploy_enrollments WHERE sensor_uuid = ?1 LIMIT 1")?
            .query_row([uuid], |r| r.get(0))
            .optional()?,
    )
}

pub(super) fn record_enrollment(
    c: &mut Connection,
    token_id: i64,
    hostname: &str,
    uuid: &str,
    at: DateTime<Utc>,
) -> Result<()> {
    let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
    tx.execute(
        "INSERT INTO deploy_enrollments (token_id, hostname, sensor_uuid, created_at)
         VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (token_id, hostname) DO UPDATE SET sensor_uuid = excluded.sensor_uuid",
        params![token_id, hostname, uuid, us(at)],
    )?;
    tx.execute(
        "UPDATE enrollment_tokens SET uses = uses + 1 WHERE id = ?1",
        [token_id],
    )?;
    tx.commit()?;
    Ok(())
}
