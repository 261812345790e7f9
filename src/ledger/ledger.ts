/**
 * The ledger contract: one interface, two engines (SQLite embedded default,
 * PostgreSQL for replicas). Every method that moves value is ONE database
 * transaction and is durable before its promise resolves, so a reply built
 * from its result may leave the process.
 *
 * The center does all cryptography before calling in; the ledger only makes
 * the decisions a database must make atomically: is this serial still live,
 * is this TranID in the expected state, is there budget / value left.
 */

import type { Checkpoint } from "./chain.js";
import type { SealOptions, SealResult } from "./sealer.js";
import type { KeyEncryptionKeys } from "../crypto/kek.js";

/**
 * Every Ledger method that writes (one database transaction each). The one
 * list: the SQLite writer thread runs exactly these (sqlite-worker.ts), and
 * the metrics time all but the bookkeeping ones (METERED_LEDGER_WRITES).
 */
export const LEDGER_WRITE_METHODS = [
  "migrate",
  "addKey",
  "createVendor",
  "addVendorKey",
  "createCampaign",
  "fundCampaign",
  "registerCustomer",
  "initTransaction",
  "executeIssue",
  "executePayment",
  "confirm",
  "cancel",
  "replace",
  // refunds.ts (issue 14)
  "refund",
  "claimSyncNonce",
  "foldCredits",
  // sealer.ts (issue 16)
  "seal",
  // keys at rest (issue 12)
  "protectKeys",
] as const;

export type LedgerWriteMethod = (typeof LEDGER_WRITE_METHODS)[number];

/** Writes the center's metrics time (src/server/metrics.ts): all but schema, nonce, sealing and key-wrapping bookkeeping. */
export const METERED_LEDGER_WRITES: readonly LedgerWriteMethod[] = LEDGER_WRITE_METHODS.filter(
  (m) => m !== "migrate" && m !== "claimSyncNonce" && m !== "seal" && m !== "protectKeys",
);

/**
 * The same ledger with every metered write timed: `onWrite` gets the
 * operation, its seconds and whether it threw. Used on the event loop
 * (CenterMetrics.meterLedger) and on the writer thread for the hot calls
 * (src/center/center-thread.ts), so both count the same way.
 */
export function timedWrites<L extends object>(ledger: L, onWrite: (op: string, seconds: number, failed: boolean) => void): L {
  return new Proxy(ledger, {
    get(target, prop, recv) {
      const v = Reflect.get(target, prop, recv);
      if (typeof v !== "function") return v;
      if (!(METERED_LEDGER_WRITES as readonly (string | symbol)[]).includes(prop)) return v.bind(target);
      return async (...args: unknown[]) => {
        const t0 = performance.now();
        let failed = true;
        try {
          const r = await (v as (...a: unknown[]) => Promise<unknown>).apply(target, args);
          failed = false;
          return r;
        } finally {
          onWrite(String(prop), (performance.now() - t0) / 1000, failed);
        }
      };
    },
  });
}

export type Engine = "sqlite" | "postgres";

/** Key families kept by the center. */
export type KeyKind = "certificate" | "custom" | "center-x25519" | "checkpoint-ed25519";

export interface KeyRecord {
  kind: KeyKind;
  secretId: number;
  key: Uint8Array;
  createdAt: number;
}

export interface VendorRecord {
  vendorId: string;
  dnsName: string;
  ipAddr: string;
  serverName: string;
  port: number;
}

export interface VendorKeyRecord {
  vendorId: string;
  keyId: number;
  secret: Uint8Array;
}

export interface CampaignRecord {
  campaignId: string;
  vendorId: string;
  currency: string;
  /** Remaining budget (the campaign account's balance). */
  budget: bigint;
  cap: bigint;
  funded: bigint;
  issued: bigint;
}

/** A scrip as the ledger tracks it: its serial, owner and value. The body's other fields live in the certificate. */
export interface ScripRow {
  serial: bigint;
  customerSerial: bigint;
  currency: string;
  value: bigint;
  expiresAt: bigint;
}

export interface CustomerProfile {
  name: string;
  address: string;
  email: string;
  etc: string;
}

export type TxKind = "issue" | "pay";
export type TxState = "initiated" | "executed" | "confirmed" | "cancelled";

