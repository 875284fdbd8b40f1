//! Server-rendered HTML pages (maud: every interpolated value is escaped). No external
//! resources and no inline scripts; inline CSS only, so the pages work on isolated networks
//! and under a strict Content-Security-Policy. The only scripts are the live map and the
//! dashboard ticker, served from `/static/map/` (same origin).

pub mod attacker;
pub mod attacks;
pub mod dashboard;
pub mod deploy;
pub mod login;
pub mod map;
pub mod payloads;
pub mod sensors;
pub mod settings;

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use maud::{html, Markup, PreEscaped, DOCTYPE};
use serde::Deserialize;

use crate::auth::Caller;
use crate::error::AppError;

/// An [`AppError`] rendered as a small HTML page with the same status.
pub struct HtmlError(pub AppError);

impl IntoResponse for HtmlError {
    fn into_response(self) -> Response {
        let (status, msg) = self.0.parts();
        let body = bare(
            "Error",
            html! { main { h1 { (status.as_u16()) " " (status.canonical_reason().unwrap_or("")) } p { (msg) } p { a href="/ui/dashboard/" { "Back to the dashboard" } } } },
        );
        (status, Page(body)).into_response()
    }
}

impl<E: Into<AppError>> From<E> for HtmlError {
    fn from(e: E) -> Self {
        Self(e.into())
    }
}

/// Page handler result.
pub type PageResult = Result<Page, HtmlError>;

/// An HTML response.
pub struct Page(pub Markup);

impl IntoResponse for Page {
    fn into_response(self) -> Response {
        (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            self.0.into_string(),
        )
            .into_response()
    }
}

