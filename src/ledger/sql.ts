/**
 * The small SQL surface both engines provide. Statements are written once,
 * with `?` placeholders, in the subset of SQL that SQLite and PostgreSQL
 * share (ON CONFLICT, RETURNING, partial unique indexes); integer columns come
 * back as bigint and blobs as Buffer on both.
 */
export interface SqlTx {
  get<T = Row>(sql: string, params?: unknown[]): Promise<T | undefined>;
  all<T = Row>(sql: string, params?: unknown[]): Promise<T[]>;
  /** Returns the number of rows changed. */
  run(sql: string, params?: unknown[]): Promise<number>;
}

export type Row = Record<string, unknown>;

export interface SqlEngine {
  /**
   * Runs `fn` as one atomic transaction, durable when the promise resolves.
   * Throwing rolls back everything `fn` did. An engine may retry `fn` on a
   * serialization conflict, so `fn` must only touch the database.
   */
  tx<T>(fn: (q: SqlTx) => Promise<T>): Promise<T>;
  /** Reads committed state only, never another transaction's uncommitted writes. */
  read<T>(fn: (q: SqlTx) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

/** Thrown inside a transaction to roll it back and report a refusal. */
export class Rollback extends Error {
  constructor(
    readonly refusal: string,
    readonly detail: string,
  ) {
    super(`${refusal}: ${detail}`);
    this.name = "Rollback";
  }
}

/** Thrown when another transaction won a race; the engine retries the whole transaction. */
export class RetryableConflict extends Error {
  constructor(detail: string) {
    super(detail);
    this.name = "RetryableConflict";
  }
}

export function blob(b: Uint8Array): Buffer {
  return Buffer.isBuffer(b) ? b : Buffer.from(b.buffer, b.byteOffset, b.byteLength);
}
