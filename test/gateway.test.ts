/**
 * The HTTP 402 gateway end to end: a real node:http upstream, the gateway on
 * loopback, a real center and the ordinary wallet paying S1..S6 (SellerService
 * on the gateway's port). Every refusal must come back as a fresh 402 with a
 * machine-readable reason, and nothing unpaid may reach a priced path of the
 * upstream.
 */
import test, { type ExecutionContext } from "ava";
import { fromBinary, toBinary } from "@bufbuild/protobuf";
import { spawn, spawnSync } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import http from "node:http";
import http2 from "node:http2";
import https from "node:https";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { ReceiptSchema } from "../gen/scripwire/v1/types_pb.js";
import { parseChallenge } from "../src/gateway/challenge.js";
import { startGateway, type RunningGateway } from "../src/gateway/gateway.js";
import { FileWalletStore, MemoryWalletStore, RefusedError, Wallet } from "../src/wallet/index.js";
import { BIG_BYTES, createVendor, fundedWallet, gatewayConfig, payChallenge, raw, receiptToken, startUpstream, type Upstream } from "./helpers/gateway.js";
import { startWorld, type World } from "./helpers/world.js";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");

let world: World;
let vendor: { vendorId: string; keys: Record<string, string> };
test.before(async () => {
  world = await startWorld();
  vendor = await createVendor(world, "gw-1");
});
test.after.always(async () => {
  await world?.close();
});

interface Rig {
  up: Upstream;
  gw: RunningGateway;
  wallet: Wallet;
  /** Offset added to the gateway's clock, ms. */
  skew: { ms: number };
}

async function rig(t: ExecutionContext, extra: Record<string, unknown> = {}, routes: Record<string, Record<string, unknown>> = {}): Promise<Rig> {
  const up = await startUpstream();
  const skew = { ms: 0 };
  const gw = await startGateway({ config: gatewayConfig(up.url, vendor, extra, routes), clock: () => Date.now() + skew.ms });
  const wallet = await fundedWallet(world);
  t.teardown(async () => {
    await wallet.close();
    await gw.close(200);
    await up.close();
  });
  return { up, gw, wallet, skew };
}

/** Pays for `path` at the gateway via its 402 challenge; returns the Authorization value. */
async function pay(r: Rig, path: string): Promise<{ auth: string; token: string }> {
  const res = await fetch(r.gw.url + path);
  if (res.status !== 402) throw new Error(`expected 402 for ${path}, got ${res.status}`);
  await res.arrayBuffer();
  const receipt = await payChallenge(r.wallet, res.headers.get("www-authenticate"));
  const token = receiptToken(receipt);
  return { auth: `Scrip ${token}`, token };
}

function upstreamSaw(r: Rig, pathPrefix: string) {
  return r.up.log.filter((l) => l.url.toLowerCase().startsWith(pathPrefix));
}

test("unpaid: 402 with a Scrip challenge, no-store, exposed to browsers; nothing reaches the upstream", async (t) => {
  const r = await rig(t);
  const res = await fetch(r.gw.url + "/articles/a?x=1");
  t.is(res.status, 402);
  t.is(res.headers.get("cache-control"), "no-store");
  t.regex(res.headers.get("access-control-expose-headers") ?? "", /WWW-Authenticate/i);
  const c = parseChallenge(res.headers.get("www-authenticate"));
  t.truthy(c);
  t.is(c!.vendor, "gw-1");
  t.is(c!.seller, r.gw.url);
  t.is(c!.item, `${r.gw.url}/articles/a`);
  t.is(c!.price, 3n);
  t.is(c!.currency, "KRW");
  t.is(c!.method, "VIEW");
  t.is(c!.route, "articles");
  t.is(c!.lifetime, 600);
  t.is(c!.reason, undefined);
  const body = (await res.json()) as { reason: string };
  t.is(body.reason, "PAYMENT_REQUIRED");
  t.is(r.up.log.length, 0);
});

