/**
 * PROTOTYPE (bench only): the SQLite group-commit engine with the fsync
 * moved off the event loop.
 *
 * src/ledger/sqlite.ts commits each group with synchronous=FULL, so the
 * COMMIT blocks the only JavaScript thread for one fsync of the WAL
 * (3-6 ms on the bench VM's virtio disk): no request is parsed, hashed or
 * answered meanwhile. This variant commits with synchronous=NORMAL (WAL
 * frames reach the OS, not the disk) and then runs fdatasync(wal) on the
 * libuv thread pool. The event loop keeps serving (and may run and commit the
 * next group) while the disk works; no caller learns a result before the
 * fdatasync that covers its commit has returned.
 *
 * Why this is as durable as synchronous=FULL: in WAL mode FULL means
 * "fsync the WAL after appending the commit frame", which is exactly the
 * fdatasync done here, just later; checkpoints under NORMAL still sync the
 * WAL before copying and the database after (SQLite docs, pragma
 * synchronous). fsync flushes the inode, whichever descriptor wrote it, and
 * the WAL inode is checked after every commit in case it was replaced.
 * Reads go through a second connection and could see a commit whose fsync is
 * still running, so read() waits for the sync covering every commit made
 * before it started. A failed fdatasync fails every waiting caller and the
 * engine (fsync errors are not retryable).
 */
import Database from "better-sqlite3";
import { fdatasync, fstatSync, mkdirSync, openSync, closeSync, statSync } from "node:fs";
import { dirname } from "node:path";
import { SqlLedger } from "../../src/ledger/sql-ledger.js";
import { RetryableConflict, type SqlEngine, type SqlTx } from "../../src/ledger/sql.js";
import { CONFLICT_RETRIES_MAX, GROUP_COMMIT_MAX } from "../../src/ledger/sqlite.js";

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
  const db = new Database(path, { readonly });
  db.defaultSafeIntegers(true);
  if (!readonly) {
    db.pragma("journal_mode = WAL");
    db.pragma("synchronous = NORMAL");
    db.pragma("foreign_keys = ON");
  }
  db.pragma("busy_timeout = 5000");
  return db;
}

interface Job {
  fn: (q: SqlTx) => Promise<unknown>;
  resolve: (v: unknown) => void;
  reject: (e: unknown) => void;
  attempts: number;
}

const RETRY = Symbol("retry");

export class AsyncDurableSqliteEngine implements SqlEngine {
  private readonly writer: Database.Database;
  private readonly reader: Database.Database;
  private readonly w: SqlTx;
  private readonly r: SqlTx;
  private queue: Job[] = [];
  private flushing = false;
  private scheduled = false;
  private closed = false;
  private readDepth = 0;
  private walFd: number | undefined;
  private walIno = 0;
  /** Commits made / commits known durable (monotonic counters). */
  private committed = 0;
  private synced = 0;
  private syncing = false;
  private failed: Error | undefined;
  private waiters: Array<{ gen: number; resolve: () => void; reject: (e: Error) => void }> = [];

  constructor(private readonly path: string) {
    mkdirSync(dirname(path), { recursive: true });
    this.writer = open(path, false);
    this.reader = open(path, true);
    this.w = wrap(this.writer);
    this.r = wrap(this.reader);
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
    const visible = this.committed;
    let v: T;
    if (this.readDepth++ === 0) this.reader.exec("BEGIN");
    try {
      v = await fn(this.r);
    } finally {
      if (--this.readDepth === 0) this.reader.exec("COMMIT");
    }
    // Never hand out state whose commit is not on disk yet.
    await this.durable(visible);
    return v;
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
      while (this.queue.length > 0) await this.runBatch(this.queue.splice(0, GROUP_COMMIT_MAX));
    } finally {
      this.flushing = false;
    }
  }

  private async runBatch(batch: Job[]): Promise<void> {
    const outcomes: Array<{ ok: true; value: unknown } | { ok: false; error: unknown }> = [];
    const retry: Job[] = [];
    this.writer.exec("BEGIN IMMEDIATE");
    try {
      for (const job of batch) {
        this.writer.exec("SAVEPOINT job");
        try {
          const value = await job.fn(this.w);
          this.writer.exec("RELEASE job");
          outcomes.push({ ok: true, value });
        } catch (error) {
          this.writer.exec("ROLLBACK TO job");
          this.writer.exec("RELEASE job");
          if (error instanceof RetryableConflict && job.attempts < CONFLICT_RETRIES_MAX) {
            job.attempts++;
            retry.push(job);
            outcomes.push({ ok: false, error: RETRY });
          } else {
            outcomes.push({ ok: false, error });
          }
        }
      }
      this.writer.exec("COMMIT");
    } catch (commitError) {
      if (this.writer.inTransaction) this.writer.exec("ROLLBACK");
      for (const job of batch) job.reject(commitError);
      return;
    }
    const gen = ++this.committed;
    if (retry.length > 0) this.queue.unshift(...retry);
    // Results leave only once this commit is durable; the loop goes on meanwhile.
    this.durable(gen).then(
      () =>
        batch.forEach((job, i) => {
          const o = outcomes[i]!;
          if (o.ok) job.resolve(o.value);
          else if (o.error !== RETRY) job.reject(o.error);
        }),
      (e: Error) =>
        batch.forEach((job, i) => {
          const o = outcomes[i]!;
          if (o.ok || o.error !== RETRY) job.reject(e);
        }),
    );
  }

  /** Resolves once every commit up to `gen` is on disk. */
  private durable(gen: number): Promise<void> {
    if (this.failed) return Promise.reject(this.failed);
    if (this.synced >= gen) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      this.waiters.push({ gen, resolve, reject });
      this.startSync();
    });
  }

  private walDescriptor(): number {
    const wal = `${this.path}-wal`;
    const ino = statSync(wal).ino;
    if (this.walFd === undefined || ino !== this.walIno) {
      if (this.walFd !== undefined) closeSync(this.walFd);
      this.walFd = openSync(wal, "r");
      this.walIno = fstatSync(this.walFd).ino;
    }
    return this.walFd;
  }

  private startSync(): void {
    if (this.syncing) return;
    this.syncing = true;
    const target = this.committed;
    let fd: number;
    try {
      fd = this.walDescriptor();
    } catch (e) {
      this.fail(e as Error);
      return;
    }
    fdatasync(fd, (err) => {
      this.syncing = false;
      if (err) {
        this.fail(err);
        return;
      }
      this.synced = Math.max(this.synced, target);
      const ready = this.waiters.filter((x) => x.gen <= this.synced);
      this.waiters = this.waiters.filter((x) => x.gen > this.synced);
      for (const x of ready) x.resolve();
      if (this.waiters.length > 0) this.startSync();
    });
  }

  private fail(e: Error): void {
    this.failed = new Error(`fdatasync of the SQLite WAL failed; the ledger stops: ${e.message}`);
    for (const x of this.waiters) x.reject(this.failed);
    this.waiters = [];
  }

  async close(): Promise<void> {
    while (this.queue.length > 0 || this.flushing || this.waiters.length > 0 || this.syncing) await new Promise((r) => setImmediate(r));
    this.closed = true;
    if (this.walFd !== undefined) closeSync(this.walFd);
    this.reader.close();
    this.writer.close();
  }
}

export function openAsyncDurableSqliteLedger(path: string): SqlLedger {
  return new SqlLedger("sqlite", new AsyncDurableSqliteEngine(path));
}
