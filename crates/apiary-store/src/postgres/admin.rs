//! Small tables edited by operators and the web app: idents, sensors, accounts, deploy
//! scripts and enrollment tokens.

use apiary_model::{ApiKey, Ident, Role, Secret, User, WebSession};
use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use tokio_postgres::Row;

use super::text::{enc, Jsonb};
use super::{is_unique_violation, json_err};
use crate::deploy::{DeployScript, EnrollmentToken, NewEnrollmentToken, ScriptVersion};
use crate::types::SensorRecord;
use crate::validate;
use crate::{Result, StoreError};

/// Now, truncated to the microsecond like everything stored.
fn now() -> DateTime<Utc> {
    DateTime::from_timestamp_micros(Utc::now().timestamp_micros()).unwrap_or_default()
}

// ---- idents ----

const BUMP_IDENTS: &str = "UPDATE counters SET value = value + 1 WHERE name = 'idents_version'";

const IDENT_COLS: &str = "ident, secret, publish, subscribe, owner";

fn ident_row(r: &Row) -> Result<Ident> {
    Ok(Ident {
        ident: r.get(0),
        secret: Secret::new(r.get::<_, String>(1)),
        publish: r.get::<_, Jsonb>(2).parse().map_err(json_err)?,
        subscribe: r.get::<_, Jsonb>(3).parse().map_err(json_err)?,
        owner: r.get(4),
    })
}

pub(super) async fn list_idents(c: &impl GenericClient) -> Result<Vec<Ident>> {
    let st = c
        .prepare_cached(&format!(
            "SELECT {IDENT_COLS} FROM idents ORDER BY ident COLLATE \"C\""
        ))
        .await?;
    c.query(&st, &[]).await?.iter().map(ident_row).collect()
}

pub(super) async fn get_ident(c: &impl GenericClient, ident: &str) -> Result<Option<Ident>> {
    let st = c
        .prepare_cached(&format!("SELECT {IDENT_COLS} FROM idents WHERE ident = $1"))
        .await?;
    c.query_opt(&st, &[&ident])
        .await?
        .map(|r| ident_row(&r))
        .transpose()
}

pub(super) async fn upsert_ident(c: &mut deadpool_postgres::Client, i: &Ident) -> Result<()> {
    validate::ident(i)?;
    let publish = Jsonb::of(&i.publish).map_err(json_err)?;
    let subscribe = Jsonb::of(&i.subscribe).map_err(json_err)?;
    let tx = c.transaction().await?;
    tx.execute(
        "INSERT INTO idents (ident, secret, publish, subscribe, owner, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $6)
         ON CONFLICT (ident) DO UPDATE SET secret = excluded.secret,
             publish = excluded.publish, subscribe = excluded.subscribe,
             owner = excluded.owner, updated_at = excluded.updated_at",
        &[
            &i.ident,
            &i.secret.expose(),
            &publish,
            &subscribe,
            &i.owner,
            &now(),
        ],
    )
    .await?;
    tx.execute(BUMP_IDENTS, &[]).await?;
    tx.commit().await?;
    Ok(())
}

pub(super) async fn delete_ident(c: &mut deadpool_postgres::Client, ident: &str) -> Result<bool> {
    let tx = c.transaction().await?;
    let n = tx
        .execute("DELETE FROM idents WHERE ident = $1", &[&ident])
        .await?;
    if n > 0 {
        tx.execute(BUMP_IDENTS, &[]).await?;
    }
    tx.commit().await?;
    Ok(n > 0)
}

pub(super) async fn idents_version(c: &impl GenericClient) -> Result<i64> {
    let st = c
        .prepare_cached("SELECT value FROM counters WHERE name = 'idents_version'")
        .await?;
    Ok(c.query_one(&st, &[]).await?.get(0))
}

// ---- sensors ----

const SENSOR_COLS: &str = "uuid, name, hostname, ip, honeypot, ident, created_at, last_seen, \
                           heartbeat, latitude, longitude";

