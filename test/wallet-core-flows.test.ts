/**
 * The shared wallet-core walk (test/shared/wallet-core-flows.ts) in Node:
 * connect-node transports and a MemoryWalletStore. browser-core.test.ts runs
 * the same walk in Chromium.
 */
import test from "ava";
import { MemoryWalletStore, Wallet } from "../src/wallet/index.js";
import { flowsEnv, walletCoreFlows } from "./shared/wallet-core-flows.js";
import { startWorld } from "./helpers/world.js";

test("wallet core flows in Node (connect-node, MemoryWalletStore)", async (t) => {
  const w = await startWorld();
  t.teardown(() => w.close());
  const checks = await walletCoreFlows((o) => Wallet.open(o), () => new MemoryWalletStore(), flowsEnv(w));
  for (const [what, ok] of checks) t.true(ok, what);
  t.is(checks.length, 12, "every check of the walk ran");
  const audit = await w.center.ledger.audit();
  t.true(audit.ok, audit.problems.join("; "));
});
