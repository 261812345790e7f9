/**
 * Rate limits (src/server/limits.ts): token buckets per customer and per
 * address, in process through a router with the interceptor, and once on a
 * real server stack to show the remote address reaches the interceptor.
 * Every clock here is fake: no test sleeps.
 */
import { Code, ConnectError, createClient, createContextValues, createRouterTransport, type Interceptor } from "@connectrpc/connect";
import test from "ava";
import { Health } from "../gen/grpc/health/v1/health_pb.js";
import { PaymentCenterService } from "../gen/scripwire/v1/center_pb.js";
import { SellerService } from "../gen/scripwire/v1/seller_pb.js";
import { CmdType } from "../gen/scripwire/v1/types_pb.js";
import { paymentCenterService } from "../src/center/service.js";
import { createTransport } from "../src/client/transport.js";
import { errorReason } from "../src/server/errors.js";
import {
  addressKey,
  BURST_PER_CUSTOMER,
  createRateLimiter,
  RATE_LIMITED,
  RATE_PER_CUSTOMER_PER_SECOND,
  REMOTE_ADDRESS,
  remoteAddressContextValues,
  RETRY_AFTER_MS_KEY,
  TokenBuckets,
  type RateLimitOptions,
} from "../src/server/limits.js";
import { createServerStack } from "../src/server/stack.js";
import { createLogger } from "../src/server/log.js";
import { sellerService } from "../src/seller/service.js";
import { inprocWorld } from "./helpers/inproc.js";
import { RawCustomer } from "./helpers/raw.js";

function fakeClock() {
  let now = 1_000_000;
  return { now: () => now, advance: (ms: number) => void (now += ms) };
}

/** Test-only: takes the "remote address" from a header, as the Node adapter would from the socket. */
const addressFromHeader: Interceptor = (next) => (req) => {
  const a = req.header.get("x-test-address");
  if (a) req.contextValues.set(REMOTE_ADDRESS, a);
  return next(req);
};

async function limitedWorld(opts: RateLimitOptions) {
  const w = await inprocWorld();
  const limiter = createRateLimiter(opts);
  const router = { interceptors: [addressFromHeader, limiter.interceptor] };
  const centerTransport = createRouterTransport((r) => r.service(PaymentCenterService, paymentCenterService(w.center)), { router });
  const sellerTransport = createRouterTransport((r) => r.service(SellerService, sellerService(w.seller)));
  return { ...w, limiter, centerTransport, sellerTransport };
}

async function rateLimited(t: import("ava").ExecutionContext, p: Promise<unknown>, who: RegExp): Promise<ConnectError> {
  const e = await t.throwsAsync(p);
  t.true(e instanceof ConnectError, String(e));
  const ce = e as ConnectError;
  t.is(ce.code, Code.ResourceExhausted);
  t.is(errorReason(ce), RATE_LIMITED);
  t.regex(ce.rawMessage, who);
  t.regex(ce.rawMessage, /retry in \d+\.\d\d s/, "the message says when to retry");
  t.true(Number(ce.metadata.get(RETRY_AFTER_MS_KEY)) > 0);
  t.true(Number(ce.metadata.get("retry-after")) >= 1);
  return ce;
}

/** An authenticated call that moves nothing: M4 for a TranID that does not exist (GM5_3). */
function probe(c: RawCustomer, i: number) {
  return c.m4(`t_none_${i}`);
}

test("token buckets: a burst, then the refill rate, with the wait it reports", (t) => {
  const clock = fakeClock();
  const b = new TokenBuckets({ ratePerSecond: 10, burst: 3 }, clock.now);
  t.is(b.take("k"), 0);
  t.is(b.take("k"), 0);
  t.is(b.take("k"), 0);
  t.is(b.take("k"), 100, "one token every 100 ms");
  clock.advance(50);
  t.is(b.take("k"), 50);
  clock.advance(50);
  t.is(b.take("k"), 0);
  clock.advance(10_000);
  for (let i = 0; i < 3; i++) t.is(b.take("k"), 0, "refilled to the burst, not beyond");
  t.true(b.take("k") > 0);
  b.refund("k");
  t.is(b.take("k"), 0, "a refunded token can be taken again");
  t.is(b.take("other"), 0, "keys are independent");
});

