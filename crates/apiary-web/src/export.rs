//! CSV and JSON exports of sessions. Every CSV cell is quoted, and a cell an attacker
//! could make a spreadsheet evaluate (starting with `=`, `+`, `-`, `@`, tab or CR) gets a
//! leading `'` so it stays text.

use apiary_model::Session;

use crate::query::iso;

/// Prefixes `'` to text a spreadsheet would take for a formula.
pub fn formula_guard(s: &str) -> String {
    match s.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => format!("'{s}"),
        _ => s.to_owned(),
    }
}

/// One CSV cell: guarded, quoted, quotes doubled.
pub fn cell(s: &str) -> String {
    format!("\"{}\"", formula_guard(s).replace('"', "\"\""))
}

/// Header of the sessions CSV.
pub const HEADER: &[&str] = &[
    "id",
    "timestamp",
    "sensor",
    "honeypot",
    "channel",
    "protocol",
    "source_ip",
    "source_port",
    "destination_ip",
    "destination_port",
    "country_code",
    "asn",
    "signature",
    "usernames",
    "passwords",
    "urls",
    "commands",
];

/// Appends the header line.
pub fn header(out: &mut String) {
    let line: Vec<String> = HEADER.iter().map(|h| cell(h)).collect();
    out.push_str(&line.join(","));
    out.push_str("\r\n");
}

/// Appends one session as a CSV line.
pub fn row(out: &mut String, s: &Session) {
    let opt = |v: Option<String>| v.unwrap_or_default();
    let geo = s.source_geo.as_ref();
    let d = &s.details;
    let join = |v: Vec<&str>| v.join(" | ");
    let fields = [
        opt(s.id.map(|i| i.to_string())),
        iso(s.timestamp),
        s.sensor.clone(),
        s.honeypot.clone(),
        s.channel.clone(),
        opt(s.protocol.clone()),
        opt(s.source_ip.map(|i| i.to_string())),
        opt(s.source_port.map(|i| i.to_string())),
        opt(s.destination_ip.map(|i| i.to_string())),
        opt(s.destination_port.map(|i| i.to_string())),
        opt(geo.and_then(|g| g.country_code.clone())),
        opt(geo.and_then(|g| g.asn).map(|a| a.to_string())),
        opt(d.ids.as_ref().map(|i| i.signature.clone())),
        join(d.credentials.iter().map(|c| c.username.as_str()).collect()),
        join(d.credentials.iter().map(|c| c.password.as_str()).collect()),
        join(d.urls.iter().map(String::as_str).collect()),
        join(d.commands.iter().map(String::as_str).collect()),
    ];
    let line: Vec<String> = fields.iter().map(|f| cell(f)).collect();
    out.push_str(&line.join(","));
    out.push_str("\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guards_formulas() {
        assert_eq!(cell("=cmd|'/c calc'!A1"), "\"'=cmd|'/c calc'!A1\"");
        assert_eq!(cell("+1"), "\"'+1\"");
        assert_eq!(cell("-1"), "\"'-1\"");
        assert_eq!(cell("@SUM(1)"), "\"'@SUM(1)\"");
        assert_eq!(cell("\tx"), "\"'\tx\"");
        assert_eq!(cell("a\"b"), "\"a\"\"b\"");
        assert_eq!(cell("plain"), "\"plain\"");
    }
}
