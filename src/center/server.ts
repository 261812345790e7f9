import type { ConnectRouter } from "@connectrpc/connect";
/**
 * Assembles a running payment center: ledger engine chosen by URL, protocol
 * logic, Connect services, and the one-port server stack.
 */
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { KekError, KeyEncryptionKeys } from "../crypto/kek.js";
import { CenterAdminService } from "../../gen/scripwire/v1/admin_pb.js";
import { watchLedgerHealth, type LedgerHealth } from "./ledger-health.js";
import { CenterMetrics, meterService, serveMetrics } from "../server/metrics.js";
import { PaymentCenterService } from "../../gen/scripwire/v1/center_pb.js";
import type { Ledger } from "../ledger/ledger.js";
import { openLedger } from "../ledger/open.js";
import { createRateLimiterCore, rateLimitService, remoteAddressContextValues, type RateLimitOptions } from "../server/limits.js";
import { AdminGuard } from "../server/admin-guard.js";
import { createLogger } from "../server/log.js";
import type { ResourceLimits } from "../server/resource-limits.js";
import { createServerStack, type ServerStack } from "../server/stack.js";
import { PaymentCenter, type CenterConfig } from "./center.js";
import { walletPages } from "./web.js";
import type { SyncOptions } from "./restore.js";
import { SealingLoop, type SealingOptions } from "./sealing.js";
import { isPostgresUrl, openExistingLedger } from "./init.js";
import { assertPrivateLedgerFiles, defaultKekFile, loadKek, type KekSource } from "./kek-store.js";
import { centerAdminService, paymentCenterService } from "./service.js";
import { useNativeHashes } from "../crypto/native-hash.js";
import { CENTER_FAST_METHODS, centerThread, startHotCalls } from "./hot-calls.js";

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
  /** Serve Prometheus metrics on this port (0 = any free one), on a listener of its own; default: no metrics. */
  metricsPort?: number;
  /** Interface of the metrics listener (default 127.0.0.1). */
  metricsHost?: string;
  /** How often grpc.health.v1 asks the ledger whether it answers (default 2000 ms; src/center/ledger-health.ts). */
  healthPollMs?: number;
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
  /**
   * Key-encryption key for the keys kept in the ledger (src/crypto/kek.ts):
   * a file or environment variable (src/center/kek-store.ts), an already
   * loaded set, or `false` for none. Default: the file `<dataDir>.kek` for a
   * ledger opened here; none for an already-open `ledger`.
   */
  kek?: KekSource | KeyEncryptionKeys | false;
  /**
   * Serve CenterAdminService on its own listener instead of the public port
   * (which then does not serve it at all): host default 127.0.0.1, so admin
   * is reachable from the machine only unless the operator says otherwise.
   * Default: none (admin on the public port, behind the admin guard).
   */
  adminListener?: { host?: string; port?: number };
  /** Bounds on what peers can make the server hold (src/server/resource-limits.ts). Default: the constants there. */
  limits?: Partial<ResourceLimits>;
  /**
   * Run the hot calls (M3, M4, M6, S3, S4, S6) on the SQLite ledger's writer
   * thread, off the event loop (hot-calls.ts). Default true where possible:
   * a SQLite ledger opened here (or one the caller opened with
   * `thread: centerThread()`) and no injected clock.
   */
  hotCallsThread?: boolean;
}

export { CENTER_FAST_METHODS } from "./hot-calls.js";

export interface RunningCenter {
  /** The center's metrics, when `metricsPort` was given, and the port they are served on. */
  metrics?: CenterMetrics;
  metricsPort?: number;
  /** NOT_SERVING while the ledger does not answer; see src/center/ledger-health.ts. */
  ledgerHealth: LedgerHealth;
  center: PaymentCenter;
  ledger: Ledger;
  sealing: SealingLoop | undefined;
  port: number;
  url: string;
  /** The server stack (connection and resource-limit stats). */
  stack: ServerStack;
  /** Set when this start generated the KEK file: its path, for the start-up message. */
  kekCreated?: string;
  /** Where admin calls go: the separate admin listener when there is one, else `url`. */
  adminUrl: string;
  close(graceMs?: number): Promise<void>;
}

/**
 * The KEK for this start (src/center/kek-store.ts), or undefined for an
 * already-open `ledger` without `kek` (tests that bring their own ledger keep
 * its keys as they are).
 *
 * A missing KEK file is generated when the ledger is being created, or when
 * it is a ledger from before key wrapping (its keys still in the clear: the
 * first start wraps them). A ledger whose keys ARE wrapped never gets a new
 * KEK: that would lock its keys away for good, so the start is refused with
 * the fix.
 */
async function keyEncryptionKeys(opts: CenterServerOptions, ledger: Ledger): Promise<{ keys: KeyEncryptionKeys; created?: string } | undefined> {
  if (opts.kek === false) return undefined;
  if (opts.kek instanceof KeyEncryptionKeys) return { keys: opts.kek };
  if (opts.kek === undefined && opts.ledger) return undefined;
  const src: KekSource = opts.kek ?? { file: defaultKekFile(opts.dataDir ?? (opts.database && !isPostgresUrl(opts.database) ? dirname(opts.database) : "data")) };
  let create = opts.createLedger === true;
  if (!create && src.file && !src.env && !existsSync(src.file)) {
    try {
      await ledger.listKeys();
      create = true; // readable without a KEK: nothing is wrapped yet
    } catch (e) {
      if (!(e instanceof KekError)) throw e;
    }
  }
  const loaded = loadKek(src, { create });
  return { keys: loaded.keks, created: loaded.created };
}

