/**
 * Tables and triggers of the tamper-evident journal (see chain.ts), for both
 * dialects.
 *
 * Why triggers: an event must be written in the SAME transaction as the row
 * it records, whoever writes that row (today's ledger methods, refunds or a
 * rewritten write path tomorrow), and must not depend on each method
 * remembering to log. A trigger captures the row as committed; the sealer
 * reads only committed events, so no payment waits for sealing.
 *
 * events.fact is the netstring-like text of chain.ts `encodeFact`, built in
 * SQL; created_ms and sealed_ms are for measuring the sealing delay and are
 * not hashed; chain_seq/link are filled once by the sealer.
 */
import type { Dialect } from "./migrations.js";

type FactSpec = { table: string; on: "INSERT" | "UPDATE" | "UPDATE OF state"; when?: string; type: string; cols: string[] };

/** Which row changes become events, and the fields each carries (chain.ts FACT_FIELDS). */
const FACTS: FactSpec[] = [
  { table: "accounts", on: "INSERT", type: "account", cols: ["account_id", "kind", "currency"] },
  { table: "transfers", on: "INSERT", type: "transfer", cols: ["transfer_id", "kind", "ref", "debit_account", "credit_account", "amount", "currency", "created_at"] },
  { table: "scrips", on: "INSERT", type: "scrip", cols: ["serial", "customer_serial", "currency", "value", "expires_at", "created_at"] },
  { table: "scrips", on: "UPDATE OF state", when: "OLD.state = 'live' AND NEW.state = 'spent'", type: "spend", cols: ["serial", "spent_at"] },
  { table: "settlements", on: "INSERT", type: "settlement", cols: ["sequence", "kind", "vendor_id", "tran_id", "amount", "currency", "item", "settled_at"] },
  { table: "payouts", on: "INSERT", type: "payout", cols: ["payout_id", "customer_serial", "amount", "currency", "account", "created_at"] },
  { table: "campaigns", on: "INSERT", type: "campaign", cols: ["campaign_id", "vendor_id", "currency", "cap", "funded", "issued"] },
  { table: "campaigns", on: "UPDATE", type: "campaign", cols: ["campaign_id", "vendor_id", "currency", "cap", "funded", "issued"] },
  // Refunds (src/ledger/refunds.ts): a pending credit is value the center owes; every state of the row is journaled.
  { table: "refunds", on: "INSERT", type: "refund", cols: ["refund_id", "vendor_id", "tran_id", "request_id", "customer_serial", "amount", "paid", "currency", "reason", "created_at", "settlement_sequence", "folded_serial", "folded_at"] },
  { table: "refunds", on: "UPDATE", type: "refund", cols: ["refund_id", "vendor_id", "tran_id", "request_id", "customer_serial", "amount", "paid", "currency", "reason", "created_at", "settlement_sequence", "folded_serial", "folded_at"] },
];

function field(d: Dialect, expr: string): string {
  const text = `COALESCE(CAST(${expr} AS TEXT), '')`;
  const len = d === "sqlite" ? `length(CAST(${text} AS BLOB))` : `octet_length(${text})`;
  return `${len} || ':' || ${text}`;
}

function factExpr(d: Dialect, f: FactSpec, row = "NEW."): string {
  const parts = [field(d, `'${f.type}'`), ...f.cols.map((c) => field(d, `${row}${c}`))].join(" || ");
  return d === "sqlite" ? `CAST(${parts} AS BLOB)` : `convert_to(${parts}, 'UTF8')`;
}

const NOW_MS: Record<Dialect, string> = {
  sqlite: `CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)`,
  postgres: `CAST(extract(epoch FROM clock_timestamp()) * 1000 AS BIGINT)`,
};

function triggerName(f: FactSpec): string {
  return `sw_event_${f.table}_${f.on === "INSERT" ? "ins" : f.on === "UPDATE" ? "upd" : "spend"}`;
}

/** Trigger statements only (the bench drops and re-creates them to measure sealing's cost). */
export function chainTriggerStatements(d: Dialect): string[] {
  const out: string[] = [];
  for (const f of FACTS) {
    const name = triggerName(f);
    const insert = `INSERT INTO events (fact, created_ms) VALUES (${factExpr(d, f)}, ${NOW_MS[d]})`;
    if (d === "sqlite") {
      out.push(`CREATE TRIGGER IF NOT EXISTS ${name} AFTER ${f.on} ON ${f.table} FOR EACH ROW${f.when ? ` WHEN ${f.when}` : ""} BEGIN ${insert}; END`);
    } else {
      out.push(`CREATE OR REPLACE FUNCTION ${name}() RETURNS trigger LANGUAGE plpgsql AS $fn$ BEGIN ${insert}; RETURN NULL; END $fn$`);
      out.push(`CREATE OR REPLACE TRIGGER ${name} AFTER ${f.on} ON ${f.table} FOR EACH ROW${f.when ? ` WHEN (${f.when})` : ""} EXECUTE FUNCTION ${name}()`);
    }
  }
  return out;
}

export function chainTriggerNames(): string[] {
  return FACTS.map(triggerName);
}

export function chainSchemaStatements(d: Dialect): string[] {
  const int = d === "sqlite" ? "INTEGER" : "BIGINT";
  const bin = d === "sqlite" ? "BLOB" : "BYTEA";
  const serialPk = d === "sqlite" ? "INTEGER PRIMARY KEY AUTOINCREMENT" : "BIGSERIAL PRIMARY KEY";
  return [
    `CREATE TABLE IF NOT EXISTS events (
       event_id ${serialPk}, fact ${bin} NOT NULL, created_ms ${int} NOT NULL,
       chain_seq ${int} UNIQUE, link ${bin}, sealed_ms ${int})`,
    // The sealer finds pending events through this index only: O(pending), not O(history).
    `CREATE INDEX IF NOT EXISTS events_unsealed ON events (event_id) WHERE chain_seq IS NULL`,
    `CREATE TABLE IF NOT EXISTS checkpoints (
       size ${int} PRIMARY KEY, head ${bin} NOT NULL, timestamp_ms ${int} NOT NULL, key_id ${int} NOT NULL,
       public_key ${bin} NOT NULL, signature ${bin} NOT NULL)`,
    ...chainTriggerStatements(d),
  ];
}

/**
 * Events for the rows a ledger already holds when the journal is added to it
 * (migration 4 on a ledger made before the journal existed): one event per
 * row with its current values, and a spend for each spent scrip, so the
 * auditor finds every row journaled. On a new ledger the tables are empty and
 * these insert nothing.
 */
export function chainBackfillStatements(d: Dialect): string[] {
  const out: string[] = [];
  for (const f of FACTS) {
    if (f.on === "UPDATE") continue; // the insert event below already carries the row's current values
    const where = f.on === "UPDATE OF state" ? ` WHERE ${f.when!.replace(/OLD\.state = 'live' AND /, "").replace(/NEW\./g, "")}` : "";
    out.push(`INSERT INTO events (fact, created_ms) SELECT ${factExpr(d, f, "")}, ${NOW_MS[d]} FROM ${f.table}${where} ORDER BY ${f.cols[0]}`);
  }
  return out;
}
