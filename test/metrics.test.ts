/**
 * Prometheus metrics on the center's separate --metrics-port listener,
 * scraped after a real flow over HTTP/2: the gRPC server counters for calls
 * served by the unary fast path (gRPC binary) and by the Connect router
 * (gRPC-Web), the ledger's write latency and batch sizes, and the
 * business counters (issuances, payments, value moved, refusals by reason,
 * live scrips).
 */
import { centerThread } from "../src/center/hot-calls.js";
import type { SqliteWorkerLedger } from "../src/ledger/sqlite-worker.js";
import test from "ava";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CmdType } from "../gen/scripwire/v1/types_pb.js";
import { startCenterServer } from "../src/center/server.js";
import { createTransport } from "../src/client/transport.js";
import { openSqliteLedger } from "../src/ledger/sqlite.js";
import { startSellerServer } from "../src/seller/server.js";
import { centerConfig, QUIZ, seedLedger } from "./helpers/inproc.js";
import { hdr, RawCustomer } from "./helpers/raw.js";
import { ADMIN_TOKEN } from "./helpers/real.js";

/** The value of one sample line `name{labels} value`, labels given as a subset. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split("\n")) {
    if (!line.startsWith(name)) continue;
    const m = /^([a-z_]+)(\{([^}]*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = Object.fromEntries([...(m[3] ?? "").matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1], x[2]]));
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) return Number(m[4]);
  }
  return undefined;
}

for (const hot of [false, true]) test(`a scrape after a flow counts every call on both paths, the ledger and the business${hot ? " (hot calls on the writer thread)" : ""}`, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "scripwire-metrics-"));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const ledger = openSqliteLedger(join(dir, "center.sqlite"), hot ? { thread: centerThread() } : {});
  const center = await startCenterServer({ ...centerConfig({}), ledger, adminToken: ADMIN_TOKEN, metricsPort: 0 });
  t.teardown(async () => {
    await center.close(500);
    await ledger.close();
  });
  t.truthy(center.metricsPort);
  t.not(center.metricsPort, center.port, "a listener of its own");
  const seed = await seedLedger(ledger, 10_000n);
  const seller = await startSellerServer({ config: seed.sellerConfig });
  t.teardown(() => seller.close(500));

  // gRPC binary over HTTP/2: the unary fast path serves M3, M4, M6, S3, S4, S6.
  const c = new RawCustomer(createTransport(center.url, { protocol: "grpc" }), createTransport(seller.url, { protocol: "grpc" }));
  await c.register();
  await c.earn(QUIZ.itemId, QUIZ.answer);
  await c.buy("/articles/both");
  // gRPC-Web goes through the Connect router, never the fast path: the same counters.
  const viaRouter = new RawCustomer(createTransport(center.url, { protocol: "grpc-web" }), createTransport(seller.url, { protocol: "grpc" }));
  Object.assign(viaRouter, { walletId: c.walletId, customSecret: c.customSecret, scrip: c.scrip });
  await viaRouter.earn("survey-1", "metrics please");
  // Two refusals: a wrong hash (an error) and an in-band one (GM5_3 ALREADY_REWARDED).
  const p = (await c.m1("ad-1", "")).permit!;
  await c.m3(p);
  await t.throwsAsync(c.center.issue({ header: hdr(CmdType.GM4_1), tranId: p.tranId, scrip: viaRouter.scrip, scripHash: new Uint8Array(32), pCount: 0 }));
  const again = (await c.m1(QUIZ.itemId, QUIZ.answer)).permit!;
  await c.m3(again);
  c.scrip = viaRouter.scrip;
  const refused = await c.m4(again.tranId);
  t.is(refused.header?.errorReason, "ALREADY_REWARDED");

  const res = await fetch(`http://127.0.0.1:${center.metricsPort}/metrics`);
  t.is(res.status, 200);
  t.regex(res.headers.get("content-type") ?? "", /text\/plain/);
  const text = await res.text();
  const svc = "scripwire.v1.PaymentCenterService";
  t.is(sample(text, "grpc_server_started_total", { grpc_service: svc, grpc_method: "Issue" }), 4, "M4 x4: two earns, a bad hash, a refusal");
  t.is(sample(text, "grpc_server_handled_total", { grpc_service: svc, grpc_method: "Issue", grpc_code: "OK" }), 3);
  t.is(sample(text, "grpc_server_handled_total", { grpc_service: svc, grpc_method: "Issue", grpc_code: "Unauthenticated" }), 1);
  t.is(sample(text, "grpc_server_handled_total", { grpc_service: svc, grpc_method: "Pay", grpc_code: "OK" }), 1);
  t.is(sample(text, "grpc_server_handled_total", { grpc_service: svc, grpc_method: "Register", grpc_code: "OK" }), 1);
  t.is(sample(text, "grpc_server_handled_total", { grpc_service: svc, grpc_method: "ConfirmIssue", grpc_code: "OK" }), 2, "fast path and router alike");
  t.is(sample(text, "grpc_server_handling_seconds_count", { grpc_service: svc, grpc_method: "Issue" }), 4);
  t.is(sample(text, "scripwire_issuances_total", { currency: "KRW" }), 2);
  t.is(sample(text, "scripwire_payments_total", { currency: "KRW" }), 1);
  t.is(sample(text, "scripwire_value_moved_total", { currency: "KRW", kind: "issue" }), 70, "50 + 20");
  t.is(sample(text, "scripwire_value_moved_total", { currency: "KRW", kind: "pay" }), 5);
  t.is(sample(text, "scripwire_refusals_total", { reason: "BAD_HASH" }), 1);
  t.is(sample(text, "scripwire_refusals_total", { reason: "ALREADY_REWARDED" }), 1);
  t.is(sample(text, "scripwire_live_scrips"), 1, "one customer, one live scrip");
  t.is(sample(text, "scripwire_ledger_commit_seconds_count", { op: "executeIssue" }), 3, "two issued, one refused by the ledger");
  t.is(sample(text, "scripwire_ledger_commit_seconds_count", { op: "executePayment" }), 1);
  t.true((sample(text, "scripwire_ledger_commit_batch_size_count") ?? 0) > 0);
  t.is(sample(text, "scripwire_ledger_errors_total", { op: "executeIssue" }) ?? 0, 0);
  // The thread served the hot calls (or not), so the ledger counts above came from where they should.
  t.is((ledger as SqliteWorkerLedger).handOffStats().guestCalls > 0, hot);
  const other = await fetch(`http://127.0.0.1:${center.metricsPort}/`);
  t.is(other.status, 404);
});
