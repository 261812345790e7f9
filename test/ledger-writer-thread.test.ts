/**
 * The SQLite ledger's writer thread (src/ledger/sqlite-worker.ts): what the
 * contract suite cannot see from the Ledger interface alone. Calls made in
 * one event-loop turn cross to the writer in one message; error classes
 * survive the crossing; a write method missing from WRITE_METHODS fails
 * loudly instead of writing from the event loop; and the writes really are
 * made by another thread (this thread's SQLite connection is read-only).
 */
import test from "ava";
import Database from "better-sqlite3";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { LedgerError, SchemaTooNewError } from "../src/ledger/ledger.js";
import { SqlLedger } from "../src/ledger/sql-ledger.js";
import { openSqliteLedger } from "../src/ledger/sqlite.js";
import { SqliteWorkerLedger, WRITE_METHODS } from "../src/ledger/sqlite-worker.js";

function tempDb(t: { teardown(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), "scripwire-writer-"));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return join(dir, "ledger.db");
}

test("a file ledger writes on its writer thread; calls of one turn cross in one message", async (t) => {
  const ledger = openSqliteLedger(tempDb(t));
  t.teardown(() => ledger.close());
  t.true(ledger instanceof SqliteWorkerLedger);
  await ledger.migrate();
  const before = (ledger as SqliteWorkerLedger).handOffStats();
  const N = 40;
  const made = await Promise.all(
    Array.from({ length: N }, (_, i) =>
      ledger.addKey({ kind: "custom", secretId: 1000 + i, key: new Uint8Array(randomBytes(32)), createdAt: 1 }),
    ),
  );
  t.deepEqual(made, Array(N).fill(true));
  const after = (ledger as SqliteWorkerLedger).handOffStats();
  t.is(after.calls - before.calls, N);
  t.is(after.messagesSent - before.messagesSent, 1, "all calls of one turn in one message");
  // Read back on this thread's connection: only committed rows are visible, and all are.
  t.is((await ledger.listKeys()).filter((k) => k.secretId >= 1000).length, N);
});

test("error classes cross the thread: SchemaTooNewError, LedgerError keep their class and reason", async (t) => {
  const path = tempDb(t);
  const first = openSqliteLedger(path);
  await first.migrate();
  const bad = await first.createCampaign({ campaignId: "c", vendorId: "nobody", currency: "KRW", cap: 10n }).catch((e: unknown) => e);
  t.true(bad instanceof LedgerError);
  t.is((bad as LedgerError).reason, "UNKNOWN_VENDOR");
  await first.close();
  const raw = new Database(path);
  raw.prepare(`UPDATE meta SET value = '999' WHERE key = 'schema_version'`).run();
  raw.close();
  const second = openSqliteLedger(path);
  t.teardown(() => second.close());
  const e = await second.migrate().catch((x: unknown) => x);
  t.true(e instanceof SchemaTooNewError, String(e));
  t.is((e as SchemaTooNewError).found, 999);
});

test("a write that is not routed to the writer fails loudly instead of writing from the event loop", async (t) => {
  const ledger = openSqliteLedger(tempDb(t));
  t.teardown(() => ledger.close());
  await ledger.migrate();
  // The inherited method, bypassing the routing: it reaches the read-only engine.
  const e = await SqlLedger.prototype.addKey.call(ledger, { kind: "custom", secretId: 1, key: new Uint8Array(32), createdAt: 1 }).catch((x: unknown) => x);
  t.true(e instanceof LedgerError);
  t.is((e as LedgerError).reason, "WRITE_ON_READER");
  t.deepEqual(await ledger.listKeys(), []);
});

test("WRITE_METHODS names only methods the ledger has", (t) => {
  for (const m of WRITE_METHODS) t.is(typeof (SqlLedger.prototype as unknown as Record<string, unknown>)[m], "function", m);
});

test("inline writer (SCRIPWIRE_SQLITE_WRITER=inline or { writer: 'inline' }) and :memory: stay on this thread", async (t) => {
  const a = openSqliteLedger(tempDb(t), { writer: "inline" });
  const b = openSqliteLedger(":memory:");
  t.false(a instanceof SqliteWorkerLedger);
  t.false(b instanceof SqliteWorkerLedger);
  await a.migrate();
  await b.migrate();
  t.true(await a.addKey({ kind: "custom", secretId: 1, key: new Uint8Array(32), createdAt: 1 }));
  await a.close();
  await b.close();
});
