// Drives the dashboard in Debian's headless Chromium with playwright-core
// (no browser download), for coordinator/tests/web.rs. Protocol on stdout,
// one JSON object per line: {"unauthorized": status}, {"table": ...},
// {"ready": summary}, then, after a line on stdin (the test has reported an
// epoch), {"updated": summary, "ms": n}, {"views": ...} (the state grid,
// heatmap, workers and job pages, a phone-width and a dark page), and last
// {"errors": [...]}.
// Usage: node dashboard.cjs BASE_URL TOKEN SWEEP SCREENSHOT_DIR
"use strict";
const { chromium } = require("playwright-core");
const readline = require("node:readline");

const [base, token, sweep, shots] = process.argv.slice(2);
const say = (value) => process.stdout.write(JSON.stringify(value) + "\n");
const nextLine = () =>
  new Promise((resolve) => {
    const lines = readline.createInterface({ input: process.stdin });
    lines.once("line", (line) => {
      lines.close();
      resolve(line);
    });
  });

(async () => {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
      "--disable-component-update", "--disable-sync"],
  });
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  const errors = [];
  page.on("console", (message) => { if (message.type() === "error") errors.push(message.text()); });
  page.on("pageerror", (error) => errors.push(String(error)));

  const refused = await page.goto(`${base}/api/sweeps`);
  say({ unauthorized: refused.status() });
  // The 401 above is the test's own doing, not the page's.
  errors.length = 0;

  await page.goto(`${base}/login?token=${encodeURIComponent(token)}&next=/`);
  await page.waitForSelector(`tr[data-sweep="${sweep}"]`, { timeout: 10000 });
  await page.screenshot({ path: `${shots}/sweeps.png`, fullPage: true });

  await page.goto(`${base}/sweeps/${encodeURIComponent(sweep)}`);
  await page.waitForSelector("#cells tbody tr", { timeout: 10000 });
  await page.waitForSelector("#curves svg polyline", { timeout: 10000 });
  const table = await page.$eval("#cells", (t) => ({
    headers: [...t.querySelectorAll("thead th")].map((th) => th.textContent),
    // The exact values (data-value); the text shows them rounded.
    rows: [...t.querySelectorAll("tbody tr")].map((tr) => [...tr.querySelectorAll("td")].map((td) => td.dataset.value)),
    shown: [...t.querySelectorAll("tbody tr")].map((tr) => [...tr.querySelectorAll("td")].map((td) => td.textContent)),
  }));
  say({ table });
  const before = await page.$eval("#summary", (s) => s.textContent);
  const points = await page.$$eval("#curves polyline", (lines) => lines.map((l) => l.getAttribute("points")).join(" "));
  await page.screenshot({ path: `${shots}/sweep.png`, fullPage: true });
  say({ ready: before, points });

  await nextLine();
  const started = Date.now();
  await page.waitForFunction((old) => document.querySelector("#summary").textContent !== old, before, { timeout: 10000 });
  await page.waitForFunction(
    (old) => [...document.querySelectorAll("#curves polyline")].map((l) => l.getAttribute("points")).join(" ") !== old,
    points,
    { timeout: 10000 },
  );
  say({ updated: await page.$eval("#summary", (s) => s.textContent), ms: Date.now() - started });
  await page.screenshot({ path: `${shots}/sweep-updated.png`, fullPage: true });

  const views = {};
  views.grid = await page.$$eval("#grid li", (cells) => cells.map((c) => c.dataset.state));
  views.heatmap = await page.$$eval("#heatmap td.heat.num", (cells) => cells.map((c) => Number(c.dataset.value)));
  views.heatmapAxes = await page.$eval("#heatmap caption", (c) => c.textContent);
  // Every control a keyboard reaches has a label a screen reader reads.
  views.unlabelled = await page.$$eval("input, select", (controls) =>
    controls.filter((c) => c.labels.length === 0 && !c.getAttribute("aria-label")).map((c) => c.id));

  await page.goto(`${base}/workers`);
  await page.waitForSelector("tr[data-worker] .slots a", { timeout: 10000 });
  views.workers = await page.$$eval("tr[data-worker]", (rows) => rows.map((r) => r.textContent));
  const jobLink = await page.$eval("tr[data-worker] .slots a", (a) => a.getAttribute("href"));
  await page.screenshot({ path: `${shots}/workers.png`, fullPage: true });

  await page.goto(`${base}${jobLink}`);
  await page.waitForSelector("#epochs tr[data-epoch]", { timeout: 10000 });
  views.job = {
    title: await page.$eval("#title", (t) => t.textContent),
    epochs: await page.$$eval("#epochs tr[data-epoch]", (rows) => rows.map((r) => Number(r.dataset.epoch))),
    facts: await page.$eval("#job-state", (d) => d.textContent),
  };
  await page.screenshot({ path: `${shots}/job.png`, fullPage: true });

  // A phone: the page fits its width (wide tables scroll in their own box).
  const phone = await context.newPage();
  phone.on("console", (message) => { if (message.type() === "error") errors.push(message.text()); });
  phone.on("pageerror", (error) => errors.push(String(error)));
  await phone.setViewportSize({ width: 390, height: 844 });
  await phone.goto(`${base}/sweeps/${encodeURIComponent(sweep)}`);
  await phone.waitForSelector("#cells tbody tr", { timeout: 10000 });
  views.phoneOverflow = await phone.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  await phone.screenshot({ path: `${shots}/sweep-phone.png`, fullPage: true });
  await phone.emulateMedia({ colorScheme: "dark" });
  await phone.goto(`${base}/`);
  await phone.waitForSelector(`tr[data-sweep="${sweep}"]`, { timeout: 10000 });
  views.darkBackground = await phone.evaluate(() => getComputedStyle(document.body).backgroundColor);
  await phone.screenshot({ path: `${shots}/sweeps-dark-phone.png`, fullPage: true });
  say({ views });
  say({ errors });
  await browser.close();
  process.exit(0);
})().catch((error) => {
  say({ fatal: String(error && error.stack || error) });
  process.exit(1);
});
