/**
 * The server under test, run as a CHILD process of bench/run.ts so its CPU
 * time (process.cpuUsage) and memory are its own, not the load generator's.
 *
 *   node --import=tsx bench/server.ts '<json options>'
 *
 * Modes (options.mode):
 *   stack-center   the payment center on the project's one-port server stack
 *                  (src/server/stack.ts), assembled exactly as
 *                  src/center/server.ts does it, plus the bench-only
 *                  NoopService and BenchControlService on the same stack
 *   adapter-noop   NoopService on connectNodeAdapter + http2.createServer,
 *                  without the stack (separates stack cost from connect-node)
 *   grpcjs-noop    NoopService on a plain @grpc/grpc-js server
 *   grpcjs-center  the payment center's unary RPCs (same PaymentCenter
 *                  handlers) and NoopService on a plain @grpc/grpc-js server
 *   h2-bare        a bare node:http2 responder that echoes the request body
 *                  (stream API: no request/response objects)
 *   h2-compat      the same on node:http2's compatibility API (req, res), which
 *                  connectNodeAdapter and the stack use
 *   fast-center    PROTOTYPE: stack-center's routes, with the hot unary calls
 *                  served by bench/lib/fastpath.ts in front of the stack's
 *                  Connect handler (see that file)
 *
 * Parent <-> child over the fork IPC channel:
 *   child -> {type:"ready", url}
 *   parent -> {type:"stats", id}  child -> {type:"stats", id, cpuUserUs, cpuSystemUs, rssBytes, heapUsedBytes}
 *   parent -> {type:"profile-start"} / {type:"profile-stop", path}: V8 CPU profile of just the
 *             measured window (node:inspector), written as a .cpuprofile; child -> {type:"profile", id}
 *   parent -> {type:"close"}      child closes and exits 0 (so --cpu-prof is written)
 */
import { create, fromBinary, toBinary, type DescMessage, type DescService } from "@bufbuild/protobuf";
import { ConnectError, type ConnectRouter } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import { readdirSync, readFileSync as readProc, writeFileSync } from "node:fs";
import http from "node:http";
import http2 from "node:http2";
import net from "node:net";
import { Session } from "node:inspector";
import type { AddressInfo } from "node:net";
import { BenchControlService, NoopRequestSchema, NoopResponseSchema, NoopService } from "../gen/scripwire/bench/v1/bench_pb.js";
import { CenterAdminService } from "../gen/scripwire/v1/admin_pb.js";
import { PaymentCenterService } from "../gen/scripwire/v1/center_pb.js";
import { PaymentCenter } from "../src/center/center.js";
import { CENTER_FAST_METHODS } from "../src/center/server.js";
import { centerAdminService, paymentCenterService } from "../src/center/service.js";
import { openLedger } from "../src/ledger/open.js";
import { openSqliteLedger } from "../src/ledger/sqlite.js";
import type { Ledger } from "../src/ledger/ledger.js";
import { sniffConnection } from "../src/server/protocol-sniff.js";
import { createServerStack, DEFAULT_MAX_CONCURRENT_STREAMS, DEFAULT_MAX_MESSAGE_BYTES } from "../src/server/stack.js";
import { createUnaryFastPath } from "./lib/fastpath.js";
import { CENTER_CONFIG } from "./world.js";
import Database from "better-sqlite3";
import { delayPercentile, SealingLoop } from "../src/center/sealing.js";
import { chainTriggerNames } from "../src/ledger/chain-schema.js";
import { useNativeHashes } from "../src/crypto/native-hash.js";
import cluster, { type Worker } from "node:cluster";
import { centerThread, startHotCalls } from "../src/center/hot-calls.js";

// As a Node center runs (src/center/server.ts): OpenSSL for the hashes.
useNativeHashes();

export type ServerMode = "stack-center" | "fast-center" | "adapter-noop" | "grpcjs-noop" | "grpcjs-center" | "h2-bare" | "h2-compat";

