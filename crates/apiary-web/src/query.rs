//! Query-string parsing shared by the API and the pages: MHN's filter names turned into a
//! [`SessionFilter`], `limit`/`cursor` into a [`Page`].

use std::collections::BTreeMap;
use std::net::IpAddr;

use apiary_store::{Cursor, Page, SessionFilter};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use ipnet::IpNet;

use crate::error::AppError;

/// Default page size of the API.
pub const DEFAULT_LIMIT: usize = 100;

/// The query string as a map (last value wins). Never fails on unknown keys: MHN ignored
/// them, and so do we.
#[derive(Debug, Clone, Default)]
pub struct Params(pub BTreeMap<String, String>);

impl<S: Send + Sync> FromRequestParts<S> for Params {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let q = parts.uri.query().unwrap_or("");
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(q)
            .map_err(|e| AppError::BadRequest(format!("malformed query string: {e}")))?;
        Ok(Self(pairs.into_iter().collect()))
    }
}

impl Params {
    /// A non-empty value.
    pub fn get(&self, k: &str) -> Option<&str> {
        self.0.get(k).map(|v| v.trim()).filter(|v| !v.is_empty())
    }

    fn parse<T: std::str::FromStr>(&self, k: &str) -> Result<Option<T>, AppError> {
        self.get(k)
            .map(|v| {
                v.parse::<T>()
                    .map_err(|_| AppError::BadRequest(format!("\"{k}\" has an invalid value.")))
            })
            .transpose()
    }

    /// Page size (default `default`, at most [`Page::MAX`]) and cursor.
    pub fn page(&self, default: usize) -> Result<Page, AppError> {
        let limit = self.parse::<usize>("limit")?.unwrap_or(default);
        if limit == 0 || limit > Page::MAX {
            return Err(AppError::BadRequest(format!(
                "\"limit\" must be 1 to {}.",
                Page::MAX
            )));
        }
        Ok(Page {
            limit,
            after: self.get("cursor").map(|c| Cursor(c.to_owned())),
        })
    }

    /// `hours_ago` as a start time.
    pub fn hours_ago(&self, default: Option<i64>) -> Result<Option<DateTime<Utc>>, AppError> {
        let h = self.parse::<i64>("hours_ago")?.or(default);
        match h {
            Some(h) if !(0..=24 * 365 * 100).contains(&h) => Err(AppError::BadRequest(
                "\"hours_ago\" is out of range.".into(),
            )),
            Some(h) => Ok(Some(Utc::now() - Duration::hours(h))),
            None => Ok(None),
        }
    }

    /// The session filter from MHN's names plus Apiary's extras.
    pub fn session_filter(&self) -> Result<SessionFilter, AppError> {
        let mut f = SessionFilter {
            since: self.hours_ago(None)?,
            ..Default::default()
        };
        if let Some(d) = self.get("timestamp") {
            let day = parse_day(d).ok_or_else(|| bad("timestamp"))?;
            f.since = Some(max_opt(f.since, day));
            f.until = Some(day + Duration::days(1));
        }
        if let Some(v) = self.get("since") {
            let t = parse_time(v, false).ok_or_else(|| bad("since"))?;
            f.since = Some(max_opt(f.since, t));
        }
        if let Some(v) = self.get("until") {
            let t = parse_time(v, true).ok_or_else(|| bad("until"))?;
            f.until = Some(f.until.map_or(t, |u| u.min(t)));
        }
        f.sensor = self
            .get("identifier")
            .or_else(|| self.get("sensor"))
            .map(str::to_owned);
        f.honeypot = self.get("honeypot").map(str::to_owned);
        if let Some(v) = self.get("source_ip") {
            f.source = Some(parse_net(v).ok_or_else(|| bad("source_ip"))?);
        }
        f.destination_port = self.parse("destination_port")?;
        f.protocol = self.get("protocol").map(str::to_owned);
        f.country = self.get("country").map(|c| c.to_ascii_uppercase());
        if let Some(v) = self.get("asn") {
            let n = v.trim_start_matches("AS").trim_start_matches("as");
            f.asn = Some(n.parse().map_err(|_| bad("asn"))?);
        }
        f.signature = self.get("signature").map(str::to_owned);
        f.credential = self.get("credential").map(str::to_owned);
        f.channel = self.get("channel").map(str::to_owned);
        if let Some(v) = self.get("internal") {
            f.internal = Some(matches!(v, "1" | "true" | "yes"));
        }
        Ok(f)
    }

