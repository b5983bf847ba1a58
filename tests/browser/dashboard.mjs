// Drives Debian's chromium (headless) through playwright-core against a running dashboard.
// Usage: node dashboard.mjs URL TOPIC SCREENSHOT [PIPELINE]
// Checks: the page loads with no console error and no failed request; the topic appears;
// its records/s figure changes while records are being produced; a chart is drawn; the
// pipeline (a running job) shows as running with records/s read; the materialized view's table
// fills and its version moves, with its chart drawn; the live tail shows records.
// Prints one JSON line with what it saw; exits non-zero on a failure.
import { chromium } from "playwright-core";

const [url, topic, screenshot, pipeline] = process.argv.slice(2);
const problems = [];
const browser = await chromium.launch({ executablePath: "/usr/bin/chromium", headless: true });
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  page.on("console", (m) => { if (m.type() === "error") problems.push(`console: ${m.text()}`); });
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  page.on("requestfailed", (r) => problems.push(`request failed: ${r.url()} ${r.failure()?.errorText}`));
  page.on("response", (r) => { if (r.status() >= 400) problems.push(`HTTP ${r.status()}: ${r.url()}`); });
  await page.goto(url, { waitUntil: "load" });

  const row = page.locator(`#topics tr[data-topic="${topic}"]`);
  await row.waitFor({ timeout: 20000 });
  // The rate must move: a non-zero reading, then a different non-zero one.
  const rate = (args) => {
    const c = document.querySelector(`#topics tr[data-topic="${args.topic}"] td.rate`);
    const v = c && c.textContent.trim();
    return v && v !== "0" && v !== args.not ? v : null;
  };
  const seen = [];
  seen.push(await (await page.waitForFunction(rate, { topic, not: "" }, { timeout: 30000 })).jsonValue());
  seen.push(await (await page.waitForFunction(rate, { topic, not: seen[0] }, { timeout: 30000 })).jsonValue());
  await page.locator("#throughput-chart canvas").first().waitFor({ timeout: 20000 });
  await page.locator("#status.ok").waitFor({ timeout: 5000 });

  let pipelineRate = null;
  if (pipeline) {
    const job = (id) => {
      const r = document.querySelector(`#jobs tr[data-job="${id}"]`);
      if (!r || r.cells[1].textContent !== "running") return null;
      const v = r.querySelector("td.rate").textContent.trim();
      return v && v !== "0" ? v : null;
    };
    pipelineRate = await (await page.waitForFunction(job, pipeline, { timeout: 30000 })).jsonValue();
  }

  // The first view (the demo's latest window per channel) as a live table that updates.
  let viewUpdates = null;
  if (pipeline) {
    await page.locator("#view-table tbody tr[data-key]").first().waitFor({ timeout: 30000 });
    const version = async () => (await page.locator("#view-version").textContent()).trim();
    const v0 = await version();
    await page.waitForFunction((before) => document.getElementById("view-version").textContent.trim() !== before,
                               v0, { timeout: 30000 });
    await page.locator("#view-chart canvas").first().waitFor({ timeout: 20000 });
    viewUpdates = [v0, await version()];
  }

  await row.locator("button").click();
  await page.locator("#tail tbody tr").first().waitFor({ timeout: 20000 });
  const tailRows = await page.locator("#tail tbody tr").count();
  await page.screenshot({ path: screenshot, fullPage: true });
  console.log(JSON.stringify({ rates: seen, pipelineRate, viewUpdates, tailRows, screenshot, problems }));
} finally {
  await browser.close();
}
process.exit(problems.length ? 1 : 0);
