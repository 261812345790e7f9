/**
 * The torture harness's fault injector (test/torture/faults.ts) must not
 * invent violations: when both copies of a duplicated request fail and one
 * of them failed indefinitely (the center died under it), the attempt is a
 * loss to retransmit, not the other copy's refusal. The long run of
 * 2026-11-30 reported "SY1: unexpected BAD_HASH" that way: a duplicated sync
 * whose first copy used the single-use nonce as the center was killed.
 */
import test from "ava";
import { Code, ConnectError } from "@connectrpc/connect";
import { Faults, isIndefinite, ReplyLost } from "./torture/faults.js";
import { Prng } from "./torture/prng.js";

const always = { drop: 0, duplicate: 1, delay: 0, delayMsMax: 0 };

for (const order of ["refusal first", "loss first"] as const) {
  test(`both copies fail, ${order}: the indefinite failure is what the wallet sees, whatever the coin says`, async (t) => {
    for (let seed = 1; seed <= 40; seed++) {
      let n = 0;
      const refusal = new ConnectError("the sync request does not verify", Code.Unauthenticated);
      const loss = new ConnectError("center killed", Code.Unavailable);
      const e = await t.throwsAsync(
        new Faults(always).call(new Prng(seed), async () => {
          const mine = n++ === 0 ? (order === "refusal first" ? refusal : loss) : order === "refusal first" ? loss : refusal;
          throw mine;
        }),
      );
      t.is(e, loss, `seed ${seed}`);
    }
  });
}

test("both copies refused definitely: the refusal stands (a real refusal is still caught)", async (t) => {
  const refusal = new ConnectError("bad hash", Code.Unauthenticated);
  const e = await t.throwsAsync(new Faults(always).call(new Prng(7), async () => {
    throw refusal;
  }));
  t.is(e, refusal);
});

test("one copy succeeds: its answer is returned", async (t) => {
  let n = 0;
  const v = await new Faults(always).call(new Prng(3), async () => {
    if (n++ === 0) throw new ConnectError("used", Code.Unauthenticated);
    return 42;
  });
  t.is(v, 42);
});

test("what counts as indefinite", (t) => {
  t.true(isIndefinite(new ReplyLost()));
  t.true(isIndefinite(new ConnectError("x", Code.Unavailable)));
  t.true(isIndefinite(new ConnectError("x", Code.DeadlineExceeded)));
  t.false(isIndefinite(new ConnectError("x", Code.Unauthenticated)));
  t.false(isIndefinite(new ConnectError("x", Code.FailedPrecondition)));
});
