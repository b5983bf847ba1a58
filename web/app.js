// Runnel's dashboard: the overview page and the router between pages. The overview reads
// the server's history of its charts (GET /v1/history) at load and whenever the range
// changes, then every second reads /metrics (the Prometheus text the server exports) for the
// tables and the newest chart points: log end offsets → records/s per topic, the consumer
// groups' lag, the pipelines' counters. "tail" follows a topic's new records over the
// WebSocket API (/v1/ws); a materialized view is shown as a live table and chart. The other
// pages live in topics.js, pipeline.js and sql.js. No framework and no build step: the
// browser loads these files as the server embeds them.

import { api, el, fmtBytes, fmtCount, fmtLag, onUnauthorized, PALETTE, replaceRows, setLogin, setToken, wsUrl } from "./api.js";
import { showTopics } from "./topics.js";
import { showPipelines } from "./pipeline.js";
import { showSql } from "./sql.js";

const POLL_MS = 1000;
const VIEW_POINTS = 120; // the view chart keeps two minutes
const TAIL_ROWS = 50;
const LEGEND_MAX = 8;    // series drawn per chart; the rest are summed into "other"
const RANGES = { "5m": 300, "15m": 900, "1h": 3600 };

/** Parses Prometheus text into [{name, labels, value}]. */
export function parseMetrics(text) {
  const out = [];
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const m = line.match(/^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)/);
    if (!m) continue;
    const labels = {};
    if (m[3]) {
      for (const l of m[3].matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
        labels[l[1]] = l[2].replace(/\\"/g, '"').replace(/\\n/g, "\n").replace(/\\\\/g, "\\");
      }
    }
    out.push({ name: m[1], labels, value: Number(m[4]) });
  }
  return out;
}

const state = {
  range: "15m",
  hist: { times: [], series: new Map() }, // "kind\tname" -> values aligned with times (seconds)
  live: [],              // [{t, values: Map("kind\tname" -> value)}] newer than the history
  last: null,            // {t, totals: Map("kind\tname" -> running total)}
  charts: new Map(),     // host id -> {plot, labels}
  tail: null,            // {topic, ws}
  view: null,            // {name, ws, rows: Map(key -> row), chart, series: Map(key -> values), times, field}
  views: [],             // names seen in /v1/views
  page: "overview",
};

function setStatus(ok, text) {
  const s = document.getElementById("status");
  s.textContent = text;
  s.className = "status " + (ok ? "ok" : "down");
}

/** Folds one scrape into per-topic figures. Internal topics (`__…`) are left out. */
function summarize(samples) {
  const topics = new Map(); // name -> {partitions, end, bytes}
  const lag = new Map();    // "group\ttopic" -> lag
  const jobs = new Map();   // id -> {running, in, out, lag, checkpoints, ckptMs, ckptBytes, fill, late}
  let memory = null;
  for (const s of samples) {
    const topic = s.labels.topic;
    if (s.name === "process_resident_memory_bytes") memory = s.value;
    if (s.name.startsWith("runnel_job_") && s.labels.pipeline) {
      const j = jobs.get(s.labels.pipeline) ?? { running: 0, state: null, reason: "", in: 0, out: 0, lag: null,
                                                  checkpoints: 0, ckptMs: 0, ckptBytes: 0, fill: 0, late: 0 };
      const op = s.labels.operator ?? "";
      if (s.name === "runnel_job_running") j.running = s.value;
      else if (s.name === "runnel_job_state" && s.value === 1) j.state = s.labels.state;
      else if (s.name === "runnel_job_info") j.reason = s.labels.reason ?? "";
      else if (s.name === "runnel_job_records_out_total" && op.endsWith(".source")) j.in += s.value;
      else if (s.name === "runnel_job_records_in_total" && op.endsWith(".sink")) j.out += s.value;
      else if (s.name === "runnel_job_late_records_total") j.late += s.value;
      else if (s.name === "runnel_job_watermark_lag_seconds") j.lag = s.value;
      else if (s.name === "runnel_job_checkpoints_total") j.checkpoints = s.value;
      else if (s.name === "runnel_job_checkpoint_duration_seconds") j.ckptMs = s.value * 1000;
      else if (s.name === "runnel_job_checkpoint_size_bytes") j.ckptBytes = s.value;
      else if (s.name === "runnel_job_queue_fill_ratio") j.fill = s.value;
      jobs.set(s.labels.pipeline, j);
      continue;
    }
    if (!topic || topic.startsWith("__")) continue;
    if (s.name === "runnel_partition_log_end_offset" || s.name === "runnel_partition_size_bytes") {
      const t = topics.get(topic) ?? { partitions: 0, end: 0, bytes: 0 };
      if (s.name === "runnel_partition_log_end_offset") { t.partitions++; t.end += s.value; }
      else t.bytes += s.value;
      topics.set(topic, t);
    } else if (s.name === "kafka_consumergroup_lag_sum") {
      lag.set(`${s.labels.consumergroup}\t${topic}`, s.value);
    }
  }
  return { topics, lag, jobs, memory };
}

