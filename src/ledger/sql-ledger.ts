/**
 * The ledger's decisions, written once over SqlEngine so the SQLite and
 * PostgreSQL engines run the very same logic. Every value-moving method is a
 * single engine transaction whose first write is a conditional update of the
 * TranID's state or the scrip's liveness: that row is where two concurrent
 * attempts meet, and exactly one of them changes it.
 */
import { checkedAdd, checkedSub, MoneyError } from "../money.js";
import type {
  AuditOptions,
  AuditReport,
  CampaignRecord,
  CancelOp,
  ConfirmOp,
  Engine,
  ExecuteOp,
  InitTransaction,
  KeyKind,
  KeyProtectionReport,
  KeyRecord,
  Ledger,
  LedgerResult,
  PayoutRecord,
  RegisterOp,
  RegisterResult,
  Refusal,
  ReplaceOp,
  ScripRow,
  SettlementRecord,
  TransactionRecord,
  TxKind,
  TxState,
  VendorKeyRecord,
  VendorRecord,
} from "./ledger.js";
import { LedgerError, SchemaTooNewError } from "./ledger.js";
import { MIGRATIONS, SCHEMA_VERSION } from "./migrations.js";
import * as refunds from "./refunds.js";
import type { CustomerState, FoldOp, FoldResult, RefundOp, RefundResult } from "./ledger.js";
import { auditChain } from "./chain-audit.js";
import type { Checkpoint } from "./chain.js";
import { chainHead, latestCheckpoint, sealPending, type SealOptions, type SealResult } from "./sealer.js";
import { centerKeyLabel, isWrapped, KekError, vendorKeyLabel, wrappedBy, type KeyEncryptionKeys } from "../crypto/kek.js";
import { blob, RetryableConflict, Rollback, type Row, type SqlEngine, type SqlTx } from "./sql.js";

const I64_MAX = (1n << 63n) - 1n;

/**
 * PostgreSQL advisory-lock keys (int8). Arbitrary constants; they only need
 * to differ from each other and from any other application's keys on the
 * same database ("SWLEDGER" in ASCII, plus a small tag).
 */
const PG_LOCK_MIGRATE = 0x53574c4544474552n & ((1n << 62n) - 1n);

export const account = {
  funding: (cur: string) => `funding/${cur}`,
  payout: (cur: string) => `payout/${cur}`,
  campaign: (id: string) => `campaign/${id}`,
  customer: (serial: bigint, cur: string) => `customer/${serial}/${cur}`,
  vendor: (id: string, cur: string) => `vendor/${id}/${cur}`,
};

export function u8(v: unknown): Uint8Array {
  return v instanceof Uint8Array ? new Uint8Array(v) : new Uint8Array(0);
}

export function big(v: unknown): bigint {
  return typeof v === "bigint" ? v : BigInt(v as number | string);
}

export function rowToTx(r: Row): TransactionRecord {
  return {
    vendorId: r.vendor_id as string,
    tranId: r.tran_id as string,
    kind: r.kind as TxKind,
    customerSerial: big(r.customer_serial),
    amount: big(r.amount),
    currency: r.currency as string,
    campaignId: r.campaign_id as string,
    item: r.item as string,
    deliveryMethod: Number(r.delivery_method),
    expiresAt: big(r.expires_at),
    offerHash: u8(r.offer_hash),
    vendorKeyId: Number(r.vendor_key_id),
    state: r.state as TxState,
    inSerial: big(r.in_serial),
    outSerial: big(r.out_serial),
    executeReply: r.execute_reply ? u8(r.execute_reply) : null,
    confirmReply: r.confirm_reply ? u8(r.confirm_reply) : null,
    cancelReply: r.cancel_reply ? u8(r.cancel_reply) : null,
  };
}

/**
 * The transactions columns a TransactionRecord is built from, without the
 * three stored reply blobs; those are read only when a reply is replayed.
 */
export const TX_COLS =
  "vendor_id, tran_id, kind, customer_serial, amount, currency, campaign_id, item, delivery_method, expires_at, offer_hash, vendor_key_id, state, in_serial, out_serial";
export const TX_REPLY_COLS = "execute_reply, confirm_reply, cancel_reply";

/** What executeIssue/executePayment need of the TranID they claimed. */
interface Claimed {
  amount: bigint;
  currency: string;
  campaignId: string;
  item: string;
}

function rowToCampaign(r: Row, budget: bigint): CampaignRecord {
  return {
    campaignId: r.campaign_id as string,
    vendorId: r.vendor_id as string,
    currency: r.currency as string,
    budget,
    cap: big(r.cap),
    funded: big(r.funded),
    issued: big(r.issued),
  };
}

function refuse(refusal: Refusal, detail: string): never {
  throw new Rollback(refusal, detail);
}

export async function ensureAccount(q: SqlTx, id: string, kind: string, currency: string): Promise<void> {
  await q.run(`INSERT INTO accounts (account_id, kind, currency, balance) VALUES (?, ?, ?, 0) ON CONFLICT (account_id) DO NOTHING`, [
    id,
    kind,
    currency,
  ]);
}

/**
 * Double-entry transfer. The debit is conditional on the balance sufficing
 * (unless the account is external) and the credit on not overflowing int64,
 * so neither can be lost to a race or wrap around.
 */
export async function transfer(
  q: SqlTx,
  kind: string,
  ref: string,
  debit: string,
  credit: string,
  amount: bigint,
  currency: string,
  now: bigint,
  insufficient: Refusal = "INSUFFICIENT_VALUE",
  /** Create the credit account (of this kind) if it does not exist yet, instead of an INSERT on every call. */
  createCredit?: string,
): Promise<void> {
  if (amount <= 0n) throw new LedgerError("BAD_AMOUNT", `transfer amount must be positive, got ${amount}`);
  const debited = await q.run(
    `UPDATE accounts SET balance = balance - ? WHERE account_id = ? AND currency = ? AND (kind = 'external' OR balance >= ?) AND balance >= ?`,
    [amount, debit, currency, amount, -I64_MAX + amount],
  );
  if (debited !== 1) refuse(insufficient, `account ${debit} cannot pay ${amount} ${currency}`);
  const creditSql = `UPDATE accounts SET balance = balance + ? WHERE account_id = ? AND currency = ? AND balance <= ?`;
  const creditArgs = [amount, credit, currency, I64_MAX - amount];
  let credited = await q.run(creditSql, creditArgs);
  if (credited !== 1 && createCredit !== undefined) {
    // First credit to this account. Whether this INSERT or a concurrent
    // one created it (PostgreSQL: the loser waits for the winner's commit),
    // the account exists afterwards and the credit is tried once more.
    await ensureAccount(q, credit, createCredit, currency);
    credited = await q.run(creditSql, creditArgs);
  }
  if (credited !== 1) refuse("OVERFLOW", `account ${credit} cannot receive ${amount} ${currency}`);
  await q.run(
    `INSERT INTO transfers (kind, ref, debit_account, credit_account, amount, currency, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)`,
    [kind, ref, debit, credit, amount, currency, now],
  );
}

