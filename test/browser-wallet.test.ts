/**
 * A person at a browser: the wallet at the center's origin, the web mall at
 * the seller's, in real headless Chromium (test/helpers/browser.ts) against
 * real servers on loopback. After each scenario the center's audit passes
 * and the customer's live scrip is the one the browser wallet shows.
 */
import type { ExecutionContext } from "ava";
import { readFile } from "node:fs/promises";
import type { Browser, BrowserContext, Page } from "playwright-core";
import { startSellerServer, type RunningSeller } from "../src/seller/server.js";
import { browserTest, launch } from "./helpers/browser.js";
import { startWorld, type World } from "./helpers/world.js";

const test = browserTest("browser-wallet");
let browser: Browser;
test.before(async () => {
  browser = await launch();
});
test.after.always(async () => {
  await browser?.close();
});

async function world(t: ExecutionContext): Promise<World> {
  const w = await startWorld();
  t.teardown(() => w.close());
  return w;
}

async function context(t: ExecutionContext): Promise<BrowserContext> {
  const c = await browser.newContext({ acceptDownloads: true });
  t.teardown(() => c.close());
  return c;
}

async function register(page: Page, w: World): Promise<void> {
  await page.goto(`${w.centerUrl}/wallet/`);
  await page.getByLabel("Name").fill("Kim Browser");
  await page.getByRole("button", { name: "Register" }).click();
  await page.locator("#balance").waitFor();
}

async function balanceShown(page: Page): Promise<bigint> {
  return BigInt((await page.locator("#balance").getAttribute("data-value"))!);
}

/** Clicks `button` on a mall page, approves in the wallet popup, and returns the popup's offer text. */
async function approveInPopup(page: Page, click: () => Promise<void>): Promise<{ what: string; whom: string; price: string; after: string }> {
  const [popup] = await Promise.all([page.waitForEvent("popup"), click()]);
  await popup.locator("#approve").waitFor();
  const text = async (id: string) => (await popup.locator(id).textContent()) ?? "";
  const shown = { what: await text("#offer-what"), whom: await text("#offer-whom"), price: await text("#offer-price"), after: await text("#offer-after") };
  await Promise.all([popup.waitForEvent("close"), popup.locator("#approve").click()]);
  return shown;
}

/** The ledger agrees with the wallet, and the audit passes. */
async function audited(t: ExecutionContext, w: World, customer: bigint, value: bigint): Promise<void> {
  const live = await w.center.ledger.liveScrip(customer, "KRW");
  t.is(live?.value, value, "the customer's live scrip holds what the wallet shows");
  const audit = await w.center.ledger.audit();
  t.deepEqual(audit.problems, []);
  t.true(audit.ok);
}

async function customerOf(page: Page): Promise<bigint> {
  const text = await page.getByText(/^Customer \d+ at /).textContent();
  return BigInt(/Customer (\d+)/.exec(text!)![1]!);
}

/** A browser context whose wallet registered and earned the quiz's 50 KRW on the mall. */
async function registeredWith50(t: ExecutionContext, w: World) {
  const c = await context(t);
  const wallet = await c.newPage();
  await register(wallet, w);
  const customer = await customerOf(wallet);
  const mall = await c.newPage();
  await mall.goto(`${w.sellerUrl}/shop/earn/${w.quiz.itemId}`);
  await mall.getByLabel("hash").check();
  await approveInPopup(mall, () => mall.getByRole("button", { name: /Answer and collect/ }).click());
  await mall.waitForSelector("body[data-earned]");
  return { c, wallet, customer, mall };
}

