/**
 * SQLite engine: the embedded default. One file in the data directory, WAL,
 * and group commit: transactions that arrive in the same event-loop turn run
 * back to back inside one SQLite transaction (each in its own SAVEPOINT, so
 * one failing rolls back only itself) and share one fsync. That fsync is
 * COMMIT's own (synchronous=FULL), or, on the ledger's writer thread, an
 * fdatasync of the WAL on the thread pool (wal-sync.ts) so the thread keeps
 * working meanwhile. Either way no caller's promise resolves, and no read
 * returns, before the commit it depends on is on disk, so no reply that
 * moved value can leave before it is durable.
 */
import Database from "better-sqlite3";
import { preparePrivateDatabaseFile } from "./private-file.js";
import { LedgerError } from "./ledger.js";
import { SqlLedger } from "./sql-ledger.js";
import { SqliteWorkerLedger } from "./sqlite-worker.js";
import { RetryableConflict, type SqlEngine, type SqlTx } from "./sql.js";
import type { DurableHorizon } from "./durable-horizon.js";
import { WalSync, type WalSyncOptions } from "./wal-sync.js";

/** Upper bound on transactions sharing one commit, so one fsync never waits on an unbounded batch. */
export const GROUP_COMMIT_MAX = 256;
/** How often a transaction that lost a race is re-run before giving up. */
export const CONFLICT_RETRIES_MAX = 8;

export interface SqliteOptions {
  /** Database file path, or ":memory:" for throwaway tests. */
  path: string;
  /** Share commits among concurrent transactions (default true). */
  groupCommit?: boolean;
  /**
   * Where the write connection lives (default "worker" for a file,
   * "inline" for ":memory:"). "worker": a worker thread owns it and commits
   * (and fsyncs) off the event loop; this thread keeps a read-only
   * connection. "inline": both connections in this thread, as before.
   */
  writer?: "worker" | "inline";
  /** Worker engine only: the writer thread's entry module, when a guest shares the thread (writer-host.ts). */
  thread?: URL;
  /** Inline engine only: open no read connection (the writer thread never reads outside a transaction). */
  noReader?: boolean;
  /**
   * Commit with synchronous=NORMAL and fdatasync the WAL on the thread pool
   * (wal-sync.ts), so the thread running transactions never waits for the
   * disk. Each job's outcome is still delivered only once its commit is
   * durable, and a `read()` returns only once every commit it could have
   * seen is. Ignored under the TEST ONLY unsafe synchronous setting, which
   * must stay as weak as it says.
   */
  syncOffThread?: WalSyncOptions;
}

/** SCRIPWIRE_SQLITE_SYNC=commit: the fsync inside COMMIT again (the bench's "before"; a way back if a filesystem misbehaves). */
export const SQLITE_SYNC_ENV = "SCRIPWIRE_SQLITE_SYNC";

/** Whether a writer thread should sync its WAL off-thread (the default) in this process's environment. */
export function syncOffThreadWanted(): boolean {
  return process.env[SQLITE_SYNC_ENV] !== "commit" && unsafeSynchronous() === undefined;
}

function wrap(db: Database.Database): SqlTx {
  const cache = new Map<string, Database.Statement>();
  const prep = (sql: string): Database.Statement => {
    let s = cache.get(sql);
    if (!s) {
      s = db.prepare(sql);
      s.safeIntegers(true);
      cache.set(sql, s);
    }
    return s;
  };
  return {
    async get(sql, params = []) {
      return prep(sql).get(...(params as unknown[])) as never;
    },
    async all(sql, params = []) {
      return prep(sql).all(...(params as unknown[])) as never;
    },
    async run(sql, params = []) {
      const s = prep(sql);
      if (!s.reader) return s.run(...(params as unknown[])).changes;
      s.all(...(params as unknown[]));
      return 0;
    },
  };
}

function open(path: string, readonly: boolean, syncOffThread = false): Database.Database {
  const db = new Database(path, { readonly: readonly && path !== ":memory:" });
  db.defaultSafeIntegers(true);
  if (!readonly) {
    db.pragma("journal_mode = WAL");
    // better-sqlite3 defaults WAL to synchronous=NORMAL, which can lose the
    // last commits on power loss: a reply that moved value must not outlive
    // them. NORMAL only where wal-sync.ts does FULL's fdatasync itself.
    db.pragma(`synchronous = ${unsafeSynchronous() ?? (syncOffThread ? "NORMAL" : "FULL")}`);
    db.pragma("foreign_keys = ON");
  }
  db.pragma("busy_timeout = 5000");
  return db;
}

