/**
 * Rate limits on a real center, where the payment calls take the unary fast
 * path: the same buckets apply there as on the Connect path.
 */
import test from "ava";
import { Code, ConnectError } from "@connectrpc/connect";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CmdType } from "../gen/scripwire/v1/types_pb.js";
import { startCenterServer } from "../src/center/server.js";
import { createTransport, type WireProtocol } from "../src/client/transport.js";
import { openSqliteLedger } from "../src/ledger/sqlite.js";
import { errorReason } from "../src/server/errors.js";
import { centerConfig } from "./helpers/inproc.js";
import { RawCustomer } from "./helpers/raw.js";
import { ADMIN_TOKEN } from "./helpers/real.js";

for (const protocol of ["grpc", "connect"] as WireProtocol[]) {
  test(`per-customer and per-address limits answer RESOURCE_EXHAUSTED RATE_LIMITED (${protocol})`, async (t) => {
    const dir = mkdtempSync(join(tmpdir(), "scripwire-limits-"));
    const ledger = openSqliteLedger(join(dir, "center.sqlite"));
    const center = await startCenterServer({
      ...centerConfig({}),
      ledger,
      adminToken: ADMIN_TOKEN,
      rateLimits: { perCustomer: { ratePerSecond: 0.001, burst: 3 }, perAddress: { ratePerSecond: 0.001, burst: 12 } },
    });
    t.teardown(async () => {
      await center.close(500);
      await ledger.close();
      rmSync(dir, { recursive: true, force: true });
    });
    const c = new RawCustomer(createTransport(center.url, { protocol }));
    await c.register(); // GetCenterInfo + Register: 2 address tokens
    for (let i = 0; i < 3; i++) {
      const r = await c.m4(`t-unknown-${i}`);
      t.is(r.header?.cmdType, CmdType.GM5_3, "within the burst: a normal refusal");
    }
    const e = await t.throwsAsync(c.m4("t-unknown-4"));
    t.true(e instanceof ConnectError);
    t.is((e as ConnectError).code, Code.ResourceExhausted);
    t.is(errorReason(e), "RATE_LIMITED");
    t.regex((e as ConnectError).rawMessage, /retry in/);
    // Address limit: 12 tokens, 6 used so far; the remaining calls run out.
    let limited = 0;
    for (let i = 0; i < 8; i++) {
      try {
        await c.center.getCenterInfo({});
      } catch (err) {
        if (err instanceof ConnectError && err.code === Code.ResourceExhausted) limited++;
      }
    }
    t.true(limited >= 1, "the address bucket runs out too");
  });
}
