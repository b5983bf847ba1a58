// The pipelines page: every pipeline with its state, and one pipeline in full from
// GET /v1/pipelines/{id} every second: its operator graph (each operator in the column of its
// longest path from a source, the answer's `edges` drawn as SVG arrows between them, a key
// exchange labelled with its keys) with records per second in and out of each, what holds it
// back (queue fill, buffered bytes, what it waits for), its last checkpoints, its error, and
// Stop / Restart (POST /v1/pipelines/{id}/stop and /restart).

import { api, el, fmtBytes, fmtCount, fmtLag, fmtTime, replaceRows, showError } from "./api.js";

const POLL_MS = 1000;
const ui = { id: null, timer: null, last: null, busy: false };
const $ = (id) => document.getElementById(id);

async function renderList() {
  const { pipelines } = await api("/v1/pipelines");
  const rows = pipelines.sort((a, b) => a.id.localeCompare(b.id)).map((p) =>
    el("tr", { "data-pipeline": p.id, class: p.id === ui.id ? "selected" : null },
      el("td", {}, el("a", { href: `#/pipelines/${encodeURIComponent(p.id)}` }, p.id)),
      el("td", {}, p.template), el("td", { class: `state ${p.state}` }, p.state)));
  replaceRows($("pipeline-list").tBodies[0], rows, "no pipelines yet", 3);
}

/** Records per second of each operator since the previous reading. */
function rates(p) {
  const now = performance.now() / 1000;
  const out = new Map();
  if (ui.last && ui.last.id === p.id) {
    const dt = Math.max(1e-3, now - ui.last.t);
    for (const op of p.operators) {
      const b = ui.last.ops.get(op.operator);
      if (b) out.set(op.operator, { in: Math.max(0, (op.records_in - b.records_in) / dt),
                                    out: Math.max(0, (op.records_out - b.records_out) / dt) });
    }
  }
  ui.last = { id: p.id, t: now, ops: new Map(p.operators.map((o) => [o.operator, o])) };
  return out;
}

function box(op, r) {
  const kind = op.operator.endsWith(".source") ? "source" : op.operator.endsWith(".sink") ? "sink" : "stage";
  const rate = r.get(op.operator);
  return el("div", { class: `op ${kind}`, role: "listitem", "data-operator": op.operator },
    el("strong", {}, op.operator),
    el("span", { class: "muted" }, kind),
    el("span", {}, `in ${fmtCount(op.records_in)}`, rate ? ` (${fmtCount(rate.in)}/s)` : ""),
    el("span", {}, `out ${fmtCount(op.records_out)}`, rate ? ` (${fmtCount(rate.out)}/s)` : ""),
    op.late_records ? el("span", { class: "warn" }, `late ${fmtCount(op.late_records)}`) : null,
    op.dead_letters ? el("span", { class: "warn" }, `dead letters ${fmtCount(op.dead_letters)}`) : null);
}

const SVG = "http://www.w3.org/2000/svg";

function svg(tag, attrs = {}, ...children) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  e.append(...children);
  return e;
}

/** The edges between known operators, and each operator's column: the longest path to it from
 * a source. Operators are listed in build order and every edge goes from an earlier operator to
 * a later one, so one pass in that order settles each column. */
function layout(p) {
  const names = new Set(p.operators.map((o) => o.operator));
  const edges = (p.edges ?? []).filter((e) => names.has(e.from) && names.has(e.to));
  const column = new Map(p.operators.map((o) => [o.operator, 0]));
  for (const o of p.operators) {
    for (const e of edges) {
      if (e.from === o.operator) column.set(e.to, Math.max(column.get(e.to), column.get(o.operator) + 1));
    }
  }
  return { edges, column };
}

/** Draws `edges` into `canvas` (an SVG over `graph`) from the right side of one box to the left
 * side of the next, where the boxes are now. */
function drawEdges(graph, canvas, edges) {
  const g = graph.getBoundingClientRect();
  canvas.setAttribute("width", graph.scrollWidth);
  canvas.setAttribute("height", graph.scrollHeight);
  const boxOf = (name) => graph.querySelector(`.op[data-operator="${CSS.escape(name)}"]`)?.getBoundingClientRect();
  const at = (x, y) => [x - g.left + graph.scrollLeft, y - g.top + graph.scrollTop];
  const parts = [svg("defs", {}, svg("marker", { id: "arrow", viewBox: "0 0 10 10", refX: "9", refY: "5",
                                                 markerWidth: "7", markerHeight: "7", orient: "auto-start-reverse" },
                                     svg("path", { d: "M 0 0 L 10 5 L 0 10 z", class: "arrowhead" })))];
  for (const e of edges) {
    const a = boxOf(e.from), b = boxOf(e.to);
    if (!a || !b) continue;
    const [x1, y1] = at(a.right, a.top + a.height / 2);
    const [x2, y2] = at(b.left, b.top + b.height / 2);
    const mid = (x1 + x2) / 2;
    const what = e.kind === "hash" ? `hash(${(e.keys ?? []).join(", ")})` : e.kind;
    parts.push(svg("path", { class: `edge ${e.kind}`, "data-from": e.from, "data-to": e.to, "data-kind": e.kind,
                             d: `M ${x1} ${y1} C ${mid} ${y1}, ${mid} ${y2}, ${x2 - 1} ${y2}`,
                             "marker-end": "url(#arrow)" },
                   svg("title", {}, `${e.from} → ${e.to} (${what})`)));
    if (e.kind === "hash") parts.push(svg("text", { x: mid, y: (y1 + y2) / 2 - 4, "text-anchor": "middle" }, what));
  }
  canvas.replaceChildren(...parts);
}