/**
 * TEST ONLY: SCRIPWIRE_UNSAFE_SQLITE_SYNCHRONOUS=NORMAL|OFF weakens durability
 * so the power-loss torture (test/torture, --unsafe-synchronous) can show that
 * it catches the replies such a center loses. Never set it in production; the
 * center says so on stderr when it is set.
 */
export const UNSAFE_SYNCHRONOUS_ENV = "SCRIPWIRE_UNSAFE_SQLITE_SYNCHRONOUS";
let warned = false;
function unsafeSynchronous(): "NORMAL" | "OFF" | undefined {
  const v = process.env[UNSAFE_SYNCHRONOUS_ENV]?.toUpperCase();
  if (v !== "NORMAL" && v !== "OFF") return undefined;
  if (!warned) process.stderr.write(`WARNING: ${UNSAFE_SYNCHRONOUS_ENV}=${v}: SQLite synchronous=${v}; acknowledged payments can be lost on power loss (test only)\n`);
  warned = true;
  return v;
}

/**
 * Transaction-control statements, prepared once per connection. `exec()`
 * parses its SQL on every call; a read wrapped in BEGIN/COMMIT through
 * exec() cost ~2x the SELECT itself (measured: 31 µs vs 18 µs per read,
 * bench/ledger micro-benchmark in docs/performance.md).
 */
interface Control {
  begin: Database.Statement;
  commit: Database.Statement;
}

function control(db: Database.Database, begin: string): Control {
  return { begin: db.prepare(begin), commit: db.prepare("COMMIT") };
}

interface Job {
  fn: (q: SqlTx) => Promise<unknown>;
  resolve: (v: unknown) => void;
  reject: (e: unknown) => void;
  attempts: number;
}

export class SqliteEngine implements SqlEngine {
  private readonly writer: Database.Database;
  private readonly reader: Database.Database;
  private readonly w: SqlTx;
  private readonly r: SqlTx;
  private queue: Job[] = [];
  private flushing = false;
  private scheduled = false;
  private closed = false;
  private readDepth = 0;
  private readonly group: boolean;
  private readonly writerTx: Control & {
    savepoint: Database.Statement;
    release: Database.Statement;
    rollbackTo: Database.Statement;
    rollback: Database.Statement;
  };
  private careful = 0;
  private readonly readerTx: Control;
  private readonly walSync: WalSync | undefined;

  constructor(opts: SqliteOptions) {
    preparePrivateDatabaseFile(opts.path);
    const offThread = opts.syncOffThread !== undefined && opts.path !== ":memory:" && unsafeSynchronous() === undefined;
    this.writer = open(opts.path, false, offThread);
    this.walSync = offThread ? new WalSync(opts.path, opts.syncOffThread) : undefined;
    // A second connection for reads: it sees only committed data, never the
    // half-built group transaction on the writer.
    this.reader = opts.path === ":memory:" || opts.noReader ? this.writer : open(opts.path, true);
    this.w = wrap(this.writer);
    this.r = wrap(this.reader);
    this.group = opts.groupCommit ?? true;
    this.writerTx = {
      ...control(this.writer, "BEGIN IMMEDIATE"),
      savepoint: this.writer.prepare("SAVEPOINT job"),
      release: this.writer.prepare("RELEASE job"),
      rollbackTo: this.writer.prepare("ROLLBACK TO job"),
      rollback: this.writer.prepare("ROLLBACK"),
    };
    this.readerTx = control(this.reader, "BEGIN");
  }

