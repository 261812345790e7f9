/**
 * The gateway's browser flow in real headless Chromium: an HTML request to a
 * priced path gets the paywall page (PM2_1 as a page); its button opens the
 * browser wallet popup at the center's origin, which pays S3..S6; the page
 * trades the receipt for an HttpOnly, SameSite route cookie and reloads into
 * the content. The whole route is then open without paying again.
 */
import type { ExecutionContext } from "ava";
import type { Page } from "playwright-core";
import type { Browser } from "playwright-core";
import { startGateway } from "../src/gateway/gateway.js";
import { browserTest, launch } from "./helpers/browser.js";
import { createVendor, gatewayConfig, startUpstream } from "./helpers/gateway.js";
import { startWorld, type World } from "./helpers/world.js";

const test = browserTest("gateway-browser");
let browser: Browser;
test.before(async () => {
  browser = await launch();
});
test.after.always(async () => {
  await browser?.close();
});

async function approveInPopup(page: Page, click: () => Promise<void>): Promise<{ what: string; price: string; whom: string }> {
  const [popup] = await Promise.all([page.waitForEvent("popup"), click()]);
  await popup.locator("#approve").waitFor();
  const text = async (id: string) => (await popup.locator(id).textContent()) ?? "";
  const shown = { what: await text("#offer-what"), price: await text("#offer-price"), whom: await text("#offer-whom") };
  await Promise.all([popup.waitForEvent("close"), popup.locator("#approve").click()]);
  return shown;
}

async function world(t: ExecutionContext): Promise<World> {
  const w = await startWorld();
  t.teardown(() => w.close());
  return w;
}

test("paywall page -> wallet popup -> HttpOnly route cookie -> content; the route stays open without paying again", async (t) => {
  const w = await world(t);
  const vendor = await createVendor(w, "gw-browser");
  const up = await startUpstream();
  t.teardown(() => up.close());
  const gw = await startGateway({ config: gatewayConfig(up.url, vendor, { centerUrl: w.centerUrl }) });
  t.teardown(() => gw.close(200));

  const c = await browser.newContext();
  t.teardown(() => c.close());
  // A browser wallet at the center with the quiz's 50 KRW, earned on the world's mall.
  const wallet = await c.newPage();
  await wallet.goto(`${w.centerUrl}/wallet/`);
  await wallet.getByLabel("Name").fill("Kim Browser");
  await wallet.getByRole("button", { name: "Register" }).click();
  await wallet.locator("#balance").waitFor();
  const mall = await c.newPage();
  await mall.goto(`${w.sellerUrl}/shop/earn/${w.quiz.itemId}`);
  await mall.getByLabel("hash").check();
  await approveInPopup(mall, () => mall.getByRole("button", { name: /Answer and collect/ }).click());
  await mall.waitForSelector("body[data-earned]");

  const page = await c.newPage();
  const first = await page.goto(`${gw.url}/articles/a`);
  t.is(first!.status(), 402);
  t.regex(first!.headers()["www-authenticate"] ?? "", /^Scrip /);
  await page.waitForSelector("body[data-scrip-ready]");
  t.regex((await page.locator("#scrip-payment-information").textContent())!, /3 KRW/);
  t.is(up.log.length, 0);

  const loaded = page.waitForResponse((r) => r.url() === `${gw.url}/articles/a` && r.status() === 200);
  const shown = await approveInPopup(page, () => page.locator("#scrip-pay").click());
  t.is(shown.price, "3 KRW");
  t.regex(shown.what, /\/articles\/a/);
  await loaded;
  await page.waitForLoadState();
  t.is(JSON.parse((await page.locator("body").textContent())!).path, "/articles/a");

  const cookies = await c.cookies(gw.url + "/articles/a");
  const cookie = cookies.find((k) => k.name === "scrip_articles");
  t.truthy(cookie);
  t.true(cookie!.httpOnly);
  t.is(cookie!.sameSite, "Lax");
  t.is(cookie!.path, "/articles");
  t.false(await page.evaluate(() => document.cookie.includes("scrip_")), "page scripts cannot read the receipt cookie");

  // Another page of the route: no 402, no payment; a page of another route still asks.
  const second = await page.goto(`${gw.url}/articles/b`);
  t.is(second!.status(), 200);
  const other = await page.goto(`${gw.url}/premium/x`);
  t.is(other!.status(), 402);

  await wallet.reload();
  await wallet.locator("#balance").waitFor();
  t.is(await wallet.locator("#balance").getAttribute("data-value"), "47");
  for (const l of up.log) {
    t.is(l.headers.authorization, undefined);
    t.notRegex(l.headers.cookie ?? "", /scrip_/);
    t.is(l.headers["scripwire-route"], "articles");
  }
  t.deepEqual(
    up.log.map((l) => l.url),
    ["/articles/a", "/articles/b"],
  );
  const audit = await w.center.ledger.audit();
  t.true(audit.ok, audit.problems.join("\n"));
});
