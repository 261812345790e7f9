/**
 * Issue 12, finding 4: admin brute force (~380 guesses/s before), a signed
 * WatchSettlements request replayable 2 000 times, Register limited only by
 * the general 1 000/s address limit. Real servers on loopback.
 */
import test from "ava";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CenterAdminService } from "../gen/scripwire/v1/admin_pb.js";
import { PaymentCenterService } from "../gen/scripwire/v1/center_pb.js";
import { CmdType, HashAlgorithm } from "../gen/scripwire/v1/types_pb.js";
import { startCenterServer } from "../src/center/server.js";
import { SETTLEMENT_WATCHES_PER_VENDOR_MAX } from "../src/center/settlement-watch.js";
import { createTransport } from "../src/client/transport.js";
import { sealSessionKey } from "../src/crypto/registration.js";
import { computeSettlementsMac } from "../src/crypto/scrip-auth.js";
import { openSqliteLedger } from "../src/ledger/sqlite.js";
import { ADMIN_BACKOFF_FIRST_MS } from "../src/server/admin-guard.js";
import { errorReason } from "../src/server/errors.js";
import { REGISTER_BURST_PER_ADDRESS } from "../src/server/limits.js";
import { centerConfig, seedLedger } from "./helpers/inproc.js";
import { hdr } from "./helpers/raw.js";
import { ADMIN_TOKEN } from "./helpers/real.js";

