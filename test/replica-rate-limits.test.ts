/**
 * Rate limits across replicas: buckets are per process, so the configured
 * rate is the deployment's and each of N replicas enforces 1/N
 * (src/server/replica-limits.ts). Two centers over one PostgreSQL database,
 * clocks frozen (no refill during the test): a customer alternating between
 * them gets exactly the deployment's burst, not twice it.
 */
import test from "ava";
import { Code, ConnectError } from "@connectrpc/connect";
import { CmdType } from "../gen/scripwire/v1/types_pb.js";
import { startCenterServer } from "../src/center/server.js";
import { createTransport } from "../src/client/transport.js";
import { openPostgresLedger } from "../src/ledger/postgres.js";
import { shareOfDeployment } from "../src/server/replica-limits.js";
import { errorReason } from "../src/server/errors.js";
import { centerConfig } from "./helpers/inproc.js";
import { freshPgDatabase, PG_SKIP_REASON, pgTestUrl } from "./helpers/pg.js";
import { hdr, RawCustomer } from "./helpers/raw.js";
import { ADMIN_TOKEN } from "./helpers/real.js";

test("the arithmetic: N shares never add up to more than the deployment's rate or burst", (t) => {
  for (const n of [1, 2, 3, 4, 7]) {
    const s = shareOfDeployment({ ratePerSecond: 20, burst: 40 }, n);
    if (s === false) return t.fail();
    t.true(s.ratePerSecond * n <= 20 + 1e-9);
    t.true(s.burst * n <= 40);
    t.true(s.burst >= 1);
  }
  t.is(shareOfDeployment(false, 3), false);
  t.throws(() => shareOfDeployment({ ratePerSecond: 1, burst: 1 }, 0), { instanceOf: RangeError });
});

const url = pgTestUrl();
if (!url) {
  console.log(`replica-rate-limits.test.ts: two-replica test skipped: ${PG_SKIP_REASON}`);
  test.skip(`two replicas share the deployment's rate [${PG_SKIP_REASON}]`, () => {});
} else {
  test("two replicas, each with half: a customer alternating between them gets the deployment's burst once", async (t) => {
    const db = await freshPgDatabase(url);
    const la = openPostgresLedger(db.url);
    const lb = openPostgresLedger(db.url);
    const frozen = Date.now();
    const perCustomer = shareOfDeployment({ ratePerSecond: 4, burst: 8 }, 2);
    const limits = { perCustomer, perAddress: false as const, clock: () => frozen };
    const a = await startCenterServer({ ...centerConfig({}), ledger: la, adminToken: ADMIN_TOKEN, rateLimits: limits });
    const b = await startCenterServer({ ...centerConfig({}), ledger: lb, adminToken: ADMIN_TOKEN, rateLimits: limits });
    t.teardown(async () => {
      await a.close(500);
      await b.close(500);
      await la.close();
      await lb.close();
      await db.drop();
    });
    const c = new RawCustomer(createTransport(a.url, { protocol: "grpc" }));
    await c.register(); // R1 carries no scrip: not a per-customer call
    const viaB = new RawCustomer(createTransport(b.url, { protocol: "grpc" }));
    Object.assign(viaB, { walletId: c.walletId, customSecret: c.customSecret, scrip: c.scrip });
    let allowed = 0;
    let limited = 0;
    for (let i = 0; i < 10; i++) {
      for (const who of [c, viaB]) {
        // A well-hashed M4 on a TranID that does not exist: answered GM5_3, and it counts.
        try {
          const r = await who.m4(`t_missing_${i}`, { pCount: 0 });
          t.is(r.header?.cmdType, CmdType.GM5_3);
          allowed++;
        } catch (e) {
          const ce = ConnectError.from(e);
          t.is(ce.code, Code.ResourceExhausted);
          t.is(errorReason(ce), "RATE_LIMITED");
          limited++;
        }
      }
    }
    t.is(allowed, 8, "4 on each replica: the deployment's burst of 8, not 16");
    t.is(limited, 12);
  });
}