    /// The query echoed in `meta`: everything but secrets.
    pub fn echo(&self) -> serde_json::Value {
        let m: serde_json::Map<String, serde_json::Value> = self
            .0
            .iter()
            .filter(|(k, _)| k.as_str() != "api_key" && k.as_str() != "csrf")
            .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
            .collect();
        serde_json::Value::Object(m)
    }

    /// This query with `cursor` replaced (for "next page" links), secrets dropped.
    pub fn with_cursor(&self, cursor: Option<&Cursor>) -> String {
        let mut m = self.0.clone();
        m.remove("api_key");
        m.remove("cursor");
        m.retain(|_, v| !v.trim().is_empty());
        if let Some(c) = cursor {
            m.insert("cursor".into(), c.0.clone());
        }
        serde_urlencoded::to_string(&m).unwrap_or_default()
    }
}

fn bad(k: &str) -> AppError {
    AppError::BadRequest(format!("\"{k}\" has an invalid value."))
}

fn max_opt(a: Option<DateTime<Utc>>, b: DateTime<Utc>) -> DateTime<Utc> {
    a.map_or(b, |a| a.max(b))
}

/// An address or network; a bare address is its /32 or /128.
pub fn parse_net(v: &str) -> Option<IpNet> {
    if let Ok(n) = v.parse::<IpNet>() {
        return Some(n.trunc());
    }
    apiary_model::event::parse_ip(v).map(IpNet::from)
}

/// A day: `YYYY-MM-DD` or MHN's `MM-DD-YYYY`.
pub fn parse_day(v: &str) -> Option<DateTime<Utc>> {
    let d = NaiveDate::parse_from_str(v, "%Y-%m-%d")
        .or_else(|_| NaiveDate::parse_from_str(v, "%m-%d-%Y"))
        .ok()?;
    Some(Utc.from_utc_datetime(&d.and_hms_opt(0, 0, 0)?))
}

/// RFC 3339, `YYYY-MM-DDTHH:MM` (HTML datetime-local, UTC) or a day (the end of the day
/// when `end_of_day`).
pub fn parse_time(v: &str, end_of_day: bool) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(v) {
        return Some(t.with_timezone(&Utc));
    }
    for fmt in ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S"] {
        if let Ok(t) = chrono::NaiveDateTime::parse_from_str(v, fmt) {
            return Some(Utc.from_utc_datetime(&t));
        }
    }
    let d = parse_day(v)?;
    Some(if end_of_day { d + Duration::days(1) } else { d })
}

/// Parses an address in a path.
pub fn parse_ip_path(v: &str) -> Result<IpAddr, AppError> {
    apiary_model::event::parse_ip(v)
        .ok_or_else(|| AppError::BadRequest("invalid IP address".into()))
}

/// MHN's time format: ISO 8601 without a zone (UTC), microseconds.
pub fn iso(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6f").to_string()
}

/// Display form on pages: `YYYY-MM-DD HH:MM:SS` UTC.
pub fn human(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(q: &[(&str, &str)]) -> Params {
        Params(
            q.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    #[test]
    fn filters_parse() {
        let f = p(&[
            ("source_ip", "10.0.0.0/8"),
            ("destination_port", "22"),
            ("honeypot", "cowrie"),
            ("asn", "AS64500"),
            ("country", "de"),
            ("identifier", "abc"),
        ])
        .session_filter()
        .unwrap();
        assert_eq!(f.source, Some("10.0.0.0/8".parse().unwrap()));
        assert_eq!(f.destination_port, Some(22));
        assert_eq!(f.asn, Some(64500));
        assert_eq!(f.country.as_deref(), Some("DE"));
        assert_eq!(f.sensor.as_deref(), Some("abc"));
        assert!(p(&[("destination_port", "x")]).session_filter().is_err());
        assert!(p(&[("limit", "10001")]).page(100).is_err());
        let f = p(&[("timestamp", "06-20-2019")]).session_filter().unwrap();
        assert_eq!(iso(f.since.unwrap()), "2019-06-20T00:00:00.000000");
    }

    #[test]
    fn echo_drops_api_key() {
        let q = p(&[("api_key", "s3cret"), ("limit", "5")]);
        assert!(!q.echo().to_string().contains("s3cret"));
        assert!(!q.with_cursor(None).contains("s3cret"));
    }
}
