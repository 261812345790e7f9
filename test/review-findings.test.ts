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