fn sensor_row(r: &Row) -> Result<SensorRecord> {
    Ok(SensorRecord {
        uuid: r.get(0),
        name: r.get(1),
        hostname: r.get(2),
        ip: r.get(3),
        honeypot: r.get(4),
        ident: super::text::dec(r.get(5)),
        created_at: r.get(6),
        last_seen: r.get(7),
        heartbeat: r
            .get::<_, Option<Jsonb>>(8)
            .map(|j| j.parse())
            .transpose()
            .map_err(json_err)?,
        latitude: r.get(9),
        longitude: r.get(10),
    })
}

pub(super) async fn list_sensors(c: &impl GenericClient) -> Result<Vec<SensorRecord>> {
    let st = c
        .prepare_cached(&format!(
            "SELECT {SENSOR_COLS} FROM sensors ORDER BY name COLLATE \"C\""
        ))
        .await?;
    c.query(&st, &[]).await?.iter().map(sensor_row).collect()
}

pub(super) async fn get_sensor(c: &impl GenericClient, uuid: &str) -> Result<Option<SensorRecord>> {
    let st = c
        .prepare_cached(&format!(
            "SELECT {SENSOR_COLS} FROM sensors WHERE uuid = $1"
        ))
        .await?;
    c.query_opt(&st, &[&uuid])
        .await?
        .map(|r| sensor_row(&r))
        .transpose()
}

pub(super) async fn create_sensor(c: &impl GenericClient, s: &SensorRecord) -> Result<()> {
    validate::new_sensor(s)?;
    let heartbeat = s
        .heartbeat
        .as_ref()
        .map(Jsonb::of)
        .transpose()
        .map_err(json_err)?;
    c.execute(
        &format!(
            "INSERT INTO sensors ({SENSOR_COLS})
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
        ),
        &[
            &s.uuid,
            &s.name,
            &s.hostname,
            &s.ip,
            &s.honeypot,
            &enc(&s.ident).as_ref(),
            &s.created_at,
            &s.last_seen,
            &heartbeat,
            &s.latitude,
            &s.longitude,
        ],
    )
    .await
    .map_err(|e| {
        if is_unique_violation(&e) {
            StoreError::Conflict(format!(
                "a sensor with uuid {:?} or name {:?} exists",
                s.uuid, s.name
            ))
        } else {
            e.into()
        }
    })?;
    Ok(())
}