export async function spendScrip(q: SqlTx, serial: bigint, customerSerial: bigint, value: bigint, now: bigint): Promise<void> {
  const n = await q.run(
    `UPDATE scrips SET state = 'spent', spent_at = ? WHERE serial = ? AND customer_serial = ? AND value = ? AND state = 'live'`,
    [now, serial, customerSerial, value],
  );
  if (n !== 1) refuse("SCRIP_NOT_LIVE", `scrip serial ${serial} is not this customer's live scrip`);
}

export async function insertScrip(q: SqlTx, s: ScripRow, now: bigint): Promise<void> {
  if (s.value < 0n) throw new LedgerError("BAD_AMOUNT", "scrip value must not be negative");
  await q.run(
    `INSERT INTO scrips (serial, customer_serial, currency, value, expires_at, state, created_at) VALUES (?, ?, ?, ?, ?, 'live', ?)`,
    [s.serial, s.customerSerial, s.currency, s.value, s.expiresAt, now],
  );
}

export function settle<T>(p: Promise<T>): Promise<T | LedgerResult> {
  return p.catch((e: unknown) => {
    if (e instanceof Rollback) return { status: "refused", refusal: e.refusal as Refusal, detail: e.detail } as LedgerResult;
    if (e instanceof MoneyError) return { status: "refused", refusal: "OVERFLOW", detail: e.message } as LedgerResult;
    throw e;
  });
}

export class SqlLedger implements Ledger {
  /** Set by protectKeys(): keys are wrapped in the database, plain only in memory. */
  protected kek: KeyEncryptionKeys | undefined;

  constructor(
    readonly engine: Engine,
    protected readonly db: SqlEngine,
  ) {}

  async protectKeys(kek: KeyEncryptionKeys): Promise<KeyProtectionReport> {
    const report = await this.db.tx(async (q) => {
      let wrapped = 0;
      let rewrapped = 0;
      const seal = (label: string, stored: Uint8Array): Uint8Array | undefined => {
        if (kek.isCurrent(stored)) return undefined;
        if (isWrapped(stored)) {
          rewrapped++;
          return kek.wrap(label, kek.unwrap(label, stored));
        }
        wrapped++;
        return kek.wrap(label, stored);
      };
      for (const r of await q.all(`SELECT kind, secret_id, key FROM keys`)) {
        const next = seal(centerKeyLabel(r.kind as string, Number(r.secret_id)), u8(r.key));
        if (next) await q.run(`UPDATE keys SET key = ? WHERE kind = ? AND secret_id = ?`, [blob(next), r.kind, r.secret_id]);
      }
      for (const r of await q.all(`SELECT vendor_id, key_id, secret FROM vendor_keys`)) {
        const next = seal(vendorKeyLabel(r.vendor_id as string, Number(r.key_id)), u8(r.secret));
        if (next) await q.run(`UPDATE vendor_keys SET secret = ? WHERE vendor_id = ? AND key_id = ?`, [blob(next), r.vendor_id, r.key_id]);
      }
      return { wrapped, rewrapped, current: kek.currentFingerprint };
    });
    this.kek = kek;
    return report;
  }

  /** Stored form of a key: wrapped when a KEK is configured. */
  private sealKey(label: string, key: Uint8Array): Buffer {
    return blob(this.kek ? this.kek.wrap(label, key) : key);
  }

  /** Plain key from its stored form. A key stored in the clear (before protectKeys ran) is returned as is. */
  private openKey(label: string, stored: Uint8Array): Uint8Array {
    if (!isWrapped(stored)) return stored;
    if (!this.kek) {
      throw new KekError("KEK_REQUIRED", `the ledger's keys are wrapped by key-encryption key ${wrappedBy(stored)}; open it with that KEK (--kek-file or --kek-env)`);
    }
    return this.kek.unwrap(label, stored);
  }


  /**
   * Brings the schema to SCHEMA_VERSION (see migrations.ts): one transaction
   * under the database's lock, so concurrent replicas apply each migration
   * once. Refuses, changing nothing, a ledger whose schema is newer than this
   * code (a replica of an older release must not write to it).
   */
  async migrate(): Promise<void> {
    await this.db.tx(async (q) => {
      // Replicas starting at once would race on PostgreSQL's catalog
      // (CREATE TABLE IF NOT EXISTS is not safe against a concurrent creator:
      // it fails with a unique violation on pg_type). The lock is released at
      // COMMIT. SQLite needs none: its write transactions are already exclusive.
      if (this.engine === "postgres") await q.get(`SELECT pg_advisory_xact_lock(?)`, [PG_LOCK_MIGRATE]);
      await q.run(`CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)`);
      const row = await q.get<{ value: string }>(`SELECT value FROM meta WHERE key = 'schema_version'`);
      const current = row ? Number(row.value) : 0;
      if (!Number.isInteger(current) || current < 0) throw new LedgerError("CORRUPT", `meta.schema_version is ${JSON.stringify(row?.value)}, not a version number`);
      if (current > SCHEMA_VERSION) throw new SchemaTooNewError(current, SCHEMA_VERSION);
      if (current === SCHEMA_VERSION) return;
      const now = BigInt(Math.floor(Date.now() / 1000));
      const applied: number[] = [];
      for (const m of MIGRATIONS) {
        if (m.version <= current) continue;
        for (const st of m.statements(this.engine)) await q.run(st);
        applied.push(m.version);
      }
      if (SCHEMA_VERSION >= 2) {
        for (const m of MIGRATIONS) {
          await q.run(`INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?) ON CONFLICT (version) DO NOTHING`, [
            m.version,
            m.name,
            applied.includes(m.version) ? now : 0n,
          ]);
        }
      }
      await q.run(`INSERT INTO meta (key, value) VALUES ('schema_version', ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value`, [String(SCHEMA_VERSION)]);
    });
  }

  /** Live scrips right now (the metrics gauge). */
  async liveScripCount(): Promise<bigint> {
    return this.db.read(async (q) => BigInt((await q.get<{ n: unknown }>(`SELECT count(*) AS n FROM scrips WHERE state = 'live'`))?.n as bigint | number));
  }