/** Turns a scrape's running totals into a live point of rates (and lags), like a history sample. */
function livePoint(now, topics, jobs) {
  const totals = new Map();
  for (const [name, t] of topics) totals.set(`topic\t${name}`, t.end);
  for (const [id, j] of jobs) totals.set(`pipeline_in\t${id}`, j.in);
  const values = new Map();
  if (state.last) {
    const dt = Math.max(1e-3, now - state.last.t);
    for (const [k, v] of totals) {
      const before = state.last.totals.get(k);
      if (before !== undefined && v >= before) values.set(k, (v - before) / dt);
    }
  }
  for (const [id, j] of jobs) if (j.lag != null) values.set(`pipeline_lag\t${id}`, j.lag);
  state.last = { t: now, totals };
  return values;
}

async function loadHistory() {
  const h = await api(`/v1/history?range=${state.range}`);
  const series = new Map();
  for (const s of h.series) series.set(`${s.kind}\t${s.name}`, s.values);
  state.hist = { times: h.times.map((t) => t / 1000), series, interval: h.interval_ms };
  const lastT = state.hist.times.at(-1) ?? 0;
  state.live = state.live.filter((p) => p.t > lastT);
}

/** A topic's series label: a pipeline's side topics (`x.dead`, `x.late`, `x.webhook-dead`) share one. */
export function topicGroup(name) {
  const m = name.match(/^(.*)\.(dead|late|webhook-dead)$/);
  return m ? `${m[1]} side outputs` : name;
}

/**
 * The chart data for one kind of series: history then live points, series grouped by
 * `group` (summed) and limited to LEGEND_MAX labels (the busiest; the rest summed as "other").
 */
function chartData(kind, group = (n) => n, sum = true) {
  const times = [...state.hist.times];
  const cols = new Map(); // label -> values
  const add = (label, i, v) => {
    if (v == null) return;
    const col = cols.get(label) ?? [];
    cols.set(label, col);
    col[i] = sum && col[i] != null ? col[i] + v : (col[i] == null ? v : Math.max(col[i], v));
  };
  for (const [k, values] of state.hist.series) {
    const [kd, name] = k.split("\t");
    if (kd === kind) values.forEach((v, i) => add(group(name), i, v));
  }
  const cutoff = (Date.now() / 1000) - RANGES[state.range];
  for (const p of state.live) {
    times.push(p.t);
    for (const [k, v] of p.values) {
      const [kd, name] = k.split("\t");
      if (kd === kind) add(group(name), times.length - 1, v);
    }
  }
  let first = times.findIndex((t) => t >= cutoff);
  if (first < 0) first = times.length;
  const peak = (vals) => vals.reduce((m, v) => (v != null && v > m ? v : m), 0);
  let labels = [...cols.keys()].sort((a, b) => peak(cols.get(b)) - peak(cols.get(a)) || a.localeCompare(b));
  if (labels.length > LEGEND_MAX) {
    const rest = labels.slice(LEGEND_MAX - 1);
    labels = labels.slice(0, LEGEND_MAX - 1);
    const other = [];
    for (const l of rest) cols.get(l).forEach((v, i) => { if (v != null) other[i] = (other[i] ?? 0) + v; });
    cols.set(`other (${rest.length})`, other);
    labels.push(`other (${rest.length})`);
  }
  labels.sort();
  const n = times.length;
  const data = [times.slice(first), ...labels.map((l) => Array.from({ length: n }, (_, i) => cols.get(l)[i] ?? null).slice(first))];
  return { labels, data };
}

