/**
 * Assembles a running payment center: ledger engine chosen by URL, protocol
 * logic, Connect services, and the one-port server stack.
 */
import { join } from "node:path";
import { CenterAdminService } from "../../gen/scripwire/v1/admin_pb.js";
import { PaymentCenterService } from "../../gen/scripwire/v1/center_pb.js";
import type { Ledger } from "../ledger/ledger.js";
import { openLedger } from "../ledger/open.js";
import { createRateLimiterCore, rateLimitService, remoteAddressContextValues, type RateLimitOptions } from "../server/limits.js";
import { AdminGuard } from "../server/admin-guard.js";
import { createLogger } from "../server/log.js";
import { createServerStack, type ServerStack } from "../server/stack.js";
import { PaymentCenter, type CenterConfig } from "./center.js";
import { openExistingLedger } from "./init.js";
import { walletPages } from "./web.js";
import type { SyncOptions } from "./restore.js";
import { SealingLoop, type SealingOptions } from "./sealing.js";
import { centerAdminService, paymentCenterService } from "./service.js";

export interface CenterServerOptions extends CenterConfig {
  /** `postgres://...` or a SQLite file path; default `<dataDir>/center.sqlite`. */
  database?: string;
  dataDir?: string;
  host?: string;
  port?: number;
  adminToken: string;
  tls?: { cert: string | Buffer; key: string | Buffer };
  /** An already-open ledger (tests, benchmarks); `database` is ignored then. */
  ledger?: Ledger;
  /**
   * Create the ledger and its keys when there is none (default: only for an
   * already-open `ledger`). `scripwire center serve` never does: it refuses a
   * missing or empty ledger (see init.ts); `scripwire center init` creates it.
   */
  createLedger?: boolean;
  /**
   * The journal's sealing loop (sealing.ts): on by default; `false` turns it
   * off (events then wait, committed, for a center that seals).
   */
  sealing?: SealingOptions | false;
  /**
   * Serve the payment and issuance calls on the stack's unary fast path
   * (src/server/fast-unary.ts): same answers, about half the CPU per call.
   * Default true.
   */
  fastPath?: boolean;
  /**
   * Per-customer and per-address rate limits (src/server/limits.ts), enforced
   * on the fast path too. Default: off for the library (tests, benchmarks,
   * embedding); `scripwire center serve` turns them on.
   */
  rateLimits?: RateLimitOptions | false;
  /** Serve the browser wallet at /wallet/ (src/center/web.ts). Default true. */
  walletPages?: boolean;
  /** Origins whose pages may call the center's RPCs from a browser (CORS); `*` for any. Default none. */
  corsOrigins?: readonly string[];
  /** Restore/sync limits per customer and per address (src/center/restore.ts); on by default. */
  sync?: SyncOptions;
}

/** The PaymentCenterService methods every payment and issuance makes (M3, M4, M6, S3, S4, S6). */
export const CENTER_FAST_METHODS = ["initIssue", "issue", "confirmIssue", "initPayment", "pay", "confirmPayment"] as const;

export interface RunningCenter {
  center: PaymentCenter;
  ledger: Ledger;
  sealing: SealingLoop | undefined;
  port: number;
  url: string;
  close(graceMs?: number): Promise<void>;
}

export async function startCenterServer(opts: CenterServerOptions): Promise<RunningCenter> {
  // Refuse a weak token before anything is created on disk.
  const logger = createLogger();
  const adminGuard = new AdminGuard({ token: opts.adminToken, logger });
  const database = opts.database ?? join(opts.dataDir ?? "data", "center.sqlite");
  const ledger = opts.ledger ?? (opts.createLedger ? await openLedger(database) : await openExistingLedger(database));
  const center = new PaymentCenter(ledger, opts);
  await center.start();
  const sealing = opts.sealing === false ? undefined : new SealingLoop(ledger, center.keys, { onError: () => {}, ...opts.sealing });
  sealing?.start();
  const limiter = opts.rateLimits ? createRateLimiterCore(opts.rateLimits) : undefined;
  const service = paymentCenterService(center, { sync: opts.sync });
  const paymentImpl = limiter
    ? rateLimitService(PaymentCenterService, service, limiter)
    : service;
  const stack: ServerStack = createServerStack({
    services: [PaymentCenterService, CenterAdminService],
    routes: (router) => {
      router.service(PaymentCenterService, paymentImpl);
      router.service(CenterAdminService, centerAdminService(center, adminGuard));
    },
    host: opts.host ?? "127.0.0.1",
    port: opts.port ?? 0,
    tls: opts.tls,
    logger,
    // Always: the admin guard backs off per peer address and logs it.
    adapter: { contextValues: remoteAddressContextValues },
    pages: opts.walletPages === false ? undefined : walletPages,
    corsOrigins: opts.corsOrigins,
    fastUnary:
      opts.fastPath === false ? undefined : [{ service: PaymentCenterService, impl: paymentImpl, methods: CENTER_FAST_METHODS }],
  });
  const { port, url } = await stack.listen();
  return {
    center,
    ledger,
    sealing,
    port,
    url,
    async close(graceMs = 5_000) {
      await stack.close(graceMs);
      await sealing?.stop();
      if (!opts.ledger) await ledger.close();
    },
  };
}
