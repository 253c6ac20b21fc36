// Takes the dashboard screenshot of docs/dashboard.md from a running coordinator, in
// Debian's headless Chromium with playwright-core (what the tests use):
//   NODE_PATH=/opt/widesweep-test-tools/node/node_modules \
//     node docs/screenshot.cjs http://127.0.0.1:7080/sweeps/quickstart docs/dashboard-quickstart.png
// It waits for the table and the curves, so the picture shows real data.
"use strict";
const { chromium } = require("playwright-core");

const [url, out, width = "1280"] = process.argv.slice(2);
if (!url || !out) {
  console.error("usage: node docs/screenshot.cjs URL OUT.png [WIDTH]");
  process.exit(2);
}
(async () => {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-gpu", "--no-first-run"],
  });
  const context = await browser.newContext({ viewport: { width: Number(width), height: 900 } });
  const page = await context.newPage();
  await page.goto(url);
  await page.waitForSelector("#cells tbody tr", { timeout: 20000 });
  await page.waitForSelector("#curves svg polyline", { timeout: 20000 });
  await page.screenshot({ path: out, fullPage: true });
  await browser.close();
})().catch((error) => {
  console.error(String(error && error.stack || error));
  process.exit(1);
});
