/**
 * Regression tests for defects found in the review of the refund, restore/sync,
 * gateway and settlement-watch code (one test per finding, real ledgers and
 * servers as elsewhere).
 */
import test from "ava";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { randomBytes } from "node:crypto";
import { PaymentCenterService } from "../gen/scripwire/v1/center_pb.js";
import { CmdType, HeaderTypeSchema } from "../gen/scripwire/v1/types_pb.js";
import { decodeRecoveryCode } from "../src/crypto/recovery.js";
import { computeSyncRequestHash } from "../src/crypto/sync-auth.js";
import { errorReason } from "../src/server/errors.js";
import { MemoryWalletStore, Wallet } from "../src/wallet/index.js";
import { startGateway } from "../src/gateway/gateway.js";
import { gatewayConfig, raw, startUpstream } from "./helpers/gateway.js";
import { SETTLEMENT_WATCHES_PER_VENDOR_MAX, SettlementWatchGate } from "../src/center/settlement-watch.js";
import { inprocWorld, testClock } from "./helpers/inproc.js";

test("a sync request dated ahead of the center's clock cannot be replayed while its timestamp is still fresh", async (t) => {
  const clock = testClock();
  const iw = await inprocWorld({ config: { clock: clock.now } });
  t.teardown(() => iw.close());
  const w = await Wallet.open({ store: new MemoryWalletStore(), transport: (_url, role) => (role === "center" ? iw.centerTransport : iw.sellerTransport) });
  t.teardown(() => w.close());
  await w.register("http://center.test");
  const { customId, customSecret } = decodeRecoveryCode(w.recoveryCode());
  // A wallet whose clock runs 4 minutes fast: its timestamps stay acceptable
  // until 9 minutes after the center first sees the request.
  const nonce = new Uint8Array(randomBytes(32));
  const timestampUnixMs = BigInt(clock.now() + 4 * 60_000);
  const req = { header: create(HeaderTypeSchema, { cmdType: CmdType.SY1 }), customId, timestampUnixMs, nonce, hash: computeSyncRequestHash(customSecret, { customId, timestampUnixMs, nonce }) };
  const client = createClient(PaymentCenterService, iw.centerTransport);
  const first = await client.sync(req);
  t.is(first.scrips.length, 1, "the first use is answered");
  clock.advance(6 * 60_000); // the timestamp is now 2 minutes in the past: still inside the 5-minute skew
  let err: ConnectError | undefined;
  try {
    await client.sync(req);
  } catch (e) {
    err = ConnectError.from(e);
  }
  t.truthy(err, "the recorded request is refused the second time");
  t.is(err?.code, Code.Unauthenticated);
  t.is(err ? errorReason(err) : undefined, "BAD_HASH");
});

test("gateway: a path priced on one host name is not forwarded free under another Host", async (t) => {
  const up = await startUpstream();
  t.teardown(() => up.close());
  const vendor = { vendorId: "gw-review", keys: { "1": "ab".repeat(32) } };
  // The route "vhost" prices /vh/* on paid.example only; unmatched requests pass (the default).
  const gw = await startGateway({ config: gatewayConfig(up.url, vendor, {}, { vhost: { path: "/vh/*" } }) });
  t.teardown(() => gw.close(200));
  const paidHost = await raw(gw.url, "GET", "/vh/report", { host: "paid.example" });
  t.is(paidHost.status, 402, "priced on its own host");
  // The upstream gets the upstream's Host either way (preserveHost false), so it cannot tell these apart.
  for (const host of [new URL(gw.url).host, "evil.example", "news.example"]) {
    const r = await raw(gw.url, "GET", "/vh/report", { host });
    t.not(r.status, 200, `Host ${host}: ${r.status}`);
  }
  const abs = await raw(gw.url, "GET", "http://other.example/vh/report", { host: "paid.example" });
  t.not(abs.status, 200, "absolute-form naming another host");
  t.deepEqual(
    up.log.filter((l) => l.url.toLowerCase().startsWith("/vh/")).map((l) => l.url),
    [],
    "the upstream never saw the priced path unpaid",
  );
  // What no route prices on any host still passes, as configured.
  const elsewhere = await raw(gw.url, "GET", "/elsewhere");
  t.is(elsewhere.status, 200);
});

test("gateway: the metrics bearer token is checked (now in constant time): right token only", async (t) => {
  const up = await startUpstream();
  t.teardown(() => up.close());
  const token = "0123456789abcdefXYZ";
  const gw = await startGateway({ config: gatewayConfig(up.url, { vendorId: "gw-review", keys: { "1": "cd".repeat(32) } }, { metricsToken: token }) });
  t.teardown(() => gw.close(200));
  const get = (authorization?: string) => raw(gw.url, "GET", "/.scripwire/metrics", authorization === undefined ? {} : { authorization });
  t.is((await get()).status, 401);
  t.is((await get(`Bearer ${token.slice(0, -1)}Q`)).status, 401, "same length, last character wrong");
  t.is((await get(`Bearer ${token}x`)).status, 401, "longer");
  t.is((await get(`bearer ${token}`)).status, 401, "scheme is case-sensitive as before");
  t.is((await get(`Bearer ${token}`)).status, 200);
});

test("settlement watches: concurrent requests cannot open more than the per-vendor bound", async (t) => {
  const iw = await inprocWorld();
  t.teardown(() => iw.close());
  const gate = new SettlementWatchGate(iw.ledger);
  // Distinct signed requests (distinct MACs) arriving together, as a seller restarting several replicas would send.
  const n = SETTLEMENT_WATCHES_PER_VENDOR_MAX + 3;
  const results = await Promise.allSettled(Array.from({ length: n }, (_, i) => gate.enter(iw.vendorId, new Uint8Array(randomBytes(32)), `192.0.2.${i + 1}`)));
  const opened = results.filter((r) => r.status === "fulfilled").length;
  t.is(opened, SETTLEMENT_WATCHES_PER_VENDOR_MAX, `${opened} watches opened at once`);
  for (const r of results) {
    if (r.status === "rejected") t.is(errorReason(ConnectError.from(r.reason)), "TOO_MANY_WATCHES");
  }
  // A refused one did not keep a slot: after one closes, exactly one more opens.
  for (const r of results) if (r.status === "fulfilled") r.value();
  const again = await Promise.allSettled(Array.from({ length: n }, (_, i) => gate.enter(iw.vendorId, new Uint8Array(randomBytes(32)), `198.51.100.${i + 1}`)));
  t.is(again.filter((r) => r.status === "fulfilled").length, SETTLEMENT_WATCHES_PER_VENDOR_MAX, "all slots were given back");
});