test("pay and fetch: the credential is stripped, the route and TranID are passed, paid content is private", async (t) => {
  const r = await rig(t);
  const before = r.wallet.balance().value;
  const { auth } = await pay(r, "/articles/a");
  t.is(r.wallet.balance().value, before - 3n);
  const res = await fetch(r.gw.url + "/articles/a?q=2", { headers: { authorization: auth, cookie: "theme=dark; scrip_other=zzz", "scripwire-route": "forged" } });
  t.is(res.status, 200);
  t.deepEqual(await res.json(), { path: "/articles/a?q=2", method: "GET", range: null });
  t.regex(res.headers.get("cache-control") ?? "", /^private\b/);
  t.notRegex(res.headers.get("cache-control") ?? "", /public/);
  const seen = r.up.log.at(-1)!;
  t.is(seen.headers.authorization, undefined, "the Scrip credential never reaches the upstream");
  t.is(seen.headers.cookie, "theme=dark", "scrip_ cookies are removed, others kept");
  t.is(seen.headers["scripwire-route"], "articles");
  t.truthy(seen.headers["scripwire-tran-id"]);
});

test("the existing wallet flow gets the content by S7 from the gateway", async (t) => {
  const r = await rig(t);
  const res = await fetch(r.gw.url + "/premium/report");
  const c = parseChallenge(res.headers.get("www-authenticate"))!;
  const bought = await r.wallet.buy(c.seller, c.item, c.method, { maxPrice: c.price });
  t.is(bought.deliveryError, undefined);
  t.is(JSON.parse(new TextDecoder().decode(bought.delivery!.content)).path, "/premium/report");
  t.is(upstreamSaw(r, "/premium/").at(-1)!.headers["scripwire-route"], "premium");
});

test("a receipt is reused within its lifetime across the route, HEAD and Range included; no second payment", async (t) => {
  const r = await rig(t);
  const { auth } = await pay(r, "/articles/a");
  const after = r.wallet.balance().value;
  for (const p of ["/articles/a", "/articles/b", "/articles/deep/c", "/ARTICLES/a/"]) {
    const res = await fetch(r.gw.url + p, { headers: { authorization: auth } });
    t.is(res.status, 200, p);
    await res.arrayBuffer();
  }
  const head = await fetch(r.gw.url + "/articles/a", { method: "HEAD", headers: { authorization: auth } });
  t.is(head.status, 200);
  const ranged = await fetch(r.gw.url + "/articles/a", { headers: { authorization: auth, range: "bytes=0-3" } });
  t.is(((await ranged.json()) as { range: string }).range, "bytes=0-3");
  t.is(r.wallet.balance().value, after);
});

async function refused(t: ExecutionContext, r: Rig, path: string, auth: string, reason: string) {
  const n = r.up.log.length;
  const res = await fetch(r.gw.url + path, { headers: { authorization: auth } });
  t.is(res.status, 402, `${path}: ${reason}`);
  t.is(parseChallenge(res.headers.get("www-authenticate"))?.reason, reason);
  t.is(res.headers.get("scripwire-error-reason"), reason);
  t.is(((await res.json()) as { reason: string }).reason, reason);
  t.is(r.up.log.length, n, "a refused credential reaches nothing upstream");
}

