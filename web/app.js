// Runnel's dashboard. Every second it reads /metrics (the Prometheus text the server exports),
// turns the partitions' log end offsets into records/s per topic and the consumer groups'
// lag into a table, and draws the rates with uPlot. "tail" follows a topic's new records over
// the WebSocket API (/v1/ws). A materialized view is shown as a live table and chart: its
// snapshot, then its changes, over the same WebSocket API. No framework and no build step: the
// browser loads these files as the server embeds them.

const POLL_MS = 1000;
const WINDOW_POINTS = 120; // two minutes of history
const TAIL_ROWS = 50;

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
  times: [],             // seconds since the epoch, one per poll
  rates: new Map(),      // topic -> records/s per poll (aligned with times)
  last: null,            // {t, ends: Map(topic -> sum of log end offsets)}
  chart: null,
  chartTopics: [],
  tail: null,            // {topic, ws}
  view: null,            // {name, ws, rows: Map(key -> row), chart, series: Map(key -> values), times, field}
  views: [],             // names seen in /v1/views
};

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") e.className = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
}

function fmtCount(n) {
  return Math.round(n).toLocaleString("en-US");
}

function fmtBytes(n) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
}

function setStatus(ok, text) {
  const s = document.getElementById("status");
  s.textContent = text;
  s.className = "status " + (ok ? "ok" : "down");
}