export interface ServerOptions {
  mode: ServerMode;
  /** Center database (stack-center, grpcjs-center). */
  dbPath?: string;
  /** SQLite group commit (default true, as the center runs it). */
  groupCommit?: boolean;
  /** stack-center: serve the center's hot calls on the stack's unary fast path, as src/center/server.ts does (default true). */
  fastPath?: boolean;
  /**
   * The tamper-evident journal (default true, as the center runs it): the
   * event triggers plus a SealingLoop. false drops the triggers from this
   * database copy and runs no sealer: the "sealing off" side of the ratio.
   */
  sealing?: boolean;
  /**
   * stack-center: this many center processes on one port and one ledger
   * (node:cluster, as `scripwire center serve --processes N` runs them).
   * The child the bench talks to is then the cluster primary; its stats sum
   * every process.
   */
  processes?: number;
  /**
   * stack-center: the hot calls on the ledger's writer thread, as
   * startCenterServer runs them (src/center/hot-calls.ts); default true.
   * false = the writer thread alone, hot calls on the event loop (before).
   */
  hotCalls?: boolean;
  /**
   * stack-center with hot calls on the thread: the fast path hands their
   * wire bytes across undecoded, as startCenterServer does without rate
   * limits and metrics; default true. false = decoded on the event loop
   * and re-encoded from the remembered bytes (before).
   */
  rawHotCalls?: boolean;
}

/** Set when the center runs a sealing loop: its delays go out with the stats. */
let sealing: SealingLoop | undefined;

const ADMIN_TOKEN = "bench-admin-token-not-secret-0123";

/**
 * Per-thread scheduler figures (Linux /proc schedstat, ns): the event-loop
 * thread's CPU, and how long all of this process's threads were runnable
 * but waiting for a CPU — a server that waits while the machine is not
 * busy is latency-bound; one that waits a lot shares its cores (the load
 * generator runs on the same two).
 */
function threadTimes(): { mainThreadUs?: number; runqWaitUs?: number } {
  try {
    let main = 0;
    let wait = 0;
    for (const tid of readdirSync("/proc/self/task")) {
      const [run, waited] = readProc(`/proc/self/task/${tid}/schedstat`, "utf8").split(" ").map(Number) as [number, number];
      if (Number(tid) === process.pid) main = run / 1000;
      wait += waited / 1000;
    }
    return { mainThreadUs: main, runqWaitUs: wait };
  } catch {
    return {};
  }
}

function stats() {
  const c = process.cpuUsage();
  const m = process.memoryUsage();
  const seal = sealing
    ? { sealed: sealing.sealedTotal, sealDelayP50Ms: delayPercentile(sealing.delaysMs, 50), sealDelayP99Ms: delayPercentile(sealing.delaysMs, 99), sealErrors: sealing.errors }
    : {};
  return { cpuUserUs: c.user, cpuSystemUs: c.system, rssBytes: m.rss, heapUsedBytes: m.heapUsed, ...threadTimes(), ...seal };
}

const noopImpl = { noop: (req: { payload: Uint8Array }) => create(NoopResponseSchema, { payload: req.payload }) };
const controlImpl = {
  getProcessStats: () => {
    const s = stats();
    return { cpuUserUs: BigInt(s.cpuUserUs), cpuSystemUs: BigInt(s.cpuSystemUs), rssBytes: BigInt(s.rssBytes), heapUsedBytes: BigInt(s.heapUsedBytes) };
  },
};

async function openCenter(opts: ServerOptions): Promise<{ center: PaymentCenter; ledger: Ledger }> {
  if (!opts.dbPath) throw new Error("dbPath is required for a center mode");
  if (opts.sealing === false) {
    // Sealing off: no journal at all on this copy (no triggers, no sealer).
    const db = new Database(opts.dbPath);
    for (const t of chainTriggerNames()) db.exec(`DROP TRIGGER IF EXISTS ${t}`);
    db.close();
  }
  const ledger =
    opts.groupCommit === false
      ? openSqliteLedger(opts.dbPath, { groupCommit: false })
      : await openLedger(opts.dbPath, { sqliteThread: opts.mode === "stack-center" && opts.hotCalls !== false ? centerThread() : undefined });
  const center = new PaymentCenter(ledger, CENTER_CONFIG);
  await center.start();
  if (opts.sealing !== false && (cluster.isPrimary || process.env.SCRIPWIRE_PROCESS_INDEX === "0")) {
    // As startCenterServer runs it (one sealer per deployment of processes).
    sealing = new SealingLoop(ledger, center.keys);
    sealing.start();
  }
  return { center, ledger };
}

