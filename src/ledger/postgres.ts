/**
 * PostgreSQL engine: for production, where several stateless center replicas
 * share one database. The ledger's SQL is the same as on SQLite (see
 * sql-ledger.ts); this file only adapts `pg` to the SqlEngine surface:
 * `?` placeholders become `$1..$n`, int8 and numeric come back as bigint,
 * bytea as Buffer.
 *
 * Why READ COMMITTED is enough for the ledger's writes
 * ----------------------------------------------------
 * Every decision SqlLedger makes that two concurrent requests could disagree
 * on is taken by a statement that locks the row it decides on, and PostgreSQL
 * re-evaluates such a statement's WHERE clause against the row's newest
 * committed version once the lock is granted (READ COMMITTED's "EvalPlanQual"
 * recheck). So the loser of a race sees the winner's write, not its snapshot:
 *
 * - spending a scrip: `UPDATE scrips SET state = 'spent' WHERE serial = ? AND
 *   state = 'live'` — the second spender waits for the first and then updates
 *   0 rows (SCRIP_NOT_LIVE). This is invariant 2, "no double spending".
 * - claiming a TranID: `UPDATE transactions ... WHERE state = 'initiated'`
 *   (execute), `... state = 'executed'` (confirm), `... state = ?` (cancel)
 *   — the loser updates 0 rows and throws RetryableConflict; the retry reads
 *   the committed state and replays the stored reply.
 * - moving value: `UPDATE accounts SET balance = balance - ? WHERE ... AND
 *   balance >= ?` — a balance is never checked on a stale read.
 * - first-writer-wins inserts: `INSERT ... ON CONFLICT DO NOTHING` on rewards,
 *   requests (funding, renew/redeem) and TranIDs waits for the other inserter's
 *   outcome and then inserts or does nothing.
 * - campaign funding is a conditional `UPDATE campaigns ... WHERE funded <=
 *   cap - ?`, the cap check's row lock.
 * - an insert that hits a unique index other than the ON CONFLICT target
 *   (a second R1 for one wallet id, one TranID from two sellers) raises 23505;
 *   that can only mean a concurrent writer won, so it is retried, and the retry
 *   answers from the committed row (replay, WALLET_ID_TAKEN, OFFER_MISMATCH).
 *
 * The plain SELECTs that precede those statements read only immutable fields
 * (a TranID's customer, amount, offer) or are re-checked by the conditional
 * write, so no decision rests on a snapshot that may have moved on. Two
 * orderings READ COMMITTED alone would not give are taken with transaction
 * advisory locks in sql-ledger.ts: migrations (replicas starting at once) and
 * settlement sequence numbers (which must commit in order per vendor, or a
 * seller paging with `afterSequence` could skip one).
 *
 * Serializable isolation would also be correct but would turn every hot-row
 * contention into a 40001 abort and retry; row locks make the loser wait
 * instead, and only ever retry when the answer changes.
 *
 * Durability (invariant 4): every write transaction runs with
 * `synchronous_commit = on`, so COMMIT returns only after the commit record is
 * flushed to the WAL on disk (and on synchronous standbys, if configured); no
 * promise resolves before that. The server must keep `fsync = on` (default).
 */
import pg from "pg";
import type { PoolClient, QueryResult } from "pg";
import { SqlLedger } from "./sql-ledger.js";
import { isConnectionError, PrimaryPools } from "./pg-primary.js";
import { RetryableConflict, type Row, type SqlEngine, type SqlTx } from "./sql.js";

/** How often a transaction that lost a race is re-run before the error reaches the caller; matches the SQLite engine. */
export const CONFLICT_RETRIES_MAX = 8;
/** First retry waits up to this long (full jitter), doubling per attempt. */
const RETRY_BACKOFF_BASE_MS = 2;
/** No single retry waits longer than this. */
const RETRY_BACKOFF_MAX_MS = 100;

/** SQLSTATEs that mean "another transaction won; run again": serialization failure, deadlock, unique violation. */
const RETRYABLE_SQLSTATES = new Set(["40001", "40P01", "23505"]);

const OID_INT8 = 20;
const OID_NUMERIC = 1700;

export interface PostgresOptions {
  /**
   * A `postgres://user:password@host:port/database` URL, or several separated
   * by commas (a primary and its standbys): writes always go to the node that
   * is primary, found again after a failover (pg-primary.ts).
   */
  url: string;
  /**
   * Connections in the pool (default 10). Each in-flight transaction holds
   * one; PostgreSQL's default max_connections is 100, shared by all replicas.
   */
  poolSize?: number;
  /** Give up connecting after this long (default 10000 ms): a dead database should fail a request, not hang it. */
  connectTimeoutMs?: number;
  /**
   * Server-side limit on one statement, lock waits included (default 30000
   * ms). A request stuck behind a lock fails with an error the caller can
   * retry instead of holding a connection forever.
   */
  statementTimeoutMs?: number;
}

