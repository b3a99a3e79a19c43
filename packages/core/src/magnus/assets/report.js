// Draws a magnus run report (or a pipeline's picture) from the JSON embedded in the page.
// Written for this page alone: no library, nothing loaded from the network.
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("magnus-data").textContent);
  var NS = "http://www.w3.org/2000/svg";  // the SVG namespace name, not an address to load
  var states = data.states || {};
  var maps = data.maps || {};
  var W = 190, H = 48, GX = 26, GY = 40, PAD = 12, HEAD = 24;
  // Composite steps start open, maps closed: a map's elements are summed up.
  var open = {};

  function el(tag, attrs, text, parent) {
    var node = document.createElement(tag);
    for (var key in attrs || {}) node.setAttribute(key, attrs[key]);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (parent) parent.appendChild(node);
    return node;
  }
  function svg(tag, attrs, parent) {
    var node = document.createElementNS(NS, tag);
    for (var key in attrs || {}) node.setAttribute(key, attrs[key]);
    if (parent) parent.appendChild(node);
    return node;
  }
  function stext(x, y, text, cls, parent) {
    var node = svg("text", { x: x, y: y, "class": cls || "" }, parent);
    node.textContent = text;
    return node;
  }
  function counted(counts) {
    return Object.keys(counts || {}).sort().map(function (s) { return counts[s] + " " + s; }).join(", ");
  }
  function isOpen(node) {
    if (!node.branches.length) return false;
    if (!(node.id in open)) open[node.id] = node.type !== "map";
    return open[node.id];
  }
  function mapOf(node) {
    // The concrete map logs of a map step (several when the map sits inside another map).
    var total = {};
    var found = false;
    for (var name in maps) {
      if (maps[name].template !== node.id) continue;
      found = true;
      var counts = maps[name].counts;
      for (var s in counts) total[s] = (total[s] || 0) + counts[s];
    }
    return found ? total : null;
  }

  // ---------------------------------------------------------------------------- the graph
  function measure(graph) {
    var rows = [];
    graph.nodes.forEach(function (node) {
      var size = { w: W, h: H };
      if (isOpen(node)) {
        var inner = node.branches.map(function (b) { return measure(b.graph); });
        var w = 0, h = 0;
        inner.forEach(function (m) { w += m.w + GX; h = Math.max(h, m.h); });
        size = { w: Math.max(W, w - GX + 2 * PAD), h: HEAD + h + 2 * PAD + 18, inner: inner };
      }
      node._size = size;
      (rows[node.layer] = rows[node.layer] || []).push(node);
    });
    var width = 0, height = 0;
    rows.forEach(function (row) {
      row.sort(function (a, b) { return a.order - b.order; });
      var rw = 0, rh = 0;
      row.forEach(function (n) { rw += n._size.w + GX; rh = Math.max(rh, n._size.h); });
      width = Math.max(width, rw - GX);
      height += rh + GY;
    });
    return { w: Math.max(width, W), h: Math.max(height - GY, H), rows: rows.filter(Boolean) };
  }

  function place(graph, m, x0, y0, parent) {
    var where = {};
    var y = y0;
    m.rows.forEach(function (row) {
      var rw = 0, rh = 0;
      row.forEach(function (n) { rw += n._size.w + GX; rh = Math.max(rh, n._size.h); });
      var x = x0 + (m.w - (rw - GX)) / 2;
      row.forEach(function (n) {
        where[n.id] = { x: x, y: y, w: n._size.w, h: n._size.h };
        drawNode(n, where[n.id], parent);
        x += n._size.w + GX;
      });
      y += rh + GY;
    });
    graph.edges.forEach(function (e) {
      var a = where[e.source], b = where[e.target];
      if (!a || !b) return;
      var x1 = a.x + a.w / 2, y1 = a.y + a.h, x2 = b.x + b.w / 2, y2 = b.y;
      var bend = Math.max(16, (y2 - y1) / 2);
      svg("path", {
        "class": "edge " + e.kind, "data-edge": e.source + " -> " + e.target,
        d: "M" + x1 + "," + y1 + " C" + x1 + "," + (y1 + bend) + " " + x2 + "," + (y2 - bend) +
          " " + x2 + "," + y2, "marker-end": "url(#arrow)"
      }, parent);
    });
  }

  function drawNode(node, box, parent) {
    var state = states[node.id];
    var g = svg("g", { "class": "step", "data-step": node.id, "data-type": node.type }, parent);
    if (state) g.setAttribute("data-status", state.status);
    var title = svg("title", {}, g);
    title.textContent = node.id + (state ? " · " + counted(state.counts) : "");
    var composite = node.branches.length > 0;
    var opened = isOpen(node);
    svg("rect", { "class": "box", x: box.x, y: box.y, width: box.w, height: opened ? HEAD + 8 : box.h }, g);
    var mark = composite ? (opened ? "▾ " : "▸ ") : "";
    stext(box.x + 8, box.y + 17, mark + node.name + (composite ? " (" + node.type + ")" : ""), "name", g);
    var line = node.detail;
    var mapCounts = node.type === "map" ? mapOf(node) : null;
    if (mapCounts) line = counted(mapCounts);
    else if (state && (state.counts[state.status] || 0) > 1) line = counted(state.counts);
    else if (composite && !opened) line = node.branches.length + " branch" + (node.branches.length > 1 ? "es" : "");
    if (!opened) {
      var t = stext(box.x + 8, box.y + 36, line.length > 30 ? line.slice(0, 29) + "…" : line, "detail", g);
      if (mapCounts) t.setAttribute("data-map-counts", counted(mapCounts));
    } else if (mapCounts) {
      svg("text", { x: box.x + box.w - 8, y: box.y + 17, "text-anchor": "end", "class": "detail",
                   "data-map-counts": counted(mapCounts) }, g).textContent = counted(mapCounts);
    }
    g.addEventListener("click", function (event) {
      event.stopPropagation();
      if (composite) { open[node.id] = !opened; drawGraph(); }
      pick(node.id);
    });
    if (!opened) return;
    svg("rect", { "class": "frame", x: box.x, y: box.y + HEAD + 12, width: box.w,
                 height: box.h - HEAD - 12 }, g);
    var x = box.x + PAD;
    node.branches.forEach(function (branch, i) {
      var m = node._size.inner[i];
      stext(x, box.y + HEAD + 28, branch.name, "detail", g);
      var inner = svg("g", { "data-branch": node.id + "." + branch.name }, g);
      place(branch.graph, m, x, box.y + HEAD + 36, inner);
      x += m.w + GX;
    });
  }

  function drawGraph() {
    var holder = document.getElementById("graph");
    holder.textContent = "";
    var m = measure(data.picture);
    var root = svg("svg", { width: m.w + 20, height: m.h + 20, "data-graph": "" }, holder);
    var defs = svg("defs", {}, root);
    var marker = svg("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 9, refY: 5,
                                markerWidth: 7, markerHeight: 7, orient: "auto" }, defs);
    svg("path", { d: "M0,0 L10,5 L0,10 z", fill: "#7a8394" }, marker);
    place(data.picture, m, 10, 10, svg("g", {}, root));
  }

  function pick(id) {
    var cards = document.querySelectorAll(".detail-card");
    var first = null;
    for (var i = 0; i < cards.length; i++) {
      var hit = cards[i].getAttribute("data-template") === id;
      cards[i].classList.toggle("picked", hit);
      if (hit && !first) first = cards[i];
    }
    if (first && first.scrollIntoView) first.scrollIntoView({ block: "nearest" });
  }

  // ------------------------------------------------------------------------- the timeline
  function drawTimeline(holder) {
    var t = data.timeline;
    var bars = t.bars, summed = t.summed;
    var end = 0;
    bars.forEach(function (b) { end = Math.max(end, b[2]); });
    summed.forEach(function (s) { end = Math.max(end, s.end); });
    end = end || 1;
    // A group of rows per step (map elements share their step's group); in a group, an attempt
    // takes the first lane free at its start, so the lanes show how many ran at once.
    var groups = [], groupOf = {}, laneOf = [];
    bars.forEach(function (b) {
      var g = groupOf[b[5]];
      if (!g) { g = groupOf[b[5]] = { template: b[5], ends: [] }; groups.push(g); }
      var lane = 0;
      while (lane < g.ends.length && g.ends[lane] > b[1]) lane++;
      g.ends[lane] = b[2];
      laneOf.push(lane);
    });
    var lanes = 0;
    groups.forEach(function (g) { g.first = lanes; lanes += g.ends.length; });
    var rowH = lanes > 40 ? Math.max(4, Math.floor(640 / lanes)) : 16;
    var left = 260, width = 1000;
    var root = svg("svg", { width: left + width + 20, height: (lanes + summed.length) * rowH + 30,
                           "data-timeline": "", "data-lanes": lanes }, holder);
    stext(left, 12, "0 ms", "detail", root);
    svg("text", { x: left + width, y: 12, "text-anchor": "end", "class": "detail" }, root).textContent =
      (end / 1000).toFixed(3) + " s";
    groups.forEach(function (g) {
      var label = g.template.split(".map_variable_placeholder").join(".*");
      if (rowH >= 10 || g.ends.length * rowH >= 12) {
        stext(4, 20 + g.first * rowH + Math.min(12, g.ends.length * rowH), label.length > 38 ?
              "…" + label.slice(-37) : label, "detail", root);
      }
    });
    bars.forEach(function (b, i) {
      var y = 20 + (groupOf[b[5]].first + laneOf[i]) * rowH;
      var x = left + (b[1] / end) * width;
      var w = Math.max(1, ((b[2] - b[1]) / end) * width);
      var r = svg("rect", { "class": "bar " + b[3], x: x, y: y, width: w, height: Math.max(1, rowH - 2),
                           "data-bar": b[0], "data-attempt": b[4], "data-status": b[3] }, root);
      svg("title", {}, r).textContent = b[0] + " attempt " + b[4] + " " + b[3] + " " +
        (b[2] - b[1]).toFixed(1) + " ms";
    });
    var y = 20 + lanes * rowH;
    summed.forEach(function (s) {
      var r = svg("rect", { "class": "summed", x: left + (s.start / end) * width, y: y,
                           width: Math.max(1, ((s.end - s.start) / end) * width),
                           height: Math.max(1, rowH - 2), "data-summed": s.template }, root);
      svg("title", {}, r).textContent = s.count + " more attempts of " + s.template + ": " + counted(s.counts);
      y += rowH;
    });
    var shown = bars.length;
    var note = shown + " attempts drawn, a row per step; attempts of a step that overlap in time " +
      "take rows of their own (" + lanes + " rows)";
    if (summed.length) {
      note += "; " + (t.total - shown) + " more summed up as one band per step (" +
        summed.map(function (s) { return s.count + " of " + s.template; }).join(", ") + ")";
    }
    el("p", { "class": "muted", "data-timeline-note": "" }, note, holder);
  }

  // --------------------------------------------------------------------- per-step details
  function keyValues(title, values, parent) {
    var keys = Object.keys(values || {});
    if (!keys.length) return;
    el("div", { "class": "muted" }, title, parent);
    var table = el("table", {}, null, parent);
    keys.forEach(function (k) {
      var tr = el("tr", {}, null, table);
      el("td", {}, k, tr);
      el("td", {}, null, tr).appendChild(el("code", {}, JSON.stringify(values[k])));
    });
  }

  function plot(name, points, parent) {
    var w = 220, h = 60, p = 4;
    var xs = points.map(function (q) { return q[0]; }), ys = points.map(function (q) { return q[1]; });
    var x0 = Math.min.apply(null, xs), x1 = Math.max.apply(null, xs);
    var y0 = Math.min.apply(null, ys), y1 = Math.max.apply(null, ys);
    var sx = function (v) { return p + (x1 > x0 ? (v - x0) / (x1 - x0) : 0.5) * (w - 2 * p); };
    var sy = function (v) { return h - p - (y1 > y0 ? (v - y0) / (y1 - y0) : 0.5) * (h - 2 * p); };
    var box = el("div", { "data-metric": name }, null, parent);
    el("span", {}, name + " (" + points.length + " steps, last " + ys[ys.length - 1] + ") ", box);
    var root = svg("svg", { "class": "plot", width: w, height: h }, box);
    svg("polyline", { points: points.map(function (q) { return sx(q[0]) + "," + sy(q[1]); }).join(" ") }, root);
    points.forEach(function (q) {
      var c = svg("circle", { cx: sx(q[0]), cy: sy(q[1]), r: 2.5, "data-point": q[0] + "," + q[1] }, root);
      svg("title", {}, c).textContent = "step " + q[0] + ": " + q[1];
    });
  }

  function badge(status, parent) { return el("span", { "class": "badge " + status }, status, parent); }

  function drawDetails(holder) {
    data.details.forEach(function (d) {
      var card = el("div", { "class": "detail-card", "data-detail": d.id, "data-template": d.template,
                            "data-status": d.status }, null, holder);
      var h = el("h3", {}, d.id + " ", card);
      badge(d.status, h);
      el("span", { "class": "muted" }, " " + d.type + (d.mock ? " (mocked)" : ""), h);
      if (d.reused_from) el("div", { "data-reused": "" }, "reused from run " + d.reused_from +
        (d.reused_from_step ? ", step " + d.reused_from_step : "") +
        (d.changed_since_original ? "; changed since: " + d.changed_since_original.join(", ") : ""), card);
      if (d.not_reused) el("div", { "data-not-reused": "" }, "not reused: " + d.not_reused, card);
      if (d.attempts.length) {
        var table = el("table", {}, null, card);
        var head = el("tr", {}, null, table);
        ["attempt", "status", "start", "duration"].forEach(function (c) { el("th", {}, c, head); });
        d.attempts.forEach(function (a) {
          var tr = el("tr", { "data-attempt": a.number, "data-status": a.status }, null, table);
          el("td", {}, a.number, tr);
          badge(a.status, el("td", {}, null, tr));
          el("td", {}, a.start, tr);
          el("td", {}, a.duration, tr);
        });
      }
      var last = d.attempts[d.attempts.length - 1];
      if (last) {
        keyValues("parameters consumed", last.parameters, card);
        keyValues("parameters produced", last.produced, card);
      }
      keyValues("passed on", d.produced, card);
      if (d.catalog.length) {
        el("div", { "class": "muted" }, "catalog", card);
        var ct = el("table", {}, null, card);
        d.catalog.forEach(function (c) {
          var tr = el("tr", { "data-catalog": c.name }, null, ct);
          el("td", {}, c.stage, tr);
          el("td", {}, c.name, tr);
          el("td", { "class": "hash", title: c.hash }, c.hash.slice(0, 16), tr);
          el("td", { "class": "muted" }, c.path, tr);
        });
      }
      var scalars = {};
      Object.keys(d.metrics).forEach(function (k) {
        if (Array.isArray(d.metrics[k]) && d.metrics[k].length && Array.isArray(d.metrics[k][0])) {
          plot(k, d.metrics[k], card);
        } else {
          scalars[k] = d.metrics[k];
        }
      });
      keyValues("metrics", scalars, card);
      d.attempts.forEach(function (a) {
        if (a.status === "FAIL" && a.message) {
          el("div", { "class": "muted" }, "attempt " + a.number + " failed:", card);
          el("pre", { "class": "error", "data-error": d.id, "data-attempt": a.number }, a.message, card);
        }
      });
      if (d.message && !d.attempts.some(function (a) { return a.message === d.message; })) {
        el("pre", { "class": "error", "data-error": d.id }, d.message, card);
      }
      if (d.execution_log) el("div", { "class": "muted" }, "execution log: " + d.execution_log, card);
    });
  }

  function drawMaps(holder) {
    Object.keys(maps).forEach(function (name) {
      var m = maps[name];
      var card = el("div", { "class": "detail-card", "data-map": name, "data-template": m.template }, null, holder);
      el("h3", {}, name + ": " + m.elements + " elements", card);
      el("div", { "data-map-counts": counted(m.counts) }, counted(m.counts), card);
      function list(title, rows, attr) {
        if (!rows.length) return;
        el("div", { "class": "muted" }, title, card);
        var table = el("table", {}, null, card);
        rows.forEach(function (r) {
          var tr = el("tr", {}, null, table);
          tr.setAttribute(attr, r.element);
          el("td", {}, r.element, tr);
          el("td", {}, JSON.stringify(r.value), tr);
          badge(r.status, el("td", {}, null, tr));
          el("td", {}, r.seconds.toFixed(3) + " s", tr);
          if (r.message) el("td", {}, null, tr).appendChild(el("code", {}, (r.step ? r.step + ": " : "") + r.message.split("\n").slice(-1)[0]));
        });
      }
      list("the slowest " + m.slowest.length, m.slowest, "data-slow");
      list("failed: " + m.failed_total + (m.failed_total > m.failed.length ? " (first " + m.failed.length + " listed)" : ""),
           m.failed, "data-failed");
    });
  }

  function drawRun(holder) {
    var r = data.run;
    var h = el("h1", { "data-run": r.run_id }, "Run " + r.run_id + " ", holder);
    badge(r.status, h).setAttribute("data-run-status", r.status);
    var table = el("table", {}, null, holder);
    function row(k, v, attr) {
      if (v === "" || v === null || v === undefined) return;
      var tr = el("tr", attr || {}, null, table);
      el("th", {}, k, tr);
      el("td", {}, v, tr);
    }
    row("started", r.start_time); row("ended", r.end_time); row("duration", r.duration);
    row("tag", r.tag, { "data-tag": r.tag });
    var chain = r.retry_chain && r.retry_chain.length ? r.retry_chain : [r.original_run_id];
    row("retry of", r.original_run_id ? chain.join(" ← ") : "", { "data-original-run": r.original_run_id,
                                                        "data-retry-chain": chain.join(" ") });
    row("dag hash", r.dag_hash);
    r.code.forEach(function (c) {
      var text = (c.code_identifier || "no commit") + " (" + (c.code_identifier_dependable ? "clean" : "dirty") + ")";
      if (c.code_identifier_diff) text += "; diff kept in the catalog at " + c.code_identifier_diff;
      if (c.code_identifier_message) text += "; " + c.code_identifier_message;
      row("code (" + c.code_identifier_type + ")", text, { "data-code": c.code_identifier || "" });
    });
    var env = r.environment || {};
    row("python", [env.python, env.implementation, env.platform].filter(Boolean).join(" · "));
    if (r.message) el("pre", { "class": "error", "data-run-message": "" }, r.message, holder);
    keyValues("parameters", r.parameters, holder);
    var dists = env.distributions || [];
    if (dists.length) {
      var det = el("details", {}, null, holder);
      el("summary", {}, "environment: " + dists.length + " distributions", det);
      el("pre", { "data-distributions": "" }, dists.join("\n"), det);
    }
    var conf = el("details", {}, null, holder);
    el("summary", {}, "configuration", conf);
    el("pre", { "data-configuration": "" }, JSON.stringify(r.configuration, null, 2), conf);
  }

  if (data.run) drawRun(document.getElementById("run"));
  drawGraph();
  if (data.timeline) drawTimeline(document.getElementById("timeline"));
  if (data.maps) drawMaps(document.getElementById("maps"));
  if (data.details) drawDetails(document.getElementById("details"));
  // How long loading and drawing took, for a look at big runs' reports.
  document.body.setAttribute("data-draw-ms", Math.round(performance.now()));
  document.body.setAttribute("data-ready", "");
})();