function replaceRows(tbody, rows, emptyText, columns) {
  tbody.replaceChildren(...(rows.length ? rows : [el("tr", { class: "empty" }, el("td", { colspan: columns }, emptyText))]));
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

function fmtLag(seconds) {
  if (seconds == null) return "–";
  if (seconds < 1) return `${Math.round(seconds * 1000)} ms`;
  if (seconds < 120) return `${seconds.toFixed(1)} s`;
  return `${Math.round(seconds / 60)} min`;
}

function renderJobs(jobs, now) {
  const rates = new Map();
  if (state.lastJobs) {
    const dt = Math.max(1e-3, now - state.lastJobs.t);
    for (const [id, j] of jobs) {
      const before = state.lastJobs.jobs.get(id);
      rates.set(id, before ? Math.max(0, (j.in - before.in) / dt) : 0);
    }
  }
  state.lastJobs = { t: now, jobs };
  const rows = [...jobs.keys()].sort().map((id) => {
    const j = jobs.get(id);
    return el("tr", { "data-job": id },
      el("td", {}, id),
      el("td", { class: "state", title: j.reason }, j.reason ? `${j.state ?? "stopped"}: ${j.reason}`
                                                             : (j.state ?? (j.running ? "running" : "stopped"))),
      el("td", { class: "num rate" }, fmtCount(rates.get(id) ?? 0)),
      el("td", { class: "num" }, fmtCount(j.out)),
      el("td", { class: "num" }, fmtCount(j.late)),
      el("td", { class: "num lag" }, fmtLag(j.lag)),
      el("td", { class: "num" }, `${fmtCount(j.checkpoints)} (${j.ckptMs.toFixed(1)} ms, ${fmtBytes(j.ckptBytes)})`),
      el("td", { class: "num" }, `${Math.round(j.fill * 100)} %`));
  });
  replaceRows(document.querySelector("#jobs tbody"), rows, "no pipelines yet", 8);
}

function updateRates(now, topics) {
  const ends = new Map([...topics].map(([name, t]) => [name, t.end]));
  const rates = new Map();
  if (state.last) {
    const dt = Math.max(1e-3, now - state.last.t);
    for (const [name, end] of ends) {
      const before = state.last.ends.get(name);
      rates.set(name, before === undefined ? 0 : Math.max(0, (end - before) / dt));
    }
  }
  state.last = { t: now, ends };
  if (!rates.size && state.times.length === 0 && ends.size === 0) return rates;
  state.times.push(now);
  for (const name of new Set([...state.rates.keys(), ...rates.keys()])) {
    const series = state.rates.get(name) ?? new Array(state.times.length - 1).fill(null);
    series.push(rates.get(name) ?? null);
    state.rates.set(name, series);
  }
  if (state.times.length > WINDOW_POINTS) {
    state.times.shift();
    for (const s of state.rates.values()) s.shift();
  }
  return rates;
}

const PALETTE = ["#2663d9", "#d9822b", "#1a7f37", "#b42fa6", "#c62828", "#0f8b8d", "#7a5cc7", "#8a6d1f"];

function drawChart() {
  const host = document.getElementById("throughput-chart");
  const topics = [...state.rates.keys()].sort();
  const data = [state.times, ...topics.map((t) => state.rates.get(t))];
  const width = Math.max(320, host.clientWidth || 600);
  if (!state.chart || topics.join("\n") !== state.chartTopics.join("\n")) {
    if (state.chart) state.chart.destroy();
    state.chartTopics = topics;
    state.chart = new uPlot({
      width,
      height: 240,
      scales: { x: { time: true }, y: { range: (u, min, max) => [0, Math.max(10, max * 1.1)] } },
      axes: [{}, { label: "records/s", size: 70 }],
      series: [{}, ...topics.map((t, i) => ({ label: t, stroke: PALETTE[i % PALETTE.length], width: 2,
                                             value: (u, v) => (v == null ? "–" : fmtCount(v)) }))],
    }, data, host);
  } else {
    state.chart.setData(data);
    if (Math.abs(state.chart.width - width) > 8) state.chart.setSize({ width, height: 240 });
  }
}

function renderTopics(topics, rates) {
  const rows = [...topics.keys()].sort().map((name) => {
    const t = topics.get(name);
    const rate = rates.get(name) ?? 0;
    return el("tr", { "data-topic": name },
      el("td", {}, name),
      el("td", { class: "num" }, t.partitions),
      el("td", { class: "num" }, fmtCount(t.end)),
      el("td", { class: "num rate" }, fmtCount(rate)),
      el("td", { class: "num" }, fmtBytes(t.bytes)),
      el("td", {}, el("button", { onclick: () => startTail(name) }, "tail")));
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

async function poll() {
  try {
    const res = await fetch("/metrics", { cache: "no-store" });
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    const { topics, lag, jobs, memory } = summarize(parseMetrics(await res.text()));
    const rates = updateRates(Date.now() / 1000, topics);
    renderTopics(topics, rates);
    renderGroups(lag);
    renderJobs(jobs, Date.now() / 1000);
    if (state.times.length > 1) drawChart();
    if (memory != null) document.getElementById("memory").textContent = `server memory ${fmtBytes(memory)}`;
    setStatus(true, "live");
  } catch (e) {
    setStatus(false, `server unreachable (${e.message})`);
  } finally {
    setTimeout(poll, POLL_MS);
  }
}

function startTail(topic) {
  if (state.tail) state.tail.ws.close(1000);
  document.getElementById("tail-topic").textContent = `— ${topic}`;
  const tbody = document.querySelector("#tail tbody");
  tbody.replaceChildren();
  const proto = location.protocol === "https:" ? "wss:" : "ws:";
  const ws = new WebSocket(`${proto}//${location.host}/v1/ws`);
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

function renderView() {
  const v = state.view;
  if (!v) return;
  const keys = [...v.rows.keys()].sort();
  const cols = keys.length ? Object.keys(v.rows.get(keys[0])) : [];
  const table = document.getElementById("view-table");
  table.tHead.replaceChildren(el("tr", {}, ...cols.map((c) => el("th", {}, c))));
  const cell = (c, x) => {
    if (typeof x !== "number") return String(x ?? "");
    if (c.startsWith("window_")) return new Date(x).toISOString().slice(11, 19); // window bounds (epoch ms)
    return Number.isInteger(x) ? fmtCount(x) : x.toFixed(2);
  };
  const rows = keys.map((k) => el("tr", { "data-key": k },
    ...cols.map((c) => el("td", { class: typeof v.rows.get(k)[c] === "number" ? "num" : "" }, cell(c, v.rows.get(k)[c])))));
  replaceRows(table.tBodies[0], rows, "no rows yet", Math.max(1, cols.length));
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
  for (const [k, s] of v.series) if (s.length < v.times.length) s.push(null);
  if (v.times.length > WINDOW_POINTS) {
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

function openView(name) {
  if (state.view) state.view.ws.close(1000);
  document.getElementById("view-chart").replaceChildren();
  const proto = location.protocol === "https:" ? "wss:" : "ws:";
  const ws = new WebSocket(`${proto}//${location.host}/v1/ws`);
  state.view = { name, ws, rows: new Map(), version: 0, chart: null, series: new Map(), times: [], field: null };
  const v = state.view;
  ws.onopen = () => ws.send(JSON.stringify({ type: "subscribe", view: name }));
  ws.onmessage = (ev) => {
    if (state.view !== v) return;
    const m = JSON.parse(ev.data);
    if (m.type === "view_row" || (m.type === "change" && m.op !== "delete")) v.rows.set(m.key, m.row);
    else if (m.type === "change" && m.op === "delete") v.rows.delete(m.key);
    if (m.version !== undefined) v.version = m.version;
    if (m.type === "snapshot_end" || m.type === "change") renderView();
  };
}

async function pollViews() {
  try {
    const res = await fetch("/v1/views", { cache: "no-store" });
    if (res.ok) {
      const names = (await res.json()).views.map((v) => v.name).sort();
      if (names.join("\n") !== state.views.join("\n")) {
        state.views = names;
        const pick = document.getElementById("view-pick");
        pick.replaceChildren(...names.map((n) => el("option", { value: n }, n)));
        if (!state.view && names.length) openView(names[0]);
      }
    }
    sampleView();
  } catch (e) {
    // The metrics poll reports an unreachable server.
  } finally {
    setTimeout(pollViews, POLL_MS);
  }
}

document.getElementById("view-pick").addEventListener("change", (e) => openView(e.target.value));
poll();
pollViews();