/**
 * Per-pool type parsers: int8 (every BIGINT column, COUNT) and numeric
 * (SUM over BIGINT) become bigint so money never passes through a float.
 * The global `pg.types` registry is left alone: other code in the process
 * may use pg with its own expectations.
 */
const types = {
  getTypeParser(oid: number, format?: string): unknown {
    if (format !== "binary" && (oid === OID_INT8 || oid === OID_NUMERIC)) return parseInteger;
    return (pg.types.getTypeParser as (oid: number, format?: string) => unknown)(oid, format);
  },
};

function parseInteger(v: string): bigint {
  // SUM over BIGINT columns is numeric but always integral; refuse to round anything else.
  if (!/^-?\d+$/.test(v)) throw new Error(`expected an integer from PostgreSQL, got ${JSON.stringify(v)}`);
  return BigInt(v);
}

const placeholderCache = new Map<string, { text: string; count: number }>();
/** Upper bound on cached statement texts (the ledger has a few dozen). */
const PLACEHOLDER_CACHE_MAX = 1024;

/**
 * Rewrites `?` placeholders as `$1..$n`, leaving any `?` inside a quoted
 * string, quoted identifier or comment untouched. Exported for tests.
 */
export function toPgPlaceholders(sql: string): { text: string; count: number } {
  const hit = placeholderCache.get(sql);
  if (hit) return hit;
  let out = "";
  let n = 0;
  for (let i = 0; i < sql.length; i++) {
    const ch = sql[i]!;
    if (ch === "'" || ch === '"') {
      const end = sql.indexOf(ch, i + 1);
      const stop = end < 0 ? sql.length : end + 1;
      out += sql.slice(i, stop);
      i = stop - 1;
    } else if (ch === "-" && sql[i + 1] === "-") {
      const end = sql.indexOf("\n", i);
      const stop = end < 0 ? sql.length : end;
      out += sql.slice(i, stop);
      i = stop - 1;
    } else if (ch === "?") {
      out += `$${++n}`;
    } else {
      out += ch;
    }
  }
  const r = { text: out, count: n };
  if (placeholderCache.size < PLACEHOLDER_CACHE_MAX) placeholderCache.set(sql, r);
  return r;
}

/** pg serializes a plain Uint8Array as JSON; bytea needs a Buffer. bigint goes as its decimal text, which PostgreSQL casts to int8. */
function param(v: unknown): unknown {
  if (typeof v === "bigint") return v.toString();
  if (v instanceof Uint8Array && !Buffer.isBuffer(v)) return Buffer.from(v.buffer, v.byteOffset, v.byteLength);
  return v;
}

function wrap(client: PoolClient): SqlTx {
  const query = async (sql: string, params: unknown[] = []): Promise<QueryResult> => {
    const { text, count } = toPgPlaceholders(sql);
    if (count !== params.length) throw new Error(`statement has ${count} placeholders but ${params.length} parameters: ${sql}`);
    return client.query({ text, values: params.map(param) });
  };
  return {
    async get<T = Row>(sql: string, params?: unknown[]) {
      return (await query(sql, params)).rows[0] as T | undefined;
    },
    async all<T = Row>(sql: string, params?: unknown[]) {
      return (await query(sql, params)).rows as T[];
    },
    async run(sql: string, params?: unknown[]) {
      return (await query(sql, params)).rowCount ?? 0;
    },
  };
}

function sqlState(e: unknown): string | undefined {
  const code = (e as { code?: unknown } | null)?.code;
  return typeof code === "string" ? code : undefined;
}

function retryable(e: unknown): boolean {
  if (e instanceof RetryableConflict) return true;
  const code = sqlState(e);
  return code !== undefined && RETRYABLE_SQLSTATES.has(code);
}

function backoff(attempt: number): Promise<void> {
  const cap = Math.min(RETRY_BACKOFF_MAX_MS, RETRY_BACKOFF_BASE_MS * 2 ** attempt);
  return new Promise((r) => setTimeout(r, Math.random() * cap));
}

/** Returns whether the connection is usable afterwards. */
async function rollback(client: PoolClient): Promise<boolean> {
  try {
    await client.query("ROLLBACK");
    return true;
  } catch {
    return false;
  }
}

/** How often one transaction follows a failover to the next primary before the error reaches the caller. */
const FAILOVER_RETRIES_MAX = 3;

class BeforeCommitConnectionError extends Error {
  constructor(readonly cause: unknown) {
    super("connection lost before COMMIT");
  }
}

/** The connection broke after COMMIT was sent: it may or may not have committed. The caller retries idempotently. */
class CommitOutcomeUnknown extends Error {
  constructor(readonly cause: unknown) {
    super("connection lost during COMMIT");
  }
}

/** `url1,url2,...`: a comma before another postgres:// URL separates nodes. */
export function splitUrls(url: string): string[] {
  return url.split(/,(?=postgres(?:ql)?:\/\/)/).map((u) => u.trim()).filter(Boolean);
}

const BEGIN_WRITE = "BEGIN ISOLATION LEVEL READ COMMITTED; SET LOCAL synchronous_commit = on";
const BEGIN_READ = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY";