test("refused: another route, another price, another vendor, a tampered byte, expired, malformed", async (t) => {
  const r = await rig(t);
  const { auth, token } = await pay(r, "/articles/a");
  await refused(t, r, "/premium/a", auth, "WRONG_ROUTE");

  // The same vendor raised the price of the route: an older, cheaper receipt no longer opens it.
  const dearer = await startGateway({ config: gatewayConfig(r.up.url, vendor, {}, { articles: { price: "4" } }) });
  t.teardown(() => dearer.close(200));
  await refused(t, { ...r, gw: dearer }, "/articles/a", auth, "PRICE_MISMATCH");

  // A receipt from another seller (the world's mall) at the same center.
  const other = await r.wallet.buy(world.sellerUrl, world.catalog.viewOnly.requestUrl, "VIEW");
  await refused(t, r, "/articles/a", `Scrip ${receiptToken(other.receipt)}`, "WRONG_VENDOR");

  const rec = fromBinary(ReceiptSchema, Buffer.from(token, "base64url"));
  const macFlip = fromBinary(ReceiptSchema, toBinary(ReceiptSchema, rec));
  macFlip.mac[7]! ^= 1;
  await refused(t, r, "/articles/a", `Scrip ${receiptToken(macFlip)}`, "BAD_MAC");
  const tranFlip = fromBinary(ReceiptSchema, toBinary(ReceiptSchema, rec));
  tranFlip.tranId = tranFlip.tranId.slice(0, -1) + (tranFlip.tranId.endsWith("0") ? "1" : "0");
  await refused(t, r, "/articles/a", `Scrip ${receiptToken(tranFlip)}`, "BAD_MAC");
  const paidFlip = fromBinary(ReceiptSchema, toBinary(ReceiptSchema, rec));
  paidFlip.paidAtUnix += 1n;
  await refused(t, r, "/articles/a", `Scrip ${receiptToken(paidFlip)}`, "BAD_MAC");
  // Every single-byte change of the encoded receipt is refused, whatever it hits.
  const bytes = toBinary(ReceiptSchema, rec);
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes.slice();
    b[i]! ^= 0x10;
    const res = await fetch(r.gw.url + "/articles/a", { headers: { authorization: `Scrip ${Buffer.from(b).toString("base64url")}` } });
    await res.arrayBuffer();
    t.is(res.status, 402, `byte ${i} flipped`);
  }
  await refused(t, r, "/articles/a", "Scrip not-a-receipt!", "MALFORMED_CREDENTIAL");
  await refused(t, r, "/articles/a", "Scrip", "MALFORMED_CREDENTIAL");

  r.skew.ms = 601_000;
  await refused(t, r, "/articles/a", auth, "EXPIRED");
  r.skew.ms = -400_000;
  await refused(t, r, "/articles/a", auth, "NOT_YET_VALID");
  r.skew.ms = 0;
  const ok = await fetch(r.gw.url + "/articles/a", { headers: { authorization: auth } });
  t.is(ok.status, 200, "and still good inside its lifetime");
  t.false(upstreamSaw(r, "/premium/").length > 0);
});

test("upstream 500 is a 502 (never 402) and the same receipt then succeeds without paying again", async (t) => {
  const r = await rig(t);
  const { auth } = await pay(r, "/flaky/x");
  const balance = r.wallet.balance().value;
  r.up.failNext = 1;
  const bad = await fetch(r.gw.url + "/flaky/x", { headers: { authorization: auth } });
  t.is(bad.status, 502);
  t.is(((await bad.json()) as { reason: string }).reason, "UPSTREAM_FAILED");
  const good = await fetch(r.gw.url + "/flaky/x", { headers: { authorization: auth } });
  t.is(good.status, 200);
  t.is(((await good.json()) as { path: string }).path, "/flaky/x");
  t.is(r.wallet.balance().value, balance);
});

test("upstream down: 502; upstream too slow: 504; health reports it", async (t) => {
  const r = await rig(t);
  const { auth } = await pay(r, "/articles/a");
  const h1 = await fetch(r.gw.url + "/.scripwire/health");
  t.is(h1.status, 200);
  t.like(await h1.json(), { status: "SERVING", upstream: "reachable" });
  await r.up.close();
  const down = await fetch(r.gw.url + "/articles/a", { headers: { authorization: auth } });
  t.is(down.status, 502);
  await down.arrayBuffer();
  const h2 = await fetch(r.gw.url + "/.scripwire/health");
  t.is(h2.status, 503);
  t.like(await h2.json(), { upstream: "unreachable" });

  // A server that accepts and never answers.
  const silent = http.createServer(() => {});
  await new Promise<void>((ok) => silent.listen(0, "127.0.0.1", ok));
  t.teardown(() => {
    silent.closeAllConnections();
    silent.close();
  });
  const slow = await startGateway({ config: gatewayConfig(`http://127.0.0.1:${(silent.address() as { port: number }).port}`, vendor, { upstreamTimeoutMs: 300 }) });
  t.teardown(() => slow.close(200));
  const timedOut = await fetch(slow.url + "/articles/a", { headers: { authorization: auth } });
  t.is(timedOut.status, 504);
  t.is(((await timedOut.json()) as { reason: string }).reason, "UPSTREAM_TIMEOUT");
});

