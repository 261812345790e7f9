/**
 * The HTTP side of the servers a browser sees, over real loopback HTTP/1.1:
 * CORS answers built from @connectrpc/connect's header lists for allowed
 * origins only, the wallet pages' anti-framing headers, and the mall's
 * pages and JSON API (bad input is a clear 4xx and changes nothing).
 */
import test from "ava";
import { cors } from "@connectrpc/connect";
import { parseCorsOrigins } from "../src/server/http-extras.js";
import { startWorld, type World } from "./helpers/world.js";

let w: World;
test.before(async () => {
  w = await startWorld();
});
test.after.always(async () => {
  await w?.close();
});

const preflight = (url: string, origin: string) =>
  fetch(`${url}/scripwire.v1.SellerService/GetCatalog`, { method: "OPTIONS", headers: { origin, "access-control-request-method": "POST", "access-control-request-headers": "content-type" } });

test("CORS: an allowed origin gets connect's method and header lists; another origin gets nothing", async (t) => {
  const allowed = new URL(w.centerUrl).origin;
  const ok = await preflight(w.sellerUrl, allowed);
  t.is(ok.status, 204);
  t.is(ok.headers.get("access-control-allow-origin"), allowed);
  t.is(ok.headers.get("access-control-allow-methods"), cors.allowedMethods.join(", "));
  t.is(ok.headers.get("access-control-allow-headers"), cors.allowedHeaders.join(", "));
  const call = await fetch(`${w.sellerUrl}/scripwire.v1.SellerService/GetCatalog`, { method: "POST", headers: { origin: allowed, "content-type": "application/json" }, body: "{}" });
  t.is(call.status, 200);
  t.is(call.headers.get("access-control-expose-headers"), cors.exposedHeaders.join(", "));

  const other = await preflight(w.sellerUrl, "http://evil.example");
  t.is(other.headers.get("access-control-allow-origin"), null);
  const otherCall = await fetch(`${w.sellerUrl}/scripwire.v1.SellerService/GetCatalog`, { method: "POST", headers: { origin: "http://evil.example", "content-type": "application/json" }, body: "{}" });
  t.is(otherCall.headers.get("access-control-allow-origin"), null, "the browser will not hand the answer to that page");
  // The center was started without --cors-origin: no cross-origin answers at all.
  t.is((await preflight(w.centerUrl, new URL(w.sellerUrl).origin)).headers.get("access-control-allow-origin"), null);
});

test("--cors-origin takes origins only", (t) => {
  t.deepEqual(parseCorsOrigins(["https://mall.example", "http://127.0.0.1:7200", "*"]), ["https://mall.example", "http://127.0.0.1:7200", "*"]);
  for (const bad of ["mall.example", "https://mall.example/shop", "ftp://mall.example", ""]) t.throws(() => parseCorsOrigins([bad]), { instanceOf: RangeError }, bad);
});

test("the wallet pages forbid framing and load script only from the center; the mall script is public", async (t) => {
  for (const path of ["/wallet/", "/wallet/pay.html"]) {
    const r = await fetch(`${w.centerUrl}${path}`);
    t.is(r.status, 200);
    t.regex(r.headers.get("content-security-policy")!, /frame-ancestors 'none'/);
    t.regex(r.headers.get("content-security-policy")!, /script-src 'self'/);
    t.is(r.headers.get("x-frame-options"), "DENY");
  }
  const js = await fetch(`${w.centerUrl}/wallet/scripwire-pay.js`);
  t.is(js.status, 200);
  t.is(js.headers.get("access-control-allow-origin"), "*");
  t.regex(await js.text(), /Scripwire/);
});

