/**
 * The ledger's schema as numbered migrations, written once for both dialects.
 * Invariants the database itself enforces are marked; the rest are checked by
 * audit().
 *
 * How it runs (SqlLedger.migrate): in ONE write transaction under the
 * database's lock (PostgreSQL: a transaction advisory lock, so replicas
 * starting at once apply each migration exactly once; SQLite: its write
 * transactions are exclusive), read `meta.schema_version`, refuse a version
 * newer than this code knows (SCHEMA_TOO_NEW: nothing is changed, the center
 * does not start), apply every migration above it in order, record each in
 * `schema_migrations`, and set `schema_version`. A failure rolls all of it back.
 *
 * Adding a migration (the only way to change the schema):
 *   1. append `{ version: <last + 1>, name, statements(d) }` to MIGRATIONS;
 *      never edit or reorder a migration that has been released;
 *   2. statements must work on both dialects (use `types(d)` for INTEGER /
 *      BIGINT, BLOB / BYTEA, serial keys) and on a ledger holding data (a new
 *      NOT NULL column needs a DEFAULT);
 *   3. test/migrations.test.ts upgrades testdata/ledger-v1.sqlite (and the
 *      same ledger on PostgreSQL) to the newest version and audits it: add an
 *      assertion there for what your migration changes.
 */
import { chainBackfillStatements, chainSchemaStatements } from "./chain-schema.js";

export type Dialect = "sqlite" | "postgres";

export interface Migration {
  version: number;
  name: string;
  statements(d: Dialect): string[];
}

/** Column types per dialect. */
export function types(d: Dialect) {
  return {
    int: d === "sqlite" ? "INTEGER" : "BIGINT",
    bin: d === "sqlite" ? "BLOB" : "BYTEA",
    serialPk: d === "sqlite" ? "INTEGER PRIMARY KEY AUTOINCREMENT" : "BIGSERIAL PRIMARY KEY",
  };
}

/** Version 1: the schema of the first release (before migrations were numbered). Frozen. */
function initialSchema(d: Dialect): string[] {
  const int = d === "sqlite" ? "INTEGER" : "BIGINT";
  const bin = d === "sqlite" ? "BLOB" : "BYTEA";
  const serialPk = d === "sqlite" ? "INTEGER PRIMARY KEY AUTOINCREMENT" : "BIGSERIAL PRIMARY KEY";
  return [
    `CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)`,
    `CREATE TABLE IF NOT EXISTS keys (
       kind TEXT NOT NULL, secret_id ${int} NOT NULL, key ${bin} NOT NULL, created_at ${int} NOT NULL,
       PRIMARY KEY (kind, secret_id))`,
    `CREATE TABLE IF NOT EXISTS vendors (
       vendor_id TEXT PRIMARY KEY, dns_name TEXT NOT NULL, ip_addr TEXT NOT NULL,
       server_name TEXT NOT NULL, port ${int} NOT NULL)`,
    `CREATE TABLE IF NOT EXISTS vendor_keys (
       vendor_id TEXT NOT NULL REFERENCES vendors(vendor_id), key_id ${int} NOT NULL, secret ${bin} NOT NULL,
       PRIMARY KEY (vendor_id, key_id))`,
    // kind 'external' accounts (funding, payout) may go negative: they are
    // the outside world's side of every deposit and withdrawal.
    `CREATE TABLE IF NOT EXISTS accounts (
       account_id TEXT PRIMARY KEY, kind TEXT NOT NULL, currency TEXT NOT NULL, balance ${int} NOT NULL,
       CHECK (kind = 'external' OR balance >= 0))`,
    `CREATE TABLE IF NOT EXISTS transfers (
       transfer_id ${serialPk}, kind TEXT NOT NULL, ref TEXT NOT NULL,
       debit_account TEXT NOT NULL REFERENCES accounts(account_id),
       credit_account TEXT NOT NULL REFERENCES accounts(account_id),
       amount ${int} NOT NULL, currency TEXT NOT NULL, created_at ${int} NOT NULL,
       CHECK (amount > 0), CHECK (debit_account <> credit_account))`,
    `CREATE TABLE IF NOT EXISTS campaigns (
       campaign_id TEXT PRIMARY KEY, vendor_id TEXT NOT NULL REFERENCES vendors(vendor_id),
       currency TEXT NOT NULL, cap ${int} NOT NULL, funded ${int} NOT NULL, issued ${int} NOT NULL,
       CHECK (funded <= cap))`,
    `CREATE TABLE IF NOT EXISTS customers (
       customer_serial ${int} PRIMARY KEY, wallet_id TEXT NOT NULL UNIQUE, secret_id ${int} NOT NULL,
       name TEXT NOT NULL, address TEXT NOT NULL, email TEXT NOT NULL, etc TEXT NOT NULL,
       sealed_hash ${bin} NOT NULL, reply ${bin} NOT NULL, created_at ${int} NOT NULL)`,
    `CREATE TABLE IF NOT EXISTS scrips (
       serial ${int} PRIMARY KEY, customer_serial ${int} NOT NULL, currency TEXT NOT NULL,
       value ${int} NOT NULL, expires_at ${int} NOT NULL, state TEXT NOT NULL,
       created_at ${int} NOT NULL, spent_at ${int},
       CHECK (value >= 0), CHECK (state IN ('live', 'spent')))`,
    // One live scrip per customer per currency: enforced by the database.
    `CREATE UNIQUE INDEX IF NOT EXISTS scrips_one_live ON scrips (customer_serial, currency) WHERE state = 'live'`,
    `CREATE TABLE IF NOT EXISTS transactions (
       vendor_id TEXT NOT NULL, tran_id TEXT NOT NULL, kind TEXT NOT NULL, customer_serial ${int} NOT NULL,
       amount ${int} NOT NULL, currency TEXT NOT NULL, campaign_id TEXT NOT NULL, item TEXT NOT NULL,
       delivery_method ${int} NOT NULL, expires_at ${int} NOT NULL, offer_hash ${bin} NOT NULL,
       vendor_key_id ${int} NOT NULL, state TEXT NOT NULL, in_serial ${int} NOT NULL, out_serial ${int} NOT NULL, restored_serial ${int} NOT NULL,
       execute_reply ${bin}, confirm_reply ${bin}, cancel_reply ${bin},
       created_at ${int} NOT NULL, updated_at ${int} NOT NULL,
       PRIMARY KEY (vendor_id, tran_id), CHECK (amount > 0))`,
    // M4/M6/S6 name a TranID without its vendor: unique per customer.
    `CREATE UNIQUE INDEX IF NOT EXISTS transactions_by_customer ON transactions (customer_serial, tran_id)`,
    // One reward per customer per campaign item: enforced by the database.
    `CREATE TABLE IF NOT EXISTS rewards (
       campaign_id TEXT NOT NULL, item TEXT NOT NULL, customer_serial ${int} NOT NULL, tran_id TEXT NOT NULL,
       PRIMARY KEY (campaign_id, item, customer_serial))`,
    `CREATE TABLE IF NOT EXISTS requests (
       request_id TEXT PRIMARY KEY, kind TEXT NOT NULL, customer_serial ${int} NOT NULL, reply ${bin} NOT NULL,
       created_at ${int} NOT NULL)`,
    `CREATE TABLE IF NOT EXISTS payouts (
       payout_id TEXT PRIMARY KEY, customer_serial ${int} NOT NULL, amount ${int} NOT NULL,
       currency TEXT NOT NULL, account TEXT NOT NULL, created_at ${int} NOT NULL, CHECK (amount > 0))`,
    `CREATE TABLE IF NOT EXISTS settlements (
       sequence ${serialPk}, kind TEXT NOT NULL, vendor_id TEXT NOT NULL, tran_id TEXT NOT NULL,
       amount ${int} NOT NULL, currency TEXT NOT NULL, item TEXT NOT NULL, settled_at ${int} NOT NULL)`,
    `CREATE INDEX IF NOT EXISTS settlements_by_vendor ON settlements (vendor_id, sequence)`,
  ];
}

