// Drives the gateway's operator dashboard in Debian's headless chromium through playwright-core,
// as an operator would: sign in with an operator API key, read the overview, open the dead
// letters, open the first entry, click "Replay", and read the confirmation. Prints one JSON line
// with what each page showed, console and page errors, requests to other origins, and whether a
// `window.__pwned` marker was set (tests plant markup in the dead letter's payload).
// Exit 0 when it could drive the pages, 2 otherwise.
// With a third argument `group`, it instead reads the failure groups, clicks the first group's
// "Replay group", follows the job page until it says finished, and reads the groups again.
// Usage: node check-dashboard.js BASE_URL OPERATOR_KEY [group]
"use strict";
const fs = require("fs");
const os = require("os");
const path = require("path");
const { chromium } = require("playwright-core");

const CHROMIUM = process.env.CHROMIUM_BIN || "/usr/bin/chromium";

async function main() {
  const [base, key, mode] = process.argv.slice(2);
  if (!base || !key) {
    console.error("usage: node check-dashboard.js BASE_URL OPERATOR_KEY");
    process.exit(2);
  }
  const origin = new URL(base).origin;
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), "eventhub-chromium-"));
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
  const out = { consoleErrors: [], pageErrors: [], foreignRequests: [] };
  try {
    const page = await context.newPage();
    page.on("console", (m) => {
      if (m.type() === "error") out.consoleErrors.push(m.text());
    });
    page.on("pageerror", (e) => out.pageErrors.push(String(e)));
    page.on("request", (r) => {
      if (!r.url().startsWith(origin)) out.foreignRequests.push(r.url());
    });
    const table = (selector) =>
      page.$$eval(selector + " tr", (rows) =>
        rows.slice(1).map((r) => Array.from(r.cells).map((c) => c.textContent))
      );

    await page.goto(base + "/dashboard", { waitUntil: "load" });
    out.loginUrl = page.url();
    await page.fill("input[name=key]", key);
    await Promise.all([page.waitForNavigation(), page.click("button[type=submit]")]);
    out.overview = {
      url: page.url(),
      streams: await table("#streams"),
      consumers: await table("#consumers"),
      flows: await table("#flows"),
    };

    await page.goto(base + "/dashboard/dlq", { waitUntil: "load" });
    out.deadLetters = await table("#dead-letters");
    if (mode === "group") {
      out.groups = await table("#groups");
      await Promise.all([page.waitForNavigation(), page.click("#groups .replay-group")]);
      out.jobUrl = page.url();
      // The job page refreshes itself until the job is finished.
      await page.waitForSelector('#job[data-finished="true"]', { timeout: 30000 });
      out.job = await page.$eval("#job", (d) => ({
        done: Number(d.dataset.done),
        total: Number(d.dataset.total),
        failed: Number(d.dataset.failed),
        text: d.textContent,
      }));
      await page.goto(base + "/dashboard/dlq", { waitUntil: "load" });
      out.groupsAfter = await table("#groups");
      out.deadLettersAfter = await table("#dead-letters");
      console.log(JSON.stringify(out));
      return;
    }
    const link = await page.$("#dead-letters a");
    if (link) {
      await Promise.all([page.waitForNavigation(), link.click()]);
      out.entry = {
        url: page.url(),
        fields: await page.$$eval("#entry tr", (rows) =>
          Object.fromEntries(rows.map((r) => [r.cells[0].textContent, r.cells[1].textContent]))
        ),
        payload: await page.textContent("#payload"),
        headers: await table("#headers"),
        injected: await page.$$eval("main script, main b, main img", (n) => n.length),
      };
      await Promise.all([page.waitForNavigation(), page.click("#replay")]);
      out.afterReplay = {
        url: page.url(),
        flash: await page.textContent("#flash"),
        deadLetters: await table("#dead-letters"),
      };
    }
    out.pwned = await page.evaluate(() =>
      window.__pwned === undefined ? null : String(window.__pwned)
    );
  } finally {
    await context.close();
    fs.rmSync(profile, { recursive: true, force: true });
  }
  console.log(JSON.stringify(out));
}

main().catch((e) => {
  console.error(String((e && e.stack) || e));
  process.exit(2);
});