export interface TransactionRecord {
  vendorId: string;
  tranId: string;
  kind: TxKind;
  customerSerial: bigint;
  amount: bigint;
  currency: string;
  campaignId: string;
  item: string;
  deliveryMethod: number;
  expiresAt: bigint;
  /** SHA-256 of the offer's canonical bytes and MAC: the same TranID must always carry the same offer. */
  offerHash: Uint8Array;
  /** Vendor secret generation that signed the offer; the receipt is signed with the same one, so a seller that has not yet learnt a rotated secret still verifies it. */
  vendorKeyId: number;
  state: TxState;
  /** Serial the customer spent in M4/S4 (0 before execution). */
  inSerial: bigint;
  /** Serial issued in M5/S5 (0 before execution). */
  outSerial: bigint;
  /** Stored M5/S5 reply (serialized protobuf), returned unchanged on retransmission. */
  executeReply: Uint8Array | null;
  confirmReply: Uint8Array | null;
  cancelReply: Uint8Array | null;
}

export type Refusal =
  | "UNKNOWN_TRANSACTION"
  | "WRONG_CUSTOMER"
  | "TRANSACTION_STATE"
  | "TRANSACTION_EXPIRED"
  | "SCRIP_NOT_LIVE"
  | "INSUFFICIENT_VALUE"
  | "BUDGET_EXHAUSTED"
  | "ALREADY_REWARDED"
  | "UNKNOWN_CAMPAIGN"
  | "CURRENCY_MISMATCH"
  | "OVERFLOW"
  | "OFFER_MISMATCH"
  | "STATE_CHANGED";

export type LedgerResult =
  | { status: "done"; reply: Uint8Array }
  | { status: "replayed"; reply: Uint8Array }
  | { status: "refused"; refusal: Refusal; detail: string };

export interface InitTransaction {
  vendorId: string;
  tranId: string;
  kind: TxKind;
  customerSerial: bigint;
  amount: bigint;
  currency: string;
  campaignId: string;
  item: string;
  deliveryMethod: number;
  expiresAt: bigint;
  offerHash: Uint8Array;
  vendorKeyId: number;
}

/** M4 (GM4_1) or S4 (PM4_1): spend `inSerial`, make `out` live, move `amount`. */
export interface ExecuteOp {
  vendorId: string;
  tranId: string;
  customerSerial: bigint;
  inSerial: bigint;
  /** The presented scrip's value (certified, so trustworthy); the ledger re-checks it against its own row. */
  inValue: bigint;
  out: ScripRow;
  reply: Uint8Array;
  now: bigint;
}

export interface ConfirmOp {
  vendorId: string;
  tranId: string;
  customerSerial: bigint;
  presentedSerial: bigint;
  reply: Uint8Array;
  now: bigint;
}

/**
 * Cancel (GM4_2, PM4_2) or undo (GM6_3, PM6_3). From `initiated`: no value
 * moved, just cancelled. From `executed`: the issued scrip must still be live;
 * it is spent, `restored` (the pre-transaction value under a fresh serial)
 * becomes live and the transfer is reversed.
 */
export interface CancelOp {
  vendorId: string;
  tranId: string;
  customerSerial: bigint;
  /** Which state the center built `reply` for. */
  expectState: "initiated" | "executed";
  /** Must be the transaction's in- or out-serial (executed) or the live serial (initiated). */
  presentedSerial: bigint;
  restored: ScripRow | null;
  reply: Uint8Array;
  now: bigint;
}

/** Renewal or redemption: replace the live scrip, optionally paying out. Idempotent by requestId. */
export interface ReplaceOp {
  requestId: string;
  kind: "renew" | "redeem";
  customerSerial: bigint;
  inSerial: bigint;
  inValue: bigint;
  out: ScripRow;
  /** Redemption only: amount paid out and where to. */
  payout?: { payoutId: string; amount: bigint; account: string };
  reply: Uint8Array;
  now: bigint;
}

export interface RegisterOp {
  customerSerial: bigint;
  walletId: string;
  secretId: number;
  profile: CustomerProfile;
  /** SHA-256 of the sealed session key: a retransmitted R1 matches, a different one conflicts. */
  sealedHash: Uint8Array;
  scrip: ScripRow;
  reply: Uint8Array;
  now: bigint;
}

export type RegisterResult =
  | { status: "done"; reply: Uint8Array }
  | { status: "replayed"; reply: Uint8Array }
  | { status: "refused"; refusal: "WALLET_ID_TAKEN" | "SERIAL_TAKEN"; detail: string };

