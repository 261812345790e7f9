/**
 * The SQLite ledger with its writer off the event loop.
 *
 * A worker thread (src/ledger/sqlite-writer.ts) owns the only write
 * connection and runs the very same SqlLedger write methods over the
 * group-commit engine: the decisions of every call that reached it together
 * go into ONE SQLite transaction (each in its own SAVEPOINT) and ONE fsync
 * of the WAL, and it answers only after that fsync returned (wal-sync.ts: the
 * writer thread hands the fsync to the thread pool and keeps working).
 * This thread, which speaks HTTP/2 and checks hashes, never waits for the
 * disk: it sends the calls, keeps serving, and resolves each promise when the
 * answer comes back. Reads stay here, on a read-only connection that sees
 * only committed transactions, and return only once those are fsynced
 * (the shared DurableHorizon).
 *
 * Hand-off: calls made in one event-loop turn travel as ONE message (a
 * thread hand-off costs ~28 µs of CPU per message alone, ~5 µs per call in
 * batches of 32: STYLE.md), and the worker answers a whole commit's calls in
 * one message too. Arguments are plain data (bigint, string, Uint8Array),
 * copied by structured clone.
 *
 * Adding a write operation (a new Ledger method that changes the database):
 * write it in SqlLedger (sql-ledger.ts) over `this.db.tx(...)` as usual, then
 * add its name to WRITE_METHODS below. Nothing else: the worker dispatches by
 * name to its own SqlLedger, and this class forwards the names listed. A
 * write method left out of the list fails loudly on the first call
 * (LedgerError WRITE_ON_READER), and the ledger contract suite runs on this
 * engine, so a new operation tested there cannot be forgotten. Arguments and
 * results must be structured-clonable (no functions, no class instances
 * other than Uint8Array/Date/Map/Set); an argument that is not (seal()'s
 * clock) gets an entry in ARG_CODECS. Thrown LedgerErrors keep their reason.
 */
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import { Worker } from "node:worker_threads";
import { KekError, KeyEncryptionKeys } from "../crypto/kek.js";
import { LEDGER_WRITE_METHODS, LedgerError, SchemaTooNewError, type KeyProtectionReport } from "./ledger.js";
import { SqlLedger } from "./sql-ledger.js";
import { SqliteReaderEngine, syncOffThreadWanted } from "./sqlite.js";
import { DurableHorizon } from "./durable-horizon.js";

/** SqlLedger methods that write, and so run on the writer thread: the ledger's one list. */
export const WRITE_METHODS = LEDGER_WRITE_METHODS satisfies readonly (keyof SqlLedger)[];

export type WriteMethod = (typeof WRITE_METHODS)[number];

/**
 * Arguments that are not plain data cross as data: `toWire` runs here before
 * the call is sent, `fromWire` on the writer thread before the method runs.
 * seal() takes a clock function; sealPending() reads it once, at its start,
 * so the time read here when the call is made stands in for it.
 */
export const ARG_CODECS: Partial<Record<WriteMethod, { toWire(args: unknown[]): unknown[]; fromWire(args: unknown[]): unknown[] }>> = {
  protectKeys: {
    toWire: ([k]) => [(k as KeyEncryptionKeys).toList()],
    fromWire: ([list]) => [new KeyEncryptionKeys(list as Uint8Array[])],
  },
  seal: {
    toWire: ([o]) => {
      const opts = o as { now: () => number };
      return [{ ...opts, now: opts.now() }];
    },
    fromWire: ([o]) => {
      const opts = o as { now: number };
      const t = opts.now;
      return [{ ...opts, now: () => t }];
    },
  },
};

/** What the writer thread starts with. */
export interface WriterData {
  path: string;
  groupCommit: boolean;
  /** Set when the thread syncs its WAL off-thread (wal-sync.ts): readers here wait on it. */
  horizon?: SharedArrayBuffer;
}

/** Calls named `guest:<name>` go to the writer thread's guest (writer-host.ts), not to the ledger. */
export const GUEST_PREFIX = "guest:";

