/**
 * Numbered migrations (src/ledger/migrations.ts): a ledger made by the
 * previous release (testdata/ledger-v1.sqlite, written by
 * scripts/make-ledger-fixture.ts with that release's code) is upgraded in
 * place, keeps its money and keys, and its customer can still pay with the
 * scrip it held; the same ledger rebuilt on PostgreSQL from the version-1 DDL
 * upgrades the same way; migrations run once under the lock; a ledger newer
 * than the code is refused without being touched.
 */
import test, { type ExecutionContext } from "ava";
import { fromJson } from "@bufbuild/protobuf";
import { createRouterTransport } from "@connectrpc/connect";
import Database from "better-sqlite3";
import { copyFileSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PaymentCenterService } from "../gen/scripwire/v1/center_pb.js";
import { SellerService } from "../gen/scripwire/v1/seller_pb.js";
import { ScripTypeSchema } from "../gen/scripwire/v1/types_pb.js";
import { PaymentCenter } from "../src/center/center.js";
import { paymentCenterService } from "../src/center/service.js";
import { SchemaTooNewError } from "../src/ledger/ledger.js";
import { MIGRATIONS, SCHEMA_VERSION } from "../src/ledger/migrations.js";
import { openPostgresLedger } from "../src/ledger/postgres.js";
import type { SqlLedger } from "../src/ledger/sql-ledger.js";
import { openSqliteLedger } from "../src/ledger/sqlite.js";
import { parseSellerConfig } from "../src/seller/catalog.js";
import { Seller } from "../src/seller/seller.js";
import { sellerService } from "../src/seller/service.js";
import { centerConfig, sellerConfigJson } from "./helpers/inproc.js";
import { freshPgDatabase, PG_SKIP_REASON, pgRawClient, pgTestUrl } from "./helpers/pg.js";
import { RawCustomer } from "./helpers/raw.js";

const FIXTURE = "testdata/ledger-v1.sqlite";
const customer = JSON.parse(readFileSync("testdata/ledger-v1.json", "utf8")) as {
  vendorId: string;
  vendorSecretHex: string;
  campaignId: string;
  customSecretHex: string;
  scrip: unknown;
};
const fixtureScrip = fromJson(ScripTypeSchema, customer.scrip as never);
// The fixture's scrip lives 30 days from when it was made; the center and the
// seller run on a clock a day after that, so the test does not expire with time.
const FIXTURE_NOW_MS = (Number(fixtureScrip.scrip!.expirationDateUnix) - 29 * 86_400) * 1000;
const clock = () => FIXTURE_NOW_MS;

function tmpCopy(): { dir: string; path: string } {
  const dir = mkdtempSync(join(tmpdir(), "scripwire-migrate-"));
  const path = join(dir, "center.sqlite");
  copyFileSync(FIXTURE, path);
  return { dir, path };
}

/** What every upgraded ledger must show, whatever the engine. */
async function checkUpgraded(t: ExecutionContext, ledger: SqlLedger, raw: (sql: string) => Promise<Array<Record<string, unknown>>>) {
  t.is(await ledger.schemaVersion(), SCHEMA_VERSION);
  const history = await raw(`SELECT version, name, applied_at FROM schema_migrations ORDER BY version`);
  t.deepEqual(
    history.map((r) => Number(r.version)),
    MIGRATIONS.map((m) => m.version),
    "every migration is recorded once",
  );
  t.is(Number(history[0]!.applied_at), 0, "version 1 predates the history");
  const audit = await ledger.audit();
  t.true(audit.ok, audit.problems.join("; "));
  t.true(audit.transfersChecked > 0, "the old journal is still there");
  const live = await ledger.liveScrip(fixtureScrip.scrip!.customId!.serialNumber, "KRW");
  t.is(live?.serial, fixtureScrip.scrip!.scripId!.serialNumber, "the customer's live scrip survived");
  t.is((await ledger.listSettlements(customer.vendorId, 0n, 100)).length, 2, "both old settlements are listed");

  // The old customer pays with the scrip it held, on a center started over the upgraded ledger.
  const center = new PaymentCenter(ledger, centerConfig({ config: { clock } }));
  await center.start();
  const seller = new Seller(parseSellerConfig(sellerConfigJson(customer.vendorId, customer.vendorSecretHex, customer.campaignId)), clock);
  const c = new RawCustomer(
    createRouterTransport((r) => r.service(PaymentCenterService, paymentCenterService(center))),
    createRouterTransport((r) => r.service(SellerService, sellerService(seller))),
  );
  c.scrip = fixtureScrip;
  c.customSecret = new Uint8Array(Buffer.from(customer.customSecretHex, "hex"));
  const receipt = await c.buy("/articles/both");
  t.is(receipt.price, 5n);
  t.is(c.value, 15n);
  await c.earn("survey-1", "more articles");
  t.is(c.value, 35n, "and earns with it");
  const after = await ledger.audit();
  t.true(after.ok, after.problems.join("; "));
}

test("a version-1 SQLite ledger from the previous release upgrades in place and keeps working", async (t) => {
  const { dir, path } = tmpCopy();
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const ledger = openSqliteLedger(path);
  t.teardown(() => ledger.close());
  t.is(await ledger.schemaVersion(), 1, "the fixture is version 1");
  await ledger.migrate();
  const db = new Database(path, { readonly: true });
  t.teardown(() => db.close());
  await checkUpgraded(t, ledger, async (sql) => db.prepare(sql).all() as Array<Record<string, unknown>>);
});

