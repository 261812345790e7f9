/**
 * Issue 12: "RESOURCE_EXHAUSTED reaches wallet users as a rate-limit error
 * carrying the server's retry-after, which the wallet honours instead of
 * retrying blindly."
 */
import test from "ava";
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startCenterServer } from "../src/center/server.js";
import { openSqliteLedger } from "../src/ledger/sqlite.js";
import { RateLimitedError, UnavailableError, Wallet } from "../src/wallet/index.js";
import { fromConnectError } from "../src/wallet/errors.js";
import { MemoryWalletStore } from "../src/wallet/store.js";
import { centerConfig } from "./helpers/inproc.js";
import { ADMIN_TOKEN } from "./helpers/real.js";

test("RESOURCE_EXHAUSTED with a retry-after becomes a RateLimitedError carrying it", (t) => {
  const e = fromConnectError(new ConnectError("too many requests from this address; retry in 1.50 s", Code.ResourceExhausted, { "scripwire-error-reason": "RATE_LIMITED", "scripwire-retry-after-ms": "1500", "retry-after": "2" }), "RD1", "payment center");
  t.true(e instanceof RateLimitedError);
  t.true(e instanceof UnavailableError, "still an UnavailableError for code that handles those");
  t.is((e as RateLimitedError).retryAfterMs, 1500);
  t.is(e.reason, "RATE_LIMITED");
  t.regex(e.hint, /wait 1\.5 s/);
  const secondsOnly = fromConnectError(new ConnectError("slow down", Code.ResourceExhausted, { "retry-after": "3" }), "RD1", "center");
  t.is((secondsOnly as RateLimitedError).retryAfterMs, 3000);
  t.false(fromConnectError(new ConnectError("message too big", Code.ResourceExhausted), "RD1", "center") instanceof RateLimitedError);
});

test("a rate-limited wallet waits the server's retry-after and retries once, not blindly", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "scripwire-wrl-"));
  const ledger = openSqliteLedger(join(dir, "center.sqlite"));
  // One call per second from this address, no burst: GetCenterInfo takes the token, Register is refused.
  const center = await startCenterServer({ ...centerConfig({}), ledger, adminToken: ADMIN_TOKEN, rateLimits: { perCustomer: false, perAddress: { ratePerSecond: 1, burst: 1 } } });
  t.teardown(async () => {
    await center.close(200);
    await ledger.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const attempts: Array<{ method: string; at: number; code?: string; retryAfterMs?: number }> = [];
  const spy: Interceptor = (next) => async (req) => {
    const a: (typeof attempts)[number] = { method: req.method.name, at: performance.now() };
    attempts.push(a);
    try {
      return await next(req);
    } catch (e) {
      const ce = ConnectError.from(e);
      a.code = Code[ce.code];
      a.retryAfterMs = Number(ce.metadata.get("scripwire-retry-after-ms") ?? NaN);
      throw e;
    }
  };
  const wallet = await Wallet.open({ store: new MemoryWalletStore(), transport: (url) => createConnectTransport({ baseUrl: url, httpVersion: "2", interceptors: [spy] }) });
  t.teardown(() => wallet.close());
  await wallet.register(center.url, { name: "Patient" });
  const registers = attempts.filter((a) => a.method === "Register");
  t.log(registers.map((a) => `${a.code ?? "ok"}${a.retryAfterMs ? ` (retry-after ${a.retryAfterMs} ms)` : ""}`).join(", "));
  t.is(registers.length, 2, "refused once, then retried once after the wait");
  t.is(registers[0]!.code, "ResourceExhausted");
  t.is(registers[1]!.code, undefined);
  t.true(registers[1]!.at - registers[0]!.at >= registers[0]!.retryAfterMs! - 5, "the retry came after the server's retry-after");
});
