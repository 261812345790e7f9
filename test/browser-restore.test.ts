/**
 * The browser wallet's recovery code, restore and sync (issue 14) in real
 * headless Chromium against real servers: the code is shown once after
 * registration and again on request; a browser whose storage is gone (a new
 * context) restores from it and spends; a seller's refund reaches the
 * browser wallet through "Sync with the center".
 */
import type { ExecutionContext } from "ava";
import { createClient } from "@connectrpc/connect";
import type { Browser, BrowserContext, Page } from "playwright-core";
import { PaymentCenterService } from "../gen/scripwire/v1/center_pb.js";
import { createTransport } from "../src/client/transport.js";
import { sendRefund } from "../src/seller/refund-client.js";
import { Wallet, MemoryWalletStore } from "../src/wallet/index.js";
import { browserTest, launch } from "./helpers/browser.js";
import { startWorld, type World } from "./helpers/world.js";

const test = browserTest("browser-restore");
let browser: Browser;
test.before(async () => {
  browser = await launch();
});
test.after.always(async () => {
  await browser?.close();
});

async function context(t: ExecutionContext): Promise<BrowserContext> {
  const c = await browser.newContext();
  t.teardown(() => c.close());
  return c;
}

async function balanceShown(page: Page): Promise<bigint> {
  await page.locator("#balance").waitFor();
  return BigInt((await page.locator("#balance").getAttribute("data-value"))!);
}

test("recovery code shown once at registration and on request; restore in a fresh browser; a refund arrives by sync", async (t) => {
  const w: World = await startWorld();
  t.teardown(() => w.close());
  const first = await (await context(t)).newPage();
  await first.goto(`${w.centerUrl}/wallet/`);
  await first.getByLabel("Name").fill("Kim Browser");
  await first.getByRole("button", { name: "Register" }).click();
  await first.locator("#balance").waitFor();
  const code = (await first.locator("#recovery-code").textContent())!;
  t.regex(code, /^SW1(-[0-9A-Z]{5}){15}$/);
  await first.reload();
  await first.locator("#balance").waitFor();
  t.is(await first.locator("#recovery-code").count(), 0, "shown once: gone after a reload");
  await first.locator("#show-recovery").click();
  t.is(await first.locator("#recovery-code").textContent(), code, "shown again on request");

  // Value arrives outside the browser (the library wallet restored from the same code earns and buys).
  const other = await Wallet.open({ store: new MemoryWalletStore() });
  t.teardown(() => other.close());
  await other.restore(w.centerUrl, code);
  await other.earn(w.sellerUrl, w.quiz.itemId, w.quiz.answer);
  const paid = await other.buy(w.sellerUrl, w.catalog.article.requestUrl, "VIEW");
  t.is(paid.balance, 20n);

  // A fresh browser (no storage) restores from the code and can spend at once.
  const second = await (await context(t)).newPage();
  await second.goto(`${w.centerUrl}/wallet/`);
  await second.getByRole("textbox", { name: "Recovery code" }).fill(code.toLowerCase());
  await second.getByRole("button", { name: "Restore wallet" }).click();
  t.is(await balanceShown(second), 20n);

  // The seller refunds 12 of the 30 paid; the first browser (stale scrip) syncs and sees 32.
  await sendRefund(createClient(PaymentCenterService, createTransport(w.centerUrl)), {
    vendorId: w.vendorId,
    vendorSecret: w.vendorSecret,
    vendorKeyId: 1,
    tranId: paid.tranId,
    amount: 12n,
    reason: "late",
  });
  await first.locator("#sync").click();
  await first.locator("#status", { hasText: /Refunds in the scrip: 12 KRW/ }).waitFor();
  t.is(await balanceShown(first), 32n);
  await second.locator("#sync").click();
  await second.locator("#status", { hasText: /Balance 32 KRW/ }).waitFor();
  t.is(await balanceShown(second), 32n);
  const live = await w.center.ledger.liveScrip(other.identity!.customId.serialNumber, "KRW");
  t.is(live?.value, 32n);
  t.true((await w.center.ledger.audit()).ok);
});