export interface SettlementRecord {
  sequence: bigint;
  /** "refund" entries carry a negative amount (see refunds.ts). */
  kind: TxKind | "refund";
  vendorId: string;
  tranId: string;
  amount: bigint;
  currency: string;
  item: string;
  settledAt: bigint;
}

export interface PayoutRecord {
  payoutId: string;
  customerSerial: bigint;
  amount: bigint;
  currency: string;
  account: string;
  createdAt: bigint;
}

export interface KeyProtectionReport {
  /** Keys that were stored in the clear and are now wrapped. */
  wrapped: number;
  /** Keys that were wrapped by an older KEK and now are by the current one. */
  rewrapped: number;
  /** Fingerprint of the KEK every key is now wrapped by. */
  current: string;
}

export interface AuditReport {
  ok: boolean;
  problems: string[];
  transfersChecked: number;
  accountsChecked: number;
  scripsChecked: number;
  /** The tamper-evident journal (chain-audit.ts): events sealed, events not yet sealed, stored checkpoints checked. */
  eventsSealed?: number;
  eventsPending?: number;
  checkpointsChecked?: number;
  /** Only with AuditOptions.checkpoint: it verified and this ledger extends it. */
  savedCheckpointOk?: boolean;
}

export interface AuditOptions {
  /** A checkpoint saved earlier (GetCheckpoint): the ledger must still contain and extend it. */
  checkpoint?: Checkpoint;
  /**
   * Report events not yet sealed as problems. Right for a center that was
   * stopped gracefully (it seals everything and signs a last checkpoint);
   * after a crash, events committed since the last round are legitimately
   * pending until the next start seals them.
   */
  requireSealed?: boolean;
}

export interface Ledger {
  readonly engine: Engine;
  migrate(): Promise<void>;
  close(): Promise<void>;
  /** Resolves if the database answers a trivial query now; rejects otherwise (health probes). */
  ping(): Promise<void>;

  /**
   * From now on, keys are wrapped with `kek` on the way in and unwrapped on
   * the way out (src/crypto/kek.ts). Also, in one transaction, wraps every
   * key still stored in the clear (a ledger from before key wrapping) and
   * re-wraps every key wrapped by an older KEK (a rotation). Idempotent;
   * replicas may run it at once.
   */
  protectKeys(kek: KeyEncryptionKeys): Promise<KeyProtectionReport>;
  listKeys(): Promise<KeyRecord[]>;
  /** Inserts unless (kind, secretId) exists; returns whether it inserted. */
  addKey(k: KeyRecord): Promise<boolean>;

  createVendor(v: VendorRecord, key: VendorKeyRecord): Promise<boolean>;
  addVendorKey(k: VendorKeyRecord): Promise<boolean>;
  getVendor(vendorId: string): Promise<{ vendor: VendorRecord; keys: VendorKeyRecord[] } | undefined>;

  createCampaign(c: { campaignId: string; vendorId: string; currency: string; cap: bigint }): Promise<CampaignRecord>;
  fundCampaign(campaignId: string, amount: bigint, requestId: string, now: bigint): Promise<CampaignRecord>;
  listCampaigns(): Promise<CampaignRecord[]>;

  registerCustomer(op: RegisterOp): Promise<RegisterResult>;
  customerExists(customerSerial: bigint): Promise<boolean>;

  /** M3/S3. Creating twice with the same offer is fine; another customer or offer is refused. */
  initTransaction(t: InitTransaction, now: bigint): Promise<{ status: "created" | "exists"; tx: TransactionRecord } | { status: "refused"; refusal: Refusal; detail: string }>;
  getTransaction(vendorId: string, tranId: string): Promise<TransactionRecord | undefined>;
  /** M4/M6/S6 name only the TranID; a TranID is unique per customer, so this finds at most one. */
  getTransactionForCustomer(tranId: string, customerSerial: bigint, kind: TxKind): Promise<TransactionRecord | undefined>;
  executeIssue(op: ExecuteOp): Promise<LedgerResult>;
  executePayment(op: ExecuteOp): Promise<LedgerResult>;
  confirm(op: ConfirmOp): Promise<LedgerResult>;
  cancel(op: CancelOp): Promise<LedgerResult>;
  replace(op: ReplaceOp): Promise<LedgerResult>;

