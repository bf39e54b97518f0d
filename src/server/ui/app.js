// ccr's dashboard: polls the server's JSON APIs every few seconds and draws them with uPlot.
// When the server has a client key, the page asks for it once, keeps it in this tab's
// sessionStorage and sends it as the `x-api-key` header, never in a URL.
"use strict";

const REFRESH_MS = 3000;
const FAILURE_LOG_EVERY = 10; // refreshes; the failure log is read from disk
const KEY_HEADER = "x-api-key";
const KEY_STORE = "ccr.key";
const MINUTES = 60;

const CLASS_COLORS = {
  rate_limit: "#e8a33d", auth: "#8e5bd6", upstream_5xx: "#d64545", timeout: "#a0522d",
  network: "#6b7280", client_error: "#3b82f6", context_too_long: "#0e9f9f",
  conversion: "#c2410c", stream_cut: "#db2777", bad_response: "#7c2d12", cancelled: "#9ca3af",
};

const $ = (id) => document.getElementById(id);

class NeedsKey extends Error {}

async function getJson(path) {
  const headers = {};
  const key = sessionStorage.getItem(KEY_STORE);
  if (key) headers[KEY_HEADER] = key;
  const response = await fetch(path, { headers, cache: "no-store" });
  if (response.status === 401) throw new NeedsKey();
  if (!response.ok) throw new Error(`${path} answered ${response.status}`);
  return response.json();
}

// ---- formatting ----

const sum = (values) => values.reduce((a, b) => a + b, 0);
const failed = (counts) => sum(Object.values(counts.failures || {}));

function number(n) {
  if (n == null) return "–";
  if (n >= 1e6) return (n / 1e6).toFixed(1) + "M";
  if (n >= 1e4) return Math.round(n / 1e3) + "k";
  if (n >= 1e3) return (n / 1e3).toFixed(1) + "k";
  return String(Math.round(n * 10) / 10);
}

const ms = (v) => (v == null ? "–" : v >= 100 ? String(Math.round(v)) : v.toFixed(1));

function duration(secs) {
  const d = Math.floor(secs / 86400), h = Math.floor(secs / 3600) % 24;
  const m = Math.floor(secs / 60) % 60, s = secs % 60;
  if (d) return `${d}d ${h}h`;
  if (h) return `${h}h ${m}m`;
  return m ? `${m}m ${s}s` : `${s}s`;
}

function ago(rfc3339) {
  if (!rfc3339) return "never";
  const secs = Math.max(0, Math.round((Date.now() - Date.parse(rfc3339)) / 1000));
  return duration(secs) + " ago";
}

const clock = (rfc3339) => new Date(rfc3339).toLocaleTimeString();

// ---- tables ----

function fill(tableId, rows) {
  const body = $(tableId).tBodies[0];
  body.replaceChildren(...rows);
}

function row(cells, data = {}, className = "") {
  const tr = document.createElement("tr");
  for (const [name, value] of Object.entries(data)) tr.dataset[name] = value;
  if (className) tr.className = className;
  for (const cell of cells) {
    const td = document.createElement("td");
    td.textContent = cell;
    tr.append(td);
  }
  return tr;
}

function emptyRow(text, columns) {
  const tr = row([text], {}, "empty");
  tr.firstChild.colSpan = columns;
  return tr;
}

function showProviders(rows) {
  const lines = rows.map((r) => row([
    r.provider, r.requests, r.successes, failed(r), number(r.requests_per_minute),
    ms(r.latency_ms.p50), ms(r.latency_ms.p99), ms(r.ttft_ms.p50), ms(r.ttft_ms.p99),
    number(r.tokens.input + r.tokens.cache_read + r.tokens.cache_write), number(r.tokens.output),
  ], { provider: r.provider }));
  fill("providers", lines.length ? lines : [emptyRow("no requests yet", 11)]);
}

function showTargets(targets) {
  fill("targets", targets.map((t) => {
    const health = t.healthy
      ? "healthy"
      : `blacklisted until ${clock(t.blacklisted_until)} (${t.reason || "failure"})`;
    return row(
      [t.target, t.provider, health, t.in_flight, ago(t.last_success), ago(t.last_failure)],
      { target: t.target },
      t.healthy ? "healthy" : "blacklisted",
    );
  }));
}

function showClasses(tableId, byClass) {
  const lines = Object.entries(byClass)
    .sort((a, b) => b[1] - a[1])
    .map(([name, n]) => row([name, n], { class: name }));
  fill(tableId, lines.length ? lines : [emptyRow("none", 2)]);
}

// ---- charts ----

const charts = {};

// Draws `data` in the chart `id`, making it anew when its series change.
function draw(id, series, data, options) {
  const el = $(id);
  const shape = JSON.stringify(series.map((s) => s.label)) + JSON.stringify(options.names || []);
  const chart = charts[id];
  if (chart && chart.shape === shape) {
    chart.plot.setData(data);
    return;
  }
  if (chart) chart.plot.destroy();
  const x = options.x || {};
  const opts = { width: el.clientWidth || 600, height: 220, series: [x, ...series], ...options.uplot };
  charts[id] = { shape, plot: new uPlot(opts, data, el) };
}

// The last hour, one point a minute (empty minutes are 0), from the server's timeline.
function minutes(timeline) {
  const now = Math.floor(Date.now() / 60000);
  const xs = Array.from({ length: MINUTES }, (_, i) => (now - MINUTES + 1 + i) * 60);
  const byMinute = new Map(timeline.map((m) => [m.at, m]));
  return { xs, at: (x) => byMinute.get(x) };
}