/** main -> worker */
export type ToWriter = { t: "calls"; calls: Array<[id: number, method: WriteMethod | `${typeof GUEST_PREFIX}${string}`, args: unknown[]]> } | { t: "close" };
/** worker -> main */
export type FromWriter =
  | { t: "ready" }
  | { t: "open-failed"; error: WireError }
  | { t: "results"; results: Array<[id: number, ok: boolean, value: unknown]>; notices?: unknown[] }
  | { t: "closed" };

export interface WireError {
  /** The error's class, so the caller gets the same class back (instanceof keeps working). */
  kind: string;
  name: string;
  message: string;
  reason?: string;
  code?: string;
  found?: number;
  known?: number;
}

export function toWireError(e: unknown): WireError {
  if (e instanceof Error) {
    const w: WireError = { kind: e.constructor.name, name: e.name, message: e.message };
    const x = e as { reason?: unknown; code?: unknown; found?: unknown; known?: unknown };
    if (typeof x.reason === "string") w.reason = x.reason;
    if (typeof x.code === "string") w.code = x.code;
    if (typeof x.found === "number") w.found = x.found;
    if (typeof x.known === "number") w.known = x.known;
    return w;
  }
  return { kind: "Error", name: "Error", message: String(e) };
}

/** Rebuilds the error classes callers test with instanceof; anything else becomes an Error with the same name, message and code. */
export function fromWireError(w: WireError): Error {
  if (w.kind === "SchemaTooNewError" && w.found !== undefined && w.known !== undefined) return new SchemaTooNewError(w.found, w.known);
  if (w.kind === "KekError" && w.reason !== undefined) return new KekError(w.reason as KekError["reason"], w.message);
  if (w.reason !== undefined && (w.kind === "LedgerError" || w.name === "LedgerError")) return new LedgerError(w.reason, w.message);
  const e = new Error(w.message) as Error & { code?: string };
  e.name = w.name;
  if (w.code !== undefined) e.code = w.code;
  return e;
}

interface Pending {
  resolve: (v: unknown) => void;
  reject: (e: unknown) => void;
}

/**
 * How the worker's code is loaded. The project runs TypeScript through tsx;
 * a worker that registers tsx for itself spends ~300 ms of CPU and ~1 s of
 * wall time starting (measured: a loader-hooks thread and a transform per
 * module), on every ledger open. So the writer's module graph is bundled
 * once per process with esbuild (tsx's own compiler, ~50 ms) into one plain
 * ES module, better-sqlite3 left external by absolute URL, and the worker
 * starts from it as a data: URL. If esbuild is not there, the worker
 * registers tsx itself (slow but equivalent).
 */
const entries = new Map<string, { url: URL } | { eval: string }>();

/**
 * The plain writer thread; a guest brings its own entry module (writer-host.ts).
 * A function: this module is also bundled into the thread, where
 * import.meta.url is a data: URL nothing can be resolved against.
 */
const plainWriter = () => new URL("./sqlite-writer.ts", import.meta.url);

function workerEntry(source: URL): { url: URL } | { eval: string } {
  const known = entries.get(source.href);
  if (known) return known;
  let entry: { url: URL } | { eval: string };
  try {
    const require = createRequire(import.meta.url);
    const esbuild = require("esbuild") as typeof import("esbuild");
    const out = esbuild.buildSync({
      entryPoints: [fileURLToPath(source)],
      bundle: true,
      platform: "node",
      format: "esm",
      target: "node20",
      external: ["better-sqlite3"],
      write: false,
      logLevel: "silent",
      // Error classes are rebuilt on this side by their constructor name (fromWireError).
      keepNames: true,
    });
    const code = out.outputFiles[0]!.text.replace(/(from\s*)"better-sqlite3"/g, (_m, f: string) => `${f}${JSON.stringify(import.meta.resolve("better-sqlite3"))}`);
    if (/["']better-sqlite3["']/.test(code)) throw new Error("bundle still names better-sqlite3 by a bare specifier");
    // A data: URL, not a file: nothing on disk another user could swap.
    entry = { url: new URL(`data:text/javascript,${encodeURIComponent(code)}`) };
  } catch {
    const tsx = import.meta.resolve("tsx/esm/api");
    entry = { eval: `import(${JSON.stringify(tsx)}).then((m) => { m.register(); return import(${JSON.stringify(source.href)}); })` };
  }
  entries.set(source.href, entry);
  return entry;
}

function withoutTsxImport(argv: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === "--import=tsx") continue;
    if (a === "--import" && argv[i + 1] === "tsx") {
      i++;
      continue;
    }
    out.push(a);
  }
  return out;
}

