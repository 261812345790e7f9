/**
 * Several PostgreSQL URLs, one primary: the center is given every node of a
 * primary + standby pair (`--database url1,url2`), always writes to the one
 * that is primary, and finds the new primary after a failover without a
 * restart. node-postgres has no multi-host URLs (libpq's
 * target_session_attrs=read-write), so this does it: probe each URL with
 * `SELECT pg_is_in_recovery()`, keep a pool on the primary, and when a
 * connection breaks or lands on a standby (25006, read-only transaction),
 * drop that pool and probe again.
 */
import pg from "pg";
import type { PoolClient } from "pg";

/** How long a caller waits for some node to be primary before its request fails (a promotion takes seconds). */
export const PRIMARY_WAIT_MS = 30_000;
const PROBE_INTERVAL_MS = 250;

/** Errors that mean "this node is gone or is not (any longer) the primary", not "the statement was wrong". */
export function isConnectionError(e: unknown): boolean {
  const code = (e as { code?: unknown } | null)?.code;
  if (typeof code === "string") {
    if (["ECONNREFUSED", "ECONNRESET", "EPIPE", "ETIMEDOUT", "EHOSTUNREACH", "ENOTCONN"].includes(code)) return true;
    // admin/crash shutdown, cannot connect now, read-only transaction (a standby), connection exceptions.
    if (["57P01", "57P02", "57P03", "25006"].includes(code) || code.startsWith("08")) return true;
  }
  const msg = e instanceof Error ? e.message : "";
  return /Connection terminated|connection timeout|timeout exceeded when trying to connect|Client has encountered a connection error|not queryable/i.test(msg);
}

export class NoPrimaryError extends Error {
  readonly code = "NO_PRIMARY";
  constructor(urls: string[], last: unknown) {
    super(`no PostgreSQL primary among ${urls.length} node(s) within ${PRIMARY_WAIT_MS} ms${last instanceof Error ? ` (last error: ${last.message})` : ""}`);
    this.name = "NoPrimaryError";
  }
}

export class PrimaryPools {
  private current: pg.Pool | undefined;
  private finding: Promise<pg.Pool> | undefined;
  private closed = false;
  failovers = 0;

  constructor(
    readonly urls: string[],
    private readonly makePool: (url: string) => pg.Pool,
  ) {
    if (urls.length === 0) throw new Error("at least one PostgreSQL URL is needed");
  }

  /** A connection to the primary, and the pool it came from (to invalidate if it breaks). */
  async connect(): Promise<{ client: PoolClient; pool: pg.Pool }> {
    const pool = this.current ?? (await this.find());
    try {
      return { client: await pool.connect(), pool };
    } catch (e) {
      if (isConnectionError(e)) this.invalidate(pool);
      throw e;
    }
  }

  /** The pool's node failed or is a standby now: forget it; the next connect() probes again. */
  invalidate(pool: pg.Pool): void {
    if (this.current !== pool) return;
    this.current = undefined;
    this.failovers++;
    void pool.end().catch(() => {});
  }

  private find(): Promise<pg.Pool> {
    this.finding ??= this.probe().finally(() => (this.finding = undefined));
    return this.finding;
  }

  private async probe(): Promise<pg.Pool> {
    const deadline = Date.now() + PRIMARY_WAIT_MS;
    let last: unknown;
    for (;;) {
      if (this.closed) throw new Error("ledger is closed");
      for (const url of this.urls) {
        const pool = this.makePool(url);
        try {
          const c = await pool.connect();
          try {
            const r = await c.query("SELECT pg_is_in_recovery() AS standby");
            c.release();
            if (r.rows[0]?.standby === false) {
              this.current = pool;
              return pool;
            }
          } catch (e) {
            c.release(true);
            throw e;
          }
        } catch (e) {
          last = e;
        }
        if (this.current !== pool) await pool.end().catch(() => {});
      }
      if (Date.now() > deadline) throw new NoPrimaryError(this.urls, last);
      await new Promise((r) => setTimeout(r, PROBE_INTERVAL_MS));
    }
  }

  async end(): Promise<void> {
    this.closed = true;
    const p = this.current;
    this.current = undefined;
    await p?.end();
  }
}