test("token buckets: memory is bounded, least recently used first", (t) => {
  const clock = fakeClock();
  const b = new TokenBuckets({ ratePerSecond: 1, burst: 1 }, clock.now, 3);
  b.take("a");
  b.take("b");
  b.take("c");
  b.take("a"); // refreshes a
  b.take("d"); // evicts b
  t.is(b.size, 3);
  t.is(b.take("b"), 0, "an evicted bucket comes back full");
  t.true(b.take("a") > 0, "a was kept (recently used) and is still empty");
  t.throws(() => new TokenBuckets({ ratePerSecond: 0, burst: 1 }), { instanceOf: RangeError });
});

test("address keys: IPv4-mapped IPv6 is IPv4, IPv6 counts by /64", (t) => {
  t.is(addressKey("192.0.2.7"), "192.0.2.7");
  t.is(addressKey("::ffff:192.0.2.7"), "192.0.2.7");
  t.is(addressKey("2001:db8:1:2:3:4:5:6"), "2001:db8:1:2::/64");
  t.is(addressKey("2001:db8:1:2:ffff::1"), "2001:db8:1:2::/64", "same /64, same bucket");
  t.is(addressKey("2001:db8::1"), "2001:db8:0:0::/64");
  t.is(addressKey("::1"), "0:0:0:0::/64");
});

test("per customer: the burst passes, the next call is RESOURCE_EXHAUSTED with when to retry, and the rate refills", async (t) => {
  const clock = fakeClock();
  const w = await limitedWorld({ clock: clock.now, perAddress: false });
  t.teardown(() => w.close());
  const c = new RawCustomer(w.centerTransport, w.sellerTransport);
  await c.register();
  for (let i = 0; i < BURST_PER_CUSTOMER; i++) t.is((await probe(c, i)).header?.cmdType, CmdType.GM5_3);
  const e = await rateLimited(t, probe(c, -1), /for this customer/);
  t.is(Number(e.metadata.get(RETRY_AFTER_MS_KEY)), Math.ceil(1000 / RATE_PER_CUSTOMER_PER_SECOND));
  clock.advance(1000 / RATE_PER_CUSTOMER_PER_SECOND);
  t.is((await probe(c, -2)).header?.cmdType, CmdType.GM5_3, "one more token after 1/rate seconds");
  await rateLimited(t, probe(c, -3), /for this customer/);
  // Another customer has its own bucket.
  const d = new RawCustomer(w.centerTransport, w.sellerTransport);
  await d.register();
  t.is((await probe(d, 0)).header?.cmdType, CmdType.GM5_3);
  // Calls without a scrip (GetCenterInfo, InitIssue) are not per-customer.
  for (let i = 0; i < 5; i++) await c.center.getCenterInfo({});
});

test("per customer: a forger naming a victim's custom_id cannot drain the victim's bucket", async (t) => {
  const clock = fakeClock();
  const w = await limitedWorld({ clock: clock.now, perAddress: false, perCustomer: { ratePerSecond: 1, burst: 3 } });
  t.teardown(() => w.close());
  const victim = new RawCustomer(w.centerTransport, w.sellerTransport);
  await victim.register();
  const forger = new RawCustomer(w.centerTransport, w.sellerTransport);
  forger.scrip = victim.scrip; // the victim's scrip is not secret; the Custom_Secret is
  forger.customSecret = new Uint8Array(32).fill(7);
  for (let i = 0; i < 30; i++) {
    const e = await t.throwsAsync(forger.m4(`t_forged_${i}`));
    t.is((e as ConnectError).code, Code.Unauthenticated, "refused by the center, token refunded");
  }
  for (let i = 0; i < 3; i++) t.is((await probe(victim, i)).header?.cmdType, CmdType.GM5_3, "the victim still has its whole burst");
  await rateLimited(t, probe(victim, 3), /for this customer/);
  t.is(w.limiter.customers?.size, 1);
});

