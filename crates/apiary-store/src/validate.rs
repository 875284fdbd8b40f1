//! Input checks both backends make before writing, so they refuse the same values with
//! the same message.

use apiary_model::Ident;

use crate::types::SensorRecord;
use crate::{Result, StoreError};

/// Largest script body accepted (a script is text; 1 MiB is generous).
const MAX_BODY: usize = 1 << 20;

/// A user's email, trimmed: 1 to 254 characters, none of them control characters.
pub(crate) fn email(email: &str) -> Result<&str> {
    let email = email.trim();
    if email.is_empty() || email.len() > 254 || email.chars().any(char::is_control) {
        return Err(StoreError::Invalid(
            "email must be 1 to 254 characters without control characters".into(),
        ));
    }
    Ok(email)
}

/// A new deploy script's name and honeypot, trimmed.
pub(crate) fn script_names(name: &str, honeypot: &str) -> Result<(String, String)> {
    Ok((
        short_name("name", name, 200)?,
        short_name("honeypot", honeypot, 64)?,
    ))
}

/// A short name (`field` in the message), trimmed: 1 to `max` bytes, no control characters.
fn short_name(field: &str, v: &str, max: usize) -> Result<String> {
    let v = v.trim();
    if v.is_empty() || v.len() > max || v.chars().any(char::is_control) {
        return Err(StoreError::Invalid(format!(
            "{field} must be 1 to {max} characters without control characters"
        )));
    }
    Ok(v.to_owned())
}

/// A deploy script body: at most [`MAX_BODY`] bytes.
pub(crate) fn script_body(body: &str) -> Result<()> {
    if body.len() > MAX_BODY {
        return Err(StoreError::Invalid(format!(
            "script body is larger than {MAX_BODY} bytes"
        )));
    }
    Ok(())
}

/// An ident to store: its name must not be empty.
pub(crate) fn ident(i: &Ident) -> Result<()> {
    if i.ident.is_empty() {
        return Err(StoreError::Invalid("ident name is empty".into()));
    }
    Ok(())
}

/// A sensor to register: uuid and name are required.
pub(crate) fn new_sensor(s: &SensorRecord) -> Result<()> {
    if s.uuid.is_empty() || s.name.is_empty() {
        return Err(StoreError::Invalid(
            "sensor uuid and name are required".into(),
        ));
    }
    Ok(())
}
