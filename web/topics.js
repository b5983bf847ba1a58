// The topic browser: every topic with its partitions, offsets and size; a topic's records read
// across its partitions from the log start, an offset, a time or its newest records, through
// GET /v1/topics/{name}/records; a search by key over a bounded number of records; and one
// record in full (key, value pretty-printed when it is JSON, headers, partition, offset, time).

import { api, el, fmtBytes, fmtCount, fmtTime, replaceRows, showError, valueText } from "./api.js";
import { latest } from "./app.js";

const SCAN_MAX = 10000; // records a key search reads at most per click
const REFRESH_MS = 5000; // the topic list and partition offsets are read again this often
const PAGE = 500;        // records asked per request while searching

const ui = {
  topic: null,
  partitions: [],      // [{partition, log_start_offset, log_end_offset}]
  next: null,          // what "Next page" continues from: {partition, offset} or {offsets: {P: O}}
  records: [],
  timer: null,
};

const $ = (id) => document.getElementById(id);

async function renderList() {
  const { topics } = await api("/v1/topics");
  const rows = topics.filter((t) => !t.name.startsWith("__")).sort((a, b) => a.name.localeCompare(b.name)).map((t) => {
    const m = latest.topics.get(t.name);
    return el("tr", { "data-topic": t.name, class: t.name === ui.topic ? "selected" : null },
      el("td", {}, el("a", { href: `#/topics/${encodeURIComponent(t.name)}` }, t.name)),
      el("td", { class: "num" }, t.partitions),
      el("td", { class: "num" }, m ? fmtCount(m.end) : "–"),
      el("td", { class: "num" }, m ? fmtBytes(m.bytes) : "–"));
  });
  replaceRows($("topic-list").tBodies[0], rows, "no topics yet", 4);
}

async function openTopic(name) {
  const t = await api(`/v1/topics/${encodeURIComponent(name)}`);
  const changed = ui.topic !== name;
  ui.topic = name;
  ui.partitions = t.partitions;
  $("browse-topic").textContent = name;
  $("topic-detail").hidden = false;
  replaceRows($("partition-list").tBodies[0], t.partitions.map((p) => el("tr", {},
    el("td", { class: "num" }, p.partition), el("td", { class: "num" }, fmtCount(p.log_start_offset)),
    el("td", { class: "num" }, fmtCount(p.log_end_offset)),
    el("td", { class: "num" }, fmtCount(p.log_end_offset - p.log_start_offset)))), "no partitions", 4);
  if (changed) {
    $("browse-partition").replaceChildren(el("option", { value: "" }, "all"),
      ...t.partitions.map((p) => el("option", { value: p.partition }, p.partition)));
    $("records").tBodies[0].replaceChildren();
    $("record-view").hidden = true;
    $("browse-summary").textContent = "";
    $("browse-more").disabled = true;
    showError($("browse-error"), "");
  }
}

/** The first request of a read, from the form. */
function firstRequest() {
  const mode = $("browse-mode").value;
  const part = $("browse-partition").value;
  const limit = Math.max(1, Math.min(1000, Number($("browse-limit").value) || 100));
  const parts = part === "" ? ui.partitions : ui.partitions.filter((p) => String(p.partition) === part);
  if (mode === "time") {
    const v = $("browse-time").value;
    if (!v) throw new Error("choose a time to read from");
    const ms = Date.parse(`${v}Z`);
    if (Number.isNaN(ms)) throw new Error(`'${v}' is not a time`);
    return { part, timestamp: ms, limit };
  }
  const from = (p) => {
    if (mode === "offset") return Math.max(p.log_start_offset, Number($("browse-offset").value) || 0);
    if (mode === "end") return Math.max(p.log_start_offset, p.log_end_offset - Math.ceil(limit / parts.length));
    return p.log_start_offset;
  };
  if (part !== "") return { part, offset: from(parts[0]), limit };
  return { part, offsets: Object.fromEntries(parts.map((p) => [p.partition, from(p)])), limit };
}

function url(req, limit) {
  const base = `/v1/topics/${encodeURIComponent(ui.topic)}/records?limit=${limit}`;
  if (req.timestamp !== undefined) return base + (req.part !== "" ? `&partition=${req.part}` : "") + `&timestamp=${req.timestamp}`;
  if (req.part !== "") return `${base}&partition=${req.part}&offset=${req.offset}`;
  return `${base}&offsets=${Object.entries(req.offsets).map(([p, o]) => `${p}:${o}`).join(",")}`;
}

