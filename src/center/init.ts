/**
 * Creating a center's ledger is an explicit step (`scripwire center init`).
 *
 * Why: a center that silently creates a fresh ledger when it finds none would
 * come up with new keys after a lost disk or a mistyped --data-dir, refuse
 * every existing wallet, and pass its own audit (the audit only compares the
 * ledger with itself). So `serve` refuses a missing or empty ledger and says
 * how to create one; only `init` (or a library caller that asks for it)
 * creates the schema and the first generation of every key.
 *
 * "Initialised" means: the ledger holds at least one center key. Key families
 * added by a later version (the checkpoint key, say) are still created on the
 * first start of an initialised ledger: that is an upgrade, not a new ledger.
 */
import { existsSync, statSync } from "node:fs";
import { KekError } from "../crypto/kek.js";
import type { Ledger } from "../ledger/ledger.js";
import { openLedger } from "../ledger/open.js";
import { KeyRing } from "./keyring.js";

export const isPostgresUrl = (database: string): boolean => /^postgres(ql)?:\/\//.test(database);

/** Thrown by `serve` on a missing or empty ledger; the message says what to do. */
export class LedgerNotInitialisedError extends Error {
  readonly reason = "LEDGER_NOT_INITIALISED";
  /** The CLI exit code (EXIT.FAILURE). */
  readonly exitCode = 1;
  constructor(where: string, detail: string) {
    super(
      `${detail} (${where}): refusing to start a center on it. A new ledger would come with new keys, every existing ` +
        `wallet would be refused and the lost history would go unnoticed. If this center had a ledger, restore it ` +
        `(or point --data-dir/--database at it); to create a new one run: scripwire center init ${where.startsWith("postgres") ? "--database <url>" : "--data-dir <dir>"}`,
    );
    this.name = "LedgerNotInitialisedError";
  }
}

/** Thrown by `init` on a ledger that already exists. */
export class LedgerExistsError extends Error {
  readonly reason = "LEDGER_EXISTS";
  readonly exitCode = 1;
  constructor(where: string) {
    super(`a ledger already exists at ${where}; init creates a new one only where there is none (nothing was changed)`);
    this.name = "LedgerExistsError";
  }
}

/** Redacts a URL's password for messages. */
export function describeDatabase(database: string): string {
  return isPostgresUrl(database) ? database.replace(/:\/\/([^:/@]+):[^@]*@/g, "://$1:***@") : database;
}

/** True when the ledger holds the center's keys (the schema may or may not exist yet). */
export async function ledgerInitialised(ledger: Ledger): Promise<boolean> {
  try {
    return (await ledger.listKeys()).length > 0;
  } catch (e) {
    // Keys wrapped by a KEK not given yet (src/crypto/kek.ts): they are there.
    if (e instanceof KekError) return true;
    // No keys table: an empty file or an empty database.
    return false;
  }
}

/**
 * Opens an existing, initialised ledger, or throws LedgerNotInitialisedError.
 * A SQLite file that does not exist is never created here.
 */
export async function openExistingLedger(database: string, opts: { sqliteThread?: URL } = {}): Promise<Ledger> {
  const where = describeDatabase(database);
  if (!isPostgresUrl(database)) {
    if (!existsSync(database)) throw new LedgerNotInitialisedError(where, "no ledger database file");
    if (statSync(database).size === 0) throw new LedgerNotInitialisedError(where, "the ledger database file is empty");
  }
  const ledger = await openLedger(database, opts);
  try {
    if (!(await ledgerInitialised(ledger))) throw new LedgerNotInitialisedError(where, "the ledger holds no center keys (an empty or never-initialised ledger)");
    return ledger;
  } catch (e) {
    await ledger.close().catch(() => {});
    throw e;
  }
}

/**
 * Creates the schema and the first generation of every center key on an
 * empty ledger. Refuses (LedgerExistsError) when keys are already there.
 */
export async function initLedger(ledger: Ledger, where: string): Promise<{ keys: string[] }> {
  if (await ledgerInitialised(ledger)) throw new LedgerExistsError(where);
  await ledger.migrate();
  const ring = new KeyRing(ledger);
  await ring.load();
  return { keys: (await ledger.listKeys()).map((k) => `${k.kind}#${k.secretId}`) };
}