/** A grpc-js service definition over protobuf-es codecs, for any unary methods of a protobuf-es service. */
function grpcDefinition(service: DescService, only?: (name: string) => boolean): grpc.ServiceDefinition {
  const def: Record<string, grpc.MethodDefinition<unknown, unknown>> = {};
  for (const m of service.methods) {
    if (m.methodKind !== "unary" || (only && !only(m.localName))) continue;
    const input = m.input as DescMessage;
    const output = m.output as DescMessage;
    def[m.localName] = {
      path: `/${service.typeName}/${m.name}`,
      requestStream: false,
      responseStream: false,
      requestSerialize: (v: never) => Buffer.from(toBinary(input, v)),
      requestDeserialize: (b: Buffer) => fromBinary(input, b),
      responseSerialize: (v: never) => Buffer.from(toBinary(output, v)),
      responseDeserialize: (b: Buffer) => fromBinary(output, b),
    } as grpc.MethodDefinition<unknown, unknown>;
  }
  return def as grpc.ServiceDefinition;
}

/** Connect codes are gRPC codes (same numbers). */
function grpcUnary(fn: (req: never) => unknown): grpc.handleUnaryCall<unknown, unknown> {
  return (call, cb) => {
    Promise.resolve()
      .then(() => fn(call.request as never))
      .then(
        (res) => cb(null, res),
        (e: unknown) => {
          const ce = ConnectError.from(e);
          cb({ code: ce.code as number, details: ce.rawMessage } as grpc.ServiceError);
        },
      );
  };
}

async function grpcListen(server: grpc.Server): Promise<string> {
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  return `http://127.0.0.1:${port}`;
}

/**
 * The cluster primary of a multi-process center: starts the workers one
 * after the other (the first opens and migrates the ledger alone), then
 * relays the bench's stats / profile / close messages, summing CPU.
 */
async function clusterPrimary(opts: ServerOptions): Promise<void> {
  const n = opts.processes!;
  const workers: Worker[] = [];
  let url = "";
  for (let i = 0; i < n; i++) {
    const w = cluster.fork({ SCRIPWIRE_PROCESS_INDEX: String(i) });
    url = await new Promise<string>((resolve, reject) => {
      w.once("message", (m: { type: string; url: string }) => (m.type === "ready" ? resolve(m.url) : reject(new Error(`worker ${i}: ${JSON.stringify(m)}`))));
      w.once("exit", (code) => reject(new Error(`worker ${i} exited with ${code}`)));
    });
    workers.push(w);
  }
  let seq = 0;
  const ask = (w: Worker, msg: object) =>
    new Promise<Record<string, number>>((resolve) => {
      const id = ++seq;
      const on = (m: { id?: number } & Record<string, number>) => {
        if (m.id === id) {
          w.off("message", on);
          resolve(m);
        }
      };
      w.on("message", on);
      w.send({ ...msg, id });
    });
  process.on("message", (msg: { type: string; id?: number; path?: string }) => {
    if (msg.type === "stats") {
      void Promise.all(workers.map((w) => ask(w, { type: "stats" }))).then((all) => {
        const own = stats();
        const sum = (k: string) => all.reduce((a, s) => a + (s[k] ?? 0), own[k as keyof typeof own] as number);
        const sealer = all[0]!;
        process.send!({
          type: "stats",
          id: msg.id,
          cpuUserUs: sum("cpuUserUs"),
          cpuSystemUs: sum("cpuSystemUs"),
          rssBytes: sum("rssBytes"),
          heapUsedBytes: sum("heapUsedBytes"),
          mainThreadUs: sum("mainThreadUs"),
          runqWaitUs: sum("runqWaitUs"),
          sealed: sealer.sealed,
          sealDelayP50Ms: sealer.sealDelayP50Ms,
          sealDelayP99Ms: sealer.sealDelayP99Ms,
          sealErrors: sealer.sealErrors,
        });
      });
    }
    if (msg.type === "profile-start" || msg.type === "profile-stop") {
      // Profile the first worker (what one process of the center spends).
      void ask(workers[0]!, { type: msg.type, path: msg.path } as object).then(() => process.send!({ type: "profile", id: msg.id }));
    }
    if (msg.type === "close") {
      void Promise.all(workers.map((w) => new Promise<void>((r) => (w.once("exit", () => r()), w.send({ type: "close" }))))).finally(() => process.exit(0));
    }
  });
  process.on("disconnect", () => process.exit(0));
  process.send!({ type: "ready", url });
}