  async ping(): Promise<void> {
    await this.db.read((q) => q.get(`SELECT 1 AS one`));
  }

  /** The schema version the database holds (0 for an empty one). */
  async schemaVersion(): Promise<number> {
    return this.db.read(async (q) => {
      try {
        const row = await q.get<{ value: string }>(`SELECT value FROM meta WHERE key = 'schema_version'`);
        return row ? Number(row.value) : 0;
      } catch {
        return 0;
      }
    });
  }

  close(): Promise<void> {
    return this.db.close();
  }

  listKeys(): Promise<KeyRecord[]> {
    return this.db.read(async (q) =>
      (await q.all(`SELECT kind, secret_id, key, created_at FROM keys ORDER BY kind, secret_id`)).map((r) => ({
        kind: r.kind as KeyKind,
        secretId: Number(r.secret_id),
        key: this.openKey(centerKeyLabel(r.kind as string, Number(r.secret_id)), u8(r.key)),
        createdAt: Number(r.created_at),
      })),
    );
  }

  addKey(k: KeyRecord): Promise<boolean> {
    return this.db.tx(
      async (q) =>
        (await q.run(`INSERT INTO keys (kind, secret_id, key, created_at) VALUES (?, ?, ?, ?) ON CONFLICT (kind, secret_id) DO NOTHING`, [
          k.kind,
          k.secretId,
          this.sealKey(centerKeyLabel(k.kind, k.secretId), k.key),
          k.createdAt,
        ])) === 1,
    );
  }

  createVendor(v: VendorRecord, key: VendorKeyRecord): Promise<boolean> {
    return this.db.tx(async (q) => {
      const n = await q.run(
        `INSERT INTO vendors (vendor_id, dns_name, ip_addr, server_name, port) VALUES (?, ?, ?, ?, ?) ON CONFLICT (vendor_id) DO NOTHING`,
        [v.vendorId, v.dnsName, v.ipAddr, v.serverName, v.port],
      );
      if (n !== 1) return false;
      await q.run(`INSERT INTO vendor_keys (vendor_id, key_id, secret) VALUES (?, ?, ?)`, [key.vendorId, key.keyId, this.sealKey(vendorKeyLabel(key.vendorId, key.keyId), key.secret)]);
      return true;
    });
  }

  addVendorKey(k: VendorKeyRecord): Promise<boolean> {
    return this.db.tx(
      async (q) =>
        (await q.run(`INSERT INTO vendor_keys (vendor_id, key_id, secret) VALUES (?, ?, ?) ON CONFLICT (vendor_id, key_id) DO NOTHING`, [
          k.vendorId,
          k.keyId,
          this.sealKey(vendorKeyLabel(k.vendorId, k.keyId), k.secret),
        ])) === 1,
    );
  }

  getVendor(vendorId: string): Promise<{ vendor: VendorRecord; keys: VendorKeyRecord[] } | undefined> {
    return this.db.read(async (q) => {
      const v = await q.get(`SELECT vendor_id, dns_name, ip_addr, server_name, port FROM vendors WHERE vendor_id = ?`, [vendorId]);
      if (!v) return undefined;
      const keys = await q.all(`SELECT key_id, secret FROM vendor_keys WHERE vendor_id = ? ORDER BY key_id`, [vendorId]);
      return {
        vendor: {
          vendorId: v.vendor_id as string,
          dnsName: v.dns_name as string,
          ipAddr: v.ip_addr as string,
          serverName: v.server_name as string,
          port: Number(v.port),
        },
        keys: keys.map((k) => ({ vendorId, keyId: Number(k.key_id), secret: this.openKey(vendorKeyLabel(vendorId, Number(k.key_id)), u8(k.secret)) })),
      };
    });
  }

  async createCampaign(c: { campaignId: string; vendorId: string; currency: string; cap: bigint }): Promise<CampaignRecord> {
    if (c.cap < 0n) throw new LedgerError("BAD_AMOUNT", "campaign cap must not be negative");
    return this.db.tx(async (q) => {
      const vendor = await q.get(`SELECT vendor_id FROM vendors WHERE vendor_id = ?`, [c.vendorId]);
      if (!vendor) throw new LedgerError("UNKNOWN_VENDOR", `vendor ${c.vendorId} does not exist; create it first`);
      const n = await q.run(
        `INSERT INTO campaigns (campaign_id, vendor_id, currency, cap, funded, issued) VALUES (?, ?, ?, ?, 0, 0) ON CONFLICT (campaign_id) DO NOTHING`,
        [c.campaignId, c.vendorId, c.currency, c.cap],
      );
      if (n !== 1) throw new LedgerError("CAMPAIGN_EXISTS", `campaign ${c.campaignId} already exists`);
      await ensureAccount(q, account.campaign(c.campaignId), "campaign", c.currency);
      return { campaignId: c.campaignId, vendorId: c.vendorId, currency: c.currency, budget: 0n, cap: c.cap, funded: 0n, issued: 0n };
    });
  }

  async fundCampaign(campaignId: string, amount: bigint, requestId: string, now: bigint): Promise<CampaignRecord> {
    if (amount <= 0n) throw new LedgerError("BAD_AMOUNT", "funding amount must be positive");
    return this.db.tx(async (q) => {
      const c = await q.get(`SELECT * FROM campaigns WHERE campaign_id = ?`, [campaignId]);
      if (!c) throw new LedgerError("UNKNOWN_CAMPAIGN", `campaign ${campaignId} does not exist`);
      const seen = await q.run(
        `INSERT INTO requests (request_id, kind, customer_serial, reply, created_at) VALUES (?, 'fund', 0, ?, ?) ON CONFLICT (request_id) DO NOTHING`,
        [`fund/${requestId}`, blob(new TextEncoder().encode(campaignId)), now],
      );
      if (seen === 1) {
        const cur = c.currency as string;
        if (checkedAdd(big(c.funded), amount) > big(c.cap)) {
          throw new LedgerError("CAP_EXCEEDED", `funding ${amount} would exceed campaign ${campaignId}'s cap of ${c.cap} (funded ${c.funded})`);
        }
        // The check above read `funded` without a lock; on PostgreSQL a
        // concurrent funding may have raised it since. This conditional update
        // (written `cap - ?` so it cannot overflow) is the check that counts.
        const capped = await q.run(`UPDATE campaigns SET funded = funded + ? WHERE campaign_id = ? AND funded <= cap - ?`, [
          amount,
          campaignId,
          amount,
        ]);
        if (capped !== 1) throw new LedgerError("CAP_EXCEEDED", `funding ${amount} would exceed campaign ${campaignId}'s cap of ${c.cap}`);
        await ensureAccount(q, account.funding(cur), "external", cur);
        await transfer(q, "fund", campaignId, account.funding(cur), account.campaign(campaignId), amount, cur, now);
      }
      const after = (await q.get(`SELECT * FROM campaigns WHERE campaign_id = ?`, [campaignId]))!;
      const bal = (await q.get(`SELECT balance FROM accounts WHERE account_id = ?`, [account.campaign(campaignId)]))!;
      return rowToCampaign(after, big(bal.balance));
    }).catch((e: unknown) => {
      // A transfer refusal here means the funding account itself hit the
      // 64-bit bound: the operator's request is beyond what the ledger can
      // record, not a fault of the server.
      if (e instanceof Rollback) throw new LedgerError("FUNDING_ACCOUNT_LIMIT", `cannot fund ${amount}: ${e.detail}`);
      throw e;
    });
  }