// The value axis in short numbers (84k, 1.2M), so large counts fit beside the chart.
const valueAxis = { values: (u, splits) => splits.map(number), size: 56 };

function line(label, color, fill) {
  return { label, stroke: color, width: 2, fill, points: { show: false } };
}

function requestsChart(timeline) {
  const { xs, at } = minutes(timeline);
  const classes = [...new Set(timeline.flatMap((m) => Object.keys(m.failures)))].sort();
  const series = [line("requests", "#2563eb", "rgba(37,99,235,0.08)"),
    ...classes.map((c) => line(c, CLASS_COLORS[c] || "#555"))];
  const data = [xs, xs.map((x) => at(x)?.requests ?? 0),
    ...classes.map((c) => xs.map((x) => at(x)?.failures[c] ?? 0))];
  draw("c-requests", series, data, { uplot: {
    scales: { y: { range: (u, lo, hi) => [0, Math.max(1, hi)] } }, axes: [{}, valueAxis] } });
}

function tokensChart(timeline) {
  const { xs, at } = minutes(timeline);
  const series = [line("input", "#0e9f6e"), line("output", "#7c3aed"), line("cache read", "#9ca3af")];
  const pick = (f) => xs.map((x) => { const m = at(x); return m ? f(m.tokens) : 0; });
  const data = [xs, pick((t) => t.input), pick((t) => t.output), pick((t) => t.cache_read)];
  draw("c-tokens", series, data, { uplot: {
    scales: { y: { range: (u, lo, hi) => [0, Math.max(1, hi)] } }, axes: [{}, valueAxis] } });
}

// p99 as a wide light bar with p50 as a narrow dark one inside it (p50 never exceeds p99).
function barsChart(id, rows, pick) {
  const names = rows.map((r) => r.provider);
  const xs = names.map((_, i) => i);
  const bar = (label, color, size) => ({
    label, fill: color, stroke: color, points: { show: false },
    paths: uPlot.paths.bars({ size: [size, 90] }),
  });
  const series = [bar("p99", "rgba(37,99,235,0.3)", 0.6), bar("p50", "#2563eb", 0.3)];
  const data = [xs, rows.map((r) => pick(r).p99), rows.map((r) => pick(r).p50)];
  draw(id, series, data, {
    names,
    x: { label: "provider", value: (u, i) => names[i] ?? "--" },
    uplot: {
      scales: { x: { time: false, range: [-0.5, Math.max(0.5, names.length - 0.5)] },
        y: { range: (u, lo, hi) => [0, Math.max(1, hi * 1.1)] } },
      axes: [{ splits: () => xs, values: (u, splits) => splits.map((i) => names[i] ?? ""), grid: { show: false } },
        valueAxis],
    },
  });
}

// ---- the loop ----

let refreshes = 0;

function askForKey(refused) {
  $("key-form").hidden = false;
  $("key-error").textContent = refused ? "the key was refused" : "";
  $("status").textContent = "needs the client key";
  $("status").className = "status warn";
}

// `stats` is grouped by provider; its totals and timeline are the whole server's.
function showStats(stats, targets) {
  $("version").textContent = `v${stats.ccr_version}`;
  $("uptime").textContent = `up ${duration(stats.uptime_secs)}`;
  const t = stats.totals;
  $("t-requests").textContent = number(t.requests);
  $("t-rate").textContent = number(t.requests_per_minute);
  $("t-failed").textContent = number(failed(t));
  $("t-in").textContent = number(t.tokens.input + t.tokens.cache_read + t.tokens.cache_write);
  $("t-out").textContent = number(t.tokens.output);
  $("t-cache").textContent = number(t.tokens.cache_read);
  $("t-flight").textContent = sum(targets.map((x) => x.in_flight));
  showProviders(stats.rows);
  showTargets(targets);
  showClasses("errors", t.failures);
  requestsChart(stats.timeline);
  tokensChart(stats.timeline);
  barsChart("c-latency", stats.rows, (r) => r.latency_ms);
  barsChart("c-ttft", stats.rows, (r) => r.ttft_ms);
}

async function refresh() {
  try {
    const [stats, targets] = await Promise.all([
      getJson("/api/stats?by=provider"), getJson("/api/targets")]);
    showStats(stats, targets.targets);
    if (refreshes++ % FAILURE_LOG_EVERY === 0) {
      getJson("/api/failures?since=24h")
        .then((log) => showClasses("failure-log", log.by_class))
        .catch(() => fill("failure-log", [emptyRow("unavailable", 2)]));
    }
    $("key-form").hidden = true;
    $("status").textContent = `live · ${new Date().toLocaleTimeString()}`;
    $("status").className = "status ok";
  } catch (error) {
    if (error instanceof NeedsKey) {
      askForKey(sessionStorage.getItem(KEY_STORE) !== null);
      return; // wait for the key; the form's submit refreshes again
    }
    $("status").textContent = `cannot reach ccr: ${error.message}`;
    $("status").className = "status warn";
  }
  setTimeout(refresh, REFRESH_MS);
}

$("key-form").addEventListener("submit", (event) => {
  event.preventDefault();
  sessionStorage.setItem(KEY_STORE, $("key").value);
  $("key").value = "";
  refresh();
});

window.addEventListener("resize", () => {
  for (const [id, chart] of Object.entries(charts)) {
    chart.plot.setSize({ width: $(id).clientWidth, height: 220 });
  }
});

refresh();
