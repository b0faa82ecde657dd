// Charts of the simsearch dashboard: each page carries its data as a JSON block (or a JSON endpoint for
// the live charts); Plotly (served by this server) draws it. No inline scripts: the CSP allows none.
"use strict";

const LAYOUT = {margin: {l: 60, r: 20, t: 40, b: 40}, font: {size: 12}, legend: {orientation: "h", y: -0.15}};
const CONFIG = {displaylogo: false, responsive: true, displayModeBar: false};

function readJson(id) {
  const node = document.getElementById(id);
  return node ? JSON.parse(node.textContent) : null;
}

function times(ts) {
  return ts.map((t) => new Date(t * 1000));
}

function notMeasured(div, title) {
  Plotly.react(div, [], Object.assign({}, LAYOUT, {
    title: {text: title},
    xaxis: {visible: false}, yaxis: {visible: false},
    annotations: [{text: "not measured", showarrow: false, font: {size: 18, color: "#888"}}],
  }), CONFIG);
  div.dataset.state = "not-measured";
}

function lines(div, title, series, yTitle, extra) {
  if (!series || !series.length) {
    notMeasured(div, title);
    return;
  }
  const traces = series.map((s) => ({x: times(s.t), y: s.v, name: s.name, mode: "lines+markers", type: "scatter",
                                     connectgaps: false, line: {dash: /server-wide|SLO|threshold/.test(s.name) ? "dot" : "solid"}}));
  Plotly.react(div, traces.concat(extra || []), Object.assign({}, LAYOUT, {
    title: {text: title}, yaxis: {title: {text: yTitle}, rangemode: "tozero"}, height: 360,
  }), CONFIG);
  div.dataset.state = "measured";
  div.dataset.points = Math.max(...series.map((s) => s.v.filter((v) => v !== null).length));
}

async function liveCharts(root) {
  const response = await fetch(root.dataset.series, {credentials: "same-origin"});
  if (response.status === 401) {
    window.location = "/login";
    return;
  }
  const data = await response.json();
  lines(document.getElementById("chart-latency"), "Search latency", data.latency, "milliseconds");
  const q = data.quality;
  const recall = [].concat(q.simsearch_live_recall || [], q.simsearch_live_recall_slo || []);
  if (q.simsearch_live_recall) {
    lines(document.getElementById("chart-recall"), "Live recall", recall, "recall@k");
  } else {
    notMeasured(document.getElementById("chart-recall"), "Live recall");
  }
  const drift = [].concat(q.simsearch_query_drift || [], q.simsearch_write_drift || [],
                          q.simsearch_drift_threshold || []);
  if (q.simsearch_query_drift || q.simsearch_write_drift) {
    lines(document.getElementById("chart-drift"), "Drift", drift, "drift score");
  } else {
    notMeasured(document.getElementById("chart-drift"), "Drift");
  }
  root.dataset.loaded = "true";
}

function embeddingMap(div, plot) {
  const hover = "%{text}<extra></extra>";
  let traces;
  if (!plot.colour) {
    traces = [{x: plot.x, y: plot.y, text: plot.ids, mode: "markers", type: "scatter", hovertemplate: hover,
               marker: {size: 5, opacity: 0.7}, name: "points"}];
  } else if (plot.colour.kind === "number") {
    traces = [{x: plot.x, y: plot.y, text: plot.ids, mode: "markers", type: "scatter", hovertemplate: hover,
               marker: {size: 5, opacity: 0.8, color: plot.colour.values, colorscale: "Viridis",
                        colorbar: {title: {text: plot.field}}}, name: plot.field}];
  } else {
    const groups = new Map();
    plot.colour.values.forEach((v, i) => {
      if (!groups.has(v)) groups.set(v, []);
      groups.get(v).push(i);
    });
    traces = [...groups.keys()].sort().map((v) => ({
      x: groups.get(v).map((i) => plot.x[i]), y: groups.get(v).map((i) => plot.y[i]),
      text: groups.get(v).map((i) => plot.ids[i]), mode: "markers", type: "scatter", name: v,
      hovertemplate: hover, marker: {size: 5, opacity: 0.8},
    }));
  }
  Plotly.newPlot(div, traces, Object.assign({}, LAYOUT, {
    title: {text: plot.field ? `coloured by ${plot.field}` : "sample"},
    xaxis: {title: {text: "PC 1"}, zeroline: false}, yaxis: {title: {text: "PC 2"}, zeroline: false},
    legend: {orientation: "v"}, height: 620,
  }), CONFIG);
  div.dataset.loaded = "true";
}

function histogram(div, plot) {
  const all = plot.neighbour.concat(plot.random);
  const lo = Math.min(...all), hi = Math.max(...all);
  const size = hi > lo ? (hi - lo) / 60 : 1;  // the same bins for both, so the densities compare
  const common = {type: "histogram", opacity: 0.6, histnorm: "probability density", autobinx: false,
                  xbins: {start: lo, end: hi + size, size: size}};
  Plotly.newPlot(div, [
    Object.assign({x: plot.neighbour, name: "nearest neighbours"}, common),
    Object.assign({x: plot.random, name: "random pairs"}, common),
  ], Object.assign({}, LAYOUT, {barmode: "overlay", title: {text: "neighbour vs random pairs"},
                                xaxis: {title: {text: plot.label}}, yaxis: {title: {text: "density"}}, height: 520}),
  CONFIG);
  div.dataset.loaded = "true";
}

document.addEventListener("DOMContentLoaded", () => {
  const charts = document.getElementById("charts");
  if (charts) {
    liveCharts(charts);
    setInterval(() => liveCharts(charts), 1000 * Number(charts.dataset.every || 5));
  }
  const map = document.getElementById("map");
  if (map) embeddingMap(map, readJson("map-data"));
  const hist = document.getElementById("histogram");
  if (hist) histogram(hist, readJson("histogram-data"));
  const field = document.getElementById("colour-field");
  if (field) field.addEventListener("change", () => field.form.submit());
});