/** The request that continues after `page`, or null at the end of every partition. */
function after(req, page) {
  if (page.next_offsets) {
    const done = page.partitions.every((p) => (page.next_offsets[p.partition] ?? p.high_watermark) >= p.high_watermark);
    if (!page.records.length && done) return null;
    return { part: "", offsets: page.next_offsets, limit: req.limit };
  }
  if (page.next_offset >= page.high_watermark && !page.records.length) return null;
  return { part: req.part, offset: page.next_offset, limit: req.limit };
}

function keyText(r) {
  return r.key_base64 !== undefined ? `base64:${r.key_base64}` : (r.key ?? "");
}

/** Reads one page (or, with a key, pages until `limit` matches, SCAN_MAX records or the end). */
async function read(req) {
  const key = $("browse-key").value;
  const found = [];
  let scanned = 0;
  let next = req;
  let skipped = 0;
  while (next) {
    const ask = key ? PAGE : next.limit;
    const page = await api(url(next, ask));
    scanned += page.records.length;
    skipped += (page.skipped ?? []).length;
    for (const r of page.records) if (!key || keyText(r).includes(key)) found.push(r);
    next = after(next, page);
    if (!page.records.length && page.next_offsets === undefined) next = null;
    if (!key || found.length >= req.limit || scanned >= SCAN_MAX || !page.records.length) break;
  }
  if (next) next.limit = req.limit;
  ui.next = next;
  ui.records = found.slice(0, req.limit);
  $("browse-more").disabled = !next;
  const parts = [`${ui.records.length} record${ui.records.length === 1 ? "" : "s"}`];
  if (key) parts.push(`with a key containing "${key}" among ${fmtCount(scanned)} read`);
  if (!next) parts.push("(the end of the topic)");
  if (skipped) parts.push(`; ${skipped} undecodable batch(es) skipped`);
  $("browse-summary").textContent = parts.join(" ");
  renderRecords();
}

function renderRecords() {
  const rows = ui.records.map((r, i) => el("tr", {
    "data-partition": r.partition, "data-offset": r.offset, "data-key": keyText(r), tabindex: 0,
    onclick: () => showRecord(i), onkeydown: (e) => { if (e.key === "Enter") showRecord(i); },
  },
  el("td", { class: "num" }, r.partition), el("td", { class: "num" }, r.offset), el("td", {}, fmtTime(r.timestamp)),
  el("td", {}, keyText(r)), el("td", { class: "value" }, valueText(r))));
  replaceRows($("records").tBodies[0], rows, "no records", 5);
}

function showRecord(i) {
  const r = ui.records[i];
  for (const tr of $("records").tBodies[0].rows) tr.classList.toggle("selected", tr.rowIndex - 1 === i);
  const fields = [["topic", r.topic], ["partition", r.partition], ["offset", r.offset],
                  ["timestamp", `${fmtTime(r.timestamp)} (${r.timestamp})`], ["key", keyText(r)]];
  $("record-fields").replaceChildren(...fields.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, String(v))]));
  $("record-value").textContent = valueText(r, "value", true);
  const headers = { ...(r.headers ?? {}) };
  for (const [k, v] of Object.entries(r.headers_base64 ?? {})) headers[k] = `base64:${v}`;
  $("record-headers").textContent = Object.keys(headers).length ? JSON.stringify(headers, null, 2) : "(none)";
  $("record-view").hidden = false;
}

async function run(fn) {
  showError($("browse-error"), "");
  try {
    await fn();
  } catch (e) {
    showError($("browse-error"), e.message);
  }
}

$("browse-form").addEventListener("submit", (e) => {
  e.preventDefault();
  run(async () => {
    await openTopic(ui.topic); // fresh offsets
    await read(firstRequest());
  });
});
$("browse-more").addEventListener("click", () => run(() => read(ui.next)));

/** Reads the list and the open topic's offsets again while the page is shown. */
async function refresh() {
  clearTimeout(ui.timer);
  if (location.hash.split("/")[1] !== "topics") return;
  try {
    await renderList();
    if (ui.topic && !$("topic-detail").hidden) await openTopic(ui.topic);
  } catch {
    // The header's status reports an unreachable server; a deleted topic shows on the next read.
  }
  ui.timer = setTimeout(refresh, REFRESH_MS);
}

/** Shows the topic list, and `name`'s browser when given. */
export function showTopics(name) {
  run(async () => {
    await renderList();
    if (name) await openTopic(name);
    else $("topic-detail").hidden = true;
  });
  clearTimeout(ui.timer);
  ui.timer = setTimeout(refresh, REFRESH_MS);
}
