/**
 * The browser wallet's own numbers (docs/performance.md, "Browser wallet"):
 * the size of the bundles the center serves, and the time from the buyer's
 * click on Approve in the wallet popup to the receipt arriving at the mall's
 * page (S3 -> S6 over connect-web, IndexedDB journal writes, postMessage),
 * and to the content being shown (plus S7), in headless Chromium on loopback.
 *
 *   node --import=tsx bench/browser.ts [--runs 8] [--screenshots docs]
 *
 * With --screenshots it also saves the README's pictures of the mall and
 * the wallet popup. Not part of bench/run.ts: it needs a browser.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { chromium, type Page } from "playwright-core";
import { walletBundles } from "../src/center/web.js";
import { startWorld } from "../test/helpers/world.js";

const CHROMIUM = process.env.SCRIPWIRE_CHROMIUM ?? "/usr/lib/chromium/chromium-headless-shell";
const args = process.argv.slice(2);
const runs = Number(args[args.indexOf("--runs") + 1] ?? 8) || 8;
const shots = args.includes("--screenshots") ? args[args.indexOf("--screenshots") + 1]! : undefined;

if (!existsSync(CHROMIUM)) {
  console.error(`no Chromium at ${CHROMIUM}`);
  process.exit(2);
}

const b = await walletBundles();
const size = (s: string) => ({ bytes: Buffer.byteLength(s), gzip: gzipSync(s).length });
const app = size(b.app);
const pay = size(b.pay);

const world = await startWorld({ budget: 1_000_000n });
const browser = await chromium.launch({ executablePath: CHROMIUM });
/** The README's picture: the mall's paywall and the wallet popup it opened, side by side. */
async function sideBySide(pageP: Promise<Page>, left: Buffer, right: Buffer, path: string): Promise<void> {
  const page = await pageP;
  await page.setViewportSize({ width: 1360, height: 660 });
  const img = (b: Buffer, w: number) => `<img src="data:image/png;base64,${b.toString("base64")}" width="${w}" style="border:1px solid #999;margin:8px;vertical-align:top">`;
  await page.setContent(`<body style="margin:0;background:#ddd">${img(left, 900)}${img(right, 420)}</body>`);
  await page.screenshot({ path });
  await page.close();
}

const median = (xs: number[]) => [...xs].sort((a, c) => a - c)[Math.floor(xs.length / 2)]!;
try {
  const context = await browser.newContext({ viewport: { width: 900, height: 640 }, deviceScaleFactor: 1 });
  const wallet = await context.newPage();
  await wallet.goto(`${world.centerUrl}/wallet/`);
  await wallet.getByLabel("Name").fill("Kim Bench");
  await wallet.getByRole("button", { name: "Register" }).click();
  await wallet.locator("#balance").waitFor();
  const mall = await context.newPage();
  // Earn enough for every run (quiz 50 + survey 20 + ad 10 = 80; today's news costs 10).
  for (const [item, fill] of [[world.quiz.itemId, "hash"], [world.survey.itemId, "text"], [world.ad.itemId, ""]] as const) {
    await mall.goto(`${world.sellerUrl}/shop/earn/${item}`);
    if (fill === "hash") await mall.getByLabel("hash").check();
    if (fill === "text") await mall.getByLabel("What would you like to read about?").fill("bench");
    const [p] = await Promise.all([mall.waitForEvent("popup"), mall.locator("form#earn button").click()]);
    await Promise.all([p.waitForEvent("close"), p.locator("#approve").click()]);
    await mall.waitForSelector("body[data-earned]");
  }
  const toReceipt: number[] = [];
  const toContent: number[] = [];
  for (let i = 0; i < Math.min(runs, 8); i++) {
    await mall.goto(`${world.sellerUrl}/shop/item?url=${encodeURIComponent(world.catalog.viewOnly.requestUrl)}`);
    const mallShot = shots && i === 0 ? await mall.screenshot() : undefined;
    const [popup] = await Promise.all([mall.waitForEvent("popup"), mall.getByRole("button", { name: /Buy to read/ }).click()]);
    await popup.locator("#approve").waitFor();
    const popupShot = shots && i === 0 ? await popup.screenshot() : undefined;
    if (mallShot && popupShot) await sideBySide(context.newPage(), mallShot, popupShot, join(shots!, "web-demo.png"));
    const t0 = Date.now();
    await popup.locator("#approve").click();
    await mall.waitForSelector("body[data-paid]");
    const t2 = Date.now();
    const t1 = Number(await mall.evaluate(() => document.body.dataset.receiptAt));
    toReceipt.push(t1 - t0);
    toContent.push(t2 - t0);
    await popup.waitForEvent("close").catch(() => {});
  }
  if (shots) {
    await wallet.reload();
    await wallet.locator("#balance").waitFor();
    await wallet.screenshot({ path: join(shots, "web-wallet.png") });
  }
  const audit = await world.center.ledger.audit();
  console.log(
    JSON.stringify(
      {
        bundles: { walletAppJs: app, scripwirePayJs: pay },
        approveToReceiptMs: { median: median(toReceipt), all: toReceipt },
        approveToContentMs: { median: median(toContent), all: toContent },
        auditOk: audit.ok,
      },
      null,
      2,
    ),
  );
} finally {
  await browser.close();
  await world.close();
}
