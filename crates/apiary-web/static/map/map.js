// Apiary live attack map. Vanilla JS, no external resources.
//
// - Countries: Natural Earth 1:110m outlines as TopoJSON (/static/map/countries-110m.json),
//   decoded here, drawn on a canvas in an equirectangular projection.
// - Events: history from /api/live/history on load (and for replays), then the live
//   Server-Sent Events stream /api/live.
// - Budget: events are queued and applied in bounded slices per animation frame; repeated
//   attacker→sensor pairs share one arc; at most LOG_PER_FRAME log lines are written per
//   frame (the rest are folded into one "+N more" line); markers and arcs are capped; the
//   attacker markers are drawn on their own layer, redrawn at most every MARKER_MS.
// - Duplicates: the history load and the live stream overlap (the stream is opened first
//   so nothing falls between them); events are keyed by session id (else raw id and
//   content) and each is applied once.
// - Links: a log line links to the session's page (/ui/session/<id>/) and the attacker's
//   page; clicking an attacker marker opens the attacker's page.
// - Safety: every text that reaches the DOM goes through textContent; link targets are
//   built from integers and encodeURIComponent.
// - Tests: window.apiaryMap.stats() returns counts of markers, arcs, log lines, frames and
//   duplicates; markers() and countryPoint() give page coordinates to hover.
(function () {
  "use strict";

  var MAX_ATTACKERS = 5000;
  var MAX_ARCS = 400;
  var ARC_MS = 1200;
  var LOG_MAX = 200;
  var LOG_PER_FRAME = 8;
  var EVENTS_PER_FRAME = 5000;
  var FRAME_BUDGET_MS = 8;
  var MARKER_MS = 200;
  var SEEN_MAX = 50000;
  var LAT_TOP = 85, LAT_BOTTOM = -60;

  var root = document.getElementById("live-map");
  var canvas = document.getElementById("map-canvas");
  var ctx = canvas.getContext("2d");
  var tip = document.getElementById("map-tip");
  var logBox = document.getElementById("map-log");
  var statusEl = document.getElementById("map-status");
  var counterEl = document.getElementById("map-count");
  var historyMinutes = parseInt(root.getAttribute("data-minutes") || "15", 10);
  // Test knob: wait this long between opening the stream and loading history.
  var historyDelay = Math.min(10000, parseInt(new URLSearchParams(window.location.search).get("history_delay_ms") || "0", 10) || 0);

  // Filters from the page's own query string, passed to both endpoints.
  var pageParams = new URLSearchParams(window.location.search);
  var filterQuery = new URLSearchParams();
  ["honeypot", "sensor", "country"].forEach(function (k) {
    var v = pageParams.get(k);
    if (v) { filterQuery.set(k, v); }
  });

  // ---- state ----
  var countries = [];          // {name, id, rings: [[[x,y]...]], bbox, count, types}
  var attackers = new Map();   // key -> marker (insertion order = least recently seen first)
  var honeypots = new Map();
  var arcs = new Map();        // pairKey -> arc
  var queue = [];
  var pendingLog = [];
  var foldedLog = 0;
  var stats = { events: 0, logLines: 0, arcsTotal: 0, arcsMerged: 0, lagged: 0, noSensorLocation: 0, duplicates: 0 };
  var seen = new Map();        // event key -> true (insertion order: oldest first)
  var frames = 0, frameGapMax = 0, lastFrame = 0, frameMsMax = 0;
  var markers = document.createElement("canvas");
  var markersDirty = true, lastMarkers = 0;
  var mode = "live";
  var connected = false;
  var baseDirty = true, lastBase = 0, maxCountry = 0;
  var base = document.createElement("canvas");
  var W = 0, H = 0, dpr = window.devicePixelRatio || 1;
  var replay = null;
  var es = null;

  function status(text) { statusEl.textContent = text; }

  // ---- projection ----
  function px(lon) { return (lon + 180) / 360 * W; }
  function py(lat) { return (LAT_TOP - lat) / (LAT_TOP - LAT_BOTTOM) * H; }
  function unproject(x, y) {
    return [x / W * 360 - 180, LAT_TOP - y / H * (LAT_TOP - LAT_BOTTOM)];
  }

  // ---- TopoJSON ----
  function decodeArcs(topo) {
    var t = topo.transform;
    return topo.arcs.map(function (arc) {
      var x = 0, y = 0;
      return arc.map(function (p) {
        if (t) {
          x += p[0]; y += p[1];
          return [x * t.scale[0] + t.translate[0], y * t.scale[1] + t.translate[1]];
        }
        return [p[0], p[1]];
      });
    });
  }
  function ring(arcIdx, arcsAbs) {
    var out = [];
    arcIdx.forEach(function (i, n) {
      var a = i < 0 ? arcsAbs[~i].slice().reverse() : arcsAbs[i];
      for (var k = n === 0 ? 0 : 1; k < a.length; k++) { out.push(a[k]); }
    });
    return out;
  }
  function loadCountries(topo) {
    var arcsAbs = decodeArcs(topo);
    topo.objects.countries.geometries.forEach(function (g) {
      var polys = g.type === "Polygon" ? [g.arcs] : g.type === "MultiPolygon" ? g.arcs : [];
      var rings = [];
      polys.forEach(function (poly) { poly.forEach(function (r) { rings.push(ring(r, arcsAbs)); }); });
      // Antarctica lies below the map's southern edge.
      if (!rings.length || g.id === "010") { return; }
      var b = [180, 90, -180, -90];
      rings.forEach(function (r) {
        r.forEach(function (p) {
          if (p[0] < b[0]) { b[0] = p[0]; } if (p[1] < b[1]) { b[1] = p[1]; }
          if (p[0] > b[2]) { b[2] = p[0]; } if (p[1] > b[3]) { b[3] = p[1]; }
        });
      });
      countries.push({ name: (g.properties && g.properties.name) || "?", id: g.id, rings: rings, bbox: b, count: 0, types: {} });
    });
  }
  function inRing(lon, lat, r) {
    var inside = false;
    for (var i = 0, j = r.length - 1; i < r.length; j = i++) {
      var xi = r[i][0], yi = r[i][1], xj = r[j][0], yj = r[j][1];
      if (((yi > lat) !== (yj > lat)) && (lon < (xj - xi) * (lat - yi) / (yj - yi) + xi)) { inside = !inside; }
    }
    return inside;
  }
  function countryAt(lon, lat) {
    for (var i = 0; i < countries.length; i++) {
      var c = countries[i], b = c.bbox;
      if (lon < b[0] || lon > b[2] || lat < b[1] || lat > b[3]) { continue; }
      var n = 0;
      for (var k = 0; k < c.rings.length; k++) { if (inRing(lon, lat, c.rings[k])) { n++; } }
      if (n % 2 === 1) { return c; }
    }
    return null;
  }

  // ---- drawing ----
  function resize() {
    var w = Math.max(320, root.clientWidth);
    var h = Math.round(w * (LAT_TOP - LAT_BOTTOM) / 360);
    W = w; H = h;
    dpr = window.devicePixelRatio || 1;
    [canvas, base, markers].forEach(function (c) {
      c.width = Math.round(w * dpr); c.height = Math.round(h * dpr);
    });
    canvas.style.width = w + "px"; canvas.style.height = h + "px";
    baseDirty = true; markersDirty = true;
  }
  function shade(count) {
    if (!count) { return "#1d3a57"; }
    var f = Math.log(1 + count) / Math.log(1 + Math.max(1, maxCountry));
    var r = Math.round(29 + f * (200 - 29)), g = Math.round(58 + f * (60 - 58)), b = Math.round(87 + f * (50 - 87));
    return "rgb(" + r + "," + g + "," + b + ")";
  }
  function drawBase() {
    var b = base.getContext("2d");
    b.setTransform(dpr, 0, 0, dpr, 0, 0);
    b.fillStyle = "#04172b"; b.fillRect(0, 0, W, H);
    b.lineWidth = 0.5; b.strokeStyle = "#5a7a99";
    countries.forEach(function (c) {
      b.beginPath();
      c.rings.forEach(function (r) {
        // A jump across the antimeridian starts a new sub-path instead of a line across
        // the whole map.
        r.forEach(function (p, i) {
          var x = px(p[0]), y = py(p[1]);
          if (i === 0 || Math.abs(p[0] - r[i - 1][0]) > 180) { b.moveTo(x, y); } else { b.lineTo(x, y); }
        });
        b.closePath();
      });
      b.fillStyle = shade(c.count);
      b.fill("evenodd");
      b.stroke();
    });
    baseDirty = false; lastBase = performance.now();
  }
  function drawMarkers() {
    var m = markers.getContext("2d");
    m.setTransform(dpr, 0, 0, dpr, 0, 0);
    m.clearRect(0, 0, W, H);
    m.fillStyle = "#ff2a1a"; m.strokeStyle = "#7a0000"; m.lineWidth = 0.8;
    attackers.forEach(function (a) {
      var r = 2 + Math.min(4, Math.log(1 + a.count));
      m.beginPath(); m.arc(px(a.lon), py(a.lat), r, 0, 6.2832); m.fill(); m.stroke();
    });
    markersDirty = false; lastMarkers = performance.now();
  }
  function drawFrame(now) {
    if (baseDirty && now - lastBase > 500) { drawBase(); }
    if (markersDirty && now - lastMarkers > MARKER_MS) { drawMarkers(); }
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.drawImage(base, 0, 0, W, H);
    ctx.drawImage(markers, 0, 0, W, H);
    // arcs
    ctx.lineWidth = 1.2;
    arcs.forEach(function (a, key) {
      var t = (now - a.start) / ARC_MS;
      if (t >= 1.6) { arcs.delete(key); return; }
      var x0 = px(a.from[1]), y0 = py(a.from[0]), x1 = px(a.to[1]), y1 = py(a.to[0]);
      var mx = (x0 + x1) / 2, my = (y0 + y1) / 2 - Math.hypot(x1 - x0, y1 - y0) * 0.25;
      var head = Math.min(1, t), tail = Math.max(0, t - 0.6);
      ctx.strokeStyle = "rgba(255,80,60," + (t > 1 ? 1.6 - t : 0.9).toFixed(2) + ")";
      ctx.beginPath();
      for (var s = tail, first = true; s <= head + 1e-9; s += 0.05, first = false) {
        var u = 1 - s;
        var x = u * u * x0 + 2 * u * s * mx + s * s * x1, y = u * u * y0 + 2 * u * s * my + s * s * y1;
        if (first) { ctx.moveTo(x, y); } else { ctx.lineTo(x, y); }
      }
      ctx.stroke();
    });
    // honeypot markers (few: drawn every frame, above the arcs)
    ctx.lineWidth = 0.8;
    ctx.fillStyle = "#f8e23b"; ctx.strokeStyle = "#383f47";
    honeypots.forEach(function (m) {
      ctx.beginPath(); ctx.arc(px(m.lon), py(m.lat), 4.5, 0, 6.2832); ctx.fill(); ctx.stroke();
    });
  }

  // ---- events ----
  function place(g) {
    var parts = [];
    if (g && g.city) { parts.push(g.city); }
    if (g && (g.country || g.country_code)) { parts.push(g.country || g.country_code); }
    return parts.length ? parts.join(", ") : "unknown location";
  }
  function bump(obj, k) { obj[k] = (obj[k] || 0) + 1; }
  function timeText(t) {
    var d = new Date(t);
    return isNaN(d) ? "--:--:--" : d.toISOString().slice(11, 19);
  }

  function eventKey(ev) {
    if (typeof ev.session_id === "number") { return "s" + ev.session_id; }
    return "r" + ev.raw_id + "|" + ev.time + "|" + ev.source_ip + "|" + ev.sensor + "|" + ev.channel + "|" + ev.summary;
  }
  // True the first time an event is seen.
  function firstSeen(ev) {
    var k = eventKey(ev);
    if (seen.has(k)) { stats.duplicates++; return false; }
    seen.set(k, true);
    if (seen.size > SEEN_MAX) { seen.delete(seen.keys().next().value); }
    return true;
  }

  function apply(ev, animate) {
    if (!firstSeen(ev)) { return; }
    stats.events++;
    var type = ev.channel || ev.honeypot || "event";
    var src = ev.source || {};
    var akey = null;
    if (typeof src.lat === "number" && typeof src.lon === "number") {
      akey = src.lat.toFixed(2) + "," + src.lon.toFixed(2);
      var m = attackers.get(akey);
      if (m) { attackers.delete(akey); } else {
        m = { lat: src.lat, lon: src.lon, count: 0, types: {}, country: null };
        var c = countryAt(src.lon, src.lat);
        m.country = c;
      }
      m.count++; bump(m.types, type);
      m.ip = ev.source_ip; m.city = src.city; m.cc = src.country_code; m.cname = src.country;
      m.asn = src.asn; m.asOrg = src.as_org;
      attackers.set(akey, m);
      markersDirty = true;
      if (attackers.size > MAX_ATTACKERS) { attackers.delete(attackers.keys().next().value); }
      if (m.country) {
        m.country.count++; bump(m.country.types, type);
        if (m.country.count > maxCountry) { maxCountry = m.country.count; }
        baseDirty = true;
      }
    }
    var hkey = null, loc = ev.sensor_location;
    if (loc && typeof loc.lat === "number") {
      hkey = ev.sensor + "@" + loc.lat.toFixed(2) + "," + loc.lon.toFixed(2);
      var h = honeypots.get(hkey);
      if (!h) { h = { lat: loc.lat, lon: loc.lon, count: 0, types: {}, sensor: ev.sensor, honeypots: {}, source: ev.location_source }; honeypots.set(hkey, h); }
      h.count++; bump(h.types, type); bump(h.honeypots, ev.honeypot);
    } else {
      stats.noSensorLocation++;
    }
    if (animate && akey && hkey) {
      var pair = akey + ">" + hkey;
      var a = arcs.get(pair);
      if (a) { a.count++; stats.arcsMerged++; }
      else if (arcs.size < MAX_ARCS) {
        arcs.set(pair, { from: [src.lat, src.lon], to: [loc.lat, loc.lon], start: performance.now(), count: 1 });
        stats.arcsTotal++;
      } else { stats.arcsMerged++; }
    }
    pendingLog.push(ev);
  }

  function link(href, text) {
    var a = document.createElement("a");
    a.href = href; a.textContent = text;
    return a;
  }
  function sessionHref(ev) {
    return Number.isInteger(ev.session_id) ? "/ui/session/" + ev.session_id + "/" : null;
  }
  function attackerHref(ip) {
    return ip ? "/ui/attacker/" + encodeURIComponent(String(ip)) + "/" : null;
  }
  function logLine(text, cls, ev) {
    var atBottom = logBox.scrollTop + logBox.clientHeight >= logBox.scrollHeight - 4;
    var div = document.createElement("div");
    if (cls) { div.className = cls; }
    div.textContent = text;
    if (ev) {
      var s = sessionHref(ev), a = attackerHref(ev.source_ip);
      if (s) { div.appendChild(document.createTextNode(" ")); div.appendChild(link(s, "[session]")); }
      if (a) { div.appendChild(document.createTextNode(" ")); div.appendChild(link(a, "[attacker]")); }
    }
    logBox.appendChild(div);
    stats.logLines++;
    while (logBox.childNodes.length > LOG_MAX) { logBox.removeChild(logBox.firstChild); }
    if (atBottom) { logBox.scrollTop = logBox.scrollHeight; }
  }
  function eventLine(ev) {
    var where = { sensor: "configured location", server: "server location", none: "no location" };
    var d = ev.destination;
    var to = d && (d.city || d.country || d.country_code) ? place(d) : (where[ev.location_source] || "location unknown");
    return timeText(ev.time) + " " + (ev.channel || ev.honeypot) + " " + (ev.summary || "") +
      " from " + (ev.source_ip || "?") + " (" + place(ev.source) + ")" +
      " to " + ev.sensor + " (" + to + ")";
  }
  function flushLog() {
    var n = 0;
    while (pendingLog.length && n < LOG_PER_FRAME) { var ev = pendingLog.shift(); logLine(eventLine(ev), null, ev); n++; }
    if (pendingLog.length) { foldedLog += pendingLog.length; pendingLog.length = 0; }
    if (foldedLog) { logLine("… and " + foldedLog + " more events", "fold"); foldedLog = 0; }
  }

  function frame(now) {
    var t0 = performance.now();
    frames++;
    if (lastFrame) { frameGapMax = Math.max(frameGapMax, t0 - lastFrame); }
    lastFrame = t0;
    if (replay) { replayStep(now); }
    var n = 0;
    while (queue.length && n < EVENTS_PER_FRAME) {
      var item = queue.shift();
      apply(item.ev, item.animate);
      n++;
      if ((n & 63) === 0 && performance.now() - t0 > FRAME_BUDGET_MS) { break; }
    }
    flushLog();
    counterEl.textContent = String(stats.events);
    drawFrame(now);
    frameMsMax = Math.max(frameMsMax, performance.now() - t0);
    window.requestAnimationFrame(frame);
  }

  // ---- data sources ----
  function historyUrl(q) {
    var p = new URLSearchParams(filterQuery);
    Object.keys(q).forEach(function (k) { p.set(k, q[k]); });
    return "/api/live/history?" + p.toString();
  }
  function fetchJson(url) {
    return fetch(url, { credentials: "same-origin" }).then(function (r) {
      if (!r.ok) { throw new Error(url + ": HTTP " + r.status); }
      return r.json();
    });
  }
  function clearMap() {
    attackers.clear(); honeypots.clear(); arcs.clear(); queue.length = 0; pendingLog.length = 0;
    countries.forEach(function (c) { c.count = 0; c.types = {}; });
    maxCountry = 0; baseDirty = true; markersDirty = true;
    seen.clear();
    stats.events = 0;
  }
  function loadRecent() {
    return fetchJson(historyUrl({ minutes: historyMinutes })).then(function (h) {
      var evs = h.events || [];
      evs.forEach(function (ev, i) { queue.push({ ev: ev, animate: i >= evs.length - 50 }); });
      logLine("Loaded " + evs.length + " events of the last " + historyMinutes + " minutes" + (h.truncated ? " (newest only)" : "") + ".", "sys");
    });
  }
  function connect() {
    if (es) { es.close(); }
    var q = filterQuery.toString();
    es = new EventSource("/api/live" + (q ? "?" + q : ""));
    es.addEventListener("open", function () { connected = true; if (mode === "live") { status("live"); } });
    es.addEventListener("error", function () { connected = false; status("connection lost, retrying…"); });
    es.addEventListener("attack", function (e) {
      if (mode !== "live") { return; }
      try { queue.push({ ev: JSON.parse(e.data), animate: true }); } catch (err) { /* ignore */ }
    });
    es.addEventListener("lagged", function (e) {
      var n = parseInt(e.data, 10) || 0;
      stats.lagged += n;
      logLine(n + " events skipped: this connection fell behind.", "sys");
    });
  }

  // ---- replay ----
  function replayStep(now) {
    var r = replay;
    if (r.start === null) { r.start = now; }
    var virt = r.t0 + (now - r.start) * r.speed;
    while (r.i < r.events.length && Date.parse(r.events[r.i].time) <= virt) {
      queue.push({ ev: r.events[r.i], animate: true }); r.i++;
    }
    status("replay " + new Date(Math.min(virt, r.t1)).toISOString().slice(0, 19).replace("T", " ") + " UTC ×" + r.speed +
      " (" + r.i + "/" + r.events.length + ")");
    if (r.i >= r.events.length) { status("replay finished (" + r.events.length + " events)"); replay = null; }
  }
  function startReplay() {
    var from = document.getElementById("replay-from").value;
    var to = document.getElementById("replay-to").value;
    var speed = parseFloat(document.getElementById("replay-speed").value) || 60;
    if (!from || !to) { status("choose a start and an end time"); return; }
    var since = new Date(from), until = new Date(to);
    if (!(since < until)) { status("the start must be before the end"); return; }
    mode = "replay";
    status("loading replay…");
    fetchJson(historyUrl({ since: since.toISOString(), until: until.toISOString(), limit: 20000 })).then(function (h) {
      clearMap();
      logLine("Replaying " + (h.events || []).length + " events" + (h.truncated ? " (the newest 20000)" : "") + " at ×" + speed + ".", "sys");
      var evs = h.events || [];
      replay = { events: evs, i: 0, t0: evs.length ? Date.parse(evs[0].time) : since.getTime(), t1: until.getTime(), speed: speed, start: null };
    }).catch(function (e) { status(String(e.message || e)); });
  }
  function goLive() {
    replay = null; mode = "live"; clearMap(); status("live");
    loadRecent().catch(function (e) { status(String(e.message || e)); });
  }

  // ---- hover ----
  function tipLines(lines) {
    while (tip.firstChild) { tip.removeChild(tip.firstChild); }
    lines.forEach(function (l, i) {
      var d = document.createElement(i === 0 ? "strong" : "div");
      d.textContent = l;
      tip.appendChild(d);
      if (i === 0) { tip.appendChild(document.createElement("br")); }
    });
  }
  function typeLines(types) {
    return Object.keys(types).sort().map(function (k) { return k + ": " + types[k]; });
  }
  function nearest(map, x, y, maxD) {
    var best = null, bd = maxD * maxD;
    map.forEach(function (m) {
      var dx = px(m.lon) - x, dy = py(m.lat) - y, d = dx * dx + dy * dy;
      if (d <= bd) { bd = d; best = m; }
    });
    return best;
  }
  canvas.addEventListener("mousemove", function (e) {
    var rect = canvas.getBoundingClientRect();
    var x = e.clientX - rect.left, y = e.clientY - rect.top;
    var h = nearest(honeypots, x, y, 7), a = h ? null : nearest(attackers, x, y, 6), lines = null;
    if (h) {
      lines = ["Honeypot sensor " + h.sensor, "software: " + Object.keys(h.honeypots).join(", "),
        "location from: " + h.source].concat(typeLines(h.types), ["total: " + h.count + " events"]);
    } else if (a) {
      // The geo database may give only a country code: the outline under the marker names it.
      var cname = a.cname || (a.country && a.country.name) || null;
      lines = ["Attacker " + (a.ip || "?"), place({ city: a.city, country: cname, country_code: a.cc }) + (a.cc && cname ? " (" + a.cc + ")" : ""),
        "ASN: " + (a.asn ? "AS" + a.asn + (a.asOrg ? " " + a.asOrg : "") : "unknown")].concat(typeLines(a.types), ["total: " + a.count + " events"]);
    } else {
      var ll = unproject(x, y), c = countryAt(ll[0], ll[1]);
      if (c) { lines = [c.name].concat(typeLines(c.types), ["total: " + c.count + " events"]); }
    }
    if (!lines) { tip.style.display = "none"; return; }
    tipLines(lines);
    tip.style.display = "block";
    tip.style.left = Math.min(x + 14, W - 260) + "px";
    tip.style.top = (y + 14) + "px";
  });
  canvas.addEventListener("mouseleave", function () { tip.style.display = "none"; });
  canvas.addEventListener("click", function (e) {
    var rect = canvas.getBoundingClientRect();
    var a = nearest(attackers, e.clientX - rect.left, e.clientY - rect.top, 6);
    var href = a && attackerHref(a.ip);
    if (href) { window.location.href = href; }
  });
  // Page coordinates (for the mouse) of a map position.
  function pagePoint(lon, lat) {
    var rect = canvas.getBoundingClientRect();
    return { x: rect.left + window.scrollX + px(lon), y: rect.top + window.scrollY + py(lat) };
  }

  // ---- start ----
  window.apiaryMap = {
    stats: function () {
      return {
        attackers: attackers.size, honeypots: honeypots.size, arcs: arcs.size,
        arcsTotal: stats.arcsTotal, arcsMerged: stats.arcsMerged,
        logLines: logBox.childNodes.length, logLinesTotal: stats.logLines,
        events: stats.events, queued: queue.length, lagged: stats.lagged,
        noSensorLocation: stats.noSensorLocation,
        countries: countries.length,
        shadedCountries: countries.filter(function (c) { return c.count > 0; }).length,
        connected: connected, mode: mode,
        duplicates: stats.duplicates, frames: frames, frameGapMaxMs: Math.round(frameGapMax),
        frameMsMax: Math.round(frameMsMax), status: statusEl.textContent
      };
    },
    // Starts a new measuring window for frameGapMaxMs/frameMsMax.
    resetFrameStats: function () { frameGapMax = 0; frameMsMax = 0; lastFrame = 0; },
    // Attacker and honeypot markers with their page coordinates (canvas offsets x/y too).
    markers: function () {
      var out = [];
      attackers.forEach(function (m) {
        var p = pagePoint(m.lon, m.lat);
        out.push({ kind: "attacker", ip: m.ip, cc: m.cc, count: m.count, pageX: p.x, pageY: p.y, x: px(m.lon), y: py(m.lat) });
      });
      honeypots.forEach(function (m) {
        var p = pagePoint(m.lon, m.lat);
        out.push({ kind: "honeypot", sensor: m.sensor, count: m.count, pageX: p.x, pageY: p.y, x: px(m.lon), y: py(m.lat) });
      });
      return out;
    },
    // A canvas point inside the named country (by name or ISO numeric id) and away from
    // every marker, or null.
    countryPoint: function (name) {
      var c = countries.filter(function (k) { return k.name === name || k.id === name; })[0];
      if (!c) { return null; }
      var b = c.bbox;
      for (var i = 0; i < 4000; i++) {
        var lon = b[0] + (b[2] - b[0]) * ((i * 0.618034) % 1), lat = b[1] + (b[3] - b[1]) * ((i * 0.754877) % 1);
        if (lat > LAT_TOP || lat < LAT_BOTTOM || countryAt(lon, lat) !== c) { continue; }
        var x = px(lon), y = py(lat);
        if (!nearest(attackers, x, y, 12) && !nearest(honeypots, x, y, 12)) {
          return { x: x, y: y, count: c.count };
        }
      }
      return null;
    },
    // Fills the replay inputs (browser-local time) from epoch milliseconds.
    setReplayWindow: function (sinceMs, untilMs) {
      document.getElementById("replay-from").value = localInput(new Date(sinceMs));
      document.getElementById("replay-to").value = localInput(new Date(untilMs));
    },
    // For tests and benchmarks: feed events as if they came from the stream.
    inject: function (evs) { evs.forEach(function (ev) { queue.push({ ev: ev, animate: true }); }); }
  };
  document.getElementById("replay-go").addEventListener("click", startReplay);
  document.getElementById("replay-live").addEventListener("click", goLive);
  function localInput(d) {
    var pad = function (n) { return (n < 10 ? "0" : "") + n; };
    return d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate()) + "T" + pad(d.getHours()) + ":" + pad(d.getMinutes());
  }
  (function presetReplay() {
    var now = Date.now();
    document.getElementById("replay-from").value = localInput(new Date(now - 3600e3));
    document.getElementById("replay-to").value = localInput(new Date(now + 60e3));
  })();
  window.addEventListener("resize", resize);
  resize();
  status("loading map…");
  fetchJson(root.getAttribute("data-countries")).then(function (topo) {
    loadCountries(topo);
    baseDirty = true;
    logLine("Welcome to the Apiary live map. Red: attackers; yellow: honeypot sensors.", "sys");
    connect();
    // The stream is open before history is asked for, so no event falls between the two;
    // the overlap is removed by firstSeen().
    return new Promise(function (ok) { setTimeout(ok, historyDelay); }).then(loadRecent);
  }).catch(function (e) { status(String(e.message || e)); });
  window.requestAnimationFrame(frame);
})();