test("mall pages: catalog, item paywall, a quiz form, and PM2_2 for what is not sold", async (t) => {
  const home = await (await fetch(`${w.sellerUrl}/shop/`)).text();
  t.regex(home, /Hash cash, explained/);
  t.regex(home, /href="\/shop\/earn\/quiz-1"/);
  t.true(home.includes(`src="${new URL(w.centerUrl).origin}/wallet/scripwire-pay.js"`));
  const item = await (await fetch(`${w.sellerUrl}/shop/item?url=${encodeURIComponent("/articles/hash-cash")}`)).text();
  t.regex(item, /data-buy="VIEW"/);
  t.regex(item, /data-buy="SAVE"/);
  t.false(item.includes("keyed hashes only"), "the content is not on the page before payment");
  const quiz = await (await fetch(`${w.sellerUrl}/shop/earn/quiz-1`)).text();
  t.regex(quiz, /type="radio" name="answer"/);
  const missing = await fetch(`${w.sellerUrl}/shop/item?url=/nothing`);
  t.is(missing.status, 404);
  t.regex(await missing.text(), /Not for sale/);
});

test("mall API: bad input is a 4xx with a reason; a PM2_2 comes with its page; a forged receipt delivers nothing", async (t) => {
  const post = (path: string, body: unknown) => fetch(`${w.sellerUrl}${path}`, { method: "POST", headers: { "content-type": "application/json" }, body: typeof body === "string" ? body : JSON.stringify(body) });
  const notJson = await post("/shop/api/order", "{not json");
  t.is(notJson.status, 400);
  const badId = await post("/shop/api/order", { requestUrl: "/articles/hash-cash", method: "VIEW", customId: { secretId: 1, serialNumber: "-5" } });
  t.is(badId.status, 400);
  t.regex((await badId.json()).message, /customId/);
  const notSold = await post("/shop/api/order", { requestUrl: "/articles/today", method: "SAVE", customId: { secretId: 1, serialNumber: "7" } });
  t.is(notSold.status, 409);
  const refusal = await notSold.json();
  t.is(refusal.reason, "NOT_FOR_SALE");
  t.regex(refusal.document, /<h1>Not for sale<\/h1>/);
  const order = await post("/shop/api/order", { requestUrl: "/articles/hash-cash", method: "VIEW", customId: { secretId: 1, serialNumber: "7" } });
  t.is(order.status, 200);
  t.regex((await order.json()).offer, /^[A-Za-z0-9+/]+=*$/);
  const wrong = await post("/shop/api/permit", { item: "quiz-1", answer: "rsa", customId: { secretId: 1, serialNumber: "7" } });
  t.is(wrong.status, 409);
  t.is((await wrong.json()).reason, "ISSUE_REFUSED");
  const forged = await post("/shop/api/deliver", { receipt: "CgVtYWxsLTE=" });
  t.is(forged.status, 403);
  t.false((await forged.text()).includes("Hash cash"));
  const big = await post("/shop/api/permit", { item: "quiz-1", answer: "x".repeat(20_000), customId: { secretId: 1, serialNumber: "7" } });
  t.is(big.status, 400);
});

test("`scripwire demo --web` prints the wallet and mall URLs, serves them, and stops on SIGINT", async (t) => {
  const { spawn } = await import("node:child_process");
  const { fileURLToPath } = await import("node:url");
  const root = fileURLToPath(new URL("..", import.meta.url));
  const child = spawn(process.execPath, ["--import=tsx", "src/cli/main.ts", "demo", "--web"], { cwd: root, stdio: ["ignore", "pipe", "pipe"] });
  t.teardown(() => void child.kill("SIGKILL"));
  let out = "";
  const urls = await new Promise<{ wallet: string; shop: string }>((resolve, reject) => {
    child.stdout.on("data", (d) => {
      out += d;
      const wallet = /register: +(\S+\/wallet\/)/.exec(out)?.[1];
      const shop = /pay at: +(\S+\/shop\/)/.exec(out)?.[1];
      if (wallet && shop && out.includes("Serving until Ctrl-C")) resolve({ wallet, shop });
    });
    child.on("exit", (code) => reject(new Error(`demo exited ${code}: ${out}`)));
  });
  t.regex(await (await fetch(urls.wallet)).text(), /Scripwire wallet/);
  t.regex(await (await fetch(urls.shop)).text(), /Why hash-based e-cash/);
  const exited = new Promise<number | null>((r) => child.on("exit", (code) => r(code)));
  child.kill("SIGINT");
  t.is(await exited, 0);
});
