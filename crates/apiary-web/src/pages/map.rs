//! `/ui/map/`: the live attack map. The page is a frame; `static/map/map.js` draws the
//! map on a canvas from the Natural Earth outlines and feeds it from `/api/live/history`
//! and `/api/live`.

use maud::{html, PreEscaped};

use crate::auth::PageCaller;
use crate::live::ASSET_VERSION;
use crate::query::Params;

use super::{layout, Page, PageResult};

const MAP_CSS: &str = r#"
#live-map{position:relative;background:#04172b;border:1px solid #333;max-width:1400px}
#map-canvas{display:block;cursor:crosshair}
#map-tip{display:none;position:absolute;pointer-events:none;background:rgba(0,0,0,.85);color:#fff;
 padding:.4em .6em;font-size:12px;border:1px solid #888;max-width:260px;word-break:break-all}
#map-log{background:#000;color:#ddd;font:12px/1.35 ui-monospace,monospace;height:14em;overflow-y:auto;
 border:1px solid #555;padding:.3em .5em;margin-top:.5em;max-width:1400px}
#map-log .sys{color:#8fc1ff}#map-log .fold{color:#999}
.map-bar{display:flex;flex-wrap:wrap;gap:.6em;align-items:center;margin:.4em 0}
.legend-a{color:#d4190c}.legend-h{color:#b59b00}
"#;

/// `GET /ui/map/`. `minutes` sets how much history fills the map on load (default 15);
/// `honeypot`, `sensor` and `country` filter the map.
pub async fn show(PageCaller(c): PageCaller, p: Params) -> PageResult {
    let minutes = p
        .get("minutes")
        .and_then(|m| m.parse::<u32>().ok())
        .filter(|m| (1..=24 * 60).contains(m))
        .unwrap_or(15);
    let countries = format!("/static/map/countries-110m.json?v={ASSET_VERSION}");
    let body = html! {
        style { (PreEscaped(MAP_CSS)) }
        div.map-bar {
            span { "Status: " strong #map-status { "loading…" } }
            span { "Events shown: " strong #map-count { "0" } }
            span.legend-a { "● attackers" }
            span.legend-h { "● honeypots" }
            span { "Replay from " input #replay-from type="datetime-local";
                " to " input #replay-to type="datetime-local";
                " speed " select #replay-speed {
                    option value="1" { "×1" }
                    option value="10" { "×10" }
                    option value="60" selected { "×60" }
                    option value="600" { "×600" }
                    option value="3600" { "×3600" }
                }
                " " button #replay-go type="button" { "Replay" }
                " " button #replay-live type="button" { "Back to live" }
            }
        }
        div #live-map data-minutes=(minutes) data-countries=(countries) {
            canvas #map-canvas {}
            div #map-tip {}
        }
        div #map-log role="log" aria-live="off" {}
        p { small { "Country outlines: Natural Earth (public domain), via world-atlas (ISC) — "
            a href="/static/map/LICENSE" { "licence" } "." } }
        script src=(format!("/static/map/map.js?v={ASSET_VERSION}")) {}
    };
    Ok(Page(layout("Live attack map", &c, body)))
}
