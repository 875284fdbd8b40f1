//! Users, API keys and web sessions: small tables behind the web app's sign-in.

use apiary_model::{ApiKey, Role, User, WebSession};
use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension, Row};

use crate::hours::{from_us, us};
use crate::validate;
use crate::{Result, StoreError};

fn role_of(s: &str) -> rusqlite::Result<Role> {
    Role::parse(s).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            0,
            rusqlite::types::Type::Text,
            format!("unknown role {s:?}").into(),
        )
    })
}

fn user_row(r: &Row<'_>) -> rusqlite::Result<User> {
    Ok(User {
        id: r.get(0)?,
        email: r.get(1)?,
        role: role_of(&r.get::<_, String>(2)?)?,
        created_at: from_us(r.get(3)?),
    })
}

fn key_row(r: &Row<'_>) -> rusqlite::Result<ApiKey> {
    Ok(ApiKey {
        id: r.get(0)?,
        user_id: r.get(1)?,
        prefix: r.get(2)?,
        label: r.get(3)?,
        created_at: from_us(r.get(4)?),
    })
}

const USER_COLS: &str = "id, email, role, created_at";

pub(super) fn count_users(c: &Connection) -> Result<u64> {
    let n: i64 = c
        .prepare_cached("SELECT COUNT(*) FROM users")?
        .query_row([], |r| r.get(0))?;
    Ok(n as u64)
}

pub(super) fn create_user(
    c: &mut Connection,
    email: &str,
    role: Role,
    password_hash: &str,
) -> Result<User> {
    let email = validate::email(email)?;
    let now = Utc::now();
    let taken: bool = c
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM users WHERE email = ?1)")?
        .query_row([email], |r| r.get(0))?;
    if taken {
        return Err(StoreError::Conflict(format!("user {email} already exists")));
    }
    c.execute(
        "INSERT INTO users (email, role, password_hash, created_at) VALUES (?1, ?2, ?3, ?4)",
        params![email, role.as_str(), password_hash, us(now)],
    )?;
    Ok(User {
        id: c.last_insert_rowid(),
        email: email.to_owned(),
        role,
        created_at: from_us(us(now)),
    })
}

pub(super) fn user_by_id(c: &Connection, id: i64) -> Result<Option<User>> {
    Ok(
        c.prepare_cached(&format!("SELECT {USER_COLS} FROM users WHERE id = ?1"))?
            .query_row([id], user_row)
            .optional()?,
    )
}

pub(super) fn user_with_password(c: &Connection, email: &str) -> Result<Option<(User, String)>> {
    Ok(c.prepare_cached(&format!(
        "SELECT {USER_COLS}, password_hash FROM users WHERE email = ?1"
    ))?
    .query_row([email.trim()], |r| Ok((user_row(r)?, r.get(4)?)))
    .optional()?)
}

pub(super) fn list_users(c: &Connection) -> Result<Vec<User>> {
    let mut st = c.prepare_cached(&format!("SELECT {USER_COLS} FROM users ORDER BY email"))?;
    let rows = st.query_map([], user_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

pub(super) fn set_password(c: &mut Connection, id: i64, password_hash: &str) -> Result<()> {
    let n = c.execute(
        "UPDATE users SET password_hash = ?2 WHERE id = ?1",
        params![id, password_hash],
    )?;
    if n == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

pub(super) fn set_role(c: &mut Connection, id: i64, role: Role) -> Result<()> {
    let n = c.execute(
        "UPDATE users SET role = ?2 WHERE id = ?1",
        params![id, role.as_str()],
    )?;
    if n == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

pub(super) fn delete_user(c: &mut Connection, id: i64) -> Result<bool> {
    // Keys and sessions go with it (ON DELETE CASCADE; foreign_keys is on).
    Ok(c.execute("DELETE FROM users WHERE id = ?1", [id])? > 0)
}

pub(super) fn create_api_key(
    c: &mut Connection,
    user_id: i64,
    key_hash: &str,
    prefix: &str,
    label: &str,
) -> Result<ApiKey> {
    let now = from_us(us(Utc::now()));
    c.execute(
        "INSERT INTO api_keys (user_id, key_hash, prefix, label, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![user_id, key_hash, prefix, label, us(now)],
    )?;
    Ok(ApiKey {
        id: c.last_insert_rowid(),
        user_id,
        prefix: prefix.to_owned(),
        label: label.to_owned(),
        created_at: now,
    })
}

pub(super) fn list_api_keys(c: &Connection, user_id: Option<i64>) -> Result<Vec<ApiKey>> {
    let mut st = c.prepare_cached(
        "SELECT id, user_id, prefix, label, created_at FROM api_keys
         WHERE ?1 IS NULL OR user_id = ?1 ORDER BY id",
    )?;
    let rows = st.query_map([user_id], key_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

pub(super) fn user_by_api_key(c: &Connection, key_hash: &str) -> Result<Option<User>> {
    Ok(c.prepare_cached(
        "SELECT u.id, u.email, u.role, u.created_at FROM api_keys k
             JOIN users u ON u.id = k.user_id WHERE k.key_hash = ?1",
    )?
    .query_row([key_hash], user_row)
    .optional()?)
}

pub(super) fn delete_api_key(c: &mut Connection, id: i64, user_id: Option<i64>) -> Result<bool> {
    Ok(c.execute(
        "DELETE FROM api_keys WHERE id = ?1 AND (?2 IS NULL OR user_id = ?2)",
        params![id, user_id],
    )? > 0)
}

pub(super) fn create_web_session(c: &mut Connection, s: &WebSession) -> Result<()> {
    // Expired sessions are swept here, so the table never grows past the live ones.
    c.execute(
        "DELETE FROM web_sessions WHERE expires_at <= ?1",
        [us(Utc::now())],
    )?;
    c.execute(
        "INSERT INTO web_sessions (token_hash, user_id, csrf, created_at, expires_at)
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![
            s.token_hash,
            s.user_id,
            s.csrf,
            us(s.created_at),
            us(s.expires_at)
        ],
    )?;
    Ok(())
}

pub(super) fn web_session(
    c: &Connection,
    token_hash: &str,
    now: DateTime<Utc>,
) -> Result<Option<(WebSession, User)>> {
    Ok(c.prepare_cached(
        "SELECT s.token_hash, s.user_id, s.csrf, s.created_at, s.expires_at,
                    u.id, u.email, u.role, u.created_at
             FROM web_sessions s JOIN users u ON u.id = s.user_id
             WHERE s.token_hash = ?1 AND s.expires_at > ?2",
    )?
    .query_row(params![token_hash, us(now)], |r| {
        Ok((
            WebSession {
                token_hash: r.get(0)?,
                user_id: r.get(1)?,
                csrf: r.get(2)?,
                created_at: from_us(r.get(3)?),
                expires_at: from_us(r.get(4)?),
            },
            User {
                id: r.get(5)?,
                email: r.get(6)?,
                role: role_of(&r.get::<_, String>(7)?)?,
                created_at: from_us(r.get(8)?),
            },
        ))
    })
    .optional()?)
}

pub(super) fn delete_web_session(c: &mut Connection, token_hash: &str) -> Result<()> {
    c.execute(
        "DELETE FROM web_sessions WHERE token_hash = ?1",
        [token_hash],
    )?;
    Ok(())
}

pub(super) fn delete_user_sessions(c: &mut Connection, user_id: i64) -> Result<u64> {
    Ok(c.execute("DELETE FROM web_sessions WHERE user_id = ?1", [user_id])? as u64)
}