  listCampaigns(): Promise<CampaignRecord[]> {
    return this.db.read(async (q) =>
      (
        await q.all(
          `SELECT c.*, a.balance FROM campaigns c JOIN accounts a ON a.account_id = ${this.concat("'campaign/'", "c.campaign_id")} ORDER BY c.campaign_id`,
        )
      ).map((r) => rowToCampaign(r, big(r.balance))),
    );
  }

  private concat(a: string, b: string): string {
    return `${a} || ${b}`;
  }

  async registerCustomer(op: RegisterOp): Promise<RegisterResult> {
    return this.db
      .tx<RegisterResult>(async (q) => {
        const existing = await q.get(`SELECT sealed_hash, reply FROM customers WHERE wallet_id = ?`, [op.walletId]);
        if (existing) {
          if (Buffer.compare(blob(u8(existing.sealed_hash)), blob(op.sealedHash)) === 0) {
            return { status: "replayed", reply: u8(existing.reply) };
          }
          return { status: "refused", refusal: "WALLET_ID_TAKEN", detail: "this wallet id is registered with another session key" };
        }
        const n = await q.run(
          `INSERT INTO customers (customer_serial, wallet_id, secret_id, name, address, email, etc, sealed_hash, reply, created_at)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (customer_serial) DO NOTHING`,
          [
            op.customerSerial,
            op.walletId,
            op.secretId,
            op.profile.name,
            op.profile.address,
            op.profile.email,
            op.profile.etc,
            blob(op.sealedHash),
            blob(op.reply),
            op.now,
          ],
        );
        if (n !== 1) return { status: "refused", refusal: "SERIAL_TAKEN", detail: "customer serial collision" };
        await ensureAccount(q, account.customer(op.customerSerial, op.scrip.currency), "customer", op.scrip.currency);
        await insertScrip(q, op.scrip, op.now);
        return { status: "done", reply: op.reply };
      })
      .catch((e: unknown) => {
        // A scrip serial collision (primary key) is astronomically rare; report it so the center retries.
        if (e instanceof Error && /UNIQUE|unique|duplicate/.test(e.message)) {
          return { status: "refused", refusal: "SERIAL_TAKEN", detail: e.message } as RegisterResult;
        }
        throw e;
      });
  }

  customerExists(customerSerial: bigint): Promise<boolean> {
    return this.db.read(async (q) => !!(await q.get(`SELECT 1 AS one FROM customers WHERE customer_serial = ?`, [customerSerial])));
  }

  async initTransaction(
    t: InitTransaction,
    now: bigint,
  ): Promise<{ status: "created" | "exists"; tx: TransactionRecord } | { status: "refused"; refusal: Refusal; detail: string }> {
    const r = await settle(
      this.db.tx(async (q) => {
        if (t.kind === "issue") {
          const c = await q.get(`SELECT vendor_id, currency FROM campaigns WHERE campaign_id = ?`, [t.campaignId]);
          if (!c || c.vendor_id !== t.vendorId) refuse("UNKNOWN_CAMPAIGN", `campaign ${t.campaignId} is not run by vendor ${t.vendorId}`);
          if (c.currency !== t.currency) refuse("CURRENCY_MISMATCH", `campaign ${t.campaignId} pays in ${c.currency}, not ${t.currency}`);
        }
        // No target on ON CONFLICT: a clash on either unique key, (vendor,
        // TranID) or (customer, TranID), inserts nothing, and only then is
        // the row read to tell a retransmission from a clash. One statement
        // on the hot path instead of a SELECT for clashes first.
        const inserted = await q.run(
          `INSERT INTO transactions (vendor_id, tran_id, kind, customer_serial, amount, currency, campaign_id, item, delivery_method,
             expires_at, offer_hash, vendor_key_id, state, in_serial, out_serial, restored_serial, created_at, updated_at)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'initiated', 0, 0, 0, ?, ?) ON CONFLICT DO NOTHING`,
          [t.vendorId, t.tranId, t.kind, t.customerSerial, t.amount, t.currency, t.campaignId, t.item, t.deliveryMethod, t.expiresAt, blob(t.offerHash), t.vendorKeyId, now, now],
        );
        if (inserted === 1) {
          // The row is exactly what was just inserted: no need to read it back.
          const tx: TransactionRecord = {
            vendorId: t.vendorId,
            tranId: t.tranId,
            kind: t.kind,
            customerSerial: t.customerSerial,
            amount: t.amount,
            currency: t.currency,
            campaignId: t.campaignId,
            item: t.item,
            deliveryMethod: t.deliveryMethod,
            expiresAt: t.expiresAt,
            offerHash: new Uint8Array(t.offerHash),
            vendorKeyId: t.vendorKeyId,
            state: "initiated",
            inSerial: 0n,
            outSerial: 0n,
            executeReply: null,
            confirmReply: null,
            cancelReply: null,
          };
          return { status: "created" as const, tx };
        }
        const row = await q.get(`SELECT ${TX_COLS}, ${TX_REPLY_COLS} FROM transactions WHERE vendor_id = ? AND tran_id = ?`, [t.vendorId, t.tranId]);
        if (!row) {
          const clash = await q.get(`SELECT vendor_id FROM transactions WHERE tran_id = ? AND customer_serial = ? AND vendor_id <> ?`, [
            t.tranId,
            t.customerSerial,
            t.vendorId,
          ]);
          if (clash) refuse("OFFER_MISMATCH", "this customer already has a transaction with this TranID from another seller");
          throw new RetryableConflict(`TranID ${t.tranId} changed concurrently`);
        }
        const tx = rowToTx(row);
        if (tx.customerSerial !== t.customerSerial) refuse("WRONG_CUSTOMER", "this TranID belongs to another transaction");
        if (Buffer.compare(blob(tx.offerHash), blob(t.offerHash)) !== 0) refuse("OFFER_MISMATCH", "this TranID was initialised with a different offer");
        return { status: "exists" as const, tx };
      }),
    );
    return r as { status: "created" | "exists"; tx: TransactionRecord } | { status: "refused"; refusal: Refusal; detail: string };
  }

