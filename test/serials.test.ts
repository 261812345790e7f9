/**
 * Random serials (src/center/serials.ts) come from a pool refilled from the
 * OS: every one is a fresh 63-bit value in the ledger's integer range, never
 * 0, and the pool is never handed out twice across refills.
 */
import test from "ava";
import { I64_MAX } from "../src/money.js";
import { randomSerial } from "../src/center/serials.js";

test("serials: 63 random bits, never 0, no repeats across many pool refills", (t) => {
  const N = 20_000; // ~39 refills of the 512-serial pool
  const seen = new Set<bigint>();
  let high = 0;
  for (let i = 0; i < N; i++) {
    const s = randomSerial();
    t.true(s > 0n && s <= I64_MAX, String(s));
    seen.add(s);
    if (s > I64_MAX / 2n) high++;
  }
  t.is(seen.size, N, "a repeat means the pool was reused");
  // About half should have the top (63rd) bit set: the whole range is used.
  t.true(high > N * 0.4 && high < N * 0.6, `top bit set in ${high} of ${N}`);
});
