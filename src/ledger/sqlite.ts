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
import { SqlLedger } from "./sql-ledger.js";
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
    db.pragma("synchronous = FULL");
    db.pragma("foreign_keys = ON");
  }
  db.pragma("busy_timeout = 5000");
  return db;
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
  private readonly writerTx: Control & { savepoint: Database.Statement; release: Database.Statement; rollbackTo: Database.Statement };
  private readonly readerTx: Control;

  constructor(opts: SqliteOptions) {
    preparePrivateDatabaseFile(opts.path);
    this.writer = open(opts.path, false);
    // A second connection for reads: it sees only committed data, never the
    // half-built group transaction on the writer.
    this.reader = opts.path === ":memory:" ? this.writer : open(opts.path, true);
    this.w = wrap(this.writer);
    this.r = wrap(this.reader);
    this.group = opts.groupCommit ?? true;
    this.writerTx = {
      ...control(this.writer, "BEGIN IMMEDIATE"),
      savepoint: this.writer.prepare("SAVEPOINT job"),
      release: this.writer.prepare("RELEASE job"),
      rollbackTo: this.writer.prepare("ROLLBACK TO job"),
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

  private async runBatch(batch: Job[]): Promise<void> {
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

export function openSqliteLedger(path: string, opts: Omit<SqliteOptions, "path"> = {}): SqlLedger {
  return new SqlLedger("sqlite", new SqliteEngine({ path, ...opts }));
}