test("register in the wallet; earn from a quiz on the mall; buy an article (View) and a file (Save); reload keeps the balance", async (t) => {
  const w = await world(t);
  const c = await context(t);
  const wallet = await c.newPage();
  await register(wallet, w);
  t.is(await balanceShown(wallet), 0n);
  const customer = await customerOf(wallet);

  const mall = await c.newPage();
  // A wrong answer: GM2_2 is shown as the page it is, and nothing is paid.
  await mall.goto(`${w.sellerUrl}/shop/earn/${w.quiz.itemId}`);
  await mall.getByLabel("rsa").check();
  const [refusedPopup] = await Promise.all([mall.waitForEvent("popup"), mall.getByRole("button", { name: /Answer and collect/ }).click()]);
  await mall.frameLocator("iframe.refusal").getByRole("heading", { name: "No scrip for this answer" }).waitFor();
  // The mall closed the popup it no longer needs (it may already be gone).
  if (!refusedPopup.isClosed()) await refusedPopup.waitForEvent("close");
  t.regex((await mall.locator("#status").textContent())!, /not the right answer/);

  // The right answer: the popup shows what, from whom and the balance after; M3-M7 run on approval.
  await mall.getByLabel("hash").check();
  const earned = await approveInPopup(mall, () => mall.getByRole("button", { name: /Answer and collect/ }).click());
  t.is(earned.price, "50 KRW");
  t.is(earned.after, "50 KRW");
  t.regex(earned.whom, /Test Mall .*vendor mall-1.*asked by http:\/\/127\.0\.0\.1:\d+/);
  await mall.waitForSelector("body[data-earned]");
  t.regex((await mall.locator("#status").textContent())!, /earned 50\. Your balance is now 50/);

  // An article to view: the paywall becomes the content.
  await mall.goto(`${w.sellerUrl}/shop/item?url=${encodeURIComponent(w.catalog.article.requestUrl)}`);
  const view = await approveInPopup(mall, () => mall.getByRole("button", { name: /Buy to read/ }).click());
  t.regex(view.what, /\/articles\/hash-cash \(view\)/);
  t.is(view.price, "30 KRW");
  t.is(view.after, "20 KRW");
  await mall.locator("#content h1", { hasText: "Hash cash" }).waitFor();

  // Earn a survey reward, then save the same article as a file: a real download with the seller's bytes.
  await mall.goto(`${w.sellerUrl}/shop/earn/${w.survey.itemId}`);
  await mall.getByLabel("What would you like to read about?").fill("micropayments");
  await approveInPopup(mall, () => mall.getByRole("button", { name: /Answer and collect/ }).click());
  await mall.waitForSelector("body[data-earned]");
  await mall.goto(`${w.sellerUrl}/shop/item?url=${encodeURIComponent(w.catalog.article.requestUrl)}`);
  const downloading = mall.waitForEvent("download");
  await approveInPopup(mall, () => mall.getByRole("button", { name: /Buy and save/ }).click());
  const download = await downloading;
  t.is(download.suggestedFilename(), "hash-cash.html");
  const bytes = await readFile((await download.path())!, "utf8");
  t.is(bytes, "<h1>Hash cash</h1><p>Scrip is authenticated with keyed hashes only.</p>");

  // Reload the wallet: the balance and the history were kept in IndexedDB.
  await wallet.reload();
  await wallet.locator("#balance").waitFor();
  t.is(await balanceShown(wallet), 10n);
  const kinds = await wallet.locator("#history tbody tr td:nth-child(2)").allTextContents();
  t.deepEqual(kinds, ["bought", "earned", "bought", "earned", "registered"]);
  await audited(t, w, customer, 10n);
});

test("the popup closed right after S4 was sent: the next open of the wallet finishes the exchange", async (t) => {
  const w = await world(t);
  const { c, wallet, customer, mall } = await registeredWith50(t, w);

  // S4 reaches the center and executes; the popup dies before it sees S5.
  let s4Sent!: () => void;
  const s4 = new Promise<void>((r) => (s4Sent = r));
  await c.route("**/scripwire.v1.PaymentCenterService/Pay", async (route) => {
    await route.fetch();
    s4Sent();
    // never answered: the popup is closed below
  });
  await mall.goto(`${w.sellerUrl}/shop/item?url=${encodeURIComponent(w.catalog.article.requestUrl)}`);
  const [popup] = await Promise.all([mall.waitForEvent("popup"), mall.getByRole("button", { name: /Buy to read/ }).click()]);
  await popup.locator("#approve").click();
  await s4;
  await popup.close();
  await c.unroute("**/scripwire.v1.PaymentCenterService/Pay");
  await mall.locator("#status", { hasText: /closed before it answered/ }).waitFor();
  t.is(await w.center.ledger.liveScrip(customer, "KRW").then((s) => s?.value), 20n, "the center executed S4");

  // Opening the wallet again retransmits S4 with pCount + 1, gets the stored S5, and confirms (S6).
  await wallet.reload();
  await wallet.locator("#status", { hasText: /interrupted buy .* was finished/ }).waitFor();
  t.is(await balanceShown(wallet), 20n);
  t.is((await wallet.locator("#history tbody tr").first().locator("td").nth(1).textContent())!, "bought (recovered)");
  await audited(t, w, customer, 20n);
});

