/**
 * What a wallet persists, and the storage interface it persists through.
 * Platform-neutral: the Node store (store.ts, a file plus an append-only
 * record log) and the browser store (browser/idb-store.ts, IndexedDB) both
 * implement {@link WalletStore}; the wallet core never sees a file or a
 * database.
 *
 * The state changes by {@link JournalRecord}s: small "set this, append that"
 * records that a store may append instead of rewriting everything (see
 * journal.ts). {@link applyRecord} is the one function that gives a record
 * its meaning, used both live and when a store replays its log.
 */

/** The steps at which an operation is journalled; see {@link PendingOperation}. */
export type PendingStep = "M4" | "M6" | "S4" | "S6" | "RN1" | "RD1";
export type DeliveryMethodName = "VIEW" | "SAVE";

/**
 * The journal entry of an operation whose outcome the wallet does not know
 * yet. Written BEFORE the request that may move value leaves (M4, S4, renew,
 * redeem) and again, with the new scrip, before its confirmation (M6, S6);
 * cleared only after the center's completion (M7, the receipt, RN2, RD2).
 * `Wallet.recover()` finishes it by retransmitting `step` with `pCount + 1`.
 */
export interface PendingOperation {
  kind: "earn" | "buy" | "renew" | "redeem";
  step: PendingStep;
  /** TranID (earn, buy) or request id (renew, redeem). */
  id: string;
  /** pCount of the last request sent, or about to be sent, for `step`. */
  pCount: number;
  /** The scrip presented in M4/S4/RN1/RD1 (base64 of the protobuf ScripType). */
  scrip: string;
  /** The scrip received in M5/S5 and presented in M6/S6 (base64 protobuf). */
  newScrip?: string;
  /** The seller's signed offer (base64 protobuf Offer): the M2 permit or the S2 pOder. */
  offer?: string;
  sellerUrl?: string;
  /** Campaign item (earn) or request URL (buy). */
  item?: string;
  method?: DeliveryMethodName;
  /** Redeem: amount asked (decimal string, "0" = everything) and payout account. */
  amount?: string;
  account?: string;
  startedAtMs: number;
}

/** One line of the wallet's history, as stored (amounts as decimal strings). */
export interface HistoryRecord {
  /** refunded: a seller's refund the center folded into the scrip; restored / synced: the scrip was replaced by the center's live one. */
  kind: "registered" | "earned" | "bought" | "renewed" | "redeemed" | "refunded" | "restored" | "synced";
  atMs: number;
  /** Signed change of the balance, in the currency's smallest unit. */
  amount: string;
  /** Balance afterwards. */
  balance: string;
  currency: string;
  /** Serial of the live scrip afterwards. */
  serial: string;
  tranId?: string;
  requestId?: string;
  /** Campaign item (earned) or request URL (bought). */
  item?: string;
  method?: DeliveryMethodName;
  sellerUrl?: string;
  vendorId?: string;
  payoutId?: string;
  payoutAccount?: string;
  /** Finished by `recover()` after an interruption. */
  recovered?: boolean;
}

/** A receipt kept so the content can be delivered again (S7) without paying again. */
export interface ReceiptRecord {
  tranId: string;
  sellerUrl: string;
  requestUrl: string;
  method: DeliveryMethodName;
  /** Base64 of the protobuf Receipt, exactly as the center signed it. */
  receipt: string;
  paidAtMs: number;
}

/** Everything a wallet persists. JSON-serialisable; bigints are decimal strings, bytes hex or base64. */
export interface WalletState {
  version: 1;
  /** The wallet's id at the center (R1 `wallet_id`), 32 hex characters. */
  walletId: string;
  centerUrl: string;
  /** The pinned 32-byte X25519 key of the center (KUcenter), hex. */
  centerPublicKey: string;
  /** The center's identity as it appears in every scrip's vendor_id. */
  center: { dnsName: string; ipAddr: string; serverName: string; port: number };
  currency: string;
  customId: { secretId: number; serialNumber: string };
  /** Custom_Secret, hex. Encrypted at rest when the store has a passphrase. */
  customSecret: string;
  /** The one live scrip (base64 of the protobuf ScripType). */
  scrip: string;
  pending: PendingOperation | null;
  history: HistoryRecord[];
  receipts: Record<string, ReceiptRecord>;
  createdAtMs: number;
}