test("a 100 MiB upstream body is streamed: the gateway holds a bounded amount while the client is not reading", async (t) => {
  const r = await rig(t);
  const { auth } = await pay(r, "/big/file.bin");
  const u = new URL(r.gw.url);
  let received = 0;
  let stalledAt = -1;
  await new Promise<void>((resolve, reject) => {
    const req = http.get({ host: u.hostname, port: u.port, path: "/big/file.bin", headers: { authorization: auth }, agent: false }, (res) => {
      t.is(res.statusCode, 200);
      t.is(res.headers["content-disposition"], 'attachment; filename="file.bin"', "a SAVE route is delivered as a file");
      res.pause();
      // Wait (reading nothing) until the upstream is blocked by backpressure.
      const poll = setInterval(() => {
        if (r.up.big.blocked) {
          clearInterval(poll);
          stalledAt = r.up.big.written;
          res.on("data", (c: Buffer) => (received += c.length));
          res.on("end", resolve);
          res.resume();
        }
      }, 20);
      res.on("error", reject);
    });
    req.on("error", reject);
  });
  t.is(received, BIG_BYTES);
  t.log(`upstream stalled after ${(stalledAt / 1048576).toFixed(1)} MiB written while the client read nothing`);
  t.true(stalledAt > 0 && stalledAt < 32 * 1024 * 1024, `bounded: ${stalledAt} bytes in flight at most`);
});

test("path tricks, methods and hosts never reach a priced path unpaid", async (t) => {
  const r = await rig(t);
  const base = r.gw.url;
  const cases: [string, string, Record<string, string>?][] = [
    ["GET", "/ARTICLES/a"],
    ["GET", "/Articles/a/"],
    ["GET", "/articles/a/"],
    ["GET", "/articles//a"],
    ["GET", "//articles/a"],
    ["GET", "/./articles/a"],
    ["GET", "/x/../articles/a"],
    ["GET", "/free/../articles/a"],
    ["GET", "/free/%2e%2e/articles/a"],
    ["GET", "/free/%2E%2E/articles/a"],
    ["GET", "/free/.%2e/articles/a"],
    ["GET", "/%61rticles/a"],
    ["GET", "/articles%2fa"],
    ["GET", "/free%2f..%2farticles/a"],
    ["GET", "/free/..%5carticles/a"],
    ["GET", "/free\\..\\articles/a"],
    ["GET", "/articles;x=1/a"],
    ["GET", "/articles/a%00"],
    ["GET", "/free/%252e%252e/articles/a"],
    ["GET", "/../articles/a"],
    ["GET", "/articles/index.html/../a"],
    ["HEAD", "/articles/a"],
    ["GET", "/articles/a", { range: "bytes=0-10" }],
    ["POST", "/articles/a"],
    ["PUT", "/articles/a"],
    ["DELETE", "/articles/a"],
    ["OPTIONS", "/articles/a"],
    ["PATCH", "/articles/a"],
    ["GET", `http://127.0.0.1/articles/a`],
    ["GET", "/", { host: "PAID.EXAMPLE." }],
    ["GET", "/anything", { host: "paid.example:80" }],
    ["GET", "/articles/a", { authorization: "Basic dXNlcjpwYXNz" }],
    ["GET", "/articles/a", { cookie: "scrip_articles=garbage" }],
    ["GET", "/articles/a", { cookie: "scrip_premium=garbage" }],
    ["GET", "/.scripwire/../articles/a"],
  ];
  for (const [method, path, headers] of cases) {
    const res = await raw(base, method, path, headers);
    t.true([400, 402, 404, 405].includes(res.status), `${method} ${path} ${JSON.stringify(headers ?? {})} -> ${res.status}`);
  }
  t.deepEqual(r.up.log, [], "the upstream saw nothing");

  // A free page redirecting (with the upstream's own absolute URL) to a priced one: the client is sent back through the gateway.
  const red = await raw(base, "GET", "/free/go");
  t.is(red.status, 302);
  t.is(red.headers.location, "/articles/a", "the upstream's address is not revealed");
  const followed = await fetch(base + "/free/go");
  t.is(followed.status, 402);
  t.deepEqual(
    r.up.log.map((l) => l.url),
    ["/free/go", "/free/go"],
  );
  // The free page itself and a free path inside a priced route are forwarded.
  t.is((await raw(base, "GET", "/articles/index.html")).status, 200);
  t.is((await raw(base, "GET", "/Articles/Index.html/")).status, 200);
  t.is(r.up.log.at(-1)!.url, "/Articles/Index.html/", "the canonical path is what goes upstream");
});

