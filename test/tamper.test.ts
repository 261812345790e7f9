/**
 * The tamper suite: a real ledger (SQLite file, and a PostgreSQL database)
 * built by the real center through the protocol — funding, issuance, payment,
 * undo, renewal, redemption with payout, settlements — sealed and
 * checkpointed; a checkpoint saved as a seller would. Then, on a fresh copy
 * each time, ONE change an insider with database access might make, and the
 * audit (with the saved checkpoint, no center running) must report it.
 *
 * Several cases are balanced edits that the conservation audit alone passes:
 * the test asserts that too, so it shows what the journal adds.
 */
import test, { type ExecutionContext } from "ava";
import { createRouterTransport } from "@connectrpc/connect";
import { ed25519 } from "@noble/curves/ed25519.js";
import Database from "better-sqlite3";
import { copyFileSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { spawn } from "node:child_process";
import { PaymentCenterService } from "../gen/scripwire/v1/center_pb.js";
import { SellerService } from "../gen/scripwire/v1/seller_pb.js";
import { CmdType } from "../gen/scripwire/v1/types_pb.js";
import { PaymentCenter } from "../src/center/center.js";
import { paymentCenterService } from "../src/center/service.js";
import { computeMessageHash } from "../src/crypto/scrip-auth.js";
import { link, signCheckpoint, type Checkpoint } from "../src/ledger/chain.js";
import type { Ledger } from "../src/ledger/ledger.js";
import { openPostgresLedger } from "../src/ledger/postgres.js";
import { openSqliteLedger } from "../src/ledger/sqlite.js";
import { Seller } from "../src/seller/seller.js";
import { sellerService } from "../src/seller/service.js";
import { centerConfig, QUIZ, seedLedger } from "./helpers/inproc.js";
import { dropDatabase, freshPgDatabase, pgTestUrl, PG_SKIP_REASON } from "./helpers/pg.js";
import { hdr, RawCustomer } from "./helpers/raw.js";

/** A database handle the cases speak through, the same on both engines. */
interface Db {
  all(sql: string, params?: unknown[]): Promise<Record<string, unknown>[]>;
  run(sql: string, params?: unknown[]): Promise<void>;
}

/** Builds the ledger's history through the protocol; returns the saved checkpoint. */
async function buildHistory(ledger: Ledger): Promise<{ saved: Checkpoint; early: Checkpoint }> {
  const center = new PaymentCenter(ledger, centerConfig({ config: { redeemThreshold: { KRW: 10n, USD: 10n } } }));
  await center.start();
  const { sellerConfig } = await seedLedger(ledger, 10_000n);
  const seller = new Seller(sellerConfig);
  const ct = createRouterTransport((r) => r.service(PaymentCenterService, paymentCenterService(center)));
  const st = createRouterTransport((r) => r.service(SellerService, sellerService(seller)));
  const k = center.keys.current("checkpoint-ed25519");
  const seal = async () => (await ledger.seal({ now: Date.now, signer: { keyId: k.secretId, secretKey: k.key, everyMs: 0, force: true } })).checkpoint!;
  const a = new RawCustomer(ct, st);
  const b = new RawCustomer(ct, st);
  await a.register();
  await b.register();
  await a.earn(QUIZ.itemId, QUIZ.answer); // 50
  await a.earn("survey-1", "yes"); // 70
  await b.earn(QUIZ.itemId, QUIZ.answer); // 50
  const early = await seal();
  await a.buy("/articles/hash-cash"); // 40
  await b.buy("/articles/both"); // 45
  // An undone payment (PM6_3): a transfer and its reversal.
  const s2 = await b.s1("/articles/both");
  await b.s3(s2.order!);
  const s5 = await b.s4(s2.order!);
  const undo = await b.s6(s2.order!.tranId, s5.newScrip!, CmdType.PM6_3);
  if (undo.scrip?.scrip?.value === undefined) throw new Error("the undo did not restore the scrip");
  b.scrip = undo.scrip;
  // Renewal and a redemption with a payout.
  const rn = await a.center.renew({ header: hdr(CmdType.RN1), requestId: "renew-1", scrip: a.scrip, scripHash: a.hash(CmdType.RN1, "renew-1", 0, a.scrip), pCount: 0 });
  a.scrip = rn.newScrip!;
  const rd = await a.center.redeem({
    header: hdr(CmdType.RD1),
    requestId: "redeem-1",
    scrip: a.scrip,
    amount: 15n,
    payoutAccount: "bank:123",
    scripHash: computeMessageHash(a.scrip.hashAlgorithm, a.customSecret, { code: "RD1", contextId: "redeem-1", pCount: 0, scrip: a.scrip, amount: 15n, account: "bank:123" }),
    pCount: 0,
  });
  if (!rd.newScrip || !rd.payout) throw new Error("the redemption did not pay out");
  a.scrip = rd.newScrip;
  await a.earn("ad-1", ""); // one more issuance after
  const saved = await seal();
  const audit = await ledger.audit({ checkpoint: saved });
  if (!audit.ok) throw new Error(`the untampered ledger fails its audit: ${audit.problems.join("; ")}`);
  return { saved, early };
}

interface Case {
  name: string;
  /** Passes today's conservation checks: only the journal can catch it. */
  balanced?: boolean;
  apply(db: Db, ctx: { saved: Checkpoint }): Promise<void>;
  /** Replace the saved checkpoint the audit is given. */
  saved?(ctx: { saved: Checkpoint; early: Checkpoint }): Checkpoint;
}

const one = async (db: Db, sql: string, params: unknown[] = []) => {
  const r = (await db.all(sql, params))[0];
  if (!r) throw new Error(`no row for ${sql}`);
  return r;
};
const payTransfer = (db: Db) => one(db, `SELECT * FROM transfers WHERE kind = 'pay' ORDER BY transfer_id LIMIT 1`);
const customers = (db: Db) => db.all(`SELECT account_id FROM accounts WHERE kind = 'customer' AND balance > 10 ORDER BY account_id`);

/** Recomputes every link from `from` on and rewrites the events: an insider re-sealing after an edit. */
async function reseal(db: Db): Promise<{ size: bigint; head: Uint8Array }> {
  const rows = await db.all(`SELECT event_id, fact, chain_seq FROM events WHERE chain_seq IS NOT NULL ORDER BY chain_seq`);
  let h: Uint8Array = new Uint8Array(32);
  let n = 0n;
  for (const r of rows) {
    n++;
    h = link(h, n, BigInt(r.event_id as bigint), new Uint8Array(r.fact as Buffer));
    await db.run(`UPDATE events SET link = ? WHERE event_id = ?`, [Buffer.from(h), r.event_id]);
  }
  return { size: n, head: h };
}

const enc = (s: string) => Buffer.from(s, "utf8");
const factReplace = async (db: Db, type: string, from: string, to: string) => {
  const r = await one(db, `SELECT event_id, fact FROM events WHERE chain_seq IS NOT NULL ORDER BY chain_seq`, []);
  void r;
  const rows = await db.all(`SELECT event_id, fact FROM events WHERE chain_seq IS NOT NULL ORDER BY chain_seq`);
  for (const row of rows) {
    const f = Buffer.from(row.fact as Buffer).toString("utf8");
    if (f.startsWith(`${type.length}:${type}`) && f.includes(from)) {
      await db.run(`UPDATE events SET fact = ? WHERE event_id = ?`, [enc(f.replace(from, to)), row.event_id]);
      return;
    }
  }
  throw new Error(`no ${type} fact containing ${from}`);
};

const CASES: Case[] = [
  {
    name: "transfers.amount + both balances (balanced edit)",
    balanced: true,
    async apply(db) {
      const t = await payTransfer(db);
      await db.run(`UPDATE transfers SET amount = amount + 5 WHERE transfer_id = ?`, [t.transfer_id]);
      await db.run(`UPDATE accounts SET balance = balance - 5 WHERE account_id = ?`, [t.debit_account]);
      await db.run(`UPDATE accounts SET balance = balance + 5 WHERE account_id = ?`, [t.credit_account]);
      await db.run(`UPDATE scrips SET value = value - 5 WHERE state = 'live' AND ? = 'customer/' || CAST(customer_serial AS TEXT) || '/' || currency`, [t.debit_account]);
    },
  },
  {
    name: "customer balances and live scrips: value moved between two customers (balanced edit)",
    balanced: true,
    async apply(db) {
      const [x, y] = await customers(db);
      for (const [acct, d] of [[x!.account_id, -5], [y!.account_id, 5]] as const) {
        await db.run(`UPDATE accounts SET balance = balance + ? WHERE account_id = ?`, [d, acct]);
        await db.run(`UPDATE scrips SET value = value + ? WHERE state = 'live' AND ? = 'customer/' || CAST(customer_serial AS TEXT) || '/' || currency`, [d, acct]);
      }
      // and the journal: a transfer between them, as if it had happened
      await db.run(`INSERT INTO transfers (kind, ref, debit_account, credit_account, amount, currency, created_at) VALUES ('pay', 'x/forged', ?, ?, 5, 'KRW', 1)`, [x!.account_id, y!.account_id]);
    },
  },
  {
    name: "transfers: the credit of a payment redirected to another account, balances moved along (balanced edit)",
    balanced: true,
    async apply(db) {
      const t = await payTransfer(db);
      const other = await one(db, `SELECT account_id FROM accounts WHERE kind = 'vendor' AND account_id <> ? UNION SELECT account_id FROM accounts WHERE kind = 'external' LIMIT 1`, [t.credit_account]);
      await db.run(`UPDATE transfers SET credit_account = ? WHERE transfer_id = ?`, [other.account_id, t.transfer_id]);
      await db.run(`UPDATE accounts SET balance = balance - ? WHERE account_id = ?`, [t.amount, t.credit_account]);
      await db.run(`UPDATE accounts SET balance = balance + ? WHERE account_id = ?`, [t.amount, other.account_id]);
    },
  },
  {
    name: "transfers: a matching pair deleted (an undone payment and its reversal) (balanced edit)",
    balanced: true,
    async apply(db) {
      const rev = await one(db, `SELECT * FROM transfers WHERE kind = 'cancel-pay' LIMIT 1`);
      await db.run(`DELETE FROM transfers WHERE ref = ? AND kind IN ('pay', 'cancel-pay')`, [rev.ref]);
    },
  },
  {
    name: "transfers: a fabricated round trip inserted (A pays B, B pays A) (balanced edit)",
    balanced: true,
    async apply(db) {
      const [x, y] = await customers(db);
      for (const [d, c] of [[x!.account_id, y!.account_id], [y!.account_id, x!.account_id]]) {
        await db.run(`INSERT INTO transfers (kind, ref, debit_account, credit_account, amount, currency, created_at) VALUES ('pay', 'mall-1/fake', ?, ?, 7, 'KRW', 1)`, [d, c]);
      }
    },
  },
  {
    name: "settlements.amount and the vendor's balance rewritten together, the customer's too (balanced edit)",
    balanced: true,
    async apply(db) {
      const s = await one(db, `SELECT * FROM settlements WHERE kind = 'pay' ORDER BY sequence LIMIT 1`);
      const t = await one(db, `SELECT * FROM transfers WHERE kind = 'pay' AND ref = ?`, [`${s.vendor_id}/${s.tran_id}`]);
      await db.run(`UPDATE settlements SET amount = amount + 3 WHERE sequence = ?`, [s.sequence]);
      await db.run(`UPDATE transfers SET amount = amount + 3 WHERE transfer_id = ?`, [t.transfer_id]);
      await db.run(`UPDATE accounts SET balance = balance + 3 WHERE account_id = ?`, [t.credit_account]);
      await db.run(`UPDATE accounts SET balance = balance - 3 WHERE account_id = ?`, [t.debit_account]);
      await db.run(`UPDATE scrips SET value = value - 3 WHERE state = 'live' AND ? = 'customer/' || CAST(customer_serial AS TEXT) || '/' || currency`, [t.debit_account]);
    },
  },
  { name: "settlements: a row deleted (balanced)", balanced: true, apply: (db) => db.run(`DELETE FROM settlements WHERE sequence = (SELECT MIN(sequence) FROM settlements WHERE kind = 'pay')`) },
  { name: "settlements.tran_id changed (balanced)", balanced: true, apply: (db) => db.run(`UPDATE settlements SET tran_id = 'someone-else' WHERE sequence = (SELECT MIN(sequence) FROM settlements)`) },
  { name: "settlements.kind changed (balanced)", balanced: true, apply: (db) => db.run(`UPDATE settlements SET kind = 'issue' WHERE sequence = (SELECT MIN(sequence) FROM settlements WHERE kind = 'pay')`) },
  { name: "settlements: a forged row inserted (balanced)", balanced: true, apply: (db) => db.run(`INSERT INTO settlements (kind, vendor_id, tran_id, amount, currency, item, settled_at) VALUES ('pay', 'mall-1', 'never-paid', 30, 'KRW', '/articles/hash-cash', 1)`) },
  { name: "scrips.value of a spent scrip (balanced)", balanced: true, apply: (db) => db.run(`UPDATE scrips SET value = value + 100 WHERE serial = (SELECT MIN(serial) FROM scrips WHERE state = 'spent')`) },
  { name: "scrips.expires_at of a live scrip extended (balanced)", balanced: true, apply: (db) => db.run(`UPDATE scrips SET expires_at = expires_at + 86400000 WHERE serial = (SELECT MIN(serial) FROM scrips WHERE state = 'live')`) },
  { name: "scrips: a spent scrip deleted (balanced)", balanced: true, apply: (db) => db.run(`DELETE FROM scrips WHERE serial = (SELECT MIN(serial) FROM scrips WHERE state = 'spent')`) },
  { name: "scrips.spent_at rewritten (balanced)", balanced: true, apply: (db) => db.run(`UPDATE scrips SET spent_at = 1 WHERE serial = (SELECT MIN(serial) FROM scrips WHERE state = 'spent')`) },
  {
    name: "scrips: a spent zero-value scrip revived as live beside... swapped states with the live one (balanced)",
    balanced: true,
    async apply(db) {
      const live = await one(db, `SELECT serial, customer_serial, value FROM scrips WHERE state = 'live' ORDER BY serial LIMIT 1`);
      const spent = await one(db, `SELECT serial FROM scrips WHERE state = 'spent' AND customer_serial = ? ORDER BY serial LIMIT 1`, [live.customer_serial]);
      await db.run(`UPDATE scrips SET state = 'spent', spent_at = 1 WHERE serial = ?`, [live.serial]);
      await db.run(`UPDATE scrips SET state = 'live', spent_at = NULL, value = ? WHERE serial = ?`, [live.value, spent.serial]);
    },
  },
  { name: "payouts.amount changed (balanced)", balanced: true, apply: (db) => db.run(`UPDATE payouts SET amount = amount + 1`) },
  { name: "payouts.account redirected to another bank account (balanced)", balanced: true, apply: (db) => db.run(`UPDATE payouts SET account = 'bank:attacker'`) },
  { name: "payouts: the row deleted (balanced)", balanced: true, apply: (db) => db.run(`DELETE FROM payouts`) },
  { name: "campaigns: funded and issued lowered together (balanced)", balanced: true, apply: (db) => db.run(`UPDATE campaigns SET funded = funded - 10, issued = issued - 10`) },
  { name: "campaigns.cap raised (balanced)", balanced: true, apply: (db) => db.run(`UPDATE campaigns SET cap = cap * 10`) },
  { name: "accounts: an account inserted with no history (balanced)", balanced: true, apply: (db) => db.run(`INSERT INTO accounts (account_id, kind, currency, balance) VALUES ('vendor/ghost/KRW', 'vendor', 'KRW', 0)`) },
  { name: "accounts.kind of a customer turned external (balanced)", balanced: true, apply: (db) => db.run(`UPDATE accounts SET kind = 'external' WHERE account_id = (SELECT MIN(account_id) FROM accounts WHERE kind = 'vendor')`) },
  { name: "transfers.kind relabelled (balanced)", balanced: true, apply: (db) => db.run(`UPDATE transfers SET kind = 'fund' WHERE transfer_id = (SELECT MIN(transfer_id) FROM transfers WHERE kind = 'pay')`) },
  { name: "transfers.created_at backdated (balanced)", balanced: true, apply: (db) => db.run(`UPDATE transfers SET created_at = 0 WHERE transfer_id = (SELECT MAX(transfer_id) FROM transfers)`) },
  { name: "accounts.balance minted (unbalanced)", apply: (db) => db.run(`UPDATE accounts SET balance = balance + 1 WHERE account_id = 'campaign/spring'`) },
  // ---- the journal itself
  { name: "events: a sealed fact edited", apply: (db) => factReplace(db, "transfer", "3:pay", "3:fee") },
  { name: "events: a sealed event deleted", apply: (db) => db.run(`DELETE FROM events WHERE chain_seq = 3`) },
  {
    name: "events: two sealed events reordered (facts swapped)",
    async apply(db) {
      const [x, y] = await db.all(`SELECT event_id, fact FROM events WHERE chain_seq IN (4, 5) ORDER BY chain_seq`);
      await db.run(`UPDATE events SET fact = ? WHERE event_id = ?`, [y!.fact, x!.event_id]);
      await db.run(`UPDATE events SET fact = ? WHERE event_id = ?`, [x!.fact, y!.event_id]);
    },
  },
  {
    name: "events: a fact edited and the whole chain re-sealed (stored checkpoints no longer match)",
    async apply(db) {
      await factReplace(db, "payout", "8:bank:123", "13:bank:attacker");
      await db.run(`UPDATE payouts SET account = 'bank:attacker'`);
      await reseal(db);
    },
  },
  {
    name: "events + checkpoints: edited, re-sealed and re-signed with a new key (only the saved checkpoint can tell)",
    async apply(db) {
      await factReplace(db, "payout", "8:bank:123", "13:bank:attacker");
      await db.run(`UPDATE payouts SET account = 'bank:attacker'`);
      const { size, head } = await reseal(db);
      const sk = ed25519.utils.randomSecretKey();
      const cp = signCheckpoint({ size, head, timestampMs: BigInt(Date.now()), keyId: 1 }, sk);
      await db.run(`DELETE FROM checkpoints`);
      await db.run(`UPDATE keys SET key = ? WHERE kind = 'checkpoint-ed25519'`, [Buffer.from(sk)]);
      await db.run(`INSERT INTO checkpoints (size, head, timestamp_ms, key_id, public_key, signature) VALUES (?, ?, ?, ?, ?, ?)`, [cp.size, Buffer.from(cp.head), cp.timestampMs, cp.keyId, Buffer.from(cp.publicKey), Buffer.from(cp.signature)]);
    },
  },
  {
    name: "truncated tail: the last sealed events and checkpoints removed (rolled back to before the saved checkpoint)",
    async apply(db, { saved }) {
      const keep = Number(saved.size) - 6;
      await db.run(`DELETE FROM events WHERE chain_seq > ?`, [keep]);
      await db.run(`DELETE FROM checkpoints WHERE size > ?`, [keep]);
    },
  },
  { name: "checkpoints: the latest's head forged", apply: (db) => db.run(`UPDATE checkpoints SET head = ? WHERE size = (SELECT MAX(size) FROM checkpoints)`, [Buffer.alloc(32, 7)]) },
  { name: "checkpoints: the latest's size changed", apply: (db) => db.run(`UPDATE checkpoints SET size = size - 1 WHERE size = (SELECT MAX(size) FROM checkpoints)`) },
  { name: "checkpoints: all deleted", apply: (db) => db.run(`DELETE FROM checkpoints`) },
  {
    name: "checkpoints: the latest re-signed with a key that is not the ledger's",
    async apply(db) {
      const c = await one(db, `SELECT * FROM checkpoints ORDER BY size DESC LIMIT 1`);
      const sk = ed25519.utils.randomSecretKey();
      const cp = signCheckpoint({ size: BigInt(c.size as bigint), head: new Uint8Array(c.head as Buffer), timestampMs: BigInt(c.timestamp_ms as bigint), keyId: Number(c.key_id) }, sk);
      await db.run(`UPDATE checkpoints SET public_key = ?, signature = ? WHERE size = ?`, [Buffer.from(cp.publicKey), Buffer.from(cp.signature), c.size]);
    },
  },
  {
    name: "saved checkpoint forged (head changed)",
    apply: async () => {},
    saved: ({ saved }) => ({ ...saved, head: new Uint8Array(32).fill(9) }),
  },
  {
    name: "saved checkpoint signed by another center",
    apply: async () => {},
    saved: ({ saved }) => signCheckpoint({ size: saved.size, head: saved.head, timestampMs: saved.timestampMs, keyId: saved.keyId }, ed25519.utils.randomSecretKey()),
  },
];

const CONSERVATION_ONLY = /^(account |customer|campaign |transfer \d+ (is not|mixes)|KRW|USD|live scrip|transaction )/;

async function runSuite(t: ExecutionContext, engine: string, build: () => Promise<{ copy: () => Promise<{ db: Db; ledger: Ledger; done: () => Promise<void> }>; early: () => Promise<{ ledger: Ledger; done: () => Promise<void> }>; ctx: { saved: Checkpoint; early: Checkpoint } }>) {
  const world = await build();
  const { ctx } = world;
  // Untampered copies pass (no false alarm), with and without the saved checkpoint.
  {
    const c = await world.copy();
    const r = await c.ledger.audit({ checkpoint: ctx.saved, requireSealed: true });
    t.deepEqual(r.problems, [], `${engine}: the untampered copy passes`);
    t.true(r.savedCheckpointOk);
    await c.done();
  }
  let detected = 0;
  let balancedPassingConservation = 0;
  for (const cs of CASES) {
    const c = await world.copy();
    try {
      await cs.apply(c.db, ctx);
      const r = await c.ledger.audit({ checkpoint: cs.saved ? cs.saved(ctx) : ctx.saved, requireSealed: true });
      if (!r.ok && r.problems.length > 0) detected++;
      else t.fail(`${engine}: NOT detected: ${cs.name}`);
      const conservationProblems = r.problems.filter((p) => CONSERVATION_ONLY.test(p));
      if (cs.balanced && conservationProblems.length === 0) balancedPassingConservation++;
      t.log(`${engine} ${r.ok ? "MISSED" : "caught"}: ${cs.name}\n      first: ${r.problems[0]}`);
    } finally {
      await c.done();
    }
  }
  // The earlier state of this very ledger, audited against the later saved checkpoint: lost history.
  {
    const e = await world.early();
    const r = await e.ledger.audit({ checkpoint: ctx.saved });
    t.false(r.ok, `${engine}: a ledger rolled back to before the saved checkpoint is reported`);
    t.true(r.problems.some((p) => /fewer|missing|lost/.test(p)), r.problems.join("\n"));
    t.log(`${engine} caught: whole ledger restored from an older copy\n      first: ${r.problems[0]}`);
    detected++;
    await e.done();
  }
  t.log(`${engine}: ${detected} of ${CASES.length + 1} single changes detected; ${balancedPassingConservation} of ${CASES.filter((c) => c.balanced).length} balanced edits pass the conservation checks alone`);
  t.is(detected, CASES.length + 1);
  t.true(CASES.length + 1 >= 30);
  t.true(balancedPassingConservation >= 15, "most balanced edits are invisible to conservation: the journal is what catches them");
}

function sqliteDb(path: string): Db & { close(): void } {
  const d = new Database(path);
  d.defaultSafeIntegers(true);
  return {
    async all(sql, params = []) {
      return d.prepare(sql).all(...(params as unknown[])) as Record<string, unknown>[];
    },
    async run(sql, params = []) {
      d.prepare(sql).run(...(params as unknown[]));
    },
    close: () => d.close(),
  };
}

test.serial("tamper suite on a real SQLite ledger file: every single change is detected", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "scripwire-tamper-"));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const orig = join(dir, "orig.sqlite");
  const earlyPath = join(dir, "early.sqlite");
  await runSuite(t, "sqlite", async () => {
    const ledger = openSqliteLedger(orig);
    // The early copy is taken by the history itself, at its first checkpoint.
    const origSeal = ledger.seal.bind(ledger);
    let sealed = 0;
    ledger.seal = async (o) => {
      const r = await origSeal(o);
      if (sealed++ === 0) {
        const d = new Database(orig);
        await d.backup(earlyPath);
        d.close();
      }
      return r;
    };
    const ctx = await buildHistory(ledger);
    await ledger.close();
    let n = 0;
    return {
      ctx,
      async copy() {
        const p = join(dir, `copy-${n++}.sqlite`);
        copyFileSync(orig, p);
        const db = sqliteDb(p);
        return {
          db,
          ledger: openSqliteLedger(p),
          async done() {
            db.close();
          },
        };
      },
      async early() {
        const l = openSqliteLedger(earlyPath);
        return { ledger: l, done: () => l.close() };
      },
    };
  });
});

