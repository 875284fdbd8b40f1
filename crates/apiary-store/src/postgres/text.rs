//! PostgreSQL text cannot hold NUL, and JSONB refuses the `\u0000` escape, but the store
//! keeps whatever a sensor sent. Text is therefore stored with an injective escape:
//! NUL becomes `ESC '0'` and `ESC` itself `ESC 'e'`, where `ESC` is U+FFFF (a
//! noncharacter that real data does not carry). Equality and substring search on encoded
//! values answer the same as on the originals (barring text that contains U+FFFF).
//! Values without either character, nearly all of them, pass through without a copy.

use std::borrow::Cow;
use std::error::Error;

use bytes::{BufMut, BytesMut};
use serde_json::Value;
use tokio_postgres::types::{FromSql, IsNull, ToSql, Type};

const ESC: char = '\u{FFFF}';

/// The stored form of `s`.
pub(super) fn enc(s: &str) -> Cow<'_, str> {
    if !s.contains(['\0', ESC]) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\0' => {
                out.push(ESC);
                out.push('0');
            }
            ESC => {
                out.push(ESC);
                out.push('e');
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// Back from the stored form.
pub(super) fn dec(s: String) -> String {
    if !s.contains(ESC) {
        return s;
    }
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != ESC {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('0') => out.push('\0'),
            Some('e') => out.push(ESC),
            Some(other) => {
                out.push(ESC);
                out.push(other);
            }
            None => out.push(ESC),
        }
    }
    out
}

/// [`dec`] for an optional value.
pub(super) fn dec_opt(s: Option<String>) -> Option<String> {
    s.map(dec)
}

fn map_strings(v: &mut Value, f: &dyn Fn(String) -> String) {
    match v {
        Value::String(s) => *s = f(std::mem::take(s)),
        Value::Array(a) => a.iter_mut().for_each(|v| map_strings(v, f)),
        Value::Object(o) => {
            let old = std::mem::take(o);
            for (k, mut v) in old {
                map_strings(&mut v, f);
                o.insert(f(k), v);
            }
        }
        _ => {}
    }
}

/// JSON text ready for a JSONB column: serialized once, escaped only when needed.
#[derive(Debug)]
pub(super) struct Jsonb(pub(super) String);

impl Jsonb {
    /// Serializes `value`, escaping NUL (and ESC) inside its strings and keys.
    pub(super) fn of<T: serde::Serialize + ?Sized>(value: &T) -> serde_json::Result<Self> {
        let text = serde_json::to_string(value)?;
        if !text.contains("\\u0000") && !text.contains(ESC) {
            return Ok(Self(text));
        }
        let mut v: Value = serde_json::from_str(&text)?;
        map_strings(&mut v, &|s| enc(&s).into_owned());
        Ok(Self(serde_json::to_string(&v)?))
    }

    /// Parses stored JSON back, undoing the escape.
    pub(super) fn parse<T: serde::de::DeserializeOwned>(&self) -> serde_json::Result<T> {
        if !self.0.contains(ESC) {
            return serde_json::from_str(&self.0);
        }
        let mut v: Value = serde_json::from_str(&self.0)?;
        map_strings(&mut v, &|s| dec(s));
        serde_json::from_value(v)
    }
}

impl ToSql for Jsonb {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn Error + Sync + Send>> {
        if *ty == Type::JSONB {
            out.put_u8(1);
        }
        out.put_slice(self.0.as_bytes());
        Ok(IsNull::No)
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::JSONB || *ty == Type::JSON
    }

    tokio_postgres::types::to_sql_checked!();
}

impl<'a> FromSql<'a> for Jsonb {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn Error + Sync + Send>> {
        let body = if *ty == Type::JSONB {
            match raw.split_first() {
                Some((1, rest)) => rest,
                _ => return Err("unsupported JSONB encoding version".into()),
            }
        } else {
            raw
        };
        Ok(Self(std::str::from_utf8(body)?.to_owned()))
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::JSONB || *ty == Type::JSON
    }
}

/// A text parameter in its stored form: `Txt::of(s)` escapes only when needed.
#[derive(Debug)]
pub(super) struct Txt<'a>(Cow<'a, str>);

impl<'a> Txt<'a> {
    pub(super) fn of(s: &'a str) -> Self {
        Self(enc(s))
    }

    pub(super) fn opt(s: Option<&'a str>) -> Option<Self> {
        s.map(Self::of)
    }
}

impl ToSql for Txt<'_> {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn Error + Sync + Send>> {
        self.0.as_ref().to_sql(ty, out)
    }

    fn accepts(ty: &Type) -> bool {
        <&str as ToSql>::accepts(ty)
    }

    tokio_postgres::types::to_sql_checked!();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        for s in [
            "",
            "plain",
            "a\0b\0\0c",
            "\u{FFFF}0",
            "x\u{FFFF}",
            "\0\u{FFFF}\0",
        ] {
            assert_eq!(dec(enc(s).into_owned()), s);
            assert!(!enc(s).contains('\0'));
        }
        assert!(matches!(enc("plain"), Cow::Borrowed(_)));
        let v = serde_json::json!({"a\0": ["x\0y", 1, {"k": "\u{FFFF}"}]});
        let j = Jsonb::of(&v).unwrap();
        assert!(!j.0.contains("\\u0000"));
        assert_eq!(j.parse::<Value>().unwrap(), v);
    }
}