  tx<T>(fn: (q: SqlTx) => Promise<T>): Promise<T> {
    if (this.closed) return Promise.reject(new Error("ledger is closed"));
    if (this.walSync?.failed) return Promise.reject(this.walSync.failed);
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ fn, resolve: resolve as (v: unknown) => void, reject, attempts: 0 });
      this.schedule();
    });
  }

  async read<T>(fn: (q: SqlTx) => Promise<T>): Promise<T> {
    if (this.closed) throw new Error("ledger is closed");
    if (this.walSync?.failed) throw this.walSync.failed;
    let value: T;
    if (this.reader === this.writer) {
      value = await fn(this.r);
    } else {
      // A consistent snapshot for multi-statement reads such as the audit;
      // overlapping reads share it (they only ever see committed data).
      if (this.readDepth++ === 0) this.readerTx.begin.run();
      try {
        value = await fn(this.r);
      } finally {
        if (--this.readDepth === 0) this.readerTx.commit.run();
      }
    }
    // With the WAL synced off-thread a commit is visible before it is
    // durable: nothing read may leave before it is.
    if (this.walSync) await this.walSync.settled();
    return value;
  }

  private schedule(): void {
    if (this.scheduled || this.flushing) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      void this.flush();
    });
  }

  private async flush(): Promise<void> {
    if (this.flushing) return;
    this.flushing = true;
    try {
      while (this.queue.length > 0) {
        // With the WAL synced off-thread: the next group commits once the
        // running sync is done (wal-sync.ts notSyncing says why).
        if (this.walSync) await this.walSync.notSyncing();
        if (this.walSync?.failed) {
          for (const job of this.queue.splice(0)) job.reject(this.walSync.failed);
          break;
        }
        const batch = this.queue.splice(0, this.group ? GROUP_COMMIT_MAX : 1);
        await this.runBatch(batch);
      }
    } finally {
      this.flushing = false;
    }
  }

  /**
   * Runs a batch as one transaction and one fsync. Optimistically without
   * per-job SAVEPOINTs (2 statements per call saved, 6 per payment): if any
   * job throws, the whole transaction is rolled back and the batch re-run
   * the careful way, each job in its own SAVEPOINT, so one refusal rolls back
   * only itself. Jobs only touch the database (SqlEngine's contract), so
   * running one twice gives the same answer. After a failure the next
   * CAREFUL_BATCHES batches go the careful way directly, so a stream of
   * refusals costs at most one extra run, not one per batch.
   */
  private async runBatch(batch: Job[]): Promise<void> {
    if (this.careful === 0) {
      const done = await this.runOptimistic(batch);
      if (done) return;
      this.careful = CAREFUL_BATCHES;
    } else {
      this.careful--;
    }
    await this.runCareful(batch);
  }

  /** Returns false (with nothing committed) when a job threw and the batch must be re-run with savepoints. */
  private async runOptimistic(batch: Job[]): Promise<boolean> {
    const values: unknown[] = [];
    const c = this.writerTx;
    let seq: number | undefined;
    c.begin.run();
    let failed: unknown = NONE;
    try {
      for (const job of batch) {
        try {
          values.push(await job.fn(this.w));
        } catch (error) {
          failed = error;
          break;
        }
      }
      if (failed !== NONE) {
        c.rollback.run();
        // A batch of one needs no second run: the rollback was its own.
        if (batch.length > 1) return false;
        this.settleFailed(batch[0]!, failed);
        return true;
      }
      seq = this.commitGroup();
    } catch (commitError) {
      if (this.writer.inTransaction) this.writer.exec("ROLLBACK");
      for (const job of batch) job.reject(commitError);
      return true;
    }
    // Only now, with the batch durable, may any caller learn its result.
    this.whenDurable(seq, batch, () => batch.forEach((job, i) => job.resolve(values[i])));
    return true;
  }

  /**
   * COMMIT the open group. With an off-thread sync it is numbered first
   * (readers elsewhere may see it from now on) and its sync starts after,
   * whether COMMIT succeeded or threw; returns that number.
   */
  private commitGroup(): number | undefined {
    const seq = this.walSync?.begin();
    try {
      this.writerTx.commit.run();
    } finally {
      if (seq !== undefined) this.walSync!.end(seq);
    }
    return seq;
  }

  /**
   * Run `deliver` once commit `seq` is durable (at once without an
   * off-thread sync: COMMIT itself synced). With no commit of its own (a
   * refusal), once everything the job could have read is durable.
   */
  private whenDurable(seq: number | undefined, batch: Job[], deliver: () => void): void {
    const sync = this.walSync;
    if (!sync) {
      deliver();
      return;
    }
    (seq === undefined ? sync.settled() : sync.durable(seq)).then(deliver, (e: unknown) => {
      for (const job of batch) job.reject(e);
    });
  }

  private settleFailed(job: Job, error: unknown): void {
    if (error instanceof RetryableConflict && job.attempts < CONFLICT_RETRIES_MAX) {
      job.attempts++;
      this.queue.unshift(job);
    } else {
      // A refusal may rest on a commit not yet durable ("already spent").
      this.whenDurable(undefined, [job], () => job.reject(error));
    }
  }

  private async runCareful(batch: Job[]): Promise<void> {
    const outcomes: Array<{ ok: true; value: unknown } | { ok: false; error: unknown }> = [];
    const retry: Job[] = [];
    const c = this.writerTx;
    let seq: number | undefined;
    c.begin.run();
    try {
      for (const job of batch) {
        c.savepoint.run();
        try {
          const value = await job.fn(this.w);
          c.release.run();
          outcomes.push({ ok: true, value });
        } catch (error) {
          c.rollbackTo.run();
          c.release.run();
          if (error instanceof RetryableConflict && job.attempts < CONFLICT_RETRIES_MAX) {
            job.attempts++;
            retry.push(job);
            outcomes.push({ ok: false, error: RETRY });
          } else {
            outcomes.push({ ok: false, error });
          }
        }
      }
      seq = this.commitGroup();
    } catch (commitError) {
      if (this.writer.inTransaction) this.writer.exec("ROLLBACK");
      for (const job of batch) job.reject(commitError);
      return;
    }
    // Only now, with the batch durable, may any caller learn its result.
    const settled = batch.filter((_, i) => outcomes[i]!.ok || (outcomes[i] as { error: unknown }).error !== RETRY);
    this.whenDurable(seq, settled, () =>
      batch.forEach((job, i) => {
        const o = outcomes[i]!;
        if (o.ok) job.resolve(o.value);
        else if (o.error !== RETRY) job.reject(o.error);
      }),
    );
    if (retry.length > 0) this.queue.unshift(...retry);
  }

  async close(): Promise<void> {
    while (this.queue.length > 0 || this.flushing) await new Promise((r) => setImmediate(r));
    if (this.walSync) {
      while (!this.walSync.idle && !this.walSync.failed) await new Promise((r) => setTimeout(r, 1));
      this.walSync.close();
    }
    this.closed = true;
    if (this.reader !== this.writer) this.reader.close();
    this.writer.close();
  }
}