test("browsers: an HTML paywall page, and the receipt traded for an HttpOnly route cookie", async (t) => {
  const r = await rig(t, { centerUrl: world.centerUrl });
  const page = await fetch(r.gw.url + "/articles/a", { headers: { accept: "text/html,application/xhtml+xml" } });
  t.is(page.status, 402);
  t.regex(page.headers.get("content-type")!, /text\/html/);
  const html = await page.text();
  t.regex(html, /3 KRW/);
  t.regex(html, /id="scrip-challenge"/);
  t.regex(html, /\/\.scripwire\/paywall\.js/);
  t.is(parseChallenge(page.headers.get("www-authenticate"))?.center, world.centerUrl);

  const { token } = await pay(r, "/articles/a");
  const foreign = await fetch(r.gw.url + "/.scripwire/session", { method: "POST", body: token, headers: { origin: "https://evil.example" } });
  t.is(foreign.status, 403);
  const bad = await fetch(r.gw.url + "/.scripwire/session", { method: "POST", body: token.slice(0, -2) + "AA" });
  t.is(bad.status, 400);
  const s = await fetch(r.gw.url + "/.scripwire/session", { method: "POST", body: token, headers: { origin: r.gw.url } });
  t.is(s.status, 200);
  const cookie = s.headers.get("set-cookie")!;
  t.regex(cookie, /^scrip_articles=/);
  t.regex(cookie, /; Path=\/articles;/);
  t.regex(cookie, /HttpOnly/);
  t.regex(cookie, /SameSite=Lax/);
  const maxAge = Number(/Max-Age=(\d+)/.exec(cookie)![1]);
  t.true(maxAge > 590 && maxAge <= 600);
  const pair = cookie.split(";")[0]!;
  const withCookie = await fetch(r.gw.url + "/articles/b", { headers: { cookie: `${pair}; theme=dark` } });
  t.is(withCookie.status, 200);
  t.is(r.up.log.at(-1)!.headers.cookie, "theme=dark");
  const elsewhere = await fetch(r.gw.url + "/premium/b", { headers: { cookie: pair } });
  t.is(elsewhere.status, 402, "the cookie opens its own route only");
  r.skew.ms = 700_000;
  const expired = await fetch(r.gw.url + "/articles/b", { headers: { cookie: pair } });
  t.is(expired.status, 402);
  t.regex(expired.headers.get("set-cookie") ?? "", /scrip_articles=; Path=\/articles; Max-Age=0/, "an expired cookie is cleared");
});

test("per-route rate limits: 429 with Retry-After, other routes unaffected", async (t) => {
  const r = await rig(t, {}, { premium: { rateLimit: { perSecond: 0.01, burst: 2 } } });
  t.is((await raw(r.gw.url, "GET", "/premium/a")).status, 402);
  t.is((await raw(r.gw.url, "GET", "/premium/a")).status, 402);
  const limited = await raw(r.gw.url, "GET", "/premium/a");
  t.is(limited.status, 429);
  t.truthy(limited.headers["retry-after"]);
  t.is((await raw(r.gw.url, "GET", "/articles/a")).status, 402);
});

test("metrics count outcomes and refusal reasons", async (t) => {
  const r = await rig(t, { metricsToken: "m".repeat(20) });
  await raw(r.gw.url, "GET", "/articles/a");
  await raw(r.gw.url, "GET", "/articles/a", { authorization: "Scrip AAAA" });
  t.is((await raw(r.gw.url, "GET", "/.scripwire/metrics")).status, 401);
  const m = await raw(r.gw.url, "GET", "/.scripwire/metrics", { authorization: `Bearer ${"m".repeat(20)}` });
  t.is(m.status, 200);
  t.regex(m.body, /scripwire_gateway_requests_total\{route="articles",outcome="challenged"\} 1/);
  t.regex(m.body, /scripwire_gateway_credential_refusals_total\{route="articles",reason="MALFORMED_CREDENTIAL"\} 1/);
});