function drawChart(hostId, { labels, data }, unit, fmt) {
  const host = document.getElementById(hostId);
  if (!data[0].length) return;
  host.dataset.points = data[0].length; // what the chart holds (read by the browser test)
  host.dataset.range = state.range;
  const width = Math.max(320, host.clientWidth || 600);
  const height = host.classList.contains("small") ? 200 : 240;
  const c = state.charts.get(hostId);
  if (!c || c.labels !== labels.join("\n")) {
    if (c) c.plot.destroy();
    const plot = new uPlot({
      width, height,
      scales: { x: { time: true }, y: { range: (u, min, max) => [0, Math.max(unit === "s" ? 1 : 10, max * 1.1)] } },
      axes: [{}, { label: unit === "s" ? "seconds" : "records/s", size: 70 }],
      series: [{}, ...labels.map((t, i) => ({ label: t, stroke: PALETTE[i % PALETTE.length], width: 2,
                                             spanGaps: false, value: (u, v) => (v == null ? "–" : fmt(v)) }))],
    }, data, host);
    state.charts.set(hostId, { plot, labels: labels.join("\n") });
  } else {
    c.plot.setData(data);
    if (Math.abs(c.plot.width - width) > 8) c.plot.setSize({ width, height });
  }
}

function drawCharts() {
  drawChart("throughput-chart", chartData("topic", topicGroup), "rec", fmtCount);
  drawChart("pipeline-rate-chart", chartData("pipeline_in"), "rec", fmtCount);
  drawChart("pipeline-lag-chart", chartData("pipeline_lag", (n) => n, false), "s", fmtLag);
}

function renderJobs(jobs, values) {
  const rows = [...jobs.keys()].sort().map((id) => {
    const j = jobs.get(id);
    return el("tr", { "data-job": id },
      el("td", {}, el("a", { href: `#/pipelines/${encodeURIComponent(id)}` }, id)),
      el("td", { class: "state", title: j.reason }, j.reason ? `${j.state ?? "stopped"}: ${j.reason}`
                                                             : (j.state ?? (j.running ? "running" : "stopped"))),
      el("td", { class: "num rate" }, fmtCount(values.get(`pipeline_in\t${id}`) ?? 0)),
      el("td", { class: "num" }, fmtCount(j.out)),
      el("td", { class: "num" }, fmtCount(j.late)),
      el("td", { class: "num lag" }, fmtLag(j.lag)),
      el("td", { class: "num" }, `${fmtCount(j.checkpoints)} (${j.ckptMs.toFixed(1)} ms, ${fmtBytes(j.ckptBytes)})`),
      el("td", { class: "num" }, `${Math.round(j.fill * 100)} %`));
  });
  replaceRows(document.querySelector("#jobs tbody"), rows, "no pipelines yet", 8);
}

function renderTopics(topics, values) {
  const rows = [...topics.keys()].sort().map((name) => {
    const t = topics.get(name);
    return el("tr", { "data-topic": name },
      el("td", {}, el("a", { href: `#/topics/${encodeURIComponent(name)}` }, name)),
      el("td", { class: "num" }, t.partitions),
      el("td", { class: "num" }, fmtCount(t.end)),
      el("td", { class: "num rate" }, fmtCount(values.get(`topic\t${name}`) ?? 0)),
      el("td", { class: "num" }, fmtBytes(t.bytes)),
      el("td", {}, el("button", { type: "button", onclick: () => startTail(name), "aria-label": `tail ${name}` }, "tail")));
  });
  replaceRows(document.querySelector("#topics tbody"), rows, "no topics yet", 6);
}

function renderGroups(lag) {
  const rows = [...lag.keys()].sort().map((key) => {
    const [group, topic] = key.split("\t");
    return el("tr", {}, el("td", {}, group), el("td", {}, topic), el("td", { class: "num" }, fmtCount(lag.get(key))));
  });
  replaceRows(document.querySelector("#groups tbody"), rows, "no committed offsets yet", 3);
}

/** The latest scrape, for the other pages (topic sizes). */
export const latest = { topics: new Map() };

