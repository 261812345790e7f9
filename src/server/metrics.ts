/**
 * Prometheus metrics for a payment center, on a listener of its own
 * (`--metrics-port`), so scraping never competes with, or is exposed like,
 * the protocol port.
 *
 * - The conventional gRPC server set (grpc_server_started_total,
 *   grpc_server_handled_total{grpc_code}, grpc_server_handling_seconds),
 *   counted by {@link meterService}: it wraps the service implementation
 *   object, and that one object is what both the Connect router and the unary
 *   fast path (fast-unary.ts) call, so every path is counted by the same
 *   function whatever serves the bytes. Calls the transport refuses before a
 *   method runs (malformed envelope, size limit) are not method calls and are
 *   not counted here.
 * - The ledger: latency, errors and count of every write operation (each is
 *   one database transaction: its commit latency as the center sees it), and
 *   the size of the SQLite engine's group-commit batches where it reports them.
 * - The business: issuances, payments, refusals by reason, value moved per
 *   currency and kind, live scrips (read from the ledger at scrape time).
 *
 * Each center gets its own Registry (no global state), so several centers in
 * one process (tests, benchmarks) never share counters.
 */
import { Counter, Gauge, Histogram, Registry } from "prom-client";
import { createServer, type Server } from "node:http";
import type { DescService } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { CmdType } from "../../gen/scripwire/v1/types_pb.js";
import { timedWrites, type Ledger } from "../ledger/ledger.js";
import { ERROR_REASON_KEY, toConnectError } from "./errors.js";

/** gRPC's status names, as grpc-ecosystem/go-grpc-prometheus labels them. */
const CODE_NAMES: Record<number, string> = {
  0: "OK",
  [Code.Canceled]: "Canceled",
  [Code.Unknown]: "Unknown",
  [Code.InvalidArgument]: "InvalidArgument",
  [Code.DeadlineExceeded]: "DeadlineExceeded",
  [Code.NotFound]: "NotFound",
  [Code.AlreadyExists]: "AlreadyExists",
  [Code.PermissionDenied]: "PermissionDenied",
  [Code.ResourceExhausted]: "ResourceExhausted",
  [Code.FailedPrecondition]: "FailedPrecondition",
  [Code.Aborted]: "Aborted",
  [Code.OutOfRange]: "OutOfRange",
  [Code.Unimplemented]: "Unimplemented",
  [Code.Internal]: "Internal",
  [Code.Unavailable]: "Unavailable",
  [Code.DataLoss]: "DataLoss",
  [Code.Unauthenticated]: "Unauthenticated",
};


export class CenterMetrics {
  readonly registry = new Registry();
  readonly started: Counter<"grpc_type" | "grpc_service" | "grpc_method">;
  readonly handled: Counter<"grpc_type" | "grpc_service" | "grpc_method" | "grpc_code">;
  readonly handling: Histogram<"grpc_type" | "grpc_service" | "grpc_method">;
  readonly ledgerSeconds: Histogram<"op">;
  readonly ledgerErrors: Counter<"op">;
  readonly ledgerBatch: Histogram;
  readonly issuances: Counter<"currency">;
  readonly payments: Counter<"currency">;
  readonly refusals: Counter<"reason">;
  readonly value: Counter<"currency" | "kind">;