test("migrations run once: a second migrate and several at once change nothing", async (t) => {
  const { dir, path } = tmpCopy();
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const ledgers = [openSqliteLedger(path), openSqliteLedger(path), openSqliteLedger(path)];
  t.teardown(async () => {
    for (const l of ledgers) await l.close();
  });
  await Promise.all(ledgers.map((l) => l.migrate()));
  await ledgers[0]!.migrate();
  const db = new Database(path, { readonly: true });
  t.teardown(() => db.close());
  const rows = db.prepare(`SELECT version, applied_at FROM schema_migrations ORDER BY version`).all() as Array<{ version: bigint; applied_at: bigint }>;
  t.is(rows.length, MIGRATIONS.length);
  t.is((db.prepare(`SELECT value FROM meta WHERE key = 'schema_version'`).get() as { value: string }).value, String(SCHEMA_VERSION));
});

test("a center refuses to start on a ledger newer than its code, and changes nothing", async (t) => {
  const { dir, path } = tmpCopy();
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const w = new Database(path);
  w.prepare(`UPDATE meta SET value = ? WHERE key = 'schema_version'`).run(String(SCHEMA_VERSION + 1));
  const before = (w.prepare(`SELECT count(*) AS n FROM sqlite_master`).get() as { n: number }).n;
  w.close();
  const ledger = openSqliteLedger(path);
  t.teardown(() => ledger.close());
  const center = new PaymentCenter(ledger, centerConfig({}));
  const e = await t.throwsAsync(center.start(), { instanceOf: SchemaTooNewError });
  t.regex(e!.message, new RegExp(`version ${SCHEMA_VERSION + 1}, newer than this scripwire \\(which knows up to version ${SCHEMA_VERSION}\\)`));
  t.regex(e!.message, /nothing was changed/);
  const db = new Database(path, { readonly: true });
  t.teardown(() => db.close());
  t.is((db.prepare(`SELECT count(*) AS n FROM sqlite_master`).get() as { n: number }).n, before, "no table was created");
  t.is((db.prepare(`SELECT value FROM meta WHERE key = 'schema_version'`).get() as { value: string }).value, String(SCHEMA_VERSION + 1));
});

const pgUrl = pgTestUrl();
if (!pgUrl) {
  test.skip(`PostgreSQL: the version-1 ledger upgrades in place [${PG_SKIP_REASON}]`, () => {});
  console.log(`migrations.test.ts: PostgreSQL upgrade test skipped: ${PG_SKIP_REASON}`);
} else {
  test("PostgreSQL: the version-1 ledger (old DDL + the fixture's rows) upgrades in place, with two replicas migrating at once", async (t) => {
    const fresh = await freshPgDatabase(pgUrl);
    t.teardown(() => fresh.drop());
    const client = await pgRawClient(fresh.url);
    t.teardown(() => client.end());
    // The previous release's DDL, exactly as it created it on PostgreSQL.
    await client.query(readFileSync("testdata/ledger-v1-postgres.sql", "utf8"));
    // Its rows: copied from the SQLite fixture, table by table, in an order the foreign keys accept.
    const src = new Database(FIXTURE, { readonly: true });
    src.defaultSafeIntegers(true);
    try {
      for (const table of ["meta", "keys", "vendors", "vendor_keys", "accounts", "transfers", "campaigns", "customers", "scrips", "transactions", "rewards", "requests", "payouts", "settlements"]) {
        const rows = src.prepare(`SELECT * FROM ${table}`).all() as Array<Record<string, unknown>>;
        for (const r of rows) {
          const cols = Object.keys(r);
          const vals = cols.map((c) => (typeof r[c] === "bigint" ? String(r[c]) : r[c]));
          await client.query(`INSERT INTO ${table} (${cols.join(", ")}) VALUES (${cols.map((_, i) => `$${i + 1}`).join(", ")})`, vals);
        }
      }
    } finally {
      src.close();
    }
    for (const [table, col] of [["transfers", "transfer_id"], ["settlements", "sequence"]]) {
      await client.query(`SELECT setval(pg_get_serial_sequence('${table}', '${col}'), (SELECT max(${col}) FROM ${table}))`);
    }
    const a = openPostgresLedger(fresh.url);
    const b = openPostgresLedger(fresh.url);
    t.teardown(async () => {
      await a.close();
      await b.close();
    });
    t.is(await a.schemaVersion(), 1);
    await Promise.all([a.migrate(), b.migrate()]);
    await checkUpgraded(t, a, async (sql) => (await client.query(sql)).rows);

    // Newer than the code: refused, nothing changed.
    await client.query(`UPDATE meta SET value = $1 WHERE key = 'schema_version'`, [String(SCHEMA_VERSION + 1)]);
    await t.throwsAsync(b.migrate(), { instanceOf: SchemaTooNewError });
    t.is((await client.query(`SELECT value FROM meta WHERE key = 'schema_version'`)).rows[0].value, String(SCHEMA_VERSION + 1));
  });
}
