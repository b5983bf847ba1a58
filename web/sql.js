// The SQL page: a script in a text area, sent to POST /v1/sql. When it ends with a SELECT (or
// WITH …), that query is a push query, as in the `runnel sql` shell: it runs as a temporary
// materialized view (`dashboard_<random>`) whose rows stream into the table over the
// WebSocket API until Stop (which drops the view and its pipeline), leaving the page, or
// running another query. A mistake is shown at its line and column in the user's own text.

import { api, showError } from "./api.js";
import { followView, renderRows } from "./app.js";

const ui = { push: null }; // {name, sub}
const $ = (id) => document.getElementById(id);

/** Statements of `text` as [start, end) offsets, split at `;` outside quotes and comments. */
export function splitStatements(text) {
  const out = [];
  let start = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === "'" || c === '"' || c === "`") {
      const close = text.indexOf(c, i + 1);
      i = close < 0 ? text.length : close; // '' inside a string is two quotes in a row: fine
    } else if (c === "-" && text[i + 1] === "-") {
      const nl = text.indexOf("\n", i);
      i = nl < 0 ? text.length : nl;
    } else if (c === "/" && text[i + 1] === "*") {
      const close = text.indexOf("*/", i + 2);
      i = close < 0 ? text.length : close + 1;
    } else if (c === ";") {
      out.push([start, i]);
      start = i + 1;
    }
  }
  out.push([start, text.length]);
  return out;
}

/** Where the statement's first word starts, past blanks and comments. */
function firstWord(text, [start, end]) {
  let i = start;
  while (i < end) {
    if (/\s/.test(text[i])) i++;
    else if (text.startsWith("--", i)) { const nl = text.indexOf("\n", i); i = nl < 0 ? end : nl + 1; }
    else if (text.startsWith("/*", i)) { const c = text.indexOf("*/", i + 2); i = c < 0 ? end : c + 2; }
    else break;
  }
  return i;
}

function lineCol(text, offset) {
  const before = text.slice(0, offset).split("\n");
  return { line: before.length, column: before.at(-1).length + 1 };
}

function offsetOf(text, line, column) {
  const lines = text.split("\n");
  let o = 0;
  for (let i = 0; i < line - 1 && i < lines.length; i++) o += lines[i].length + 1;
  return Math.min(text.length, o + Math.max(0, column - 1));
}

/** Shows a SQL error at (line, column) of the user's text, with the line and a caret. */
function showSqlError(text, line, column, message) {
  const src = text.split("\n")[line - 1] ?? "";
  $("sql-error").textContent = `line ${line}:${column}: ${message}\n${src}\n${" ".repeat(Math.max(0, column - 1))}^`;
  $("sql-error").hidden = false;
  $("sql-error").dataset.line = line;
  $("sql-error").dataset.column = column;
  const area = $("sql-text");
  const at = offsetOf(text, line, column);
  area.focus();
  area.setSelectionRange(at, Math.min(text.length, at + 1));
}

/** The problem's message without its own `line L:C:` prefix, caret lines and all. */
function problemMessage(e) {
  const first = (e.problem?.detail ?? e.message).split("\n")[0];
  return first.replace(/^line \d+:\d+:\s*/, "");
}

function setStatus(text) {
  $("sql-status").textContent = text;
}

async function stop(leaving = false) {
  const p = ui.push;
  if (!p) return;
  ui.push = null;
  p.sub.close();
  $("sql-stop").disabled = true;
  try {
    await api("/v1/sql", { method: "POST", body: { sql: `DROP MATERIALIZED VIEW IF EXISTS ${p.name};` }, keepalive: leaving });
    if (!leaving) setStatus(`stopped (${p.rows} rows at version ${p.version})`);
  } catch (e) {
    if (!leaving) showError($("sql-error"), `could not drop ${p.name}: ${e.message}`);
  }
}

async function run() {
  await stop();
  const text = $("sql-text").value;
  showError($("sql-error"), "");
  $("sql-result").hidden = true;
  const table = $("sql-rows");
  table.tHead.replaceChildren();
  table.tBodies[0].replaceChildren();
  const stmts = splitStatements(text).filter(([s, e]) => firstWord(text, [s, e]) < e);
  if (!stmts.length) {
    showError($("sql-error"), "nothing to run: type a statement");
    return;
  }
  const last = stmts.at(-1);
  const at = firstWord(text, last);
  const push = /^(select|with)\b/i.test(text.slice(at, last[1]));
  const name = `dashboard_${Math.random().toString(16).slice(2, 10)}`;
  const prefix = `CREATE TEMPORARY MATERIALIZED VIEW ${name} AS\n`;
  const sent = push ? text.slice(0, at) + prefix + text.slice(at) : text;
  const where = lineCol(text, at);
  setStatus("running…");
  $("sql-run").disabled = true;
  try {
    const res = await api("/v1/sql", { method: "POST", body: { sql: sent } });
    if (!push) {
      setStatus("done");
      $("sql-result").textContent = JSON.stringify(res.results, null, 2);
      $("sql-result").hidden = false;
      return;
    }
    const p = { name, rows: 0, version: 0 };
    ui.push = p;
    $("sql-stop").disabled = false;
    setStatus(`running as ${name}: waiting for rows…`);
    p.sub = followView(name, (rows, version) => {
      if (ui.push !== p) return;
      p.rows = rows.size;
      p.version = version;
      renderRows(table, rows);
      setStatus(`running: ${rows.size} row${rows.size === 1 ? "" : "s"}, version ${version}`);
    }, (why) => { if (ui.push === p) showError($("sql-error"), why); });
  } catch (e) {
    setStatus("failed");
    if (e.kind === "invalid-sql" && e.problem.line) {
      // Map the position in the text sent (the view's line added before the SELECT) back.
      let { line, column } = e.problem;
      if (push && line === where.line && column >= where.column) column = where.column;
      else if (push && line === where.line + 1) { line = where.line; column += where.column - 1; }
      else if (push && line > where.line + 1) line -= 1;
      showSqlError(text, line, column, problemMessage(e));
    } else {
      showError($("sql-error"), `${e.kind || "error"}: ${e.message}`);
    }
  } finally {
    $("sql-run").disabled = false;
  }
}

$("sql-run").addEventListener("click", run);
$("sql-stop").addEventListener("click", () => stop());
$("sql-text").addEventListener("keydown", (e) => {
  if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) { e.preventDefault(); run(); }
});
window.addEventListener("pagehide", () => stop(true));

export function showSql() {
  const area = $("sql-text");
  if (!area.value) {
    area.value = "CREATE TABLE clicks (\n  user_id STRING,\n  n BIGINT\n) WITH ('connector' = 'topic', 'topic' = 'clicks', " +
      "'format' = 'json', 'scan.startup.mode' = 'earliest-offset');\n\nSELECT user_id, COUNT(*) AS clicks FROM clicks GROUP BY user_id;\n";
  }
}