export class PostgresEngine implements SqlEngine {
  private readonly pools: PrimaryPools;
  private closed = false;

  constructor(opts: PostgresOptions) {
    const poolSize = opts.poolSize ?? 10;
    if (!Number.isInteger(poolSize) || poolSize < 1) throw new RangeError(`"poolSize" expected a positive integer, got ${poolSize}`);
    this.pools = new PrimaryPools(splitUrls(opts.url), (url) => this.makePool(url, opts, poolSize));
  }

  /** How often writes moved to another node (a failover). */
  get failovers(): number {
    return this.pools.failovers;
  }

  private makePool(url: string, opts: PostgresOptions, poolSize: number): pg.Pool {
    const pool = new pg.Pool({
      connectionString: url,
      max: poolSize,
      connectionTimeoutMillis: opts.connectTimeoutMs ?? 10_000,
      statement_timeout: opts.statementTimeoutMs ?? 30_000,
      types: types as pg.CustomTypesConfig,
      // The session default too, for anything that runs outside tx() (the
      // explicit SET LOCAL in every write transaction is what we rely on).
      options: "-c synchronous_commit=on",
    });
    // An idle connection that dies (server restart, network) emits here; without
    // a listener that would crash the process. The pool drops the connection and
    // the next checkout opens a fresh one, so there is nothing else to do.
    pool.on("error", () => {});
    // A checked-out client whose server dies emits 'error' on itself (the pool's
    // listener covers idle ones only); its pending query rejects anyway, which is
    // where the failure is handled, so the event must not crash the process.
    pool.on("connect", (client) => client.on("error", () => {}));
    return pool;
  }

  async tx<T>(fn: (q: SqlTx) => Promise<T>): Promise<T> {
    for (let attempt = 0, failovers = 0; ; attempt++) {
      try {
        return await this.once(BEGIN_WRITE, fn);
      } catch (e) {
        // The node died or is no longer primary before COMMIT was sent: nothing
        // was committed, so running the transaction again on the new primary is
        // safe. (A COMMIT whose answer was lost is CommitOutcomeUnknown: not retried.)
        if (e instanceof BeforeCommitConnectionError && failovers++ < FAILOVER_RETRIES_MAX) continue;
        if (e instanceof BeforeCommitConnectionError || e instanceof CommitOutcomeUnknown) throw e.cause;
        if (!retryable(e) || attempt >= CONFLICT_RETRIES_MAX) throw e;
        await backoff(attempt);
      }
    }
  }

  /** A REPEATABLE READ snapshot, so a multi-statement read such as the audit sees one consistent state. */
  async read<T>(fn: (q: SqlTx) => Promise<T>): Promise<T> {
    for (let failovers = 0; ; ) {
      try {
        return await this.once(BEGIN_READ, fn);
      } catch (e) {
        if (e instanceof BeforeCommitConnectionError && failovers++ < FAILOVER_RETRIES_MAX) continue;
        if (e instanceof BeforeCommitConnectionError || e instanceof CommitOutcomeUnknown) throw e.cause;
        throw e;
      }
    }
  }

  /**
   * One attempt: BEGIN, fn, COMMIT. Any throw from fn (a Rollback refusal, a
   * RetryableConflict, a database error) rolls back and propagates; the
   * caller decides whether to retry.
   */
  private async once<T>(begin: string, fn: (q: SqlTx) => Promise<T>): Promise<T> {
    if (this.closed) throw new Error("ledger is closed");
    let conn: Awaited<ReturnType<PrimaryPools["connect"]>>;
    try {
      conn = await this.pools.connect();
    } catch (e) {
      if (isConnectionError(e)) throw new BeforeCommitConnectionError(e);
      throw e;
    }
    const { client, pool } = conn;
    let commitSent = false;
    // Whether the connection ended in a clean state and may go back to the pool.
    let reusable = false;
    try {
      await client.query(begin);
      try {
        const value = await fn(wrap(client));
        // A COMMIT that fails (or whose reply is lost) leaves the outcome
        // unknown to us, so it is not retried here; every ledger operation is
        // idempotent, and the center's caller may retransmit.
        commitSent = true;
        await client.query("COMMIT");
        reusable = true;
        return value;
      } catch (e) {
        reusable = await rollback(client);
        throw e;
      }
    } catch (e) {
      if (isConnectionError(e)) {
        this.pools.invalidate(pool);
        throw commitSent ? new CommitOutcomeUnknown(e) : new BeforeCommitConnectionError(e);
      }
      throw e;
    } finally {
      // release(true) destroys a connection that may be mid-protocol.
      client.release(!reusable);
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.pools.end();
  }
}

/** Opens (does not migrate) a PostgreSQL-backed ledger. Call `migrate()` before use. */
export function openPostgresLedger(url: string, opts: Omit<PostgresOptions, "url"> = {}): SqlLedger {
  return new SqlLedger("postgres", new PostgresEngine({ url, ...opts }));
}
