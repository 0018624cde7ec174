// Drives the explorer page of a running peer in headless Chromium (playwright-core, with the
// system's Chromium: nothing is downloaded). Run by peer/tests/explorer.rs, which talks to it
// over standard input and output, one line each way:
//   this script prints `READY` once the page shows the newest blocks from the live stream;
//   the test submits a transaction and writes `TX <id> <word> <name>`;
//   this script waits for the transaction to appear live, searches the word with the search box
//   (keyboard only), opens the hit named <name>, waits for its history, saves a screenshot and
//   prints `DONE`. Any failure prints `FAIL <why>` and exits 1.
// Environment: EXPLORER_URL, MEDIACHAIN_CHROMIUM (the browser), MEDIACHAIN_PLAYWRIGHT (the
// node_modules holding playwright-core), EXPLORER_SCREENSHOT (where the PNG goes).
import { createRequire } from "node:module";
import path from "node:path";
import readline from "node:readline";

const require = createRequire(path.join(process.env.MEDIACHAIN_PLAYWRIGHT, "resolve.js"));
const { chromium } = require("playwright-core");

const WAIT = 30_000; // longest any single wait, in ms
const lines = readline.createInterface({ input: process.stdin })[Symbol.asyncIterator]();

async function main() {
  const browser = await chromium.launch({
    executablePath: process.env.MEDIACHAIN_CHROMIUM,
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
  });
  try {
    // A narrow screen: the page must be usable on a phone.
    const page = await browser.newPage({ viewport: { width: 390, height: 844 } });
    const problems = [];
    page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
    page.on("console", (m) => { if (m.type() === "error") problems.push(`console: ${m.text()}`); });
    await page.goto(process.env.EXPLORER_URL, { waitUntil: "load", timeout: WAIT });
    await page.locator("#blocks li").first().waitFor({ timeout: WAIT });
    await page.getByText("following", { exact: true }).waitFor({ timeout: WAIT });
    const width = await page.evaluate(() => document.documentElement.scrollWidth);
    if (width > 390) throw new Error(`the page is ${width}px wide on a 390px screen`);
    console.log("READY");

    const { value } = await lines.next();
    const [, id, word, ...name] = value.trim().split(" ");
    const artefact = name.join(" ");
    // The transaction appears in the newest transactions from the event stream, no reload.
    await page.locator(`#txs li[data-tx="${id}"]`).waitFor({ timeout: WAIT });

    // Search with the keyboard: focus the labelled box, type, Enter.
    const box = page.getByLabel("Search metadata");
    const deadline = Date.now() + WAIT;
    for (;;) {
      await box.focus();
      await box.fill(word);
      await page.keyboard.press("Enter");
      const hit = page.locator("#hits li a", { hasText: artefact });
      try {
        await hit.first().waitFor({ timeout: 2_000 });
        break;
      } catch (e) {
        // The index follows the chain a moment behind it: search again (bounded).
        if (Date.now() > deadline) throw new Error(`no hit named ${artefact} for ${word}`);
        await page.goto(`${process.env.EXPLORER_URL}#/`);
      }
    }
    await page.locator("#hits li a", { hasText: artefact }).first().click();
    await page.locator("h1", { hasText: artefact }).waitFor({ timeout: WAIT });
    await page.locator("#history li").first().waitFor({ timeout: WAIT });
    const cells = await page.locator("#history li").allTextContents();
    if (!cells.some((c) => c.includes("artefactCreatedBy"))) {
      throw new Error(`the history lacks the artefactCreatedBy cell: ${cells.join(" | ")}`);
    }
    await page.screenshot({ path: process.env.EXPLORER_SCREENSHOT, fullPage: true });
    if (problems.length) throw new Error(problems.join("; "));
    console.log("DONE");
  } finally {
    await browser.close();
  }
}

main().then(
  () => process.exit(0),
  (e) => {
    console.log(`FAIL ${e.message.split("\n")[0]}`);
    console.error(e);
    process.exit(1);
  },
);