test("a second mall origin pays from the same wallet", async (t) => {
  const w = await world(t);
  const second: RunningSeller = await startSellerServer({ config: w.seller.seller.config, centerUrl: w.centerUrl });
  t.teardown(() => second.close(500));
  t.not(new URL(second.url).origin, new URL(w.sellerUrl).origin);
  const { c, wallet, customer, mall } = await registeredWith50(t, w);

  const other = await c.newPage();
  await other.goto(`${second.url}/shop/item?url=${encodeURIComponent(w.catalog.viewOnly.requestUrl)}`);
  const shown = await approveInPopup(other, () => other.getByRole("button", { name: /Buy to read/ }).click());
  t.regex(shown.whom, new RegExp(`asked by ${new URL(second.url).origin.replace(/\./g, "\\.")}`));
  t.is(shown.after, "40 KRW");
  await other.locator("#content", { hasText: "Nothing happened." }).waitFor();
  await wallet.reload();
  await wallet.locator("#balance").waitFor();
  t.is(await balanceShown(wallet), 40n);
  await audited(t, w, customer, 40n);
});

test("a page of another origin cannot read the wallet's storage, frame it, or receive its receipts", async (t) => {
  const w = await world(t);
  const evil: RunningSeller = await startSellerServer({ config: w.seller.seller.config, centerUrl: w.centerUrl });
  t.teardown(() => evil.close(500));
  const c = await context(t);
  const wallet = await c.newPage();
  await register(wallet, w);
  const customer = await customerOf(wallet);

  // Storage: the wallet's IndexedDB exists at the center's origin and nowhere else.
  const own = await wallet.evaluate(async () => (await indexedDB.databases()).map((d) => d.name));
  t.true(own.includes("scripwire-wallet"));
  const page = await c.newPage();
  await page.goto(`${evil.url}/shop/`);
  const seen = await page.evaluate(async () => (await indexedDB.databases()).map((d) => d.name));
  t.false(seen.includes("scripwire-wallet"), "another origin sees no wallet database");

  // Framing: the wallet refuses to be framed, so no page can overlay its Approve button.
  await page.evaluate((src) => {
    const f = document.createElement("iframe");
    f.src = src;
    document.body.append(f);
  }, `${w.centerUrl}/wallet/pay.html`);
  await page.waitForTimeout(500);
  const framed = page.frames().find((f) => f.url().includes("/wallet/pay.html"));
  t.is(framed ? await framed.locator("#wallet").count() : 0, 0, "the wallet did not render inside another site's frame");

  // Receipts: a mall asks for a payment, then its tab goes to another origin before the buyer approves.
  const mall = await c.newPage();
  await mall.goto(`${w.sellerUrl}/shop/earn/${w.quiz.itemId}`);
  await mall.getByLabel("hash").check();
  const [popup] = await Promise.all([mall.waitForEvent("popup"), mall.getByRole("button", { name: /Answer and collect/ }).click()]);
  await popup.locator("#approve").waitFor();
  await mall.goto(`${evil.url}/shop/`);
  await mall.evaluate(() => {
    (window as unknown as { got: unknown[] }).got = [];
    window.addEventListener("message", (e) => (window as unknown as { got: unknown[] }).got.push(e.data));
  });
  await popup.locator("#approve").click();
  await popup.locator("#status", { hasText: /Collected 50/ }).waitFor();
  await mall.waitForTimeout(300);
  t.deepEqual(await mall.evaluate(() => (window as unknown as { got: unknown[] }).got), [], "the receipt was not delivered to the other origin");
  await audited(t, w, customer, 50n);
});