const CSS: &str = r#"
*{box-sizing:border-box}body{margin:0;font:14px/1.4 system-ui,sans-serif;color:#222;background:#f6f6f4}
nav{background:#2b2b2b;color:#eee;padding:.5em 1em;display:flex;gap:1em;align-items:center;flex-wrap:wrap}
nav a{color:#ffd54f;text-decoration:none}nav .me{margin-left:auto;color:#bbb}
nav form{display:inline;margin:0}nav button{background:none;border:0;color:#ffd54f;cursor:pointer;font:inherit}
main{padding:1em 1.5em;max-width:1400px}h1{font-size:1.4em}h2{font-size:1.1em;margin-top:1.5em}
table{border-collapse:collapse;background:#fff;margin:.5em 0;width:100%}
th,td{border:1px solid #ddd;padding:.25em .5em;text-align:left;vertical-align:top;word-break:break-all}
th{background:#eee}td.n{text-align:right;white-space:nowrap}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(300px,1fr));gap:1em}
.card{background:#fff;border:1px solid #ddd;padding:.5em 1em}
.big{font-size:2em;font-weight:bold}
pre{background:#fff;border:1px solid #ddd;padding:.5em;white-space:pre-wrap;word-break:break-all;max-height:40em;overflow:auto}
form.filters{display:flex;flex-wrap:wrap;gap:.5em;align-items:end;background:#fff;border:1px solid #ddd;padding:.5em}
form.filters label{display:flex;flex-direction:column;font-size:.85em}
input,select,button{font:inherit;padding:.2em .4em}
.online{color:#1b7d1b}.quiet{color:#b8860b}.offline{color:#b22}
.flash{background:#fff8d0;border:1px solid #e0c050;padding:.5em 1em}
.secret{font-family:monospace;background:#fff;border:1px dashed #888;padding:.5em}
svg{background:#fff;border:1px solid #ddd}
"#;

fn bare(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Apiary" }
                style { (PreEscaped(CSS)) }
            }
            body { (body) }
        }
    }
}

/// The page frame with the navigation bar.
pub fn layout(title: &str, c: &Caller, body: Markup) -> Markup {
    bare(
        title,
        html! {
            nav {
                strong { a href="/ui/dashboard/" { "Apiary" } }
                a href="/ui/dashboard/" { "Dashboard" }
                a href="/ui/map/" { "Map" }
                a href="/ui/attacks/" { "Attacks" }
                a href="/ui/payloads/" { "Payloads" }
                a href="/ui/sensors/" { "Sensors" }
                a href="/ui/deploy/" { "Deploy" }
                a href="/ui/settings/" { "Settings" }
                span.me { (c.user.email) " (" (c.user.role.as_str()) ")" }
                form method="post" action="/ui/logout/" {
                    input type="hidden" name="csrf" value=(c.csrf());
                    button type="submit" { "Log out" }
                }
            }
            main { h1 { (title) } (body) }
        },
    )
}

/// A form with only the CSRF token (sign-out, delete, revoke, rotate buttons).
#[derive(Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

/// A hidden CSRF field for forms.
pub fn csrf_field(c: &Caller) -> Markup {
    html! { input type="hidden" name="csrf" value=(c.csrf()); }
}

/// A link to the attacks report filtered by `key=value`.
pub fn report_link(key: &str, value: &str) -> String {
    let q = serde_urlencoded::to_string([(key, value)]).unwrap_or_default();
    format!("/ui/attacks/?{q}")
}

/// Link to an attacker page.
pub fn attacker_link(ip: &str) -> String {
    let enc: String = serde_urlencoded::to_string([("", ip)])
        .unwrap_or_default()
        .trim_start_matches('=')
        .to_owned();
    format!("/ui/attacker/{enc}/")
}

/// Thousands separators.
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    let first = match s.len() % 3 {
        0 => 3,
        r => r,
    };
    out.push_str(&s[..first]);
    let mut rest = &s[first..];
    while !rest.is_empty() {
        out.push(',');
        out.push_str(&rest[..3]);
        rest = &rest[3..];
    }
    out
}

/// Bytes as text when they are UTF-8, else a hex dump (offset, hex, ASCII).
pub fn show_bytes(b: &[u8]) -> String {
    if let Ok(s) = std::str::from_utf8(b) {
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(s) {
            if let Ok(pretty) = serde_json::to_string_pretty(&v) {
                return pretty;
            }
        }
        return s.to_owned();
    }
    let mut out = String::from("(binary, shown as hex)\n");
    for (i, chunk) in b.chunks(16).enumerate() {
        let hex: Vec<String> = chunk.iter().map(|x| format!("{x:02x}")).collect();
        let ascii: String = chunk
            .iter()
            .map(|&x| {
                if x.is_ascii_graphic() || x == b' ' {
                    x as char
                } else {
                    '.'
                }
            })
            .collect();
        out.push_str(&format!(
            "{:08x}  {:<47}  {}\n",
            i * 16,
            hex.join(" "),
            ascii
        ));
    }
    out
}

/// A bar chart of counts as SVG; labels are escaped by maud.
pub fn bar_chart(points: &[(String, u64)], width: u32, height: u32) -> Markup {
    let max = points.iter().map(|p| p.1).max().unwrap_or(0).max(1);
    let n = points.len().max(1) as u32;
    let bw = (width / n).max(1);
    html! {
        svg xmlns="http://www.w3.org/2000/svg" width=(width) height=(height + 20) role="img" aria-label="chart" {
            @for (i, (label, v)) in points.iter().enumerate() {
                @let h = ((*v as f64 / max as f64) * f64::from(height)).round() as u32;
                rect x=(i as u32 * bw + 1) y=(height - h) width=(bw.saturating_sub(2).max(1)) height=(h) fill="#e6a800" {
                    title { (label) ": " (v) }
                }
            }
            text x="2" y=(height + 15) font-size="11" { (points.first().map(|p| p.0.as_str()).unwrap_or("")) }
            text x=(width - 2) y=(height + 15) font-size="11" text-anchor="end" { (points.last().map(|p| p.0.as_str()).unwrap_or("")) }
            text x="2" y="12" font-size="11" { "max " (max) }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helpers() {
        assert_eq!(thousands(1234567), "1,234,567");
        assert_eq!(thousands(12), "12");
        assert!(show_bytes(&[0xff, 0x00, b'a']).contains("ff 00 61"));
        assert_eq!(
            attacker_link("2001:db8::1"),
            "/ui/attacker/2001%3Adb8%3A%3A1/"
        );
    }
}
