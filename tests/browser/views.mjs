// Drives Debian's chromium (headless) through playwright-core over the dashboard's pages.
// Usage: node views.mjs URL TOPIC PIPELINE WAITING [SCREENSHOT_DIR]
// URL carries ?access_token=… when the server needs a token. TOPIC holds JSON records
// {"user_id","amount"} keyed user-0…user-12 with a `source` header, in 3 partitions. WAITING is a
// pipeline held back by a partition that never got a record.
// Checks (see views_test.py): history at load, range choice, topic browser by key and by
// offset, record view, pipeline graph, checkpoints, Stop and Restart, SQL push query rows and
// a SQL error position. Prints one JSON line; exits non-zero on a failure.
import { chromium } from "playwright-core";

const [url, topic, pipeline, waiting, shots] = process.argv.slice(2);
const problems = [];
const seen = {};
let expectBadSql = false; // the bad query's 400 answer is expected
const browser = await chromium.launch({ executablePath: "/usr/bin/chromium", headless: true });
const T = { timeout: 30000 };
const check = (cond, what) => { if (!cond) problems.push(`failed: ${what}`); };
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  page.on("console", (m) => {
    if (m.type() === "error" && !(expectBadSql && m.text().includes("400"))) problems.push(`console: ${m.text()}`);
  });
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  page.on("requestfailed", (r) => {
    // A WebSocket or poll cut short by leaving a page is not a failure of the page.
    if (!/ERR_ABORTED/.test(r.failure()?.errorText ?? "")) problems.push(`request failed: ${r.url()} ${r.failure()?.errorText}`);
  });
  page.on("response", (r) => {
    if (r.status() >= 400 && !(expectBadSql && r.url().endsWith("/v1/sql") && r.status() === 400)) {
      problems.push(`HTTP ${r.status()}: ${r.url()}`);
    }
  });
  const shot = async (name) => { if (shots) await page.screenshot({ path: `${shots}/${name}.png`, fullPage: true }); };

  // 1. Overview: the chart is filled from the server's history right at load.
  const t0 = Date.now();
  await page.goto(url, { waitUntil: "load" });
  check(!page.url().includes("access_token"), "the token is removed from the address bar");
  const points = await (await page.waitForFunction(() => {
    const n = Number(document.getElementById("throughput-chart").dataset.points || 0);
    return n > 0 ? n : null;
  }, null, T)).jsonValue();
  seen.historyPointsAtLoad = points;
  seen.secondsToFirstChart = (Date.now() - t0) / 1000;
  // 20 samples were there before the page opened; live polling adds one per second at most.
  check(points >= 20, `chart drawn from history (${points} points at load)`);
  await page.locator("#throughput-chart canvas").first().waitFor(T);
  await page.selectOption("#range", "5m");
  await page.waitForFunction(() => document.getElementById("throughput-chart").dataset.range === "5m", null, T);
  await page.locator(`#topics tr[data-topic="${topic}"]`).waitFor(T);
  await page.locator("#status.ok").waitFor(T);
  await shot("overview");

  // 2. Topic browser: by key, then by partition and offset; a record in full.
  await page.goto(`${url.split("?")[0]}#/topics/${topic}`);
  await page.locator(`#topic-list tr[data-topic="${topic}"]`).waitFor(T);
  await page.locator("#partition-list tbody tr").nth(2).waitFor(T);
  await page.fill("#browse-key", "user-7");
  await page.click("#browse-form button[type=submit]");
  await page.locator("#records tbody tr[data-key]").first().waitFor(T);
  const keys = await page.$$eval("#records tbody tr[data-key]", (rows) => rows.map((r) => r.dataset.key));
  seen.keyMatches = keys.length;
  check(keys.length >= 20 && keys.every((k) => k === "user-7"), `search by key user-7 found ${JSON.stringify(keys.slice(0, 5))}…`);
  await page.fill("#browse-key", "");
  await page.selectOption("#browse-mode", "offset");
  await page.selectOption("#browse-partition", "1");
  await page.fill("#browse-offset", "5");
  await page.fill("#browse-limit", "3");
  await page.click("#browse-form button[type=submit]");
  await page.waitForFunction(() => {
    const r = document.querySelector("#records tbody tr[data-offset]");
    return r && r.dataset.partition === "1" && r.dataset.offset === "5";
  }, null, T);
  const rows = await page.locator("#records tbody tr[data-offset]").count();
  check(rows === 3, `a page of 3 records from 1:5 (${rows})`);
  await page.locator("#records tbody tr[data-offset]").first().click();
  await page.locator("#record-view:not([hidden])").waitFor(T);
  const value = await page.locator("#record-value").textContent();
  const headers = await page.locator("#record-headers").textContent();
  check(value.includes("\n") && JSON.parse(value).user_id !== undefined, `value pretty-printed: ${value}`);
  check(headers.includes("source"), `headers shown: ${headers}`);
  await shot("topics");

  // 3. Pipeline page: operators, checkpoints, Stop and Restart.
  await page.goto(`${url.split("?")[0]}#/pipelines/${pipeline}`);
  await page.locator("#pipeline-graph .op").nth(1).waitFor(T);
  seen.operators = await page.$$eval("#pipeline-graph .op", (ops) => ops.map((o) => o.dataset.operator));
  // The graph's edges: SVG arrows between operators, the first from the source.
  await page.locator("#pipeline-graph svg path.edge").first().waitFor({ state: "attached", ...T });
  seen.edges = await page.$$eval("#pipeline-graph svg path.edge", (es) => es.map((e) => [e.dataset.from, e.dataset.to,
    e.getAttribute("d")]));
  check(seen.edges.length >= seen.operators.length - 1 &&
        seen.edges.every(([f, t]) => seen.operators.includes(f) && seen.operators.includes(t)),
        `an edge into every operator but the source (${JSON.stringify(seen.edges)})`);
  check(seen.edges.some(([f]) => f.endsWith(".source")), "an edge leaves the source");
  const column = await page.$$eval("#pipeline-graph .column", (cs) => cs.map((c) => c.querySelectorAll(".op").length));
  check(column.length >= 2, `operators in columns by depth (${JSON.stringify(column)})`);
  await page.locator("#checkpoints tbody tr td.num").first().waitFor(T);
  await page.waitForFunction(() => document.getElementById("pipeline-state").textContent === "running", null, T);
  await shot("pipeline");
  await page.click("#pipeline-stop");
  await page.waitForFunction(() => document.getElementById("pipeline-state").textContent === "stopped", null, T);
  await page.click("#pipeline-restart");
  await page.waitForFunction(() => document.getElementById("pipeline-state").textContent === "running", null,
                             { timeout: 60000 });
  seen.stopRestart = true;
  // A pipeline that does not run normally says why on its page.
  await page.goto(`${url.split("?")[0]}#/pipelines/${waiting}`);
  await page.waitForFunction(() => /^waiting for partition .*no data yet/.test(
    document.getElementById("pipeline-waiting").textContent), null, T);
  seen.waiting = await page.locator("#pipeline-waiting").textContent();

  // 4. SQL: a push query's rows stream in; Stop drops it; a bad query shows line:column.
  await page.goto(`${url.split("?")[0]}#/sql`);
  const table = `CREATE TABLE o (user_id STRING, amount BIGINT) WITH ('connector' = 'topic', 'topic' = '${topic}', ` +
                "'format' = 'json', 'scan.startup.mode' = 'earliest-offset');\n";
  await page.fill("#sql-text", table + "SELECT user_id, COUNT(*) AS n, SUM(amount) AS total FROM o GROUP BY user_id;");
  await page.click("#sql-run");
  await page.waitForFunction(() => document.querySelectorAll("#sql-rows tbody tr[data-key]").length === 13, null,
                             { timeout: 60000 });
  seen.sqlRows = await page.locator("#sql-rows tbody tr[data-key]").count();
  await shot("sql");
  await page.click("#sql-stop");
  await page.waitForFunction(() => document.getElementById("sql-status").textContent.startsWith("stopped"), null, T);
  expectBadSql = true;
  await page.fill("#sql-text", table + "SELECT user_id,\n       no_such_column FROM o;");
  await page.click("#sql-run");
  await page.locator("#sql-error:not([hidden])").waitFor(T);
  const pos = await page.$eval("#sql-error", (e) => [e.dataset.line, e.dataset.column, e.textContent]);
  seen.sqlError = pos;
  check(pos[0] === "3" && pos[1] === "8", `bad column reported at 3:8, got ${pos[0]}:${pos[1]}: ${pos[2]}`);
  await shot("sql-error");
  expectBadSql = false;
  console.log(JSON.stringify({ seen, problems }));
} catch (e) {
  problems.push(`exception: ${e.message}`);
  console.log(JSON.stringify({ seen, problems }));
} finally {
  await browser.close();
}
process.exit(problems.length ? 1 : 0);
