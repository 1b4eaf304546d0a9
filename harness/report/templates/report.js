/* rabbit-chaos report: draws each run's throughput timeline with uPlot (inlined above), opens
 * the run a matrix cell links to, and filters runs by verdict, client, library version, queue type and fault.
 * Reads data only from the JSON block and data-* attributes; writes text only to the canvas, as
 * attribute values or via textContent, never through innerHTML, so names from a run cannot become
 * markup. Run sections are closed <details>; a run's chart is drawn when it is first opened, so a
 * 130-run page loads fast. Marks what it drew (data-rendered on each chart, data-charts-rendered
 * on <body>) and any error (data-js-error), so a headless browser can check the page.
 * Query parameters preset the page: ?verdict=fail&client=C&version=LIB%20VER&fault=F, ?open=all. */
(function () {
  "use strict";
  var body = document.body;
  function fail(msg) {
    body.setAttribute("data-js-error", String(msg));
  }
  window.addEventListener("error", function (e) { fail(e.message); });

  var data;
  try {
    data = JSON.parse(document.getElementById("rc-data").textContent);
  } catch (e) {
    fail("report data unreadable: " + e);
    return;
  }
  if (typeof uPlot === "undefined") {
    fail("chart library missing");
    return;
  }
  var colors = data.conn_colors || {};
  var HEIGHT = 240;
  var plots = [];

  function px(n) {
    return Math.round(n * (uPlot.pxRatio || 1));
  }

  function shadeFaults(tl) {
    return function (u) {
      var ctx = u.ctx, top = u.bbox.top, h = u.bbox.height;
      ctx.save();
      ctx.font = px(11) + "px system-ui, sans-serif";
      (tl.faults || []).forEach(function (f) {
        var x0 = u.valToPos(f.start, "x", true);
        var x1 = u.valToPos(f.stop == null ? tl.end : f.stop, "x", true);
        ctx.fillStyle = "rgba(192, 57, 43, 0.13)";
        ctx.fillRect(x0, top, Math.max(x1 - x0, px(1)), h);
        ctx.fillStyle = "#922B21";
        ctx.fillText(f.name + (f.stop == null ? " (never healed)" : ""), x0 + px(4), top + px(12));
      });
      ctx.restore();
    };
  }

  function markConnEvents(tl) {
    return function (u) {
      var ctx = u.ctx, top = u.bbox.top, bottom = u.bbox.top + u.bbox.height;
      ctx.save();
      ctx.lineWidth = px(1.5);
      ctx.setLineDash([px(4), px(3)]);
      (tl.conn || []).forEach(function (e) {
        var x = u.valToPos(e.t, "x", true);
        ctx.strokeStyle = colors[e.kind] || "#555555";
        ctx.beginPath();
        ctx.moveTo(x, top);
        ctx.lineTo(x, bottom);
        ctx.stroke();
        ctx.fillStyle = ctx.strokeStyle;
        ctx.beginPath();
        ctx.moveTo(x - px(4), bottom);
        ctx.lineTo(x + px(4), bottom);
        ctx.lineTo(x, bottom - px(7));
        ctx.fill();
      });
      ctx.restore();
    };
  }

  function perSecond(xs, bucket) {
    return xs.map(function (c) { return c / bucket; });
  }

  function draw(box, tl) {
    var target = box.querySelector(".chart");
    var width = Math.max(target.clientWidth || 0, 320);
    var fmtRate = function (u, v) { return v == null ? "—" : v.toFixed(0) + "/s"; };
    var opts = {
      width: width,
      height: HEIGHT,
      scales: { x: { time: false }, y: { range: function (u, min, max) { return [0, max > 0 ? max * 1.1 : 1]; } } },
      axes: [
        { label: "seconds since the first event", size: 40 },
        { label: "msg/s", size: 60 }
      ],
      series: [
        { label: "t", value: function (u, v) { return v == null ? "—" : v.toFixed(1) + " s"; } },
        { label: "published", stroke: "rgba(0, 114, 178, 0.45)", width: 4, value: fmtRate }
      ],
      hooks: { drawClear: [shadeFaults(tl)], draw: [markConnEvents(tl)] },
      cursor: { drag: { x: true, y: false } }
    };
    var series = [tl.t, perSecond(tl.published, tl.bucket_s)];
    function add(label, xs, style) {
      style.label = label;
      style.value = fmtRate;
      opts.series.push(style);
      series.push(perSecond(xs, tl.bucket_s));
    }
    // "confirmed" is a broker confirm only; an ok without one is "sent, unconfirmed" (series.py)
    if (tl.confirmed) add("confirmed", tl.confirmed, { stroke: "#009E73", width: 1.5 });
    if (tl.unconfirmed && tl.unconfirmed.some(function (c) { return c > 0; })) {
      add("sent, unconfirmed", tl.unconfirmed, { stroke: "#CC79A7", width: 1.5, dash: [2, 2] });
    }
    if (!tl.confirmed && tl.acknowledged) {
      add("ok (confirmed or not)", tl.acknowledged, { stroke: "#009E73", width: 1.5, dash: [8, 3] });
    }
    add("delivered", tl.delivered, { stroke: "#D55E00", width: 1.5, dash: [5, 3] });
    var u = new uPlot(opts, series, target);
    plots.push({ u: u, target: target });
    box.setAttribute("data-rendered", "1");
  }

  var drawn = 0;
  body.setAttribute("data-charts-rendered", "0");

  /* Draw the charts inside ``root`` not drawn yet (a chart needs its box laid out: open first). */
  function drawIn(root) {
    var boxes = root.querySelectorAll(".timeline[data-run]");
    for (var i = 0; i < boxes.length; i++) {
      var box = boxes[i];
      if (box.hasAttribute("data-rendered") || box.hasAttribute("data-error")) continue;
      var tl = (data.timelines || {})[box.getAttribute("data-run")];
      if (!tl) continue;
      try {
        draw(box, tl);
        drawn++;
      } catch (e) {
        box.setAttribute("data-error", String(e));
        fail(e);
      }
    }
    body.setAttribute("data-charts-rendered", String(drawn));
  }

  var runs = Array.prototype.slice.call(document.querySelectorAll("details.run"));

  function openRun(d) {
    d.hidden = false;  // a run linked to stays visible even when the filters hide its kind
    if (!d.open) d.open = true;
    drawIn(d);
  }

  function fragment(s) {
    try { return decodeURIComponent(s); } catch (e) { return s; }
  }

  /* Open the run section ``id`` names (or holds) and bring it into view. */
  function reveal(id, scroll) {
    if (!id) return;
    var el = document.getElementById(id);
    var d = el && el.closest ? el.closest("details.run") : null;
    if (!d) return;
    openRun(d);
    if (scroll) el.scrollIntoView();
  }

  // a run opened by hand: draw its chart (toggle does not bubble; capture sees it)
  document.addEventListener("toggle", function (e) {
    var d = e.target;
    if (d && d.matches && d.matches("details.run") && d.open) drawIn(d);
  }, true);
  // a cell or any in-page link to a run: open it before the browser scrolls to it
  document.addEventListener("click", function (e) {
    var a = e.target && e.target.closest ? e.target.closest("a[href^='#']") : null;
    if (a) reveal(fragment(a.getAttribute("href").slice(1)), false);
  });
  window.addEventListener("hashchange", function () {
    reveal(fragment(location.hash.slice(1)), true);
  });

  /* Filters: rows, columns, cells and run sections carry data-client / data-version / data-fault /
   * data-queue / data-verdict(s); compared as plain strings (getAttribute), never parsed as markup. */
  var form = document.getElementById("filters");
  var selects = form ? Array.prototype.slice.call(form.querySelectorAll("select[data-filter]")) : [];
  var params = new URLSearchParams(location.search);

  function current() {
    var f = {};
    selects.forEach(function (s) { f[s.getAttribute("data-filter")] = s.value; });
    return f;
  }

  function applyFilters() {
    var f = current();
    var shown = 0;
    runs.forEach(function (d) {
      var ok = ["verdict", "client", "version", "fault", "queue"].every(function (k) {
        return !f[k] || d.getAttribute("data-" + k) === f[k];
      });
      d.hidden = !ok;
      if (ok) shown++;
    });
    document.querySelectorAll("table.matrix [data-fault]").forEach(function (c) {
      c.hidden = !!f.fault && c.getAttribute("data-fault") !== f.fault;
    });
    var groupsShown = {};
    document.querySelectorAll("table.matrix tr.mrow").forEach(function (tr) {
      var ok = (!f.client || tr.getAttribute("data-client") === f.client) &&
               (!f.version || tr.getAttribute("data-version") === f.version) &&
               (!f.queue || tr.getAttribute("data-queue") === f.queue);
      var any = false;
      tr.querySelectorAll("td.cell").forEach(function (td) {
        var has = !f.verdict || (" " + td.getAttribute("data-verdicts") + " ").indexOf(" " + f.verdict + " ") >= 0;
        td.classList.toggle("dim", !has);
        if (has && !td.hidden && td.getAttribute("data-runs") !== "0") any = true;
      });
      tr.hidden = !ok || (!!f.verdict && !any);
      if (!tr.hidden) groupsShown[tr.getAttribute("data-group")] = true;
    });
    document.querySelectorAll("table.matrix tr.libgroup").forEach(function (tr) {
      tr.hidden = !groupsShown[tr.getAttribute("data-group")];
    });
    var out = document.getElementById("shown");
    if (out) out.textContent = shown + " of " + runs.length + " runs shown";
    body.setAttribute("data-runs-shown", String(shown));
  }

  if (form) {
    selects.forEach(function (s) {
      var want = params.get(s.getAttribute("data-filter"));
      if (want !== null) s.value = want;  // an option that does not exist leaves "all"
      s.addEventListener("change", applyFilters);
    });
    form.addEventListener("reset", function () { setTimeout(applyFilters, 0); });
    form.addEventListener("submit", function (e) { e.preventDefault(); });
    document.getElementById("open-all").addEventListener("click", function () {
      runs.forEach(function (d) { if (!d.hidden) openRun(d); });
    });
    document.getElementById("close-all").addEventListener("click", function () {
      runs.forEach(function (d) { d.open = false; });
    });
    form.hidden = false;
    applyFilters();
  }
  if (params.get("open") === "all") runs.forEach(openRun);
  reveal(fragment(location.hash.slice(1)), true);

  var pending = null;
  window.addEventListener("resize", function () {
    clearTimeout(pending);
    pending = setTimeout(function () {
      plots.forEach(function (p) {
        p.u.setSize({ width: Math.max(p.target.clientWidth || 0, 320), height: HEIGHT });
      });
    }, 150);
  });
})();
