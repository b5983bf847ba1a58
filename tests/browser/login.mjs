// Drives Debian's chromium (headless) through playwright-core over the dashboard's login.
// Usage: node login.mjs URL USER PASSWORD TOPIC EXPECTED_AUTHORIZATION
// Checks (see login_test.py): the first refused request shows the login form, a wrong password
// is refused, the right one is kept in sessionStorage and sent with every request (the
// overview lists TOPIC, the status is ok), and the live tail over the WebSocket shows a record
// produced after it opened. Prints one JSON line; exits non-zero on a failure.
import { chromium } from "playwright-core";

const [url, user, password, topic, expected] = process.argv.slice(2);
const problems = [];
const seen = { refused: 0 };
const browser = await chromium.launch({ executablePath: "/usr/bin/chromium", headless: true });
const T = { timeout: 30000 };
const check = (cond, what) => { if (!cond) problems.push(`failed: ${what}`); };
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  page.on("response", (r) => {
    if (r.status() === 401) seen.refused++;
    else if (r.status() >= 400) problems.push(`HTTP ${r.status()}: ${r.url()}`);
  });
  await page.goto(`${url}/`, { waitUntil: "load" });
  // Not logged in: the API refuses, the page asks.
  await page.locator("#token-form:not([hidden])").waitFor(T);
  check(seen.refused > 0, "the first API request was refused");
  // A wrong password: refused again, the form comes back.
  await page.fill("#login-user", user);
  await page.fill("#login-password", "not the password");
  const refusedAgain = page.waitForResponse((r) => r.status() === 401, T);
  await page.click("#token-form button[type=submit]");
  await refusedAgain;
  await page.locator("#token-form:not([hidden])").waitFor(T);
  // The right one.
  await page.fill("#login-user", user);
  await page.fill("#login-password", password);
  await page.click("#token-form button[type=submit]");
  await page.locator("#status.ok").waitFor(T);
  await page.locator(`#topics tr[data-topic="${topic}"]`).waitFor(T);
  check(await page.locator("#token-form").isHidden(), "the form is hidden once logged in");
  seen.stored = await page.evaluate(() => sessionStorage.getItem("runnel.authorization"));
  check(seen.stored === expected, "the Authorization value is kept for the tab");
  // The live tail: the WebSocket carries the credentials in its query.
  await page.click(`button[aria-label="tail ${topic}"]`);
  const produced = await page.evaluate(async ([t, auth]) => {
    for (let i = 0; i < 100; i++) {
      const r = await fetch(`/v1/topics/${t}/records`, {
        method: "POST", credentials: "omit", headers: { "Content-Type": "application/json", Authorization: auth },
        body: JSON.stringify({ records: [{ value: { tail: i } }] }),
      });
      if (!r.ok) return r.status;
      const rows = document.querySelectorAll("#tail tbody tr:not(.empty)").length;
      if (rows > 0) return 200;
      await new Promise((res) => setTimeout(res, 100)); // pacing the produces until the tail shows one
    }
    return 0;
  }, [topic, expected]);
  check(produced === 200, `the live tail shows records over the WebSocket (${produced})`);
  seen.tailRows = await page.locator("#tail tbody tr:not(.empty)").count();
} catch (e) {
  problems.push(`error: ${e.message}`);
} finally {
  await browser.close();
}
console.log(JSON.stringify({ seen, problems }));
process.exit(problems.length ? 1 : 0);
