/**
 * Chooses the ledger engine from configuration: a `postgres://` (or
 * `postgresql://`) URL selects PostgreSQL, anything else is a SQLite file.
 */
import type { Ledger } from "./ledger.js";
import { openSqliteLedger } from "./sqlite.js";

export async function openLedger(database: string): Promise<Ledger> {
  if (/^postgres(ql)?:\/\//.test(database)) {
    const { openPostgresLedger } = await import("./postgres.js");
    return openPostgresLedger(database);
  }
  return openSqliteLedger(database);
}