/** Statistics for the bench: how well calls are batched across the thread boundary. */
export interface HandOffStats {
  calls: number;
  /** Of which calls to the thread's guest (the center's hot calls). */
  guestCalls: number;
  messagesSent: number;
  messagesReceived: number;
}

class WriterClient {
  private readonly worker: Worker;
  private readonly pending = new Map<number, Pending>();
  private outbox: ToWriter & { t: "calls" } = { t: "calls", calls: [] };
  private scheduled = false;
  private nextId = 1;
  private failure: Error | undefined;
  private closing: Promise<void> | undefined;
  readonly ready: Promise<void>;
  readonly stats: HandOffStats = { calls: 0, guestCalls: 0, messagesSent: 0, messagesReceived: 0 };

  /** Notices the writer's guest sent (writer-host.ts); set by the guest's owner. */
  onNotices: ((notices: unknown[]) => void) | undefined;

  constructor(
    path: string,
    groupCommit: boolean,
    thread: URL,
    private readonly horizon: DurableHorizon | undefined,
  ) {
    const e = workerEntry(thread);
    this.worker = new Worker("url" in e ? e.url : e.eval, {
      eval: "eval" in e,
      workerData: { path, groupCommit, horizon: horizon?.buffer } satisfies WriterData,
      // The bootstrap registers tsx itself; a second copy inherited through
      // --import would only slow the worker's start.
      execArgv: withoutTsxImport(process.execArgv),
    });
    this.worker.unref();
    let readyResolve!: () => void;
    let readyReject!: (e: Error) => void;
    this.ready = new Promise<void>((res, rej) => {
      readyResolve = res;
      readyReject = rej;
    });
    // A rejected ready promise nobody awaits yet must not crash the process.
    this.ready.catch(() => {});
    this.worker.ref();
    this.worker.on("message", (m: FromWriter) => {
      this.stats.messagesReceived++;
      if (m.t === "results") {
        if (m.notices && m.notices.length > 0) this.onNotices?.(m.notices);
        for (const [id, ok, value] of m.results) {
          const p = this.pending.get(id);
          if (!p) continue;
          this.pending.delete(id);
          if (ok) p.resolve(value);
          else p.reject(fromWireError(value as WireError));
        }
        if (this.pending.size === 0) this.worker.unref();
      } else if (m.t === "ready") {
        if (this.pending.size === 0) this.worker.unref();
        readyResolve();
      } else if (m.t === "open-failed") {
        const e = fromWireError(m.error);
        this.fail(e);
        readyReject(e);
      }
    });
    this.worker.on("error", (e) => {
      const err = new LedgerError("WRITER_FAILED", `ledger writer thread failed: ${e.message}`);
      this.fail(err);
      readyReject(err);
    });
    this.worker.on("exit", (code) => {
      const err = new LedgerError("WRITER_FAILED", `ledger writer thread exited (code ${code})`);
      this.fail(err);
      readyReject(err);
    });
  }

  private fail(e: Error): void {
    this.failure ??= e;
    // Reads here may be waiting for a sync that will never come.
    this.horizon?.writerGone();
    for (const p of this.pending.values()) p.reject(this.failure);
    this.pending.clear();
  }