async function main(): Promise<void> {
  const opts = JSON.parse(process.argv[2] ?? "{}") as ServerOptions;
  if ((opts.processes ?? 1) > 1 && cluster.isPrimary) return clusterPrimary(opts);
  let url: string;
  let close: () => Promise<void>;

  switch (opts.mode) {
    case "stack-center": {
      const { center, ledger } = await openCenter(opts);
      const paymentImpl = paymentCenterService(center);
      // As startCenterServer: the hot calls go to the writer thread's center when the ledger hosts one.
      const hot = await startHotCalls(ledger, center, CENTER_CONFIG);
      if (hot) Object.assign(paymentImpl, hot.methods);
      const stack = createServerStack({
        services: [PaymentCenterService, CenterAdminService, NoopService, BenchControlService],
        // Exactly as src/center/server.ts: the six payment/issuance calls on
        // the fast path; the bench's NoopService stays on the normal path.
        fastUnary:
          opts.fastPath === false
            ? undefined
            : [{ service: PaymentCenterService, impl: paymentImpl, methods: CENTER_FAST_METHODS, raw: opts.rawHotCalls === false ? undefined : hot?.raw }],
        // The load generator keeps one connection per server for the whole run; a
        // server used by a single target sits idle between rounds for longer than
        // the stack's 30 s idle limit, which would close it under the bench.
        limits: { idleTimeoutMs: 3_600_000 },
        routes: (router: ConnectRouter) => {
          router.service(PaymentCenterService, paymentImpl);
          router.service(CenterAdminService, centerAdminService(center, ADMIN_TOKEN));
          router.service(NoopService, noopImpl);
          router.service(BenchControlService, controlImpl);
        },
        host: "127.0.0.1",
        port: 0,
      });
      url = (await stack.listen()).url;
      close = async () => {
        await stack.close(1000);
        await ledger.close();
      };
      break;
    }
    case "fast-center": {
      const { center, ledger } = await openCenter(opts);
      const services = paymentCenterService(center);
      const stack = createServerStack({
        services: [PaymentCenterService, CenterAdminService, NoopService, BenchControlService],
        routes: (router: ConnectRouter) => {
          router.service(PaymentCenterService, services);
          router.service(CenterAdminService, centerAdminService(center, ADMIN_TOKEN));
          router.service(NoopService, noopImpl);
          router.service(BenchControlService, controlImpl);
        },
      });
      const fast = createUnaryFastPath(
        [
          { service: PaymentCenterService, impl: services as never, methods: ["initPayment", "pay", "confirmPayment", "initIssue", "issue", "confirmIssue"] },
          { service: NoopService, impl: noopImpl as never },
        ],
        { readMaxBytes: DEFAULT_MAX_MESSAGE_BYTES, onCall: (path, code, ms) => stack.logger.enabled("debug") && stack.logger.debug("rpc", { method: path, code, duration_ms: ms }) },
      );
      // Same connection layout as the stack: one port, HTTP/2 prior knowledge
      // or HTTP/1.1 by sniffing; only HTTP/2 requests can take the fast path.
      const h2 = http2.createServer({ settings: { maxConcurrentStreams: DEFAULT_MAX_CONCURRENT_STREAMS }, peerMaxConcurrentStreams: DEFAULT_MAX_CONCURRENT_STREAMS }, (req, res) => {
        if (!fast(req, res)) stack.handler(req, res);
      });
      const h1 = http.createServer((req, res) => stack.handler(req, res));
      const srv = net.createServer({ noDelay: true }, (socket) =>
        sniffConnection(
          socket,
          (s) => h1.emit("connection", s),
          (s) => h2.emit("connection", s),
        ),
      );
      await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
      url = `http://127.0.0.1:${(srv.address() as AddressInfo).port}`;
      close = async () => {
        await new Promise<void>((r) => {
          srv.close(() => r());
          setTimeout(r, 500).unref();
        });
        await ledger.close();
      };
      break;
    }
    case "h2-compat": {
      const srv = http2.createServer({ settings: { maxConcurrentStreams: 1000 } }, (req, res) => {
        const chunks: Buffer[] = [];
        req.on("data", (c: Buffer) => chunks.push(c));
        req.on("end", () => {
          res.writeHead(200, { "content-type": "application/proto" });
          res.end(chunks.length === 1 ? chunks[0] : Buffer.concat(chunks));
        });
      });
      await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
      url = `http://127.0.0.1:${(srv.address() as AddressInfo).port}`;
      close = () =>
        new Promise<void>((r) => {
          srv.close(() => r());
          setTimeout(r, 500).unref();
        });
      break;
    }
    case "adapter-noop": {
      const handler = connectNodeAdapter({ routes: (r) => r.service(NoopService, noopImpl) });
      const srv = http2.createServer({ settings: { maxConcurrentStreams: 1000 } }, handler);
      await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
      url = `http://127.0.0.1:${(srv.address() as AddressInfo).port}`;
      close = () => new Promise<void>((r) => srv.close(() => r()));
      break;
    }
    case "grpcjs-noop": {
      const server = new grpc.Server();
      server.addService(grpcDefinition(NoopService), { noop: grpcUnary(noopImpl.noop as never) });
      url = await grpcListen(server);
      close = () => new Promise<void>((r) => server.tryShutdown(() => r()));
      break;
    }
    case "grpcjs-center": {
      const { center, ledger } = await openCenter(opts);
      const impl = paymentCenterService(center) as unknown as Record<string, (req: never) => unknown>;
      const server = new grpc.Server();
      const def = grpcDefinition(PaymentCenterService);
      const handlers: grpc.UntypedServiceImplementation = {};
      for (const name of Object.keys(def)) handlers[name] = grpcUnary(impl[name]!.bind(impl));
      server.addService(def, handlers);
      server.addService(grpcDefinition(NoopService), { noop: grpcUnary(noopImpl.noop as never) });
      url = await grpcListen(server);
      close = async () => {
        await new Promise<void>((r) => server.tryShutdown(() => r()));
        await ledger.close();
      };
      break;
    }
    case "h2-bare": {
      const srv = http2.createServer({ settings: { maxConcurrentStreams: 1000 } });
      const head = { ":status": 200, "content-type": "application/proto" };
      srv.on("stream", (stream) => {
        const chunks: Buffer[] = [];
        stream.on("data", (c: Buffer) => chunks.push(c));
        stream.on("end", () => {
          stream.respond(head);
          stream.end(chunks.length === 1 ? chunks[0] : Buffer.concat(chunks));
        });
        stream.on("error", () => {});
      });
      await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
      url = `http://127.0.0.1:${(srv.address() as AddressInfo).port}`;
      close = () =>
        new Promise<void>((r) => {
          srv.close(() => r());
          setTimeout(r, 500).unref();
        });
      break;
    }
    default:
      throw new Error(`unknown mode ${String((opts as ServerOptions).mode)}`);
  }

  let session: Session | undefined;
  process.on("message", (msg: { type: string; id?: number; path?: string }) => {
    if (msg.type === "stats") process.send!({ type: "stats", id: msg.id, ...stats() });
    if (msg.type === "profile-start") {
      session = new Session();
      session.connect();
      session.post("Profiler.enable", () =>
        session!.post("Profiler.setSamplingInterval", { interval: 200 }, () => session!.post("Profiler.start", () => process.send!({ type: "profile", id: msg.id }))),
      );
    }
    if (msg.type === "profile-stop") {
      session?.post("Profiler.stop", (err, res) => {
        if (!err) writeFileSync(msg.path!, JSON.stringify(res.profile));
        session?.disconnect();
        session = undefined;
        process.send!({ type: "profile", id: msg.id });
      });
    }
    if (msg.type === "close") {
      void close().finally(() => process.exit(0));
    }
  });
  process.on("disconnect", () => process.exit(0));
  process.send!({ type: "ready", url });
}

main().catch((e: unknown) => {
  process.stderr.write(`bench server failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exit(1);
});

export { NoopRequestSchema };