test("wallet.fetch: pays once within maxPrice, then reuses the receipt for the URL and the route", async (t) => {
  const r = await rig(t);
  const start = r.wallet.balance().value;
  const a = await r.wallet.fetch(r.gw.url + "/articles/a", { maxPrice: 5n });
  t.is(a.status, 200);
  t.like(a.scrip, { paid: true, reused: false, price: 3n });
  t.is(((await a.json()) as { path: string }).path, "/articles/a");
  t.is(r.wallet.balance().value, start - 3n);
  const again = await r.wallet.fetch(r.gw.url + "/articles/a", { maxPrice: 5n });
  t.like(again.scrip, { paid: false, reused: true });
  t.is(again.status, 200);
  await again.arrayBuffer();
  const sibling = await r.wallet.fetch(r.gw.url + "/articles/other?x=1", { maxPrice: 5n });
  t.like(sibling.scrip, { paid: false, reused: true });
  t.is(((await sibling.json()) as { path: string }).path, "/articles/other?x=1");
  t.is(r.wallet.balance().value, start - 3n, "one payment for the route");
  // A free path: nothing to pay, nothing presented.
  const free = await r.wallet.fetch(r.gw.url + "/free/page", { maxPrice: 0n });
  t.like(free.scrip, { paid: false, reused: false });
  t.is(free.status, 200);
  await free.arrayBuffer();
});

test("wallet.fetch: above maxPrice refuses before paying; a 502 is returned and the retry is free", async (t) => {
  const r = await rig(t);
  const start = r.wallet.balance().value;
  const n = r.up.log.length;
  const e = await t.throwsAsync(r.wallet.fetch(r.gw.url + "/premium/x", { maxPrice: 4n }), { instanceOf: RefusedError });
  t.is(e!.reason, "PRICE_TOO_HIGH");
  t.is(r.wallet.balance().value, start);
  t.is(r.up.log.length, n);
  await t.throwsAsync(r.wallet.fetch(r.gw.url + "/premium/x", {} as never), { instanceOf: TypeError });

  r.up.failNext = 1;
  const first = await r.wallet.fetch(r.gw.url + "/flaky/y", { maxPrice: 2n });
  t.true(first.scrip.paid);
  t.is(first.status, 502, "paid, then the upstream failed: a 502, not a 402");
  await first.arrayBuffer();
  t.is(r.wallet.balance().value, start - 2n);
  r.up.failNext = 1;
  const failed = await r.wallet.fetch(r.gw.url + "/flaky/y", { maxPrice: 2n });
  t.is(failed.status, 502);
  t.like(failed.scrip, { paid: false, reused: true });
  await failed.arrayBuffer();
  const retried = await r.wallet.fetch(r.gw.url + "/flaky/y", { maxPrice: 2n });
  t.is(retried.status, 200);
  t.like(retried.scrip, { paid: false, reused: true });
  await retried.arrayBuffer();
  t.is(r.up.log.filter((l) => l.url === "/flaky/y").length, 3, "no S7 fetch: the content came over HTTP only");
  t.is(r.wallet.balance().value, start - 2n);
});