  call(method: WriteMethod | `${typeof GUEST_PREFIX}${string}`, args: unknown[]): Promise<unknown> {
    if (this.failure) return Promise.reject(this.failure);
    if (this.closing) return Promise.reject(new Error("ledger is closed"));
    return new Promise((resolve, reject) => {
      const id = this.nextId++;
      this.pending.set(id, { resolve, reject });
      if (this.pending.size === 1) this.worker.ref();
      this.outbox.calls.push([id, method, args]);
      this.stats.calls++;
      if (method.startsWith(GUEST_PREFIX)) this.stats.guestCalls++;
      if (!this.scheduled) {
        this.scheduled = true;
        // Everything asked for in this turn of the event loop (all the
        // requests one read of the sockets delivered) crosses in one message.
        setImmediate(() => this.flush());
      }
    });
  }

  private flush(): void {
    this.scheduled = false;
    if (this.outbox.calls.length === 0) return;
    const msg = this.outbox;
    this.outbox = { t: "calls", calls: [] };
    try {
      this.worker.postMessage(msg);
      this.stats.messagesSent++;
    } catch (e) {
      // Not clonable (a caller passed something that is not plain data).
      for (const [id] of msg.calls) {
        this.pending.get(id)?.reject(e);
        this.pending.delete(id);
      }
      if (this.pending.size === 0) this.worker.unref();
    }
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      while (this.pending.size > 0 && !this.failure) await new Promise((r) => setTimeout(r, 1));
      if (this.failure) {
        await this.worker.terminate();
        return;
      }
      this.worker.ref();
      const exited = new Promise<void>((r) => this.worker.once("exit", () => r()));
      this.worker.postMessage({ t: "close" } satisfies ToWriter);
      await exited;
    })();
    return this.closing;
  }
}

/**
 * SqlLedger whose reads run here and whose WRITE_METHODS run on the writer
 * thread. Same contract, same SQL, same answers as the inline engine.
 */
export class SqliteWorkerLedger extends SqlLedger {
  private readonly writer: WriterClient;
  /** The writer thread's entry module (the plain writer, or a guest's). */
  readonly thread: URL;

  constructor(path: string, opts: { groupCommit?: boolean; thread?: URL } = {}) {
    // The writer fsyncs its WAL off its own thread (wal-sync.ts) unless told
    // otherwise; then a commit is visible before it is durable, and reads
    // here wait on this shared horizon.
    const horizon = syncOffThreadWanted() ? new DurableHorizon() : undefined;
    const writer = new WriterClient(path, opts.groupCommit ?? true, opts.thread ?? plainWriter(), horizon);
    super("sqlite", new SqliteReaderEngine(path, () => writer.ready, horizon));
    this.writer = writer;
    this.thread = opts.thread ?? plainWriter();
    for (const m of WRITE_METHODS) {
      if (Object.prototype.hasOwnProperty.call(SqliteWorkerLedger.prototype, m)) continue;
      const codec = ARG_CODECS[m];
      const value = codec
        ? (...args: unknown[]) => this.writer.call(m, codec.toWire(args))
        : (...args: unknown[]) => this.writer.call(m, args);
      Object.defineProperty(this, m, { value, enumerable: false, writable: true, configurable: true });
    }
  }

  /** The writer thread wraps with its copy; this thread keeps the set (and its reload hook) to unwrap what it reads. */
  override async protectKeys(kek: KeyEncryptionKeys): Promise<KeyProtectionReport> {
    const report = (await this.writer.call("protectKeys", ARG_CODECS.protectKeys!.toWire([kek]))) as KeyProtectionReport;
    this.kek = kek;
    return report;
  }

  /**
   * A call to the writer thread's guest (when this ledger was opened with a
   * guest's `thread` entry): batched with the ledger's own calls.
   */
  guestCall(name: string, args: unknown[]): Promise<unknown> {
    return this.writer.call(`${GUEST_PREFIX}${name}`, args);
  }

  /** Receive the guest's notices (one callback; the last one set wins). */
  onGuestNotices(cb: (notices: unknown[]) => void): void {
    this.writer.onNotices = cb;
  }

  /** Hand-off counters (calls, messages each way), for the bench. */
  handOffStats(): HandOffStats {
    return { ...this.writer.stats };
  }

  override async close(): Promise<void> {
    // Readers first: the writer's close checkpoints the WAL.
    await this.db.close();
    await this.writer.close();
  }
}
