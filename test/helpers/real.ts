/**
 * The same world as inproc.ts, but on real servers: center and seller listen
 * on loopback and every call crosses HTTP/2 (Connect or gRPC framing).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { KeyEncryptionKeys } from "../../src/crypto/kek.js";
import { startCenterServer } from "../../src/center/server.js";
import { centerThread } from "../../src/center/hot-calls.js";
import { createTransport, type WireProtocol } from "../../src/client/transport.js";
import { openSqliteLedger } from "../../src/ledger/sqlite.js";
import { startSellerServer } from "../../src/seller/server.js";
import { centerConfig, seedLedger, type WorldOptions } from "./inproc.js";

export const ADMIN_TOKEN = "test-admin-token-0123456789";

/** `hotThread`: open the ledger with the center's thread, so the hot calls run there (src/center/hot-calls.ts). */
export async function realWorld(opts: WorldOptions & { protocol?: WireProtocol; kek?: KeyEncryptionKeys; hotThread?: boolean } = {}) {
  const dir = mkdtempSync(join(tmpdir(), "scripwire-real-"));
  const ledger = openSqliteLedger(join(dir, "center.sqlite"), opts.hotThread ? { thread: centerThread() } : {});
  const center = await startCenterServer({ ...centerConfig(opts), ledger, adminToken: ADMIN_TOKEN, kek: opts.kek });
  const seed = await seedLedger(ledger, opts.budget ?? 10_000n);
  const seller = await startSellerServer({ config: seed.sellerConfig });
  const protocol = opts.protocol ?? "connect";
  return {
    dir,
    ledger,
    center: center.center,
    centerServer: center,
    sellerServer: seller,
    seller: seller.seller,
    ...seed,
    centerTransport: createTransport(center.url, { protocol }),
    sellerTransport: createTransport(seller.url, { protocol }),
    async close() {
      await seller.close(1000);
      await center.close(1000);
      await ledger.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