  constructor(ledger?: Ledger) {
    const registers = [this.registry];
    this.started = new Counter({ name: "grpc_server_started_total", help: "RPCs started on the server.", labelNames: ["grpc_type", "grpc_service", "grpc_method"], registers });
    this.handled = new Counter({
      name: "grpc_server_handled_total",
      help: "RPCs completed on the server, by status code.",
      labelNames: ["grpc_type", "grpc_service", "grpc_method", "grpc_code"],
      registers,
    });
    this.handling = new Histogram({
      name: "grpc_server_handling_seconds",
      help: "Time from the handler's start to its answer, seconds.",
      labelNames: ["grpc_type", "grpc_service", "grpc_method"],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    });
    this.ledgerSeconds = new Histogram({
      name: "scripwire_ledger_commit_seconds",
      help: "Latency of a ledger write operation (one database transaction, durable when it returns), seconds.",
      labelNames: ["op"],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers,
    });
    this.ledgerErrors = new Counter({ name: "scripwire_ledger_errors_total", help: "Ledger write operations that failed (not refusals: the database failed).", labelNames: ["op"], registers });
    this.ledgerBatch = new Histogram({
      name: "scripwire_ledger_commit_batch_size",
      help: "Ledger writes whose commits completed together (answered in the same event-loop turn: one group commit on SQLite; 1 on PostgreSQL).",
      buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256],
      registers,
    });
    this.issuances = new Counter({ name: "scripwire_issuances_total", help: "Scrip issuances executed (GM5_1).", labelNames: ["currency"], registers });
    this.payments = new Counter({ name: "scripwire_payments_total", help: "Payments executed (PM5_1).", labelNames: ["currency"], registers });
    this.refusals = new Counter({ name: "scripwire_refusals_total", help: "Refusals, in-band (GM5_2, PM5_2 ...) or as errors, by error_reason.", labelNames: ["reason"], registers });
    this.value = new Counter({ name: "scripwire_value_moved_total", help: "Value moved, in the currency's smallest unit, by kind (issue, pay).", labelNames: ["currency", "kind"], registers });
    const live = ledger as { liveScripCount?: () => Promise<bigint> } | undefined;
    if (live?.liveScripCount) {
      new Gauge({
        name: "scripwire_live_scrips",
        help: "Live scrips in the ledger (one per customer and currency at most).",
        registers,
        async collect() {
          this.set(Number(await live.liveScripCount!()));
        },
      });
    }
  }

  /** The one place a finished call is counted: both the Connect router and the fast path end here. */
  observe(service: string, method: string, type: string, seconds: number, err: unknown): void {
    const labels = { grpc_type: type, grpc_service: service, grpc_method: method };
    let code = 0;
    if (err !== undefined) {
      const ce = toConnectError(err);
      code = ce instanceof ConnectError ? ce.code : Code.Internal;
      const reason = ce instanceof ConnectError ? ce.metadata.get(ERROR_REASON_KEY) : null;
      if (reason) this.refusals.inc({ reason });
    }
    this.handled.inc({ ...labels, grpc_code: CODE_NAMES[code] ?? String(code) });
    this.handling.observe(labels, seconds);
  }

  /** Business counters from a successful reply (and the request it answered). */
  business(req: unknown, res: unknown): void {
    const h = (res as { header?: { cmdType?: CmdType; errorReason?: string } } | undefined)?.header;
    if (!h) return;
    if (h.errorReason) this.refusals.inc({ reason: h.errorReason });
    const before = (req as { scrip?: { scrip?: { value: bigint; currency: string } } }).scrip?.scrip;
    const after = (res as { newScrip?: { scrip?: { value: bigint; currency: string } } }).newScrip?.scrip;
    if (!before || !after) return;
    if (h.cmdType === CmdType.GM5_1) {
      this.issuances.inc({ currency: after.currency });
      this.value.inc({ currency: after.currency, kind: "issue" }, Number(after.value - before.value));
    } else if (h.cmdType === CmdType.PM5_1) {
      this.payments.inc({ currency: after.currency });
      this.value.inc({ currency: after.currency, kind: "pay" }, Number(before.value - after.value));
    }
  }

  private batchOpen = 0;

  /**
   * Writes of one group commit are all answered when that commit returns, in
   * one turn of the event loop; counting completions per turn measures the
   * batch as the center sees it, whatever engine (or thread) commits.
   */
  private completed(): void {
    if (this.batchOpen++ === 0) {
      setImmediate(() => {
        this.ledgerBatch.observe(this.batchOpen);
        this.batchOpen = 0;
      });
    }
  }

  /**
   * One ledger write finished: timed on the event loop by meterLedger, or on
   * the writer thread for the hot calls (src/center/hot-calls.ts) and
   * reported here with the commit's answers.
   */
  ledgerWrite(op: string, seconds: number, failed: boolean): void {
    this.ledgerSeconds.observe({ op }, seconds);
    if (failed) this.ledgerErrors.inc({ op });
    else this.completed();
  }

  /** A ledger whose write operations are timed and counted; the same object otherwise. */
  meterLedger<L extends Ledger>(ledger: L): L {
    return timedWrites(ledger, (op, seconds, failed) => this.ledgerWrite(op, seconds, failed));
  }
}

/**
 * The implementation object with every method counted. Pass the result to the
 * router AND to the fast path: whichever serves a call, this is what it calls.
 */
export function meterService<T extends object>(service: DescService, impl: T, metrics: CenterMetrics): T {
  const wrapped: Record<string, unknown> = { ...(impl as Record<string, unknown>) };
  for (const m of service.methods) {
    const fn = (impl as Record<string, unknown>)[m.localName];
    if (typeof fn !== "function") continue;
    const labels = { grpc_type: m.methodKind === "unary" ? "unary" : "server_stream", grpc_service: service.typeName, grpc_method: m.name };
    if (m.methodKind === "unary") {
      wrapped[m.localName] = async (req: unknown, ctx: unknown) => {
        metrics.started.inc(labels);
        const t0 = performance.now();
        try {
          const res = await (fn as (r: unknown, c: unknown) => unknown).call(impl, req, ctx);
          metrics.observe(labels.grpc_service, labels.grpc_method, labels.grpc_type, (performance.now() - t0) / 1000, undefined);
          metrics.business(req, res);
          return res;
        } catch (e) {
          metrics.observe(labels.grpc_service, labels.grpc_method, labels.grpc_type, (performance.now() - t0) / 1000, e);
          throw e;
        }
      };
    } else if (m.methodKind === "server_streaming") {
      wrapped[m.localName] = async function* (req: unknown, ctx: unknown) {
        metrics.started.inc(labels);
        const t0 = performance.now();
        try {
          yield* (fn as (r: unknown, c: unknown) => AsyncIterable<unknown>).call(impl, req, ctx);
          metrics.observe(labels.grpc_service, labels.grpc_method, labels.grpc_type, (performance.now() - t0) / 1000, undefined);
        } catch (e) {
          metrics.observe(labels.grpc_service, labels.grpc_method, labels.grpc_type, (performance.now() - t0) / 1000, e);
          throw e;
        }
      };
    }
  }
  return wrapped as T;
}

/** GET /metrics on its own port (loopback by default). */
export async function serveMetrics(metrics: CenterMetrics, host: string, port: number): Promise<{ port: number; close(): Promise<void> }> {
  const server: Server = createServer((req, res) => {
    if (req.method !== "GET" || (req.url ?? "").split("?")[0] !== "/metrics") {
      res.writeHead(404, { "content-type": "text/plain" }).end("not found; metrics are at GET /metrics\n");
      return;
    }
    metrics.registry.metrics().then(
      (body) => res.writeHead(200, { "content-type": metrics.registry.contentType }).end(body),
      (e: unknown) => res.writeHead(500, { "content-type": "text/plain" }).end(`metrics failed: ${e instanceof Error ? e.message : String(e)}\n`),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => resolve());
  });
  return {
    port: (server.address() as { port: number }).port,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}