async function poll() {
  try {
    const { topics, lag, jobs, memory } = summarize(parseMetrics(await api("/metrics")));
    latest.topics = topics;
    const now = Date.now() / 1000;
    const values = livePoint(now, topics, jobs);
    if (values.size) state.live.push({ t: now, values });
    // History samples replace the live points they cover; fetch them once per sample.
    const lastT = state.hist.times.at(-1) ?? 0;
    if (!state.hist.interval || now - lastT > state.hist.interval / 1000 + 0.5) await loadHistory();
    if (state.page === "overview") {
      renderTopics(topics, values);
      renderGroups(lag);
      renderJobs(jobs, values);
      drawCharts();
    }
    if (memory != null) document.getElementById("memory").textContent = `server memory ${fmtBytes(memory)}`;
    setStatus(true, "live");
  } catch (e) {
    setStatus(false, e.status === 401 ? "needs credentials" : `server unreachable (${e.message})`);
  } finally {
    setTimeout(poll, POLL_MS);
  }
}

function startTail(topic) {
  if (state.tail) state.tail.ws.close(1000);
  document.getElementById("tail-topic").textContent = `— ${topic}`;
  const tbody = document.querySelector("#tail tbody");
  tbody.replaceChildren();
  const ws = new WebSocket(wsUrl());
  state.tail = { topic, ws };
  ws.onopen = () => ws.send(JSON.stringify({ type: "subscribe", topic, from: "latest" }));
  ws.onmessage = (ev) => {
    const msg = JSON.parse(ev.data);
    if (msg.type === "records") {
      for (const r of msg.records) {
        const value = typeof r.value === "string" ? r.value : JSON.stringify(r.value);
        tbody.prepend(el("tr", {},
          el("td", { class: "num" }, r.partition), el("td", { class: "num" }, r.offset),
          el("td", {}, new Date(r.timestamp).toISOString().slice(11, 23)),
          el("td", {}, r.key ?? ""), el("td", {}, value ?? "")));
      }
      while (tbody.rows.length > TAIL_ROWS) tbody.deleteRow(tbody.rows.length - 1);
    } else if (msg.type === "error") {
      tbody.prepend(el("tr", { class: "empty" }, el("td", { colspan: 5 }, `${msg.code}: ${msg.message}`)));
    }
  };
}

/** The first numeric field of a row that is not a window bound: what the view chart plots. */
function chartField(row) {
  for (const [k, v] of Object.entries(row)) {
    if (typeof v === "number" && !k.startsWith("window_")) return k;
  }
  return null;
}

/** Shows a view's rows (a Map key -> row) in `table`; used by the overview and the SQL page. */
export function renderRows(table, rowsByKey) {
  const keys = [...rowsByKey.keys()].sort();
  const cols = keys.length ? Object.keys(rowsByKey.get(keys[0])) : [];
  table.tHead.replaceChildren(el("tr", {}, ...cols.map((c) => el("th", {}, c))));
  const cell = (c, x) => {
    if (typeof x !== "number") return typeof x === "object" && x !== null ? JSON.stringify(x) : String(x ?? "");
    return Number.isInteger(x) ? fmtCount(x) : x.toFixed(2);
  };
  const rows = keys.map((k) => el("tr", { "data-key": k },
    ...cols.map((c) => el("td", { class: typeof rowsByKey.get(k)[c] === "number" ? "num" : "" }, cell(c, rowsByKey.get(k)[c])))));
  replaceRows(table.tBodies[0], rows, "no rows yet", Math.max(1, cols.length));
}

function renderView() {
  const v = state.view;
  if (!v) return;
  renderRows(document.getElementById("view-table"), v.rows);
  document.getElementById("view-version").textContent = `version ${v.version}`;
}

/** Adds a point per key to the view's chart (the plotted field's current value). */
function sampleView() {
  const v = state.view;
  if (!v || !v.rows.size) return;
  const first = v.rows.values().next().value;
  v.field = v.field ?? chartField(first);
  if (!v.field) return;
  v.times.push(Date.now() / 1000);
  const keys = [...v.rows.keys()].sort().slice(0, PALETTE.length);
  for (const k of keys) {
    const s = v.series.get(k) ?? new Array(v.times.length - 1).fill(null);
    s.push(v.rows.get(k)?.[v.field] ?? null);
    v.series.set(k, s);
  }
  for (const [, s] of v.series) if (s.length < v.times.length) s.push(null);
  if (v.times.length > VIEW_POINTS) {
    v.times.shift();
    for (const s of v.series.values()) s.shift();
  }
  const host = document.getElementById("view-chart");
  const names = [...v.series.keys()];
  const data = [v.times, ...names.map((k) => v.series.get(k))];
  const width = Math.max(320, host.clientWidth || 600);
  if (!v.chart || v.chartKeys !== names.join("\n")) {
    if (v.chart) v.chart.destroy();
    v.chartKeys = names.join("\n");
    v.chart = new uPlot({
      width, height: 200,
      scales: { x: { time: true } },
      axes: [{}, { label: v.field, size: 70 }],
      series: [{}, ...names.map((k, i) => ({ label: k, stroke: PALETTE[i % PALETTE.length], width: 2 }))],
    }, data, host);
  } else {
    v.chart.setData(data);
  }
}

