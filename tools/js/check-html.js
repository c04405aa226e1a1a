// Opens a static HTML page (file://) in Debian's headless chromium through playwright-core and
// prints, as one JSON line on stdout, what a reader would see: every event article (type,
// version, subject, stream, field paths, publishers, consumers, description text), the console
// errors and page errors, any request other than the page itself, the scripts in the DOM, and
// whether a `window.__pwned` marker was set (tests plant it in hostile schema text).
// It then types each query of the remaining arguments into the filter box and reports how many
// events stay visible. Exit 0 when it could render the page, 2 otherwise.
// Usage: node check-html.js index.html [filter query...]
"use strict";
const fs = require("fs");
const os = require("os");
const path = require("path");
const { chromium } = require("playwright-core");

const CHROMIUM = process.env.CHROMIUM_BIN || "/usr/bin/chromium";

async function main() {
  const file = path.resolve(process.argv[2] || "");
  const queries = process.argv.slice(3);
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), "eventhub-chromium-"));
  // A fresh profile per run (playwright's persistent context is how it takes --user-data-dir).
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
  const consoleErrors = [];
  const pageErrors = [];
  const requests = [];
  try {
    const page = await context.newPage();
    page.on("console", (m) => {
      if (m.type() === "error") consoleErrors.push(m.text());
    });
    page.on("pageerror", (e) => pageErrors.push(String(e)));
    const url = "file://" + file;
    page.on("request", (r) => {
      if (r.url() !== url) requests.push(r.url());
    });
    await page.goto(url, { waitUntil: "load" });
    const seen = await page.evaluate(() => ({
      title: document.title,
      pwned: window.__pwned === undefined ? null : String(window.__pwned),
      scripts: document.scripts.length,
      injected: document.querySelectorAll("main script, main img, main svg, main iframe, main b").length,
      events: Array.from(document.querySelectorAll("article.event")).map((a) => ({
        id: a.id,
        type: a.dataset.eventType,
        version: Number(a.dataset.version),
        heading: a.querySelector("h3").textContent,
        description: (a.querySelector(".description") || { textContent: "" }).textContent,
        subject: a.querySelector(".subject").textContent,
        stream: a.querySelector(".stream").textContent,
        fields: Array.from(a.querySelectorAll("table.fields tbody tr")).map((r) => ({
          path: r.dataset.field,
          cells: Array.from(r.cells).map((c) => c.textContent),
        })),
        sensitive: Array.from(a.querySelectorAll("table.fields .sensitive")).map(
          (s) => s.closest("tr").dataset.field
        ),
        publishers: (a.querySelector(".publishers") || { textContent: null }).textContent,
        consumers: (a.querySelector(".consumers") || { textContent: null }).textContent,
        services: (a.querySelector(".services") || { textContent: "" }).textContent,
        examples: Array.from(a.querySelectorAll(".example pre")).map((p) => p.textContent),
      })),
      services: Array.from(document.querySelectorAll("#services tbody tr")).map((r) =>
        Array.from(r.cells).map((c) => c.textContent)
      ),
    }));
    seen.filters = {};
    for (const q of queries) {
      await page.fill("#filter", q);
      seen.filters[q] = await page.evaluate(
        () => document.querySelectorAll("article.event:not([hidden])").length
      );
    }
    await page.fill("#filter", "");
    seen.consoleErrors = consoleErrors;
    seen.pageErrors = pageErrors;
    seen.requests = requests;
    process.stdout.write(JSON.stringify(seen) + "\n");
  } finally {
    await context.close();
    fs.rmSync(profile, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(e && e.stack ? e.stack : String(e));
  process.exit(2);
});
