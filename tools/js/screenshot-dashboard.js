// Takes the README's screenshots of the operator dashboard in Debian's headless chromium
// (playwright-core): the overview, the dead letters with their failure groups, and one entry.
// Re-run with `EVENTHUB_SCREENSHOTS_DIR=docs/img cargo test -p eventhub-gateway --test screenshots`,
// which starts nats-server and a gateway with a few dead letters, then runs this script.
// Prints one JSON line: the files written. Exit 2 when it could not drive the pages.
// Usage: node screenshot-dashboard.js BASE_URL OPERATOR_KEY OUT_DIR
"use strict";
const fs = require("fs");
const os = require("os");
const path = require("path");
const { chromium } = require("playwright-core");

const CHROMIUM = process.env.CHROMIUM_BIN || "/usr/bin/chromium";

async function main() {
  const [base, key, outDir] = process.argv.slice(2);
  if (!base || !key || !outDir) {
    console.error("usage: node screenshot-dashboard.js BASE_URL OPERATOR_KEY OUT_DIR");
    process.exit(2);
  }
  fs.mkdirSync(outDir, { recursive: true });
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), "eventhub-chromium-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 1100, height: 720 },
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
  const written = [];
  try {
    const page = await context.newPage();
    const shot = async (name) => {
      const file = path.join(outDir, name);
      await page.screenshot({ path: file });
      written.push(file);
    };
    await page.goto(base + "/dashboard", { waitUntil: "load" });
    await page.fill("input[name=key]", key);
    await Promise.all([page.waitForNavigation(), page.click("button[type=submit]")]);
    await shot("dashboard-overview.png");
    await page.goto(base + "/dashboard/dlq", { waitUntil: "load" });
    await shot("dashboard-dead-letters.png");
    const link = await page.$("#dead-letters a");
    if (!link) throw new Error("no dead letter to open");
    await Promise.all([page.waitForNavigation(), link.click()]);
    await shot("dashboard-dead-letter.png");
  } finally {
    await context.close();
    fs.rmSync(profile, { recursive: true, force: true });
  }
  console.log(JSON.stringify({ written }));
}

main().catch((e) => {
  console.error(String((e && e.stack) || e));
  process.exit(2);
});