  /**
   * `replies = false` skips the three stored reply blobs (executeReply,
   * confirmReply and cancelReply then read null whatever is stored): for a
   * caller that will not replay a reply from this record.
   */
  getTransaction(vendorId: string, tranId: string, replies = true): Promise<TransactionRecord | undefined> {
    return this.db.read(async (q) => {
      const r = await q.get(`SELECT ${replies ? `${TX_COLS}, ${TX_REPLY_COLS}` : TX_COLS} FROM transactions WHERE vendor_id = ? AND tran_id = ?`, [
        vendorId,
        tranId,
      ]);
      return r ? rowToTx(r) : undefined;
    });
  }

  /** `replies = false`: as in getTransaction. */
  getTransactionForCustomer(tranId: string, customerSerial: bigint, kind: TxKind, replies = true): Promise<TransactionRecord | undefined> {
    return this.db.read(async (q) => {
      const r = await q.get(
        `SELECT ${replies ? `${TX_COLS}, ${TX_REPLY_COLS}` : TX_COLS} FROM transactions WHERE tran_id = ? AND customer_serial = ? AND kind = ?`,
        [tranId, customerSerial, kind],
      );
      return r ? rowToTx(r) : undefined;
    });
  }

  /**
   * The checks and state claim shared by M4 and S4. Returns a replay if this
   * exact request already ran. The claim is one conditional UPDATE whose WHERE
   * holds every check that lets it proceed (state, kind, customer, expiry,
   * currency); only when it matches nothing is the row read, to name the
   * precise refusal (or find the stored reply to replay).
   */
  private async claimExecution(q: SqlTx, op: ExecuteOp, kind: TxKind): Promise<Claimed | LedgerResult> {
    const claimed = await q.get(
      `UPDATE transactions SET state = 'executed', in_serial = ?, out_serial = ?, execute_reply = ?, updated_at = ?
       WHERE vendor_id = ? AND tran_id = ? AND state = 'initiated' AND kind = ? AND customer_serial = ? AND expires_at >= ? AND currency = ?
       RETURNING amount, currency, campaign_id, item`,
      [op.inSerial, op.out.serial, blob(op.reply), op.now, op.vendorId, op.tranId, kind, op.customerSerial, op.now, op.out.currency],
    );
    if (claimed) {
      return { amount: big(claimed.amount), currency: claimed.currency as string, campaignId: claimed.campaign_id as string, item: claimed.item as string };
    }
    const row = await q.get(`SELECT kind, customer_serial, state, in_serial, expires_at, currency FROM transactions WHERE vendor_id = ? AND tran_id = ?`, [
      op.vendorId,
      op.tranId,
    ]);
    if (!row) refuse("UNKNOWN_TRANSACTION", "no such TranID at this center; start with InitIssue/InitPayment");
    if (row.kind !== kind) refuse("UNKNOWN_TRANSACTION", `TranID ${op.tranId} is not an ${kind} transaction`);
    if (big(row.customer_serial) !== op.customerSerial) refuse("WRONG_CUSTOMER", "this TranID belongs to another customer");
    const state = row.state as TxState;
    if (state === "executed" || state === "confirmed") {
      if (big(row.in_serial) === op.inSerial) {
        const r = await q.get(`SELECT execute_reply FROM transactions WHERE vendor_id = ? AND tran_id = ?`, [op.vendorId, op.tranId]);
        if (r?.execute_reply) return { status: "replayed", reply: u8(r.execute_reply) };
      }
      refuse("TRANSACTION_STATE", `TranID ${op.tranId} was already executed with another scrip`);
    }
    if (state === "cancelled") refuse("TRANSACTION_STATE", `TranID ${op.tranId} was cancelled`);
    if (big(row.expires_at) < op.now) refuse("TRANSACTION_EXPIRED", `TranID ${op.tranId} expired; ask the seller for a new offer`);
    if (op.out.currency !== row.currency) refuse("CURRENCY_MISMATCH", `scrip is in ${op.out.currency}, the offer in ${row.currency}`);
    throw new RetryableConflict(`TranID ${op.tranId} changed state concurrently`);
  }

  async executeIssue(op: ExecuteOp): Promise<LedgerResult> {
    return settle(
      this.db.tx<LedgerResult>(async (q) => {
        const tx = await this.claimExecution(q, op, "issue");
        if ("status" in tx) return tx;
        if (op.out.value !== checkedAdd(op.inValue, tx.amount)) throw new LedgerError("BAD_AMOUNT", "issued scrip value must be old value + amount");
        await spendScrip(q, op.inSerial, op.customerSerial, op.inValue, op.now);
        const rewarded = await q.run(
          `INSERT INTO rewards (campaign_id, item, customer_serial, tran_id) VALUES (?, ?, ?, ?) ON CONFLICT (campaign_id, item, customer_serial) DO NOTHING`,
          [tx.campaignId, tx.item, op.customerSerial, op.tranId],
        );
        if (rewarded !== 1) refuse("ALREADY_REWARDED", `this customer was already rewarded for ${tx.item} in campaign ${tx.campaignId}`);
        await insertScrip(q, op.out, op.now);
        await transfer(
          q,
          "issue",
          `${op.vendorId}/${op.tranId}`,
          account.campaign(tx.campaignId),
          account.customer(op.customerSerial, tx.currency),
          tx.amount,
          tx.currency,
          op.now,
          "BUDGET_EXHAUSTED",
        );
        await q.run(`UPDATE campaigns SET issued = issued + ? WHERE campaign_id = ?`, [tx.amount, tx.campaignId]);
        return { status: "done", reply: op.reply };
      }),
    ) as Promise<LedgerResult>;
  }