async function center(t: { teardown(f: () => Promise<void>): void }, rateLimits = false) {
  const dir = mkdtempSync(join(tmpdir(), "scripwire-adm-"));
  const ledger = openSqliteLedger(join(dir, "center.sqlite"));
  const c = await startCenterServer({ ...centerConfig({}), ledger, adminToken: ADMIN_TOKEN, rateLimits: rateLimits ? { clock: () => 1_000_000 } : false });
  const seed = await seedLedger(ledger, 1000n);
  t.teardown(async () => {
    await c.close(200);
    await ledger.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return { c, ...seed };
}

test("admin token brute force from one address is slowed to a few guesses, then to one per 30 s", async (t) => {
  const { c } = await center(t);
  const guesser = createClient(CenterAdminService, createTransport(c.url));
  const started = Date.now();
  let tried = 0; // guesses whose token the center actually compared
  let refused = 0; // calls refused without looking at the token
  // As fast as the guesser can for 3 s (it honours nothing).
  while (Date.now() - started < 3_000) {
    const token = randomBytes(16).toString("hex");
    try {
      await guesser.listCampaigns({}, { headers: { authorization: `Bearer ${token}` } });
    } catch (e) {
      const reason = errorReason(e);
      if (reason === "ADMIN_TOKEN_WRONG") tried++;
      else if (reason === "ADMIN_BACKOFF") refused++;
      else throw e;
    }
  }
  const seconds = (Date.now() - started) / 1000;
  t.log(`${tried} guesses compared in ${seconds.toFixed(1)} s (${(tried / seconds).toFixed(1)}/s), ${refused} calls refused unread during the back-off`);
  // Back-off 250 ms, 500, 1 s, 2 s ...: at most 1 + log2(3000/250) + 1 guesses in 3 s, whatever the machine's speed.
  t.true(tried <= 1 + Math.ceil(Math.log2(3000 / ADMIN_BACKOFF_FIRST_MS)) + 1, `${tried} guesses`);
  t.true(tried >= 2, "the guesser did get to try, then was slowed");
  t.is(c.stack.resources().addressRefusals, 0);
});

test("a replayed WatchSettlements request is refused; watches per vendor are bounded", async (t) => {
  const { c, vendorId, secret } = await center(t);
  const client = createClient(PaymentCenterService, createTransport(c.url, { protocol: "grpc" }));
  const signed = () => {
    const ts = BigInt(Date.now()) + BigInt(Math.floor(Math.random() * 1000));
    return { vendorId, afterSequence: 0n, timestampUnixMs: ts, vendorKeyId: 1, mac: computeSettlementsMac(HashAlgorithm.HMAC_SHA256, secret, vendorId, 0n, ts) };
  };
  const first = signed();
  const ac = new AbortController();
  const open = (req: ReturnType<typeof signed>, signal?: AbortSignal) => {
    const it = client.watchSettlements(req, { signal })[Symbol.asyncIterator]();
    // The first response (or error) comes once the center accepted or refused the stream.
    return it.next().then(
      () => "open",
      (e: unknown) => errorReason(e) ?? String(e),
    );
  };
  void open(first, ac.signal);
  await new Promise((r) => setTimeout(r, 300));
  // The same bytes again, as an eavesdropper would send them: 20 tries, all refused.
  const replays = await Promise.all(Array.from({ length: 20 }, () => open(first)));
  t.deepEqual(new Set(replays), new Set(["REPLAYED_REQUEST"]));
  // Fresh requests: up to the per-vendor cap, then TOO_MANY_WATCHES.
  const controllers = Array.from({ length: SETTLEMENT_WATCHES_PER_VENDOR_MAX }, () => new AbortController());
  t.teardown(() => {
    ac.abort();
    controllers.forEach((a) => a.abort());
  });
  const more = controllers.slice(1).map((a) => open(signed(), a.signal));
  await new Promise((r) => setTimeout(r, 300));
  const over = await open(signed());
  t.is(over, "TOO_MANY_WATCHES");
  t.deepEqual(await Promise.race([Promise.all(more), new Promise((r) => setTimeout(() => r("still open"), 300))]), "still open", "the watches under the cap stay open");
});

test("Register has its own, much lower per-address rate", async (t) => {
  const { c } = await center(t, true);
  const client = createClient(PaymentCenterService, createTransport(c.url));
  const info = await client.getCenterInfo({});
  const outcomes: string[] = [];
  for (let i = 0; i < REGISTER_BURST_PER_ADDRESS + 5; i++) {
    const walletId = randomBytes(16).toString("hex");
    try {
      await client.register({ header: hdr(CmdType.UM1), walletId, name: "n", email: "e@x", sealedSessionKey: sealSessionKey(info.publicKey, walletId, new Uint8Array(randomBytes(32))), currency: "" });
      outcomes.push("ok");
    } catch (e) {
      t.true(e instanceof ConnectError);
      t.is((e as ConnectError).code, Code.ResourceExhausted);
      t.truthy((e as ConnectError).metadata.get("retry-after"), "a retry-after comes with it");
      outcomes.push(errorReason(e) ?? "?");
    }
  }
  // The limiter's clock is frozen: exactly the burst gets through, however slow the machine.
  t.is(outcomes.filter((o) => o === "ok").length, REGISTER_BURST_PER_ADDRESS);
  t.true(outcomes.slice(REGISTER_BURST_PER_ADDRESS).every((o) => o === "RATE_LIMITED"));
  // Payments and info calls from the same address are not held by it.
  t.is((await client.getCenterInfo({})).publicKey.length, 32);
});

test("a separate admin listener (loopback by default): admin calls are served there only", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "scripwire-adm-"));
  const ledger = openSqliteLedger(join(dir, "center.sqlite"));
  const c = await startCenterServer({ ...centerConfig({}), ledger, adminToken: ADMIN_TOKEN, adminListener: {} });
  t.teardown(async () => {
    await c.close(200);
    await ledger.close();
    rmSync(dir, { recursive: true, force: true });
  });
  t.not(c.adminUrl, c.url);
  t.regex(c.adminUrl, /^http:\/\/127\.0\.0\.1:\d+$/);
  const auth = { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } };
  const onAdmin = createClient(CenterAdminService, createTransport(c.adminUrl, auth));
  t.deepEqual((await onAdmin.listCampaigns({})).campaigns, []);
  const onPublic = createClient(CenterAdminService, createTransport(c.url, auth));
  const e = await t.throwsAsync(onPublic.listCampaigns({}), { instanceOf: ConnectError });
  t.is(e!.code, Code.Unimplemented, "the public port does not serve admin at all");
  // And the payment service is on the public port only.
  t.is((await createClient(PaymentCenterService, createTransport(c.url)).getCenterInfo({})).publicKey.length, 32);
});
