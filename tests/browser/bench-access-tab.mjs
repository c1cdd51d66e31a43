// The measuring half of bench/console-access-tab.sh: sign in, then load the Access tab of
// cluster `bench` 3 times to warm up and 30 times measured.
import { chromium } from "playwright-core";

const { ENDPOINT, KEY, SECRET, N, CHROMIUM } = process.env;
const browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] });
const page = await (await browser.newContext({ viewport: { width: 1280, height: 800 } })).newPage();
await page.goto(`${ENDPOINT}/console/sign-in`);
await page.getByLabel("Access key ID").fill(KEY);
await page.getByLabel("Secret access key").fill(SECRET);
await page.getByRole("button", { name: "Sign in" }).click();
await page.waitForURL(/\/console\/clusters$/);
const server = [];
const paint = [];
let measured = "first contentful paint";
for (let i = 0; i < 33; i++) {
  await page.goto(`${ENDPOINT}/console/clusters/bench`);
  // The first frame painted after the page loaded stands for the first render: headless
  // Chromium does not always report paint timing entries.
  const t = await page.evaluate(
    () =>
      new Promise((resolve) =>
        requestAnimationFrame(() =>
          setTimeout(() => {
            const nav = performance.getEntriesByType("navigation")[0];
            const fcp = performance.getEntriesByName("first-contentful-paint")[0];
            resolve({
              server: nav.responseStart - nav.requestStart,
              paint: fcp ? fcp.startTime : nav.loadEventEnd,
              fcp: Boolean(fcp),
            });
          }, 0),
        ),
      ),
  );
  if (!t.fcp) measured = "the load event's end (no paint timing in this Chromium)";
  if (i >= 3) {
    server.push(t.server);
    paint.push(t.paint);
  }
}
const rows = await page.locator("tbody tr").count();
await browser.close();
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const p90 = (xs) => [...xs].sort((a, b) => a - b)[Math.ceil(xs.length * 0.9) - 1];
console.log(`Access tab of a cluster with ${N} associations (${rows} rows on the first page), 30 loads:`);
console.log(`  server (request start → first byte): median ${median(server).toFixed(1)} ms, p90 ${p90(server).toFixed(1)} ms`);
console.log(`  browser (navigation start → ${measured}): median ${median(paint).toFixed(1)} ms, p90 ${p90(paint).toFixed(1)} ms`);