test("export a backup: it opens as a CLI wallet file, and restoring it in an empty browser brings the wallet back", async (t) => {
  const w = await world(t);
  const { c, wallet, customer, mall } = await registeredWith50(t, w);
  await wallet.reload();
  await wallet.locator("#balance").waitFor();
  const [download] = await Promise.all([wallet.waitForEvent("download"), wallet.getByRole("button", { name: "Export backup" }).click()]);
  const path = (await download.path())!;

  const { FileWalletStore, Wallet } = await import("../src/wallet/index.js");
  const { copyFile } = await import("node:fs/promises");
  const file = `${w.dir}/backup.json`;
  await copyFile(path, file);
  const cli = await Wallet.open({ store: new FileWalletStore(file), recoverOnOpen: false });
  t.is(cli.balance().value, 50n, "the backup holds the live scrip");
  t.is(cli.identity!.customId.serialNumber, customer);
  await cli.close();

  const fresh = await context(t);
  const page = await fresh.newPage();
  await page.goto(`${w.centerUrl}/wallet/`);
  await page.getByLabel("Backup file", { exact: true }).setInputFiles(path);
  await page.locator("form#import").getByRole("button", { name: "Restore" }).click();
  await page.locator("#balance").waitFor();
  t.is(await balanceShown(page), 50n);
  // The restored wallet spends: its scrip is the live one.
  const other = await fresh.newPage();
  await other.goto(`${w.sellerUrl}/shop/item?url=${encodeURIComponent(w.catalog.viewOnly.requestUrl)}`);
  await approveInPopup(other, () => other.getByRole("button", { name: /Buy to read/ }).click());
  await other.locator("#content", { hasText: "Nothing happened." }).waitFor();
  await audited(t, w, customer, 40n);
});

test("renew and redeem from the wallet page", async (t) => {
  const w = await world(t);
  const { wallet, customer } = await registeredWith50(t, w);
  await wallet.reload();
  await wallet.locator("#balance").waitFor();
  const serialBefore = (await wallet.getByText(/scrip serial \d+/).textContent())!;
  await wallet.getByRole("button", { name: "Renew scrip" }).click();
  await wallet.locator("#status", { hasText: /^Renewed: 50 KRW under serial \d+/ }).waitFor();
  t.not((await wallet.getByText(/scrip serial \d+/).textContent())!, serialBefore, "a new serial");
  t.is(await balanceShown(wallet), 50n);

  // Bad input changes nothing; a redemption of everything pays out 50 (the world's threshold is 50).
  await wallet.getByLabel("Amount in KRW (0 = everything)").fill("12x");
  await wallet.getByLabel("Payout account").fill("KB 123-456");
  await wallet.locator("form#redeem").getByRole("button", { name: "Redeem" }).click();
  // The form's own constraint (a whole number) stops it before any message leaves.
  t.false(await wallet.getByLabel("Amount in KRW (0 = everything)").evaluate((e) => (e as HTMLInputElement).validity.valid));
  t.is(await balanceShown(wallet), 50n);
  t.is((await w.center.ledger.listPayouts(100)).filter((p) => p.account === "KB 123-456").length, 0);
  await wallet.getByLabel("Amount in KRW (0 = everything)").fill("0");
  await wallet.locator("form#redeem").getByRole("button", { name: "Redeem" }).click();
  await wallet.locator("#status", { hasText: /^Payout \S+: 50 KRW to KB 123-456/ }).waitFor();
  t.is(await balanceShown(wallet), 0n);
  const payouts = (await w.center.ledger.listPayouts(100)).filter((p) => p.account === "KB 123-456");
  t.is(payouts.length, 1);
  t.is(payouts[0]!.amount, 50n);
  await audited(t, w, customer, 0n);
});