  async executePayment(op: ExecuteOp): Promise<LedgerResult> {
    return settle(
      this.db.tx<LedgerResult>(async (q) => {
        const tx = await this.claimExecution(q, op, "pay");
        if ("status" in tx) return tx;
        if (op.inValue < tx.amount) refuse("INSUFFICIENT_VALUE", `scrip holds ${op.inValue} ${tx.currency}, the price is ${tx.amount}`);
        if (op.out.value !== checkedSub(op.inValue, tx.amount)) throw new LedgerError("BAD_AMOUNT", "change must be old value - price");
        await spendScrip(q, op.inSerial, op.customerSerial, op.inValue, op.now);
        await insertScrip(q, op.out, op.now);
        await transfer(
          q,
          "pay",
          `${op.vendorId}/${op.tranId}`,
          account.customer(op.customerSerial, tx.currency),
          account.vendor(op.vendorId, tx.currency),
          tx.amount,
          tx.currency,
          op.now,
          "INSUFFICIENT_VALUE",
          "vendor",
        );
        return { status: "done", reply: op.reply };
      }),
    ) as Promise<LedgerResult>;
  }

  async confirm(op: ConfirmOp): Promise<LedgerResult> {
    return settle(
      this.db.tx<LedgerResult>(async (q) => {
        // The checks that let a confirm proceed are in the UPDATE's WHERE; the
        // row is read only when it matches nothing, to name the refusal.
        const tx = await q.get(
          `UPDATE transactions SET state = 'confirmed', confirm_reply = ?, updated_at = ?
           WHERE vendor_id = ? AND tran_id = ? AND state = 'executed' AND customer_serial = ? AND out_serial = ?
           RETURNING kind, amount, currency, item`,
          [blob(op.reply), op.now, op.vendorId, op.tranId, op.customerSerial, op.presentedSerial],
        );
        if (!tx) {
          const row = await q.get(`SELECT customer_serial, state, out_serial FROM transactions WHERE vendor_id = ? AND tran_id = ?`, [op.vendorId, op.tranId]);
          if (!row) refuse("UNKNOWN_TRANSACTION", "no such TranID at this center");
          if (big(row.customer_serial) !== op.customerSerial) refuse("WRONG_CUSTOMER", "this TranID belongs to another customer");
          if (row.state === "confirmed" && big(row.out_serial) === op.presentedSerial) {
            const r = await q.get(`SELECT confirm_reply FROM transactions WHERE vendor_id = ? AND tran_id = ?`, [op.vendorId, op.tranId]);
            if (r?.confirm_reply) return { status: "replayed", reply: u8(r.confirm_reply) };
          }
          if (row.state !== "executed") refuse("TRANSACTION_STATE", `TranID ${op.tranId} is ${row.state as string}, not awaiting confirmation`);
          if (big(row.out_serial) !== op.presentedSerial) refuse("SCRIP_NOT_LIVE", "this is not the scrip issued for this TranID");
          throw new RetryableConflict(`TranID ${op.tranId} changed state concurrently`);
        }
        // A seller pages settlements by `sequence > afterSequence`, so per
        // vendor they must become visible in sequence order. PostgreSQL hands
        // out BIGSERIAL values at INSERT, not at COMMIT: two confirms could
        // commit out of order and a seller reading in between would skip the
        // lower one for ever. Holding a per-vendor lock from the INSERT to
        // COMMIT makes commit order equal sequence order. (SQLite has one
        // writer, so its order already is.)
        if (this.engine === "postgres") {
          await q.get(`SELECT pg_advisory_xact_lock(hashtextextended(?, 0))`, [`scripwire/settlements/${op.vendorId}`]);
        }
        await q.run(
          `INSERT INTO settlements (kind, vendor_id, tran_id, amount, currency, item, settled_at) VALUES (?, ?, ?, ?, ?, ?, ?)`,
          [tx.kind, op.vendorId, op.tranId, big(tx.amount), tx.currency, tx.item, op.now],
        );
        return { status: "done", reply: op.reply };
      }),
    ) as Promise<LedgerResult>;
  }

  async cancel(op: CancelOp): Promise<LedgerResult> {
    return settle(
      this.db.tx<LedgerResult>(async (q) => {
        // The checks that let a cancel proceed are in the UPDATE's WHERE; the
        // row is read only when it matches nothing, to name the refusal.
        const r = await q.get(
          `UPDATE transactions SET state = 'cancelled', cancel_reply = ?, restored_serial = ?, updated_at = ?
           WHERE vendor_id = ? AND tran_id = ? AND state = ? AND state IN ('initiated', 'executed') AND customer_serial = ?
           RETURNING kind, amount, currency, campaign_id, item, in_serial, out_serial`,
          [blob(op.reply), op.restored?.serial ?? 0n, op.now, op.vendorId, op.tranId, op.expectState, op.customerSerial],
        );
        if (!r) {
          const row = await q.get(`SELECT customer_serial, state FROM transactions WHERE vendor_id = ? AND tran_id = ?`, [op.vendorId, op.tranId]);
          if (!row) refuse("UNKNOWN_TRANSACTION", "no such TranID at this center");
          if (big(row.customer_serial) !== op.customerSerial) refuse("WRONG_CUSTOMER", "this TranID belongs to another customer");
          if (row.state === "cancelled") {
            const c = await q.get(`SELECT cancel_reply FROM transactions WHERE vendor_id = ? AND tran_id = ?`, [op.vendorId, op.tranId]);
            if (c?.cancel_reply) return { status: "replayed", reply: u8(c.cancel_reply) };
          }
          if (row.state === "confirmed") refuse("TRANSACTION_STATE", `TranID ${op.tranId} is already confirmed and cannot be cancelled`);
          // The center built its reply for another state: let it re-read and rebuild.
          if (row.state !== op.expectState) refuse("STATE_CHANGED", `TranID ${op.tranId} is ${row.state as string}, not ${op.expectState}`);
          throw new RetryableConflict(`TranID ${op.tranId} changed state concurrently`);
        }
        if (op.expectState === "initiated") return { status: "done", reply: op.reply };
        const tx = {
          vendorId: op.vendorId,
          tranId: op.tranId,
          customerSerial: op.customerSerial,
          kind: r.kind as TxKind,
          amount: big(r.amount),
          currency: r.currency as string,
          campaignId: r.campaign_id as string,
          item: r.item as string,
          inSerial: big(r.in_serial),
          outSerial: big(r.out_serial),
        };

        if (op.presentedSerial !== tx.inSerial && op.presentedSerial !== tx.outSerial) {
          refuse("SCRIP_NOT_LIVE", "the presented scrip is not part of this transaction");
        }
        const out = await q.get(`SELECT value FROM scrips WHERE serial = ?`, [tx.outSerial]);
        const before = await q.get(`SELECT value FROM scrips WHERE serial = ?`, [tx.inSerial]);
        if (!out || !before || !op.restored) throw new LedgerError("CORRUPT", "transaction scrips missing");
        if (op.restored.customerSerial !== tx.customerSerial || op.restored.currency !== tx.currency) {
          throw new LedgerError("BAD_SCRIP", "the restored scrip must belong to the transaction's customer and currency");
        }
        if (op.restored.value !== big(before.value)) throw new LedgerError("BAD_AMOUNT", "restored scrip must carry the pre-transaction value");
        const spent = await q.run(`UPDATE scrips SET state = 'spent', spent_at = ? WHERE serial = ? AND state = 'live'`, [op.now, tx.outSerial]);
        if (spent !== 1) refuse("SCRIP_NOT_LIVE", "the scrip issued by this transaction was already spent; it can no longer be undone");
        await insertScrip(q, op.restored, op.now);
        const cust = account.customer(tx.customerSerial, tx.currency);
        const ref = `${tx.vendorId}/${tx.tranId}`;
        if (tx.kind === "issue") {
          await transfer(q, "cancel-issue", ref, cust, account.campaign(tx.campaignId), tx.amount, tx.currency, op.now);
          await q.run(`UPDATE campaigns SET issued = issued - ? WHERE campaign_id = ?`, [tx.amount, tx.campaignId]);
          await q.run(`DELETE FROM rewards WHERE campaign_id = ? AND item = ? AND customer_serial = ? AND tran_id = ?`, [
            tx.campaignId,
            tx.item,
            tx.customerSerial,
            tx.tranId,
          ]);
        } else {
          await transfer(q, "cancel-pay", ref, account.vendor(tx.vendorId, tx.currency), cust, tx.amount, tx.currency, op.now);
        }
        return { status: "done", reply: op.reply };
      }),
    ) as Promise<LedgerResult>;
  }

