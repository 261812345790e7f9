/**
 * Chooses the ledger engine from configuration: a `postgres://` (or
 * `postgresql://`) URL selects PostgreSQL, anything else is a SQLite file.
 */
import type { Ledger } from "./ledger.js";
import { openSqliteLedger } from "./sqlite.js";

/**
 * `sqliteThread`: the entry module of a SQLite ledger's writer thread when a
 * guest should share it (writer-host.ts); ignored for PostgreSQL.
 */
export async function openLedger(database: string, opts: { sqliteThread?: URL } = {}): Promise<Ledger> {
  if (/^postgres(ql)?:\/\//.test(database)) {
    const { openPostgresLedger } = await import("./postgres.js");
    return openPostgresLedger(database);
  }
  return openSqliteLedger(database, { thread: opts.sqliteThread });
}
