// Dashboard live ticker: counts events from /api/live and shows the latest few.
// Text reaches the DOM through textContent only.
(function () {
  "use strict";
  var box = document.getElementById("live-ticker");
  if (!box || typeof EventSource === "undefined") { return; }
  var countEl = document.getElementById("live-count");
  var rateEl = document.getElementById("live-rate");
  var list = document.getElementById("live-lines");
  var total = 0, recent = [], pending = null;
  var es = new EventSource("/api/live");
  es.addEventListener("attack", function (e) {
    total++;
    recent.push(Date.now());
    try { pending = JSON.parse(e.data); } catch (err) { /* ignore */ }
  });
  setInterval(function () {
    var cut = Date.now() - 10000;
    while (recent.length && recent[0] < cut) { recent.shift(); }
    countEl.textContent = String(total);
    rateEl.textContent = (recent.length / 10).toFixed(1);
    if (pending) {
      var ev = pending, src = ev.source || {};
      pending = null;
      var li = document.createElement("li");
      li.textContent = new Date(ev.time).toISOString().slice(11, 19) + " " + (ev.channel || ev.honeypot) +
        " " + (ev.summary || "") + " from " + (ev.source_ip || "?") +
        (src.country_code ? " (" + src.country_code + ")" : "") + " to " + ev.sensor;
      list.insertBefore(li, list.firstChild);
      while (list.childNodes.length > 5) { list.removeChild(list.lastChild); }
    }
  }, 500);
})();