test("per address: one address is limited, another is not, and health is exempt", async (t) => {
  const clock = fakeClock();
  const w = await limitedWorld({ clock: clock.now, perCustomer: false, perAddress: { ratePerSecond: 2, burst: 4 } });
  t.teardown(() => w.close());
  const health = createClient(Health, createRouterTransport((r) => r.service(Health, { check: () => ({ status: 1 }), watch: async function* () {} }), { router: { interceptors: [addressFromHeader, w.limiter.interceptor] } }));
  const center = createClient(PaymentCenterService, w.centerTransport);
  const from = (a: string) => ({ headers: { "x-test-address": a } });
  for (let i = 0; i < 4; i++) await center.getCenterInfo({}, from("198.51.100.1"));
  await rateLimited(t, center.getCenterInfo({}, from("198.51.100.1")), /from this address/);
  await rateLimited(t, center.getCenterInfo({}, from("::ffff:198.51.100.1")), /from this address/);
  await center.getCenterInfo({}, from("198.51.100.2"));
  for (let i = 0; i < 20; i++) await health.check({ service: "" }, from("198.51.100.1"));
  clock.advance(500);
  await center.getCenterInfo({}, from("198.51.100.1"));
  // An address that floods with garbage is stopped before the center parses scrip.
  const c = new RawCustomer(w.centerTransport, w.sellerTransport);
  await c.register();
  clock.advance(10_000);
  const bad = { header: { cmdType: CmdType.GM4_1, protocolVersion: "scripwire/1" }, tranId: "t_x", scrip: c.scrip, scripHash: new Uint8Array(32), pCount: 0 };
  let refusedByCenter = 0;
  let limited = 0;
  for (let i = 0; i < 10; i++) {
    const e = (await t.throwsAsync(center.issue(bad as never, from("203.0.113.9")))) as ConnectError;
    if (e.code === Code.Unauthenticated) refusedByCenter++;
    if (errorReason(e) === RATE_LIMITED) limited++;
  }
  t.is(refusedByCenter, 4);
  t.is(limited, 6);
});

test("on a real server stack, the socket's address reaches the interceptor (Connect and gRPC)", async (t) => {
  const clock = fakeClock();
  const limiter = createRateLimiter({ clock: clock.now, perAddress: { ratePerSecond: 1, burst: 3 } });
  const w = await inprocWorld();
  t.teardown(() => w.close());
  const seen: (string | undefined)[] = [];
  const spy: Interceptor = (next) => (req) => {
    seen.push(req.contextValues.get(REMOTE_ADDRESS));
    return next(req);
  };
  const stack = createServerStack({
    services: [PaymentCenterService],
    routes: (r) => r.service(PaymentCenterService, paymentCenterService(w.center)),
    logger: createLogger({ level: "silent" }),
    interceptors: [spy, limiter.interceptor],
    adapter: { contextValues: remoteAddressContextValues },
  });
  const { url } = await stack.listen();
  t.teardown(() => stack.close(500));
  for (const protocol of ["connect", "grpc"] as const) {
    const center = createClient(PaymentCenterService, createTransport(url, { protocol }));
    if (protocol === "grpc") clock.advance(10_000);
    for (let i = 0; i < 3; i++) await center.getCenterInfo({});
    const e = await rateLimited(t, center.getCenterInfo({}), /from this address/);
    t.truthy(e.metadata.get("retry-after"), `${protocol}: retry-after reaches the client`);
  }
  t.true(seen.every((a) => a === "127.0.0.1" || a === "::ffff:127.0.0.1"), `addresses seen: ${[...new Set(seen)].join(", ")}`);
  t.is(limiter.addresses?.size, 1);
  // The hook itself, without a server.
  t.is(remoteAddressContextValues({ socket: { remoteAddress: "192.0.2.1" } } as never).get(REMOTE_ADDRESS), "192.0.2.1");
  t.is(createContextValues().get(REMOTE_ADDRESS), undefined, "no address in process");
});