const pgUrl = pgTestUrl();
if (!pgUrl) {
  console.log(`tamper.test.ts: ${PG_SKIP_REASON}`);
  test.skip(`tamper suite on PostgreSQL [${PG_SKIP_REASON}]`, () => {});
} else {
  test.serial("tamper suite on PostgreSQL: every single change is detected", async (t) => {
    const base = await freshPgDatabase(pgUrl);
    const early = await freshPgDatabase(pgUrl);
    const drops: (() => Promise<void>)[] = [base.drop, early.drop];
    t.teardown(async () => {
      for (const d of drops) await d().catch(() => {});
    });
    const admin = async (sql: string) => {
      const c = new pg.Client({ connectionString: pgUrl });
      c.on("error", () => {});
      await c.connect();
      try {
        await c.query(sql);
      } finally {
        await c.end();
      }
    };
    await runSuite(t, "postgres", async () => {
      const ledger = openPostgresLedger(base.url);
      await ledger.migrate();
      const origSeal = ledger.seal.bind(ledger);
      let sealed = 0;
      let pendingEarly: Promise<void> | undefined;
      ledger.seal = async (o) => {
        const r = await origSeal(o);
        if (sealed++ === 0) {
          // Copy the database as it is now with pg_dump | psql: a consistent
          // snapshot while the ledger stays connected, and the dump creates the
          // triggers after loading the rows, so the copy gains no events.
          pendingEarly = new Promise<void>((resolve, reject) => {
            const sh = spawn("bash", ["-o", "pipefail", "-c", `pg_dump --no-owner --no-privileges "$SRC" | psql -q -v ON_ERROR_STOP=1 "$DST" >/dev/null`], {
              env: { ...process.env, SRC: base.url, DST: early.url },
              stdio: ["ignore", "ignore", "pipe"],
            });
            let err = "";
            sh.stderr.on("data", (d: Buffer) => (err += d.toString()));
            sh.once("exit", (code) => (code === 0 ? resolve() : reject(new Error(`pg_dump | psql failed (${code}): ${err}`))));
          });
          await pendingEarly;
        }
        return r;
      };
      const ctx = await buildHistory(ledger);
      await ledger.close();
      return {
        ctx,
        async copy() {
          const name = `${base.name}_c${Math.floor(Math.random() * 1e9)}`;
          // The template must have no other session; an autovacuum worker may hold it for a moment.
          for (let i = 0; ; i++) {
            try {
              await admin(`CREATE DATABASE ${name} TEMPLATE ${base.name}`);
              break;
            } catch (e) {
              if ((e as { code?: string }).code !== "55006" || i >= 50) throw e;
              await new Promise((r) => setTimeout(r, 200));
            }
          }
          const u = new URL(base.url);
          u.pathname = `/${name}`;
          const client = new pg.Client({ connectionString: u.toString() });
          client.on("error", () => {});
          await client.connect();
          const l = openPostgresLedger(u.toString());
          const db: Db = {
            async all(sql, params = []) {
              let i = 0;
              return (await client.query(sql.replace(/\?/g, () => `$${++i}`), params.map((p) => (typeof p === "bigint" ? p.toString() : p)))).rows;
            },
            async run(sql, params = []) {
              let i = 0;
              await client.query(sql.replace(/\?/g, () => `$${++i}`), params.map((p) => (typeof p === "bigint" ? p.toString() : p)));
            },
          };
          return {
            db,
            ledger: l,
            async done() {
              await client.end();
              await l.close();
              // Retries while an autovacuum worker is attached (helpers/pg.ts).
              await dropDatabase(pgUrl, name);
            },
          };
        },
        async early() {
          const l = openPostgresLedger(early.url);
          return { ledger: l, done: () => l.close() };
        },
      };
    });
  });
}
