"""The live page: one self-contained HTML document (inline CSS and JS, nothing fetched
from elsewhere) that polls ``api/state`` every second and draws what it gets.

The charts arrive as SVG strings from the report's renderer (:mod:`harness.report.charts`)
and are put in place as they are; everything else (timeline, replicas, logs) is written
with ``textContent``, so text from the run (a log line, an event's details) is never read
as HTML. The page counts its polls and drawn plots into ``<body data-polls>``,
``data-requests`` and ``data-plots-rendered``: what the headless-browser test reads.
"""

from __future__ import annotations

from html import escape

from harness.report.html import CSS

LIVE_CSS = """
.status{margin:6px 0 0}.status b{font-variant-numeric:tabular-nums}
.panel{background:#fff;border:1px solid #d0d7de;border-radius:4px;padding:8px 12px;margin:10px 0}
.logs pre{max-height:260px;margin:4px 0 12px}
.logs h3{font-size:13px;margin:10px 0 0}
td.ready{color:#1a7f37;font-weight:600}td.notready{color:#cf222e;font-weight:600}
#error{color:#cf222e}
"""

SCRIPT = """
(function () {
  var token = new URLSearchParams(location.search).get("token") || "";
  var base = document.body.getAttribute("data-base");
  var polls = 0, drawn = {}, loadSeen = false;
  function $(id) { return document.getElementById(id); }
  function cell(tr, text, cls) {
    var td = document.createElement("td");
    td.textContent = text === null || text === undefined ? "" : String(text);
    if (cls) td.className = cls;
    tr.appendChild(td);
  }
  function table(id, head, rows) {
    var t = $(id); t.textContent = "";
    var tr = document.createElement("tr");
    head.forEach(function (h) {
      var th = document.createElement("th"); th.textContent = h; tr.appendChild(th);
    });
    t.appendChild(tr);
    rows.forEach(function (r) { t.appendChild(r); });
  }
  function act(name, body) {
    return fetch(base + "/api/act/" + encodeURIComponent(name), {
      method: "POST", cache: "no-store",
      headers: {"Content-Type": "application/json", "X-Gpuchaos-Token": token},
      body: JSON.stringify(body || {})
    }).then(function (r) {
      return r.json().then(function (j) {
        if (!r.ok) throw new Error(j.error || ("HTTP " + r.status));
        return j;
      });
    });
  }
  window.gpuchaosAct = act;
  document.querySelectorAll("form[data-act]").forEach(function (form) {
    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      var body = {};
      new FormData(form).forEach(function (v, k) { body[k] = v; });
      var out = form.querySelector("[data-act-result]");
      act(form.getAttribute("data-act"), body).then(function (j) {
        if (out) out.textContent = j.message || JSON.stringify(j);
      }, function (e) {
        if (out) out.textContent = "refused: " + e.message;
      });
    });
  });
  function drawCharts(charts) {
    var box = $("charts"), count = 0;
    charts.forEach(function (c) {
      var fig = $("chart-" + c.id);
      if (!fig) {
        fig = document.createElement("figure"); fig.id = "chart-" + c.id; box.appendChild(fig);
      }
      if (drawn[c.id] !== c.svg) { fig.innerHTML = c.svg; drawn[c.id] = c.svg; }
    });
    box.querySelectorAll("svg.plot").forEach(function (svg) {
      var b = svg.getBoundingClientRect();
      var lines = Array.prototype.filter.call(svg.querySelectorAll("path.series"), function (p) {
        return p.getTotalLength() > 0;
      });
      if (b.width > 0 && b.height > 0 && lines.length > 0) count += 1;
    });
    document.body.setAttribute("data-plots-rendered", String(count));
  }
  function draw(s) {
    var run = s.run || {};
    loadSeen = loadSeen || !!run.load_started;
    $("elapsed").textContent = (run.elapsed_s || 0).toFixed(0);
    $("requests").textContent = String(run.requests || 0);
    $("errors").textContent = String(run.errors || 0);
    $("phase").textContent = run.ended ? "run ended: report.html is in the run folder"
      : (run.load_started ? "load running" : "starting");
    $("error").textContent = s.error || "";
    drawCharts(s.charts || []);
    var tenants = s.tenants || [];
    $("tenants-box").hidden = tenants.length === 0;
    table("tenants", ["tenant", "requests", "failed", "p99 latency (ms)"],
      tenants.map(function (t) {
        var tr = document.createElement("tr");
        cell(tr, t.tenant); cell(tr, t.requests, "num");
        cell(tr, t.errors, t.errors ? "num notready" : "num");
        cell(tr, t.p99_ms === null ? "" : t.p99_ms, "num");
        return tr;
      }));
    var nodes = Object.keys(s.nodes || {}).map(function (n) {
      var tr = document.createElement("tr"), v = s.nodes[n];
      cell(tr, n);
      cell(tr, v.ready + " / " + v.replicas, v.ready < v.replicas ? "notready" : "ready");
      return tr;
    });
    table("nodes", ["node", "Ready / replicas"], nodes);
    table("replicas", ["replica", "node", "state", "device", "pid", "restarts"],
      (s.replicas || []).map(function (r) {
        var tr = document.createElement("tr");
        cell(tr, r.id); cell(tr, r.node);
        cell(tr, r.state, r.state === "ready" ? "ready" : "notready");
        cell(tr, r.device); cell(tr, r.pid); cell(tr, r.restarts);
        return tr;
      }));
    var logs = $("logs"); logs.textContent = "";
    Object.keys(s.logs || {}).forEach(function (id) {
      var h = document.createElement("h3"); h.textContent = id; logs.appendChild(h);
      var pre = document.createElement("pre"); pre.textContent = s.logs[id].join("\\n");
      logs.appendChild(pre);
    });
    table("timeline", ["s since load start", "kind", "target", "details"],
      (s.timeline || []).slice().reverse().map(function (e) {
        var tr = document.createElement("tr"); tr.className = e.kind;
        cell(tr, e.t === null ? "?" : e.t.toFixed(1), "num"); cell(tr, e.kind);
        cell(tr, e.target); cell(tr, e.details);
        return tr;
      }));
    if (s.facilitator) $("facilitator").textContent = JSON.stringify(s.facilitator, null, 2);
    polls += 1;
    document.body.setAttribute("data-polls", String(polls));
    document.body.setAttribute("data-requests", String(run.requests || 0));
    return !run.ended;
  }
  function poll() {
    fetch(base + "/api/state?token=" + encodeURIComponent(token), {cache: "no-store"})
      .then(function (r) {
        if (!r.ok) throw new Error("HTTP " + r.status);
        return r.json();
      })
      .then(function (s) { if (draw(s)) setTimeout(poll, 1000); },
            function (e) {
              // the harness stops serving as it tears the run down: after load that is the end
              $("error").textContent = loadSeen
                ? "the run is over: the harness stopped serving; its report is report.html " +
                  "in the run folder"
                : "no answer from the harness (" + e.message + ")";
            });
  }
  poll();
})();
"""