function spawnCli(args: string[], cwd: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(ROOT, "bin", "scripwire.js"), ...args], { cwd, env: { ...process.env, SCRIPWIRE_LOG: "silent" }, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

test("scripwire wallet fetch: pays, writes -o, and a second run (a new process) reuses the stored receipt", async (t) => {
  const r = await rig(t);
  const dir = await mkdtemp(join(tmpdir(), "scripwire-gwcli-"));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const walletFile = join(dir, "w.json");
  const w = await Wallet.open({ store: new FileWalletStore(walletFile) });
  await w.register(world.centerUrl);
  await w.earn(world.sellerUrl, world.quiz.itemId, world.quiz.answer);
  await w.close();
  const url = r.gw.url + "/articles/cli";
  const tooDear = await spawnCli(["wallet", "fetch", url, "--max-price", "2", "--wallet", walletFile], dir);
  t.is(tooDear.code, 3, tooDear.stderr);
  t.regex(tooDear.stderr, /PRICE_TOO_HIGH/);
  const one = await spawnCli(["wallet", "fetch", url, "--max-price", "3", "-o", "out.json", "--wallet", walletFile, "--json"], dir);
  t.is(one.code, 0, one.stderr);
  const j1 = JSON.parse(one.stdout);
  t.like(j1, { status: 200, paid: true, price: "3", savedTo: "out.json", balance: "47" });
  t.is(JSON.parse(await readFile(join(dir, "out.json"), "utf8")).path, "/articles/cli");
  const two = await spawnCli(["wallet", "fetch", url, "--max-price", "3", "--wallet", walletFile], dir);
  t.is(two.code, 0, two.stderr);
  t.is(JSON.parse(two.stdout).path, "/articles/cli");
  t.regex(two.stderr, /reused the receipt/);
  t.regex(two.stderr, /balance 47/);
});

test("HTTP/2 clients (h2c on the same port) get the same 402 and the same paid content", async (t) => {
  const r = await rig(t);
  const { auth } = await pay(r, "/articles/h2");
  const session = http2.connect(r.gw.url);
  t.teardown(() => session.close());
  const get = (headers: Record<string, string>) =>
    new Promise<{ status: number; headers: http2.IncomingHttpHeaders; body: string }>((resolve, reject) => {
      const s = session.request({ ":path": "/articles/h2", ...headers });
      let body = "";
      let h: http2.IncomingHttpHeaders = {};
      s.on("response", (x) => (h = x));
      s.on("data", (c: Buffer) => (body += c));
      s.on("end", () => resolve({ status: Number(h[":status"]), headers: h, body }));
      s.on("error", reject);
      s.end();
    });
  const unpaid = await get({});
  t.is(unpaid.status, 402);
  t.is(parseChallenge(String(unpaid.headers["www-authenticate"]))?.route, "articles");
  const paid = await get({ authorization: auth });
  t.is(paid.status, 200);
  t.is(JSON.parse(paid.body).path, "/articles/h2");
  t.is(r.up.log.at(-1)!.headers.authorization, undefined);
});

test("unmatched: 'deny' answers 404 without the upstream; the gateway's SellerService refuses what it does not sell", async (t) => {
  const r = await rig(t, { unmatched: "deny" });
  const res = await raw(r.gw.url, "GET", "/elsewhere");
  t.is(res.status, 404);
  t.is(JSON.parse(res.body).reason, "NOT_ROUTED");
  t.is((await raw(r.gw.url, "GET", "/.scripwire/anything")).status, 404);
  t.deepEqual(r.up.log, []);
  // S1 for a free path, a non-canonical item and another delivery method: PM2_2, no offer signed.
  for (const [item, method] of [
    [`${r.gw.url}/free/x`, "VIEW"],
    [`${r.gw.url}/articles/../articles/a`, "VIEW"],
    [`${r.gw.url}/articles/a`, "SAVE"],
  ] as const) {
    const e = await t.throwsAsync(r.wallet.buy(r.gw.url, item, method), { instanceOf: RefusedError });
    t.is(e!.cmdType, "PM2_2", item);
  }
  const earn = await t.throwsAsync(r.wallet.earn(r.gw.url, "anything", "x"), { instanceOf: RefusedError });
  t.is(earn!.reason, "ISSUE_REFUSED");
});

test("CORS: a configured origin's page can read the challenge and send the credential; preflights never reach the upstream", async (t) => {
  const r = await rig(t, { cors: ["https://app.example"] });
  const pre = await raw(r.gw.url, "OPTIONS", "/articles/a", { origin: "https://app.example", "access-control-request-method": "GET", "access-control-request-headers": "authorization" });
  t.is(pre.status, 204);
  t.is(pre.headers["access-control-allow-origin"], "https://app.example");
  t.regex(String(pre.headers["access-control-allow-headers"]), /Authorization/);
  const unpaid = await raw(r.gw.url, "GET", "/articles/a", { origin: "https://app.example" });
  t.is(unpaid.status, 402);
  t.is(unpaid.headers["access-control-allow-origin"], "https://app.example");
  t.regex(String(unpaid.headers["access-control-expose-headers"]), /WWW-Authenticate/);
  t.is(unpaid.headers.vary, "Accept, Authorization, Cookie, Origin");
  const stranger = await raw(r.gw.url, "GET", "/articles/a", { origin: "https://evil.example" });
  t.is(stranger.headers["access-control-allow-origin"], undefined);
  t.deepEqual(r.up.log, []);
  const { auth } = await pay(r, "/articles/a");
  const paid = await raw(r.gw.url, "GET", "/articles/a", { origin: "https://app.example", authorization: auth });
  t.is(paid.status, 200);
  t.is(paid.headers["access-control-allow-origin"], "https://app.example");
});

test("a route that lists POST charges for it too, and streams the request body to the upstream", async (t) => {
  const r = await rig(t, {}, { premium: { methods: ["GET", "POST"] } });
  const body = new Uint8Array(3 * 1024 * 1024).fill(7);
  const unpaid = await fetch(r.gw.url + "/premium/upload", { method: "POST", body });
  t.is(unpaid.status, 402);
  await unpaid.arrayBuffer();
  t.deepEqual(r.up.log, []);
  const { auth } = await pay(r, "/premium/upload");
  const paid = await fetch(r.gw.url + "/premium/upload", { method: "POST", body, headers: { authorization: auth } });
  t.is(paid.status, 200);
  t.like(await paid.json(), { method: "POST", bytes: body.length });
  const head = await fetch(r.gw.url + "/premium/upload", { method: "HEAD", headers: { authorization: auth } });
  t.is(head.status, 405, "HEAD is not listed on this route");
  t.is(head.headers.get("allow"), "GET, POST");
});

test("wallet.fetch refuses a price in another currency before any payment step", async (t) => {
  const r = await rig(t, {}, { premium: { currency: "USD" } });
  const start = r.wallet.balance().value;
  const e = await t.throwsAsync(r.wallet.fetch(r.gw.url + "/premium/x", { maxPrice: 100n }), { instanceOf: RefusedError });
  t.is(e!.reason, "WRONG_CURRENCY");
  t.is(r.wallet.balance().value, start);
  t.is(r.wallet.history().length, 4, "register + three earnings, nothing else");
});

const hasOpenssl = spawnSync("openssl", ["version"]).status === 0;
if (!hasOpenssl) console.log("gateway: TLS test skipped: no openssl to make a test certificate");
(hasOpenssl ? test : test.skip)("TLS: https items and seller URL, paid over HTTPS, the route cookie is Secure", async (t) => {
  const dir = await mkdtemp(join(tmpdir(), "scripwire-gwtls-"));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const keyPath = join(dir, "key.pem");
  const certPath = join(dir, "cert.pem");
  const made = spawnSync("openssl", [
    "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
    "-keyout", keyPath, "-out", certPath, "-days", "1", "-subj", "/CN=localhost",
    "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
  ]);
  t.is(made.status, 0, String(made.stderr));
  const cert = await readFile(certPath, "utf8");
  const key = await readFile(keyPath, "utf8");
  const up = await startUpstream();
  t.teardown(() => up.close());
  const gw = await startGateway({ config: gatewayConfig(up.url, vendor), tls: { cert, key } });
  t.teardown(() => gw.close(200));
  t.true(gw.url.startsWith("https://"));
  const get = (path: string, headers: Record<string, string> = {}, method = "GET", body?: string) =>
    new Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }>((resolve, reject) => {
      const u = new URL(gw.url + path);
      const req = https.request({ host: u.hostname, port: u.port, path: u.pathname, method, headers, ca: cert, agent: false }, (res) => {
        let b = "";
        res.on("data", (c) => (b += c));
        res.on("end", () => resolve({ status: res.statusCode!, headers: res.headers, body: b }));
      });
      req.on("error", reject);
      req.end(body);
    });
  const unpaid = await get("/articles/tls");
  t.is(unpaid.status, 402);
  const c = parseChallenge(String(unpaid.headers["www-authenticate"]))!;
  t.is(c.item, `${gw.url}/articles/tls`);
  t.is(c.seller, gw.url);
  const wallet = await Wallet.open({ store: new MemoryWalletStore(), ca: cert });
  t.teardown(() => wallet.close());
  await wallet.register(world.centerUrl);
  await wallet.earn(world.sellerUrl, world.ad.itemId, "");
  const bought = await wallet.buy(c.seller, c.item, c.method, { maxPrice: c.price, deliver: false });
  const token = receiptToken(bought.receipt);
  const paid = await get("/articles/tls", { authorization: `Scrip ${token}` });
  t.is(paid.status, 200);
  t.is(JSON.parse(paid.body).path, "/articles/tls");
  const s = await get("/.scripwire/session", { "content-type": "text/plain" }, "POST", token);
  t.is(s.status, 200);
  t.regex(String(s.headers["set-cookie"]), /; Secure/);
});