  async replace(op: ReplaceOp): Promise<LedgerResult> {
    return settle(
      this.db.tx<LedgerResult>(async (q) => {
        // Claim the request id first: it is the row where two concurrent
        // retransmissions of one request meet. On PostgreSQL the second waits
        // here for the first to commit and then replays its reply (were the
        // claim last, it would instead lose the race on the scrip and report
        // SCRIP_NOT_LIVE). A refusal below rolls the claim back too.
        const claimed = await q.run(
          `INSERT INTO requests (request_id, kind, customer_serial, reply, created_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT (request_id) DO NOTHING`,
          [`${op.kind}/${op.requestId}`, op.kind, op.customerSerial, blob(op.reply), op.now],
        );
        if (claimed !== 1) {
          const seen = await q.get(`SELECT kind, customer_serial, reply FROM requests WHERE request_id = ?`, [`${op.kind}/${op.requestId}`]);
          if (seen && seen.kind === op.kind && big(seen.customer_serial) === op.customerSerial) return { status: "replayed", reply: u8(seen.reply) };
          refuse("TRANSACTION_STATE", "this request id was already used");
        }
        const paid = op.payout?.amount ?? 0n;
        if (paid < 0n) throw new LedgerError("BAD_AMOUNT", "payout must not be negative");
        if (op.inValue < paid) refuse("INSUFFICIENT_VALUE", `scrip holds ${op.inValue}, cannot redeem ${paid}`);
        if (op.out.value !== op.inValue - paid) throw new LedgerError("BAD_AMOUNT", "new scrip must carry the old value less the payout");
        await spendScrip(q, op.inSerial, op.customerSerial, op.inValue, op.now);
        await insertScrip(q, op.out, op.now);
        if (op.payout && paid > 0n) {
          await ensureAccount(q, account.payout(op.out.currency), "external", op.out.currency);
          await transfer(q, "redeem", op.payout.payoutId, account.customer(op.customerSerial, op.out.currency), account.payout(op.out.currency), paid, op.out.currency, op.now);
          await q.run(`INSERT INTO payouts (payout_id, customer_serial, amount, currency, account, created_at) VALUES (?, ?, ?, ?, ?, ?)`, [
            op.payout.payoutId,
            op.customerSerial,
            paid,
            op.out.currency,
            op.payout.account,
            op.now,
          ]);
        }
        return { status: "done", reply: op.reply };
      }),
    ) as Promise<LedgerResult>;
  }

  liveScrip(customerSerial: bigint, currency: string): Promise<ScripRow | undefined> {
    return this.db.read(async (q) => {
      const r = await q.get(`SELECT serial, value, expires_at FROM scrips WHERE customer_serial = ? AND currency = ? AND state = 'live'`, [
        customerSerial,
        currency,
      ]);
      return r ? { serial: big(r.serial), customerSerial, currency, value: big(r.value), expiresAt: big(r.expires_at) } : undefined;
    });
  }

  listSettlements(vendorId: string, afterSequence: bigint, limit: number): Promise<SettlementRecord[]> {
    return this.db.read(async (q) =>
      (
        await q.all(`SELECT * FROM settlements WHERE vendor_id = ? AND sequence > ? ORDER BY sequence LIMIT ?`, [vendorId, afterSequence, limit])
      ).map((r) => ({
        sequence: big(r.sequence),
        kind: r.kind as TxKind,
        vendorId: r.vendor_id as string,
        tranId: r.tran_id as string,
        amount: big(r.amount),
        currency: r.currency as string,
        item: r.item as string,
        settledAt: big(r.settled_at),
      })),
    );
  }

  listPayouts(limit: number): Promise<PayoutRecord[]> {
    return this.db.read(async (q) =>
      (await q.all(`SELECT * FROM payouts ORDER BY created_at DESC, payout_id LIMIT ?`, [limit])).map((r) => ({
        payoutId: r.payout_id as string,
        customerSerial: big(r.customer_serial),
        amount: big(r.amount),
        currency: r.currency as string,
        account: r.account as string,
        createdAt: big(r.created_at),
      })),
    );
  }

  /**
   * Rebuilds every balance from the transfer journal and checks it against
   * the accounts, the live scrips and the campaign counters. Runs in one
   * read transaction so it sees a consistent snapshot of a live database.
   */
  /** Seals committed events into the chain (sealer.ts): its own transaction, never a payment's. */
  seal(opts: SealOptions): Promise<SealResult> {
    return this.db.tx((q) => sealPending(q, this.engine, opts));
  }

  latestCheckpoint(): Promise<Checkpoint | undefined> {
    return this.db.read((q) => latestCheckpoint(q));
  }