pub(super) async fn update_sensor(c: &impl GenericClient, s: &SensorRecord) -> Result<()> {
    let n = c
        .execute(
            "UPDATE sensors SET name = $2, hostname = $3, ip = $4, honeypot = $5, ident = $6,
                 latitude = $7, longitude = $8
             WHERE uuid = $1",
            &[
                &s.uuid,
                &s.name,
                &s.hostname,
                &s.ip,
                &s.honeypot,
                &enc(&s.ident).as_ref(),
                &s.latitude,
                &s.longitude,
            ],
        )
        .await
        .map_err(|e| {
            if is_unique_violation(&e) {
                StoreError::Conflict(format!("a sensor named {:?} exists", s.name))
            } else {
                e.into()
            }
        })?;
    if n == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

pub(super) async fn delete_sensor(c: &impl GenericClient, uuid: &str) -> Result<bool> {
    Ok(c.execute("DELETE FROM sensors WHERE uuid = $1", &[&uuid])
        .await?
        > 0)
}

pub(super) async fn touch_sensor(
    c: &impl GenericClient,
    ident: &str,
    at: DateTime<Utc>,
) -> Result<()> {
    let st = c
        .prepare_cached(
            "UPDATE sensors SET last_seen = $2
             WHERE ident = $1 AND (last_seen IS NULL OR last_seen < $2)",
        )
        .await?;
    c.execute(&st, &[&enc(ident).as_ref(), &at]).await?;
    Ok(())
}

pub(super) async fn record_heartbeat(
    c: &impl GenericClient,
    uuid: &str,
    at: DateTime<Utc>,
    info: &serde_json::Value,
) -> Result<bool> {
    let hb = Jsonb::of(info).map_err(json_err)?;
    let n = c
        .execute(
            "UPDATE sensors SET heartbeat = $2,
                 last_seen = CASE WHEN last_seen IS NULL OR last_seen < $3 THEN $3
                                  ELSE last_seen END
             WHERE uuid = $1",
            &[&uuid, &hb, &at],
        )
        .await?;
    Ok(n > 0)
}

// ---- accounts ----

fn role_of(s: &str) -> Result<Role> {
    Role::parse(s).ok_or_else(|| StoreError::Other(format!("unknown role {s:?} stored")))
}

const USER_COLS: &str = "id, email, role, created_at";

fn user_row(r: &Row) -> Result<User> {
    Ok(User {
        id: r.get(0),
        email: r.get(1),
        role: role_of(r.get(2))?,
        created_at: r.get(3),
    })
}

fn key_row(r: &Row) -> ApiKey {
    ApiKey {
        id: r.get(0),
        user_id: r.get(1),
        prefix: r.get(2),
        label: r.get(3),
        created_at: r.get(4),
    }
}

pub(super) async fn count_users(c: &impl GenericClient) -> Result<u64> {
    let n: i64 = c.query_one("SELECT COUNT(*) FROM users", &[]).await?.get(0);
    Ok(n as u64)
}

pub(super) async fn create_user(
    c: &impl GenericClient,
    email: &str,
    role: Role,
    password_hash: &str,
) -> Result<User> {
    let email = validate::email(email)?;
    let created = now();
    let row = c
        .query_one(
            "INSERT INTO users (email, role, password_hash, created_at) VALUES ($1, $2, $3, $4)
             RETURNING id",
            &[&email, &role.as_str(), &password_hash, &created],
        )
        .await
        .map_err(|e| {
            if is_unique_violation(&e) {
                StoreError::Conflict(format!("user {email} already exists"))
            } else {
                e.into()
            }
        })?;
    Ok(User {
        id: row.get(0),
        email: email.to_owned(),
        role,
        created_at: created,
    })
}

pub(super) async fn user_by_id(c: &impl GenericClient, id: i64) -> Result<Option<User>> {
    c.query_opt(
        &format!("SELECT {USER_COLS} FROM users WHERE id = $1"),
        &[&id],
    )
    .await?
    .map(|r| user_row(&r))
    .transpose()
}

pub(super) async fn user_with_password(
    c: &impl GenericClient,
    email: &str,
) -> Result<Option<(User, String)>> {
    let st = c
        .prepare_cached(&format!(
            "SELECT {USER_COLS}, password_hash FROM users WHERE lower(email) = lower($1)"
        ))
        .await?;
    c.query_opt(&st, &[&email.trim()])
        .await?
        .map(|r| Ok((user_row(&r)?, r.get(4))))
        .transpose()
}

pub(super) async fn list_users(c: &impl GenericClient) -> Result<Vec<User>> {
    c.query(
        &format!("SELECT {USER_COLS} FROM users ORDER BY lower(email) COLLATE \"C\", id"),
        &[],
    )
    .await?
    .iter()
    .map(user_row)
    .collect()
}

pub(super) async fn set_password(
    c: &impl GenericClient,
    id: i64,
    password_hash: &str,
) -> Result<()> {
    let n = c
        .execute(
            "UPDATE users SET password_hash = $2 WHERE id = $1",
            &[&id, &password_hash],
        )
        .await?;
    if n == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

pub(super) async fn set_role(c: &impl GenericClient, id: i64, role: Role) -> Result<()> {
    let n = c
        .execute(
            "UPDATE users SET role = $2 WHERE id = $1",
            &[&id, &role.as_str()],
        )
        .await?;
    if n == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

pub(super) async fn delete_user(c: &impl GenericClient, id: i64) -> Result<bool> {
    // Keys and sessions go with it (ON DELETE CASCADE).
    Ok(c.execute("DELETE FROM users WHERE id = $1", &[&id]).await? > 0)
}

pub(super) async fn create_api_key(
    c: &impl GenericClient,
    user_id: i64,
    key_hash: &str,
    prefix: &str,
    label: &str,
) -> Result<ApiKey> {
    let created = now();
    let row = c
        .query_one(
            "INSERT INTO api_keys (user_id, key_hash, prefix, label, created_at)
             VALUES ($1, $2, $3, $4, $5) RETURNING id",
            &[&user_id, &key_hash, &prefix, &label, &created],
        )
        .await?;
    Ok(ApiKey {
        id: row.get(0),
        user_id,
        prefix: prefix.to_owned(),
        label: label.to_owned(),
        created_at: created,
    })
}

pub(super) async fn list_api_keys(
    c: &impl GenericClient,
    user_id: Option<i64>,
) -> Result<Vec<ApiKey>> {
    let st = c
        .prepare_cached(
            "SELECT id, user_id, prefix, label, created_at FROM api_keys
             WHERE $1::bigint IS NULL OR user_id = $1 ORDER BY id",
        )
        .await?;
    Ok(c.query(&st, &[&user_id])
        .await?
        .iter()
        .map(key_row)
        .collect())
}

pub(super) async fn user_by_api_key(
    c: &impl GenericClient,
    key_hash: &str,
) -> Result<Option<User>> {
    let st = c
        .prepare_cached(
            "SELECT u.id, u.email, u.role, u.created_at FROM api_keys k
             JOIN users u ON u.id = k.user_id WHERE k.key_hash = $1",
        )
        .await?;
    c.query_opt(&st, &[&key_hash])
        .await?
        .map(|r| user_row(&r))
        .transpose()
}

pub(super) async fn delete_api_key(
    c: &impl GenericClient,
    id: i64,
    user_id: Option<i64>,
) -> Result<bool> {
    Ok(c.execute(
        "DELETE FROM api_keys WHERE id = $1 AND ($2::bigint IS NULL OR user_id = $2)",
        &[&id, &user_id],
    )
    .await?
        > 0)
}

pub(super) async fn create_web_session(c: &impl GenericClient, s: &WebSession) -> Result<()> {
    // Expired sessions are swept here, so the table never grows past the live ones.
    c.execute(
        "DELETE FROM web_sessions WHERE expires_at <= $1",
        &[&Utc::now()],
    )
    .await?;
    c.execute(
        "INSERT INTO web_sessions (token_hash, user_id, csrf, created_at, expires_at)
         VALUES ($1, $2, $3, $4, $5)",
        &[
            &s.token_hash,
            &s.user_id,
            &s.csrf,
            &s.created_at,
            &s.expires_at,
        ],
    )
    .await?;
    Ok(())
}

pub(super) async fn web_session(
    c: &impl GenericClient,
    token_hash: &str,
    at: DateTime<Utc>,
) -> Result<Option<(WebSession, User)>> {
    let st = c
        .prepare_cached(
            "SELECT s.token_hash, s.user_id, s.csrf, s.created_at, s.expires_at,
                    u.id, u.email, u.role, u.created_at
             FROM web_sessions s JOIN users u ON u.id = s.user_id
             WHERE s.token_hash = $1 AND s.expires_at > $2",
        )
        .await?;
    c.query_opt(&st, &[&token_hash, &at])
        .await?
        .map(|r| {
            Ok((
                WebSession {
                    token_hash: r.get(0),
                    user_id: r.get(1),
                    csrf: r.get(2),
                    created_at: r.get(3),
                    expires_at: r.get(4),
                },
                User {
                    id: r.get(5),
                    email: r.get(6),
                    role: role_of(r.get(7))?,
                    created_at: r.get(8),
                },
            ))
        })
        .transpose()
}

pub(super) async fn delete_web_session(c: &impl GenericClient, token_hash: &str) -> Result<()> {
    c.execute(
        "DELETE FROM web_sessions WHERE token_hash = $1",
        &[&token_hash],
    )
    .await?;
    Ok(())
}

pub(super) async fn delete_user_sessions(c: &impl GenericClient, user_id: i64) -> Result<u64> {
    Ok(
        c.execute("DELETE FROM web_sessions WHERE user_id = $1", &[&user_id])
            .await?,
    )
}

// ---- deploy scripts and enrollment tokens ----

const SCRIPT_SELECT: &str = "SELECT s.id, s.name, s.honeypot, s.version, v.body, v.notes,
        v.author, s.created_at, s.updated_at
     FROM deploy_scripts s
     JOIN deploy_script_versions v ON v.script_id = s.id AND v.version = s.version";

fn script_row(r: &Row) -> DeployScript {
    DeployScript {
        id: r.get(0),
        name: r.get(1),
        honeypot: r.get(2),
        version: r.get(3),
        body: r.get(4),
        notes: r.get(5),
        author: r.get(6),
        created_at: r.get(7),
        updated_at: r.get(8),
    }
}

const TOKEN_COLS: &str =
    "id, script_id, prefix, label, created_by, created_at, expires_at, revoked, uses";

fn token_row(r: &Row) -> EnrollmentToken {
    EnrollmentToken {
        id: r.get(0),
        script_id: r.get(1),
        prefix: r.get(2),
        label: r.get(3),
        created_by: r.get(4),
        created_at: r.get(5),
        expires_at: r.get(6),
        revoked: r.get(7),
        uses: r.get(8),
    }
}

/// [`validate::script_body`], and no NUL: PostgreSQL text cannot hold one.
fn check_body(body: &str) -> Result<()> {
    validate::script_body(body)?;
    if body.contains('\0') {
        return Err(StoreError::Invalid("script body contains NUL".into()));
    }
    Ok(())
}

pub(super) async fn list_scripts(c: &impl GenericClient) -> Result<Vec<DeployScript>> {
    let st = c
        .prepare_cached(&format!("{SCRIPT_SELECT} ORDER BY s.name COLLATE \"C\""))
        .await?;
    Ok(c.query(&st, &[]).await?.iter().map(script_row).collect())
}

pub(super) async fn script(c: &impl GenericClient, id: i64) -> Result<Option<DeployScript>> {
    let st = c
        .prepare_cached(&format!("{SCRIPT_SELECT} WHERE s.id = $1"))
        .await?;
    Ok(c.query_opt(&st, &[&id]).await?.map(|r| script_row(&r)))
}

pub(super) async fn create_script(
    c: &mut deadpool_postgres::Client,
    name: &str,
    honeypot: &str,
    body: &str,
    notes: &str,
    author: &str,
) -> Result<DeployScript> {
    let (name, honeypot) = validate::script_names(name, honeypot)?;
    check_body(body)?;
    let at = now();
    let tx = c.transaction().await?;
    let id: i64 = tx
        .query_one(
            "INSERT INTO deploy_scripts (name, honeypot, version, created_at, updated_at)
             VALUES ($1, $2, 1, $3, $3) RETURNING id",
            &[&name, &honeypot, &at],
        )
        .await
        .map_err(|e| {
            if is_unique_violation(&e) {
                StoreError::Conflict(format!("a deploy script named {name:?} already exists"))
            } else {
                e.into()
            }
        })?
        .get(0);
    tx.execute(
        "INSERT INTO deploy_script_versions (script_id, version, body, notes, author, created_at)
         VALUES ($1, 1, $2, $3, $4, $5)",
        &[&id, &body, &notes, &author, &at],
    )
    .await?;
    let s = script(&tx, id).await?.ok_or(StoreError::NotFound)?;
    tx.commit().await?;
    Ok(s)
}

pub(super) async fn update_script(
    c: &mut deadpool_postgres::Client,
    id: i64,
    body: &str,
    notes: &str,
    author: &str,
) -> Result<DeployScript> {
    check_body(body)?;
    let at = now();
    let tx = c.transaction().await?;
    let version: Option<i64> = tx
        .query_opt(
            "SELECT version FROM deploy_scripts WHERE id = $1 FOR UPDATE",
            &[&id],
        )
        .await?
        .map(|r| r.get(0));
    let next = version.ok_or(StoreError::NotFound)? + 1;
    tx.execute(
        "INSERT INTO deploy_script_versions (script_id, version, body, notes, author, created_at)
         VALUES ($1, $2, $3, $4, $5, $6)",
        &[&id, &next, &body, &notes, &author, &at],
    )
    .await?;
    tx.execute(
        "UPDATE deploy_scripts SET version = $2, updated_at = $3 WHERE id = $1",
        &[&id, &next, &at],
    )
    .await?;
    let s = script(&tx, id).await?.ok_or(StoreError::NotFound)?;
    tx.commit().await?;
    Ok(s)
}

pub(super) async fn script_versions(c: &impl GenericClient, id: i64) -> Result<Vec<ScriptVersion>> {
    let st = c
        .prepare_cached(
            "SELECT script_id, version, body, notes, author, created_at
             FROM deploy_script_versions WHERE script_id = $1 ORDER BY version DESC",
        )
        .await?;
    Ok(c.query(&st, &[&id])
        .await?
        .iter()
        .map(|r| ScriptVersion {
            script_id: r.get(0),
            version: r.get(1),
            body: r.get(2),
            notes: r.get(3),
            author: r.get(4),
            created_at: r.get(5),
        })
        .collect())
}

pub(super) async fn create_token(
    c: &impl GenericClient,
    t: &NewEnrollmentToken,
) -> Result<EnrollmentToken> {
    if script(c, t.script_id).await?.is_none() {
        return Err(StoreError::NotFound);
    }
    let label: String = t.label.trim().chars().take(100).collect();
    let row = c
        .query_one(
            &format!(
                "INSERT INTO enrollment_tokens
                     (script_id, token_hash, prefix, label, created_by, created_at, expires_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)
                 RETURNING {TOKEN_COLS}"
            ),
            &[
                &t.script_id,
                &t.token_hash,
                &t.prefix,
                &label,
                &t.created_by,
                &now(),
                &t.expires_at,
            ],
        )
        .await?;
    Ok(token_row(&row))
}

pub(super) async fn list_tokens(
    c: &impl GenericClient,
    script_id: Option<i64>,
) -> Result<Vec<EnrollmentToken>> {
    let st = c
        .prepare_cached(&format!(
            "SELECT {TOKEN_COLS} FROM enrollment_tokens
             WHERE $1::bigint IS NULL OR script_id = $1 ORDER BY id DESC"
        ))
        .await?;
    Ok(c.query(&st, &[&script_id])
        .await?
        .iter()
        .map(token_row)
        .collect())
}

pub(super) async fn token_by_hash(
    c: &impl GenericClient,
    hash: &str,
) -> Result<Option<EnrollmentToken>> {
    let st = c
        .prepare_cached(&format!(
            "SELECT {TOKEN_COLS} FROM enrollment_tokens WHERE token_hash = $1"
        ))
        .await?;
    Ok(c.query_opt(&st, &[&hash]).await?.map(|r| token_row(&r)))
}

pub(super) async fn revoke_token(c: &impl GenericClient, id: i64) -> Result<bool> {
    Ok(c.execute(
        "UPDATE enrollment_tokens SET revoked = TRUE WHERE id = $1",
        &[&id],
    )
    .await?
        > 0)
}

pub(super) async fn enrolled_sensor(
    c: &impl GenericClient,
    token_id: i64,
    hostname: &str,
) -> Result<Option<String>> {
    let st = c
        .prepare_cached(
            "SELECT e.sensor_uuid FROM deploy_enrollments e
             JOIN sensors s ON s.uuid = e.sensor_uuid
             WHERE e.token_id = $1 AND e.hostname = $2",
        )
        .await?;
    Ok(c.query_opt(&st, &[&token_id, &hostname])
        .await?
        .map(|r| r.get(0)))
}

pub(super) async fn sensor_token(c: &impl GenericClient, uuid: &str) -> Result<Option<i64>> {
    let st = c
        .prepare_cached("SELECT token_id FROM deploy_enrollments WHERE sensor_uuid = $1 LIMIT 1")
        .await?;
    Ok(c.query_opt(&st, &[&uuid]).await?.map(|r| r.get(0)))
}

pub(super) async fn record_enrollment(
    c: &mut deadpool_postgres::Client,
    token_id: i64,
    hostname: &str,
    uuid: &str,
    at: DateTime<Utc>,
) -> Result<()> {
    let tx = c.transaction().await?;
    tx.execute(
        "INSERT INTO deploy_enrollments (token_id, hostname, sensor_uuid, created_at)
         VALUES ($1, $2, $3, $4)
         ON CONFLICT (token_id, hostname) DO UPDATE SET sensor_uuid = excluded.sensor_uuid",
        &[&token_id, &hostname, &uuid, &at],
    )
    .await?;
    tx.execute(
        "UPDATE enrollment_tokens SET uses = uses + 1 WHERE id = $1",
        &[&token_id],
    )
    .await?;
    tx.commit().await?;
    Ok(())
}