/** Migration 3: refunds and restore/sync (issue 14). */
export function refundStatements(d: Dialect): string[] {
  const int = d === "sqlite" ? "INTEGER" : "BIGINT";
  const bin = d === "sqlite" ? "BLOB" : "BYTEA";
  return [
    // At most one refund per TranID: enforced by the database (the UNIQUE
    // constraint is where two concurrent refunds meet). folded_serial is 0
    // while the credit is pending, then the serial of the scrip carrying it.
    `CREATE TABLE IF NOT EXISTS refunds (
       refund_id TEXT PRIMARY KEY, vendor_id TEXT NOT NULL, tran_id TEXT NOT NULL, request_id TEXT NOT NULL,
       customer_serial ${int} NOT NULL, amount ${int} NOT NULL, paid ${int} NOT NULL, currency TEXT NOT NULL,
       reason TEXT NOT NULL, created_at ${int} NOT NULL, settlement_sequence ${int} NOT NULL,
       folded_serial ${int} NOT NULL, folded_at ${int},
       UNIQUE (vendor_id, tran_id), CHECK (amount > 0), CHECK (amount <= paid))`,
    `CREATE INDEX IF NOT EXISTS refunds_by_customer ON refunds (customer_serial, folded_serial)`,
    // Sync nonces seen, per customer, kept for the request freshness window.
    `CREATE TABLE IF NOT EXISTS sync_nonces (
       customer_serial ${int} NOT NULL, nonce ${bin} NOT NULL, created_at ${int} NOT NULL,
       PRIMARY KEY (customer_serial, nonce))`,
  ];
}

export const MIGRATIONS: readonly Migration[] = [
  { version: 1, name: "initial schema", statements: initialSchema },
  {
    version: 2,
    name: "migration history",
    // Which migration ran when: an operator (and the upgrade test) can see
    // that each ran once. Versions applied before this table existed are
    // recorded with applied_at 0.
    statements: (d) => [
      `CREATE TABLE IF NOT EXISTS schema_migrations (
         version ${types(d).int} PRIMARY KEY, name TEXT NOT NULL, applied_at ${types(d).int} NOT NULL)`,
    ],
  },
  { version: 3, name: "refunds and restore/sync", statements: refundStatements },
  {
    version: 4,
    name: "tamper-evident journal (events, checkpoints, triggers)",
    // A ledger that already holds rows gets one event per row, so its audit finds them journaled.
    statements: (d) => [...chainSchemaStatements(d), ...chainBackfillStatements(d)],
  },
];

/** The newest schema version this code knows. */
export const SCHEMA_VERSION = MIGRATIONS[MIGRATIONS.length - 1]!.version;

/** The frozen version-1 statements (kept for the fixture script and tests). */
export const schemaV1Statements = initialSchema;
