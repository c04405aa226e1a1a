// Drives the gateway's live page (/live.html) in Debian's headless chromium through
// playwright-core, for a test that publishes events and cuts the connection meanwhile.
// Talks in JSON lines: prints {"ready":true} once the page is live, then answers each command
// read from stdin:
//   wait N        -> {"events":[{"stream","sequence","type"}…],"status"} once the page lists N events
//   closed        -> {"status"} once the page says it lost its connection
//   quit          -> closes the browser and exits 0
// Exit 2 when it could not drive the page (the reason on stderr).
// Usage: node check-live.js BASE_URL TOKEN
"use strict";
const fs = require("fs");
const os = require("os");
const path = require("path");
const readline = require("readline");
const { chromium } = require("playwright-core");

const CHROMIUM = process.env.CHROMIUM_BIN || "/usr/bin/chromium";

async function main() {
  const [base, token] = process.argv.slice(2);
  if (!base || !token) {
    console.error("usage: node check-live.js BASE_URL TOKEN");
    process.exit(2);
  }
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
  const errors = [];
  try {
    const page = await context.newPage();
    page.on("pageerror", (e) => errors.push(String(e)));
    await page.goto(base + "/live.html#token=" + encodeURIComponent(token), { waitUntil: "load" });
    await page.waitForFunction(() => document.getElementById("status").textContent === "live", null, {
      timeout: 20000,
    });
    console.log(JSON.stringify({ ready: true }));
    const status = () => page.textContent("#status");
    const lines = readline.createInterface({ input: process.stdin });
    for await (const line of lines) {
      const [command, arg] = line.trim().split(/\s+/);
      if (command === "wait") {
        const n = Number(arg);
        await page.waitForFunction((n) => document.querySelectorAll("#events li").length >= n, n, {
          timeout: 30000,
        });
        const events = await page.$$eval("#events li", (items) =>
          items.map((li) => ({
            stream: li.dataset.stream,
            sequence: Number(li.dataset.sequence),
            type: li.dataset.type,
          }))
        );
        console.log(JSON.stringify({ events, status: await status(), errors }));
      } else if (command === "closed") {
        await page.waitForFunction(
          () => document.getElementById("status").textContent.startsWith("reconnecting"),
          null,
          { timeout: 20000 }
        );
        console.log(JSON.stringify({ status: await status() }));
      } else if (command === "quit") {
        break;
      } else {
        throw new Error("unknown command " + JSON.stringify(line));
      }
    }
  } finally {
    await context.close();
    fs.rmSync(profile, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(String((e && e.stack) || e));
  process.exit(2);
});
