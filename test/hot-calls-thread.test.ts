/**
 * The center's hot calls on the ledger's writer thread (src/center/hot-calls.ts):
 * every protocol scenario runs again with the thread serving M3/M4/M6 and
 * S3/S4/S6, and the tests below prove the thread really served them, that
 * its refusals reach the client exactly as the event loop's do, that
 * settlements confirmed there still wake settlement streams at once, and
 * that `center serve` turns it on for its own SQLite ledger.
 */
import test from "ava";
import { Code, ConnectError } from "@connectrpc/connect";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { realWorld } from "./helpers/real.js";
import { registerScenarios } from "./helpers/scenarios.js";
import { QUIZ, centerConfig } from "./helpers/inproc.js";
import { RawCustomer } from "./helpers/raw.js";
import { errorReason } from "../src/server/errors.js";
import { SqliteWorkerLedger } from "../src/ledger/sqlite-worker.js";
import { startCenterServer } from "../src/center/server.js";
import { initLedger } from "../src/center/init.js";
import { openLedger } from "../src/ledger/open.js";
import { DeliveryMethod } from "../gen/scripwire/v1/types_pb.js";

registerScenarios(test, (opts) => realWorld({ ...opts, protocol: "connect", hotThread: true }), "hot calls on the writer thread, Connect");
registerScenarios(test, (opts) => realWorld({ ...opts, protocol: "grpc", hotThread: true }), "hot calls on the writer thread, gRPC", ["every message", "two concurrent spends", "a lost M5"]);

test("the six hot calls of an earn and a buy cross to the writer thread, and nothing else does", async (t) => {
  const w = await realWorld({ hotThread: true });
  try {
    const ledger = w.ledger as SqliteWorkerLedger;
    const before = ledger.handOffStats();
    const c = new RawCustomer(w.centerTransport, w.sellerTransport);
    await c.register();
    const mid = ledger.handOffStats();
    t.is(mid.guestCalls - before.guestCalls, 0, "R1/R2 stay on the event loop");
    await c.earn(QUIZ.itemId, QUIZ.answer);
    await c.buy("/articles/hash-cash");
    const after = ledger.handOffStats();
    t.is(after.guestCalls - mid.guestCalls, 6, "M3, M4, M6, S3, S4, S6");
    const a = await w.ledger.audit();
    t.deepEqual(a.problems, []);
  } finally {
    await w.close();
  }
});

test("a refusal from the thread reaches the client with the same code, reason and message as from the event loop", async (t) => {
  const answers: Array<{ code: Code; reason: string | undefined; message: string }> = [];
  for (const hotThread of [true, false]) {
    const w = await realWorld({ hotThread });
    try {
      const c = new RawCustomer(w.centerTransport, w.sellerTransport);
      await c.register();
      await c.earn(QUIZ.itemId, QUIZ.answer);
      // S4 with a wrong Custom_Secret: UNAUTHENTICATED BAD_HASH, a ConnectError from the center.
      const s2 = await c.s1("/articles/hash-cash", DeliveryMethod.VIEW);
      await c.s3(s2.order!);
      const e = await t.throwsAsync(c.s4(s2.order!, { secret: new Uint8Array(32).fill(9) }));
      t.true(e instanceof ConnectError, String(e));
      const ce = e as ConnectError;
      answers.push({ code: ce.code, reason: errorReason(ce), message: ce.rawMessage });
      t.is((w.ledger as SqliteWorkerLedger).handOffStats().guestCalls > 0, hotThread, "the thread served the calls only when asked to");
    } finally {
      await w.close();
    }
  }
  t.truthy(answers[0]!.reason, "the refusal names its reason");
  t.deepEqual(answers[0], answers[1]);
});

test("a settlement confirmed on the thread is announced on the event loop at once (settlement streams wake)", async (t) => {
  const w = await realWorld({ hotThread: true });
  try {
    const seen: string[] = [];
    w.center.events.on("settlement", (v: string) => seen.push(v));
    const c = new RawCustomer(w.centerTransport, w.sellerTransport);
    await c.register();
    await c.earn(QUIZ.itemId, QUIZ.answer);
    await c.buy("/articles/hash-cash");
    // The notice travels with the S6 answer's message, so it is there when S6 returns.
    t.true(seen.length >= 1, `settlement notices: ${JSON.stringify(seen)}`);
    t.true(seen.every((v) => v === w.vendorId));
  } finally {
    await w.close();
  }
});

test("startCenterServer on a SQLite path runs the hot calls on the thread; with metrics too; a clock or hotCallsThread:false keep them on the event loop; bytes cross undecoded unless limits or metrics need the message", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "scripwire-hot-"));
  try {
    const database = join(dir, "center.sqlite");
    const l = await openLedger(database);
    await initLedger(l, database);
    await l.close();
    const cases: Array<[string, Record<string, unknown>, boolean, boolean]> = [
      ["default", {}, true, true],
      ["injected clock", { clock: Date.now }, false, false],
      ["metrics port (the thread's ledger writes are reported to the metrics)", { metricsPort: 0 }, true, false],
      ["rate limits (they read the customer from the decoded request)", { rateLimits: { perCustomer: { ratePerSecond: 100, burst: 200 }, perAddress: { ratePerSecond: 100, burst: 200 } } }, true, false],
      ["hotCallsThread: false", { hotCallsThread: false }, false, false],
    ];
    for (const [name, extra, expected, undecoded] of cases) {
      const s = await startCenterServer({ ...centerConfig({}), database, kek: false, adminToken: "test-admin-token-0123456789", ...extra });
      try {
        const ledger = s.ledger as SqliteWorkerLedger;
        const c = new RawCustomer((await import("../src/client/transport.js")).createTransport(s.url), undefined as never);
        await c.register();
        // An M3 with a bogus permit is refused by whichever center serves it; it still counts as a hot call.
        await t.throwsAsync(c.center.initIssue({}));
        t.is(ledger.handOffStats().guestCalls > 0, expected, name);
        t.true(s.stack.fastUnaryServed() > 0, `${name}: the fast path took the call`);
        t.is(s.stack.fastUnaryRawServed() > 0, undecoded, `${name}: bytes undecoded on the event loop`);
      } finally {
        await s.close(1000);
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
