/* rabbit-chaos report: draws each run's throughput timeline with uPlot (inlined above).
 * Reads data only from the JSON block; writes text only to the canvas or as attribute values,
 * never through innerHTML, so names from a run cannot become markup. Marks what it drew
 * (data-rendered on each chart, data-charts-rendered on <body>) and any error
 * (data-js-error), so a headless browser can check the page. */
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
  var boxes = document.querySelectorAll(".timeline[data-run]");
  for (var i = 0; i < boxes.length; i++) {
    var tl = (data.timelines || {})[boxes[i].getAttribute("data-run")];
    if (!tl) continue;
    try {
      draw(boxes[i], tl);
      drawn++;
    } catch (e) {
      boxes[i].setAttribute("data-error", String(e));
      fail(e);
    }
  }
  body.setAttribute("data-charts-rendered", String(drawn));

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