export async function startCenterServer(opts: CenterServerOptions): Promise<RunningCenter> {
  useNativeHashes();
  // Refuse a weak token before anything is created on disk.
  const logger = createLogger();
  const adminGuard = new AdminGuard({ token: opts.adminToken, logger });
  const database = opts.database ?? join(opts.dataDir ?? "data", "center.sqlite");
  const sqlitePath = opts.ledger === undefined && !isPostgresUrl(database) ? database : undefined;
  // A ledger others can read is refused before it is opened (the fix is in the message).
  if (sqlitePath) assertPrivateLedgerFiles(sqlitePath);
  const hotThread = opts.hotCallsThread !== false && sqlitePath !== undefined && opts.clock === undefined;
  const open = { sqliteThread: hotThread ? centerThread() : undefined };
  const ledger = opts.ledger ?? (opts.createLedger ? await openLedger(database, open) : await openExistingLedger(database, open));
  let kekCreated: string | undefined;
  try {
    const kek = await keyEncryptionKeys(opts, ledger);
    if (kek) {
      await ledger.migrate();
      const r = await ledger.protectKeys(kek.keys);
      kekCreated = kek.created;
      if (kek.created) logger.info("generated a key-encryption key for the ledger's keys; keep it apart from database backups, every replica needs it", { kek_file: kek.created, kek: r.current });
      if (r.wrapped > 0 || r.rewrapped > 0) logger.info("ledger keys wrapped", { wrapped: r.wrapped, rewrapped: r.rewrapped, kek: r.current });
    }
  } catch (e) {
    if (!opts.ledger) await ledger.close();
    throw e;
  }
  // Metrics (src/server/metrics.ts) only when a metrics port is asked for: the ledger's writes are timed through a proxy.
  const metrics = opts.metricsPort !== undefined ? new CenterMetrics(ledger) : undefined;
  const center = new PaymentCenter(metrics ? metrics.meterLedger(ledger) : ledger, opts);
  await center.start();
  const sealing = opts.sealing === false ? undefined : new SealingLoop(ledger, center.keys, { onError: () => {}, ...opts.sealing });
  sealing?.start();
  const limiter = opts.rateLimits ? createRateLimiterCore(opts.rateLimits) : undefined;
  const service = paymentCenterService(center, { sync: opts.sync });
  // The hot calls go to the writer thread's center when the ledger hosts one.
  const hot = opts.hotCallsThread === false ? undefined : await startHotCalls(ledger, center, opts, metrics);
  if (hot) Object.assign(service, hot.methods);
  const limited = limiter ? rateLimitService(PaymentCenterService, service, limiter) : service;
  // Counted outside the limiter (a refused call is a call), and the same object serves the router and the fast path.
  const paymentImpl = metrics ? meterService(PaymentCenterService, limited, metrics) : limited;
  const adminImpl = centerAdminService(center, adminGuard);
  const adminRoutes = (router: ConnectRouter) => router.service(CenterAdminService, metrics ? meterService(CenterAdminService, adminImpl, metrics) : adminImpl);
  // With a separate admin listener, the public port does not serve admin calls at all.
  const separateAdmin = opts.adminListener !== undefined;
  const stack: ServerStack = createServerStack({
    services: separateAdmin ? [PaymentCenterService] : [PaymentCenterService, CenterAdminService],
    routes: (router) => {
      router.service(PaymentCenterService, paymentImpl);
      if (!separateAdmin) adminRoutes(router);
    },
    host: opts.host ?? "127.0.0.1",
    port: opts.port ?? 0,
    tls: opts.tls,
    logger,
    limits: opts.limits,
    // Always: the admin guard backs off per peer address and logs it.
    adapter: { contextValues: remoteAddressContextValues },
    pages: opts.walletPages === false ? undefined : walletPages,
    corsOrigins: opts.corsOrigins,
    fastUnary:
      opts.fastPath === false
        ? undefined
        : [
            {
              service: PaymentCenterService,
              impl: paymentImpl,
              methods: CENTER_FAST_METHODS,
              // Bytes straight to the writer thread, undecoded, unless rate limits or metrics wrap the methods.
              raw: hot && !limiter && !metrics ? hot.raw : undefined,
            },
          ],
  });
  const ledgerHealth = watchLedgerHealth(ledger, stack.health, [PaymentCenterService.typeName, CenterAdminService.typeName], {
    intervalMs: opts.healthPollMs,
    onChange: (ok, e) => (ok ? logger.info("ledger reachable again: health SERVING") : logger.error("ledger unreachable: health NOT_SERVING", { error: e instanceof Error ? e.message : String(e) })),
  });
  const { port, url } = await stack.listen();
  const adminStack = separateAdmin
    ? createServerStack({
        services: [CenterAdminService],
        routes: adminRoutes,
        // Loopback unless the operator names another address.
        host: opts.adminListener!.host ?? "127.0.0.1",
        port: opts.adminListener!.port ?? 0,
        tls: opts.tls,
        logger: logger.child({ listener: "admin" }),
        limits: opts.limits,
        adapter: { contextValues: remoteAddressContextValues },
      })
    : undefined;
  const adminAddress = adminStack ? await adminStack.listen() : undefined;
  const metricsServer = metrics ? await serveMetrics(metrics, opts.metricsHost ?? "127.0.0.1", opts.metricsPort!) : undefined;
  return {
    center,
    ledger,
    ledgerHealth,
    metrics,
    metricsPort: metricsServer?.port,
    sealing,
    port,
    url,
    stack,
    kekCreated,
    adminUrl: adminAddress?.url ?? url,
    async close(graceMs = 5_000) {
      ledgerHealth.stop();
      await metricsServer?.close();
      await adminStack?.close(graceMs);
      await stack.close(graceMs);
      await sealing?.stop();
      if (!opts.ledger) await ledger.close();
    },
  };
}