const RETRY = Symbol("retry");
const NONE = Symbol("none");
/** Batches run with per-job savepoints after one that had a failing job. */
const CAREFUL_BATCHES = 16;

/**
 * Read-only side of a ledger whose writer runs elsewhere (a worker thread).
 * Its connection sees only committed transactions. With synchronous=FULL a
 * transaction becomes visible only after its fsync; with the writer's WAL
 * synced off-thread (wal-sync.ts) it becomes visible first, so every read
 * here waits on the shared {@link DurableHorizon} before it returns: nothing
 * read here can get ahead of durability either way. Opened lazily, once the
 * writer has created the file.
 */
export class SqliteReaderEngine implements SqlEngine {
  private db: Database.Database | undefined;
  private q: SqlTx | undefined;
  private tx_: Control | undefined;
  private readDepth = 0;
  private closed = false;

  constructor(
    private readonly path: string,
    private readonly writerReady: () => Promise<void>,
    private readonly horizon?: DurableHorizon,
  ) {}

  tx<T>(): Promise<T> {
    return Promise.reject(
      new LedgerError("WRITE_ON_READER", "this ledger's writes run on its writer thread: add the method to WRITE_METHODS in src/ledger/sqlite-worker.ts"),
    );
  }

  async read<T>(fn: (q: SqlTx) => Promise<T>): Promise<T> {
    if (this.closed) throw new Error("ledger is closed");
    if (!this.db) {
      await this.writerReady();
      if (this.closed) throw new Error("ledger is closed");
      if (!this.db) {
        this.db = open(this.path, true);
        this.q = wrap(this.db);
        this.tx_ = control(this.db, "BEGIN");
      }
    }
    let value: T;
    if (this.readDepth++ === 0) this.tx_!.begin.run();
    try {
      value = await fn(this.q!);
    } finally {
      if (--this.readDepth === 0) this.tx_!.commit.run();
    }
    // Loaded after the snapshot: covers every commit the read could have seen.
    if (this.horizon) await this.horizon.visibleIsDurable();
    return value;
  }

  async close(): Promise<void> {
    this.closed = true;
    this.db?.close();
    this.db = undefined;
  }
}

export function openSqliteLedger(path: string, opts: Omit<SqliteOptions, "path"> = {}): SqlLedger {
  // SCRIPWIRE_SQLITE_WRITER=inline: the bench's before/after switch (and a way out if a platform lacks worker threads).
  const env = process.env.SCRIPWIRE_SQLITE_WRITER;
  const writer = opts.writer ?? (path === ":memory:" || env === "inline" ? "inline" : "worker");
  if (writer === "worker") {
    if (path === ":memory:") throw new LedgerError("BAD_CONFIG", "an in-memory SQLite ledger cannot have its writer in another thread");
    return new SqliteWorkerLedger(path, { groupCommit: opts.groupCommit, thread: opts.thread });
  }
  return new SqlLedger("sqlite", new SqliteEngine({ path, ...opts }));
}
