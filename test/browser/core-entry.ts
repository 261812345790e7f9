/**
 * The browser side of browser-core.test.ts, bundled by esbuild for Chromium:
 * the same vectors check and the same wallet-core walk as in Node, on
 * connect-web and the IndexedDB store.
 */
import { IndexedDbWalletStore } from "../../src/wallet/browser/idb-store.js";
import { webConnector } from "../../src/wallet/connect-web.js";
import { WalletCore } from "../../src/wallet/core.js";
import { checkAll, type Json } from "../shared/vectors.js";
import { walletCoreFlows, type FlowsEnv } from "../shared/wallet-core-flows.js";

(globalThis as unknown as { coreTests: unknown }).coreTests = {
  vectors: (file: Json) => checkAll(file),
  flows: (env: FlowsEnv) =>
    walletCoreFlows(
      (o) => WalletCore.open({ ...o, connect: webConnector() }),
      () => new IndexedDbWalletStore(`flows-${crypto.randomUUID()}`),
      env,
    ),
};