function renderGraph(p) {
  const r = rates(p);
  const graph = $("pipeline-graph");
  if (!p.operators.length) {
    graph.replaceChildren(el("p", { class: "muted" }, "no operators yet"));
    return;
  }
  const { edges, column } = layout(p);
  const columns = [];
  for (const o of p.operators) (columns[column.get(o.operator)] ??= []).push(o);
  const canvas = svg("svg", { class: "edges", "aria-hidden": "true" });
  graph.replaceChildren(canvas, ...columns.filter(Boolean).map((c) => el("div", { class: "column" },
    ...c.map((o) => box(o, r)))));
  drawEdges(graph, canvas, edges);
}

function renderDetail(p) {
  $("pipeline-name").textContent = p.id;
  const badge = $("pipeline-state");
  badge.textContent = p.state;
  badge.className = `badge ${p.state}`;
  const err = p.error || (p.last_error ? `before the last start: ${p.last_error}` : "");
  showError($("pipeline-error"), err ? `error: ${err}` : "");
  $("pipeline-waiting").textContent = p.waiting_for ? `waiting for ${p.waiting_for}` : "";
  $("pipeline-stop").disabled = ui.busy || p.state === "stopped";
  $("pipeline-restart").disabled = ui.busy;
  renderGraph(p);
  const fill = Math.round((p.queue_fill ?? 0) * 100);
  const facts = [
    ["queue fill", el("span", {}, el("meter", { min: 0, max: 100, low: 50, high: 80, optimum: 0, value: fill,
                                                "aria-label": "queue fill" }), ` ${fill} %`,
                     fill >= 80 ? el("strong", { class: "warn" }, " backpressure") : null)],
    ["watermark lag", p.watermark_lag_ms != null ? fmtLag(p.watermark_lag_ms / 1000) : "–"],
    ["source buffers", fmtBytes(p.source_buffered_bytes ?? 0)],
    ["sink pending", fmtBytes(p.sink_pending_bytes ?? 0)],
    ["memory", fmtBytes(p.memory_bytes ?? 0)],
    ["parallelism", p.parallelism ?? 1],
  ];
  $("pipeline-pressure").replaceChildren(...facts.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]));
  const ck = p.checkpoints ?? {};
  const recent = [...(ck.recent ?? [])].reverse();
  replaceRows($("checkpoints").tBodies[0], recent.map((c) => el("tr", {},
    el("td", { class: "num" }, c.id), el("td", {}, fmtTime(c.completed_at)),
    el("td", { class: "num" }, `${c.duration_ms.toFixed(1)} ms`), el("td", { class: "num" }, fmtBytes(c.size_bytes)))),
  ck.completed ? `${fmtCount(ck.completed)} completed; none since the server started` : "no checkpoint yet", 4);
}

async function refresh() {
  clearTimeout(ui.timer);
  if (!ui.id || location.hash.split("/")[1] !== "pipelines") return;
  try {
    const p = await api(`/v1/pipelines/${encodeURIComponent(ui.id)}`);
    renderDetail(p);
  } catch (e) {
    showError($("pipeline-error"), e.message);
  }
  ui.timer = setTimeout(refresh, POLL_MS);
}

async function control(action) {
  ui.busy = true;
  $("pipeline-action").textContent = action === "stop" ? "stopping…" : "restarting…";
  try {
    const p = await api(`/v1/pipelines/${encodeURIComponent(ui.id)}/${action}`, { method: "POST" });
    $("pipeline-action").textContent = action === "stop" ? "stopped" : "restarted from its last checkpoint";
    ui.busy = false;
    renderDetail(p);
    await renderList();
  } catch (e) {
    $("pipeline-action").textContent = "";
    showError($("pipeline-error"), `${action} failed: ${e.message}`);
  } finally {
    ui.busy = false;
  }
}

$("pipeline-stop").addEventListener("click", () => control("stop"));
$("pipeline-restart").addEventListener("click", () => control("restart"));

/** Shows the pipeline list, and `id`'s page when given. */
export async function showPipelines(id) {
  if (ui.id !== id) {
    ui.last = null;
    $("pipeline-action").textContent = "";
    showError($("pipeline-error"), "");
  }
  ui.id = id;
  $("pipeline-detail").hidden = !id;
  try {
    await renderList();
  } catch (e) {
    showError($("pipeline-error"), e.message);
  }
  refresh();
}