def render_page(title: str, panels: list[tuple[str, str]], facilitator: bool) -> str:
    """The page; ``panels`` are (name, HTML) from :meth:`LiveServer.add_panel`."""
    extra = "".join(
        f'<section class="panel" data-panel="{escape(name)}">{html}</section>'
        for name, html in panels
    )
    who = "facilitator" if facilitator else "live"
    truth = '<h2>Facilitator data</h2><pre id="facilitator"></pre>' if facilitator else ""
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<link rel="icon" href="data:,">'
        f"<title>gpuchaos {who}: {escape(title)}</title>"
        f"<style>{CSS}{LIVE_CSS}</style></head>"
        f'<body data-base="{"/facilitator" if facilitator else ""}" data-polls="0"><main>'
        f"<h1>{escape(title)}</h1>"
        '<p class="status sub"><span id="phase">starting</span> &middot; '
        '<b id="elapsed">0</b> s &middot; <b id="requests">0</b> requests &middot; '
        '<b id="errors">0</b> failed <span id="error"></span></p>'
        f"{extra}"
        '<div id="tenants-box" hidden><h2>Tenants</h2><table id="tenants"></table></div>'
        '<h2>Nodes and replicas</h2><div class="grid2"><table id="nodes"></table>'
        '<table id="replicas"></table></div>'
        '<h2>Over time</h2><p class="note">The plots of report.html, redrawn every second '
        "from the run folder. Dashed horizontal lines: objectives.</p>"
        '<div id="charts"></div>'
        f"{truth}"
        '<h2>Timeline</h2><table class="timeline" id="timeline"></table>'
        '<h2>Replica logs</h2><div class="logs" id="logs"></div>'
        f"</main><script>{SCRIPT}</script></body></html>\n"
    )
