/**
 * SQLite engine: the embedded default. One file in the data directory, WAL,
 * synchronous=FULL, and group commit: transactions that arrive in the same
 * event-loop turn run back to back inside one SQLite transaction (each in its
 * own SAVEPOINT, so one failing rolls back only itself) and share one fsync.
 * No caller's promise resolves before that COMMIT returns, so no reply that
 * moved value can leave before it is durable.
 */
import Database from "better-sqlite3";
import { preparePrivateDatabaseFile } from "./private-file.js";
import { LedgerError } from "./ledger.js";
import { SqlLedger } from "./sql-ledger.js";
import { SqliteWorkerLedger } from "./sqlite-worker.js";
import { RetryableConflict, type SqlEngine, type SqlTx } from "./sql.js";

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

function open(path: string, readonly: boolean): Database.Database {
  const db = new Database(path, { readonly: readonly && path !== ":memory:" });
  db.defaultSafeIntegers(true);
  if (!readonly) {
    db.pragma("journal_mode = WAL");
    // better-sqlite3 defaults WAL to synchronous=NORMAL, which can lose the
    // last commits on power loss: a reply that moved value must not outlive them.
    db.pragma(`synchronous = ${unsafeSynchronous() ?? "FULL"}`);
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

  constructor(opts: SqliteOptions) {
    preparePrivateDatabaseFile(opts.path);
    this.writer = open(opts.path, false);
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
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ fn, resolve: resolve as (v: unknown) => void, reject, attempts: 0 });
      this.schedule();
    });
  }

  async read<T>(fn: (q: SqlTx) => Promise<T>): Promise<T> {
    if (this.closed) throw new Error("ledger is closed");
    if (this.reader === this.writer) return fn(this.r);
    // A consistent snapshot for multi-statement reads such as the audit;
    // overlapping reads share it (they only ever see committed data).
    if (this.readDepth++ === 0) this.readerTx.begin.run();
    try {
      return await fn(this.r);
    } finally {
      if (--this.readDepth === 0) this.readerTx.commit.run();
    }
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
      c.commit.run();
    } catch (commitError) {
      if (this.writer.inTransaction) this.writer.exec("ROLLBACK");
      for (const job of batch) job.reject(commitError);
      return true;
    }
    // Only now, with the batch durable, may any caller learn its result.
    batch.forEach((job, i) => job.resolve(values[i]));
    return true;
  }

  private settleFailed(job: Job, error: unknown): void {
    if (error instanceof RetryableConflict && job.attempts < CONFLICT_RETRIES_MAX) {
      job.attempts++;
      this.queue.unshift(job);
    } else {
      job.reject(error);
    }
  }

  private async runCareful(batch: Job[]): Promise<void> {
    const outcomes: Array<{ ok: true; value: unknown } | { ok: false; error: unknown }> = [];
    const retry: Job[] = [];
    const c = this.writerTx;
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
      c.commit.run();
    } catch (commitError) {
      if (this.writer.inTransaction) this.writer.exec("ROLLBACK");
      for (const job of batch) job.reject(commitError);
      return;
    }
    // Only now, with the batch durable, may any caller learn its result.
    batch.forEach((job, i) => {
      const o = outcomes[i]!;
      if (o.ok) job.resolve(o.value);
      else if (o.error !== RETRY) job.reject(o.error);
    });
    if (retry.length > 0) this.queue.unshift(...retry);
  }

  async close(): Promise<void> {
    while (this.queue.length > 0 || this.flushing) await new Promise((r) => setImmediate(r));
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
 * Its connection sees only committed transactions, and with WAL +
 * synchronous=FULL a transaction becomes visible only after its fsync, so
 * nothing read here can get ahead of durability. Opened lazily, once the
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
    if (this.readDepth++ === 0) this.tx_!.begin.run();
    try {
      return await fn(this.q!);
    } finally {
      if (--this.readDepth === 0) this.tx_!.commit.run();
    }
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