/**
 * One durable change of the state. Every field is optional; the ones present
 * are applied together (a store must append a record atomically: all of it
 * or, for a torn last record, none of it). Records never carry
 * Custom_Secret: it is written once, in the snapshot at registration.
 */
export interface JournalRecord {
  /** Replaces the live scrip (base64 protobuf). */
  scrip?: string;
  /** Sets (an object) or clears (null) the journalled operation. */
  pending?: PendingOperation | null;
  /** Appends a history line. */
  history?: HistoryRecord;
  /** Keeps a receipt for redelivery. */
  receipt?: ReceiptRecord;
}

/** History is a convenience, not the ledger: keep the newest entries only. */
export const HISTORY_ENTRIES_MAX = 10_000;
/** Receipts kept for redelivery (newest first). */
export const RECEIPTS_MAX = 1_000;

/** Applies `r` to `s` in place and returns `s`; bounded history and receipts. Live and replay use this one function. */
export function applyRecord(s: WalletState, r: JournalRecord): WalletState {
  if (r.scrip !== undefined) s.scrip = r.scrip;
  if (r.pending !== undefined) s.pending = r.pending;
  if (r.history) {
    s.history.push(r.history);
    if (s.history.length > HISTORY_ENTRIES_MAX) s.history.splice(0, s.history.length - HISTORY_ENTRIES_MAX);
  }
  if (r.receipt) {
    s.receipts[r.receipt.tranId] = r.receipt;
    const all = Object.values(s.receipts);
    if (all.length > RECEIPTS_MAX) {
      all.sort((a, b) => a.paidAtMs - b.paidAtMs);
      for (const x of all.slice(0, all.length - RECEIPTS_MAX)) delete s.receipts[x.tranId];
    }
  }
  return s;
}

export function cloneState<T>(v: T): T {
  return JSON.parse(JSON.stringify(v)) as T;
}

/**
 * Where a wallet keeps its state. The wallet sends a value-moving request
 * only after the record for it is durable, so both writes must be durable
 * when their promise resolves.
 *
 * - `save` replaces everything atomically (registration, compaction) and
 *   supersedes every record appended before it.
 * - `append`, if the store has it, adds one record atomically; `load`
 *   returns the last snapshot with the records since applied in order. A
 *   store without `append` gets a `save` of the whole state instead.
 */
export interface WalletStore {
  /** Human-readable location, for messages. */
  readonly description: string;
  /** The saved state (snapshot plus appended records), or undefined if none was ever saved. */
  load(): Promise<WalletState | undefined>;
  /** Replaces the saved state atomically and durably. */
  save(state: WalletState): Promise<void>;
  /** Appends one record atomically and durably. */
  append?(record: JournalRecord): Promise<void>;
  /** Records appended since the last snapshot (as loaded or appended by this instance); the journal compacts when it grows. */
  readonly recordCount?: number;
  /** Fold the records into a snapshot when the wallet closes. Default true; a store opened per operation (the browser's) says false. */
  readonly compactOnClose?: boolean;
  /** Takes exclusive use of the wallet for this process; throws StateError WALLET_LOCKED if another holds it. */
  lock?(): Promise<void>;
  unlock?(): Promise<void>;
}

/**
 * In-memory store for tests and short-lived embedders: a JSON snapshot plus
 * a list of JSON records, so a state object mutated after `save` does not
 * change what was saved, and replay is exercised as in the durable stores.
 */
export class MemoryWalletStore implements WalletStore {
  readonly description = "memory";
  private json: string | undefined;
  private records: string[] = [];
  /** Number of whole-state saves, for tests that count rewrites. */
  saves = 0;
  /** Number of appended records. */
  appends = 0;

  constructor(initial?: WalletState) {
    if (initial) this.json = JSON.stringify(initial);
  }

  get recordCount(): number {
    return this.records.length;
  }

  async load(): Promise<WalletState | undefined> {
    if (this.json === undefined) return undefined;
    const s = JSON.parse(this.json) as WalletState;
    for (const r of this.records) applyRecord(s, JSON.parse(r) as JournalRecord);
    return s;
  }

  async save(state: WalletState): Promise<void> {
    this.json = JSON.stringify(state);
    this.records = [];
    this.saves++;
  }

  async append(record: JournalRecord): Promise<void> {
    if (this.json === undefined) throw new Error("append before the first save");
    this.records.push(JSON.stringify(record));
    this.appends++;
  }
}