  chainHead(): Promise<{ size: bigint; head: Uint8Array }> {
    return this.db.read((q) => chainHead(q));
  }

  /** Sealed events after chain position `afterSize`, in chain order: what a consistency check between two checkpoints needs. */
  chainEvents(afterSize: bigint, limit: number): Promise<{ chainSeq: bigint; eventId: bigint; fact: Uint8Array }[]> {
    return this.db.read(async (q) =>
      (await q.all(`SELECT chain_seq, event_id, fact FROM events WHERE chain_seq > ? ORDER BY chain_seq LIMIT ?`, [afterSize, limit])).map((r) => ({
        chainSeq: big(r.chain_seq),
        eventId: big(r.event_id),
        fact: u8(r.fact),
      })),
    );
  }

  audit(opts: AuditOptions = {}): Promise<AuditReport> {
    return this.db.read(async (q) => {
      const problems: string[] = [];
      // The journal first: its first problem is the first bad row.
      const chain = await auditChain(q, { saved: opts.checkpoint, requireSealed: opts.requireSealed });
      problems.push(...chain.problems);
      const transfers = await q.get(`SELECT COUNT(*) AS n FROM transfers`);
      const bad = await q.all(`SELECT transfer_id FROM transfers WHERE amount <= 0 OR debit_account = credit_account LIMIT 10`);
      for (const b of bad) problems.push(`transfer ${b.transfer_id} is not a valid double entry`);
      const mixed = await q.all(
        `SELECT t.transfer_id FROM transfers t JOIN accounts d ON d.account_id = t.debit_account JOIN accounts c ON c.account_id = t.credit_account
         WHERE d.currency <> t.currency OR c.currency <> t.currency LIMIT 10`,
      );
      for (const b of mixed) problems.push(`transfer ${b.transfer_id} mixes currencies`);
      const accounts = await q.all(
        `SELECT a.account_id, a.kind, a.currency, a.balance,
           COALESCE((SELECT SUM(amount) FROM transfers WHERE credit_account = a.account_id), 0) AS credits,
           COALESCE((SELECT SUM(amount) FROM transfers WHERE debit_account = a.account_id), 0) AS debits
         FROM accounts a`,
      );
      const totals = new Map<string, bigint>();
      for (const a of accounts) {
        const bal = big(a.balance);
        const journal = big(a.credits) - big(a.debits);
        if (bal !== journal) problems.push(`account ${a.account_id}: balance ${bal} but journal says ${journal}`);
        if (a.kind !== "external" && bal < 0n) problems.push(`account ${a.account_id} is negative (${bal})`);
        totals.set(a.currency as string, (totals.get(a.currency as string) ?? 0n) + bal);
      }
      for (const [cur, total] of totals) if (total !== 0n) problems.push(`${cur}: balances sum to ${total}, not 0 (value minted or lost)`);

      const customerMismatch = await q.all(
        `SELECT a.account_id, a.balance, s.value, s.serial FROM accounts a
         LEFT JOIN scrips s ON a.account_id = ${this.concat(this.concat("'customer/'", this.engine === "postgres" ? "CAST(s.customer_serial AS TEXT)" : "CAST(s.customer_serial AS TEXT)"), this.concat("'/'", "s.currency"))} AND s.state = 'live'
         WHERE a.kind = 'customer' AND (s.serial IS NULL OR s.value <> a.balance) LIMIT 20`,
      );
      for (const m of customerMismatch) {
        problems.push(
          m.serial == null
            ? `account ${m.account_id} has no live scrip`
            : `account ${m.account_id}: balance ${m.balance} but live scrip ${m.serial} holds ${m.value}`,
        );
      }
      const orphanLive = await q.all(
        `SELECT s.serial, s.customer_serial, s.currency FROM scrips s LEFT JOIN accounts a
           ON a.account_id = ${this.concat(this.concat("'customer/'", "CAST(s.customer_serial AS TEXT)"), this.concat("'/'", "s.currency"))}
         WHERE s.state = 'live' AND a.account_id IS NULL LIMIT 10`,
      );
      for (const o of orphanLive) problems.push(`live scrip ${o.serial} has no ledger account`);
      const campaigns = await q.all(
        `SELECT c.campaign_id, c.funded, c.issued, c.cap, a.balance FROM campaigns c JOIN accounts a ON a.account_id = ${this.concat("'campaign/'", "c.campaign_id")}`,
      );
      for (const c of campaigns) {
        if (big(c.funded) - big(c.issued) !== big(c.balance)) {
          problems.push(`campaign ${c.campaign_id}: funded ${c.funded} - issued ${c.issued} != budget ${c.balance}`);
        }
        if (big(c.funded) > big(c.cap)) problems.push(`campaign ${c.campaign_id} funded beyond its cap`);
      }
      const executed = await q.all(
        `SELECT t.vendor_id, t.tran_id FROM transactions t LEFT JOIN scrips i ON i.serial = t.in_serial LEFT JOIN scrips o ON o.serial = t.out_serial
         WHERE t.state IN ('executed', 'confirmed') AND (i.serial IS NULL OR o.serial IS NULL OR i.state <> 'spent') LIMIT 10`,
      );
      for (const e of executed) problems.push(`transaction ${e.vendor_id}/${e.tran_id} executed but its scrips are inconsistent`);
      problems.push(...(await refunds.auditRefunds(q)));
      const scrips = await q.get(`SELECT COUNT(*) AS n FROM scrips`);
      return {
        ok: problems.length === 0,
        problems,
        transfersChecked: Number(transfers?.n ?? 0),
        accountsChecked: accounts.length,
        scripsChecked: Number(scrips?.n ?? 0),
        eventsSealed: chain.eventsSealed,
        eventsPending: chain.eventsPending,
        checkpointsChecked: chain.checkpointsChecked,
        savedCheckpointOk: chain.savedCheckpointOk,
      };
    });
  }

  // ---------------------------------------------------------------- refunds, restore/sync (refunds.ts)

  refund(op: RefundOp): Promise<RefundResult> {
    return refunds.refund(this.engine, this.db, op);
  }

  customerState(customerSerial: bigint): Promise<CustomerState | undefined> {
    return refunds.customerState(this.db, customerSerial);
  }

  claimSyncNonce(customerSerial: bigint, nonce: Uint8Array, now: bigint, forgetBefore: bigint): Promise<boolean> {
    return refunds.claimSyncNonce(this.db, customerSerial, nonce, now, forgetBefore);
  }

  foldCredits(op: FoldOp): Promise<FoldResult> {
    return refunds.foldCredits(this.db, op);
  }
}