/**
 * Follows a view over the WebSocket API: `onChange(rows, version)` after the snapshot and after
 * each change, `onError(text)` on an error message or a lost connection. Returns {close}.
 */
export function followView(name, onChange, onError = () => {}) {
  const ws = new WebSocket(wsUrl());
  const rows = new Map();
  let version = 0;
  let closed = false;
  ws.onopen = () => ws.send(JSON.stringify({ type: "subscribe", view: name }));
  ws.onmessage = (ev) => {
    if (closed) return;
    const m = JSON.parse(ev.data);
    if (m.type === "view_row" || (m.type === "change" && m.op !== "delete")) rows.set(m.key, m.row);
    else if (m.type === "change" && m.op === "delete") rows.delete(m.key);
    else if (m.type === "error") onError(`${m.code}: ${m.message}`);
    if (m.version !== undefined) version = m.version;
    if (m.type === "snapshot_end" || m.type === "change") onChange(rows, version);
  };
  ws.onclose = (ev) => { if (!closed) onError(`the connection closed (${ev.code}${ev.reason ? `: ${ev.reason}` : ""})`); };
  return { close: () => { closed = true; ws.close(1000); } };
}

function openView(name) {
  if (state.view) state.view.sub.close();
  document.getElementById("view-chart").replaceChildren();
  const v = { name, rows: new Map(), version: 0, chart: null, series: new Map(), times: [], field: null };
  state.view = v;
  v.sub = followView(name, (rows, version) => {
    if (state.view !== v) return;
    v.rows = rows;
    v.version = version;
    renderView();
  });
}

async function pollViews() {
  try {
    const names = (await api("/v1/views")).views.map((v) => v.name).filter((n) => !n.startsWith("dashboard_")).sort();
    if (names.join("\n") !== state.views.join("\n")) {
      state.views = names;
      const pick = document.getElementById("view-pick");
      pick.replaceChildren(...names.map((n) => el("option", { value: n }, n)));
      if (!state.view && names.length) openView(names[0]);
    }
    sampleView();
  } catch (e) {
    // The metrics poll reports an unreachable server.
  } finally {
    setTimeout(pollViews, POLL_MS);
  }
}

/** Shows the page the address names: #/, #/topics[/NAME], #/pipelines[/ID], #/sql. */
function route() {
  const parts = location.hash.replace(/^#\/?/, "").split("/").map(decodeURIComponent);
  const page = { topics: "topics", pipelines: "pipelines", sql: "sql" }[parts[0]] ?? "overview";
  state.page = page;
  for (const m of document.querySelectorAll("main[data-view]")) m.hidden = m.dataset.view !== page;
  for (const a of document.querySelectorAll("nav a")) {
    if (a.dataset.nav === page) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  const arg = parts.slice(1).join("/") || null;
  if (page === "topics") showTopics(arg);
  else if (page === "pipelines") showPipelines(arg);
  else if (page === "sql") showSql();
  else for (const [, c] of state.charts) c.plot.setSize({ width: Math.max(320, c.plot.root.parentElement.clientWidth || 600), height: c.plot.height });
}

onUnauthorized(() => { document.getElementById("token-form").hidden = false; });
document.getElementById("token-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const user = document.getElementById("login-user").value.trim();
  if (user) setLogin(user, document.getElementById("login-password").value);
  else setToken(document.getElementById("token-input").value.trim());
  document.getElementById("token-form").hidden = true;
  route();
});
document.getElementById("range").addEventListener("change", async (e) => {
  state.range = e.target.value;
  try {
    await loadHistory();
    drawCharts();
  } catch (err) {
    setStatus(false, `history unavailable (${err.message})`);
  }
});
document.getElementById("view-pick").addEventListener("change", (e) => openView(e.target.value));
window.addEventListener("hashchange", route);
route();
poll();
pollViews();