  /** The live serial of a customer in a currency, if any. */
  liveScrip(customerSerial: bigint, currency: string): Promise<ScripRow | undefined>;
  listSettlements(vendorId: string, afterSequence: bigint, limit: number): Promise<SettlementRecord[]>;
  listPayouts(limit: number): Promise<PayoutRecord[]>;

  // Restore/sync and refunds (src/ledger/refunds.ts).
  /** Refund (part of) a confirmed payment: vendor -> the customer's pending credit, once per TranID. */
  refund(op: RefundOp): Promise<RefundResult>;
  /** What a sync reports: live scrips, unfinished transactions, refund credits; undefined for an unknown customer. */
  customerState(customerSerial: bigint): Promise<CustomerState | undefined>;
  /** Records a sync nonce; false if this customer already used it. Forgets nonces created before `forgetBefore`. */
  claimSyncNonce(customerSerial: bigint, nonce: Uint8Array, now: bigint, forgetBefore: bigint): Promise<boolean>;
  /** Folds pending refund credits into a freshly issued scrip. */
  foldCredits(op: FoldOp): Promise<FoldResult>;
  audit(opts?: AuditOptions): Promise<AuditReport>;

  /** Integrates committed events into the hash chain; signs a checkpoint when due (sealer.ts). */
  seal(opts: SealOptions): Promise<SealResult>;
  latestCheckpoint(): Promise<Checkpoint | undefined>;
  chainHead(): Promise<{ size: bigint; head: Uint8Array }>;
  chainEvents(afterSize: bigint, limit: number): Promise<{ chainSeq: bigint; eventId: bigint; fact: Uint8Array }[]>;
}

export type RefundRefusal =
  | "UNKNOWN_TRANSACTION"
  | "NOT_A_PAYMENT"
  | "NOT_CONFIRMED"
  | "ALREADY_REFUNDED"
  | "REFUND_EXCEEDS_PAYMENT"
  | "VENDOR_BALANCE_LOW";

export interface RefundOp {
  refundId: string;
  vendorId: string;
  tranId: string;
  requestId: string;
  /** 0 refunds the whole payment. */
  amount: bigint;
  reason: string;
  now: bigint;
}

export interface RefundRecord {
  refundId: string;
  vendorId: string;
  tranId: string;
  requestId: string;
  customerSerial: bigint;
  amount: bigint;
  /** The payment's amount. */
  paid: bigint;
  currency: string;
  reason: string;
  createdAt: bigint;
  settlementSequence: bigint;
  /** Serial of the scrip the credit was folded into; 0 while pending. */
  foldedSerial: bigint;
}

export type RefundResult =
  | { status: "done" | "replayed"; refund: RefundRecord }
  | { status: "refused"; refusal: RefundRefusal; detail: string };

export interface CustomerState {
  /** Custom_Secret generation the customer registered under. */
  secretId: number;
  live: ScripRow[];
  /** Transactions in state initiated or executed, newest first (at most 100), with their stored replies. */
  inFlight: TransactionRecord[];
  /** Every pending credit and the 20 most recently folded ones. */
  credits: RefundRecord[];
}

export interface FoldOp {
  customerSerial: bigint;
  currency: string;
  inSerial: bigint;
  inValue: bigint;
  refundIds: string[];
  total: bigint;
  out: ScripRow;
  now: bigint;
}

export type FoldResult = { status: "done" } | { status: "refused"; refusal: "SCRIP_NOT_LIVE" | "IN_FLIGHT" | "STATE_CHANGED"; detail: string };

export class LedgerError extends Error {
  constructor(
    readonly reason: string,
    message: string,
  ) {
    super(message);
    this.name = "LedgerError";
  }
}

/**
 * The ledger's schema is newer than this code: another replica (or the
 * operator) upgraded it. Nothing was changed; this process must not write to it.
 */
export class SchemaTooNewError extends LedgerError {
  /** The CLI's exit code for it (EXIT.FAILURE): `scripwire center serve` prints the message and stops. */
  readonly exitCode = 1;
  constructor(
    readonly found: number,
    readonly known: number,
  ) {
    super(
      "SCHEMA_TOO_NEW",
      `the ledger's schema is version ${found}, newer than this scripwire (which knows up to version ${known}): ` +
        `refusing to start so this older code cannot damage it. Run the scripwire release that upgraded the ledger (nothing was changed).`,
    );
    this.name = "SchemaTooNewError";
  }
}
