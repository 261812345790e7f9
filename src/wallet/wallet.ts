/**
 * The stateful wallet: registration (R1-R2), earning scrip (M1-M7), buying
 * content (S1-S7), renewal, redemption, redelivery and crash recovery,
 * orchestrated over the thin clients (client.ts) and a WalletStore.
 *
 * Crash safety is a write-ahead journal with one entry, `pending`:
 *   - before M4/S4/RN1/RD1 leaves, the request's inputs (TranID or request id,
 *     the scrip presented, the offer, pCount) are saved;
 *   - when M5/S5 arrives and verifies, the new scrip is saved as the wallet's
 *     scrip together with `pending.step = M6/S6`, before M6/S6 leaves;
 *   - `pending` is cleared only with the completion (M7, the receipt, RN2, RD2).
 * `recover()` re-sends the journalled step with pCount + 1; the center replays
 * its stored reply for the same input scrip (center.ts fast path), so a wallet
 * killed at any point ends with exactly one movement of value and one live
 * scrip. A definitive refusal (nothing moved) clears the journal.
 *
 * Every scrip the wallet adopts is authenticated first: its hash under
 * Custom_Secret must verify, and it must carry our customer id, our currency,
 * our center and exactly the value the protocol step implies.
 */
import { create } from "@bufbuild/protobuf";
import { randomBytes } from "node:crypto";
import { TransactionState, type GetCenterInfoResponse } from "../../gen/scripwire/v1/center_pb.js";
import { CampaignItemKind } from "../../gen/scripwire/v1/seller_pb.js";
import { CmdType, HeaderTypeSchema, HashAlgorithm, OfferKind, type HeaderType, type Offer, type Receipt, type ScripType } from "../../gen/scripwire/v1/types_pb.js";
import { computeMessageHash, verifyMessageHash } from "../crypto/scrip-auth.js";
import { decryptCustomSecret, sealSessionKey } from "../crypto/registration.js";
import type { MessageHashInput } from "../crypto/canonical.js";
import { CenterClient, SellerClient, type WireProtocol } from "./client.js";
import {
  decodeOffer,
  decodeReceipt,
  decodeScrip,
  encodeOffer,
  encodeReceipt,
  encodeScrip,
  fromHexString,
  methodName,
  methodValue,
  toHexString,
} from "./codec.js";
import { IntegrityError, RefusedError, ScripwireError, StateError, UnavailableError } from "./errors.js";
import type { DeliveryMethodName, HistoryRecord, PendingOperation, WalletState, WalletStore } from "./store.js";
import type { Transport } from "@connectrpc/connect";

const PROTOCOL_VERSION = "scripwire/1";
/** Retransmissions (pCount + 1 each) after a GM5_4/PM5_3 or an unreachable server, per step. Bounded: the center refuses pCount > 64 anyway. */
export const RETRANSMISSIONS_MAX_DEFAULT = 4;
/** First retransmission delay; doubles each time up to {@link RETRY_DELAY_MS_MAX}. */
const RETRY_DELAY_MS_BASE = 50;
const RETRY_DELAY_MS_MAX = 1_000;
/** History is a convenience, not the ledger: keep the newest entries only. */
export const HISTORY_ENTRIES_MAX = 10_000;
/** Receipts kept for redelivery (newest first). */
export const RECEIPTS_MAX = 1_000;
/** The seller refuses longer answers; refuse them here first. */
const ANSWER_CHARS_MAX = 2_000;

/**
 * Points in a protocol run where the `onStep` hook is called. Tests wire it
 * to SIGKILL to prove recovery; `after-*-sent` fires after the reply has
 * arrived (so the center has processed the request) but before the wallet
 * saved anything from it.
 */
export type WalletStep =
  | "before-M4"
  | "after-M4-sent"
  | "after-M5-received"
  | "after-M6-sent"
  | "before-S4"
  | "after-S4-sent"
  | "after-S5-received"
  | "after-S6-sent"
  | "before-RN1"
  | "after-RN1-sent"
  | "before-RD1"
  | "after-RD1-sent";

/** One protocol step, for progress display: `M5 ← center: new scrip 80 KRW`. */
export interface WalletProgress {
  /** Patent step ("M4", "S5", "R1", "RN1"...). */
  step: string;
  message: string;
}

export interface WalletOptions {
  /** Where the wallet's state lives. */
  store: WalletStore;
  /** Wire protocol for every call. Default "connect". */
  protocol?: WireProtocol;
  /** Deadline of each call, milliseconds. Default 10 000. */
  timeoutMs?: number;
  /** Retransmissions per step before giving up (the journal keeps the operation). Default {@link RETRANSMISSIONS_MAX_DEFAULT}. */
  maxRetransmissions?: number;
  /** Use this center URL instead of the stored one (the pinned key must still match). */
  centerUrl?: string;
  /** Finish a journalled operation when opening. Default true. */
  recoverOnOpen?: boolean;
  /** Receives one line per protocol step. */
  onProgress?: (p: WalletProgress) => void;
  /**
   * Test hook, called at each {@link WalletStep}. Production code leaves it
   * unset; the crash tests make it SIGKILL the process.
   */
  onStep?: (step: WalletStep) => void | Promise<void>;
  /** Transports to use instead of opening HTTP/2 connections (in-memory tests). */
  transport?: (baseUrl: string, role: "center" | "seller") => Transport;
  /** PEM CA to trust for https:// URLs. */
  ca?: string | Buffer;
  /** Clock for history timestamps and expiry display, milliseconds. Default Date.now. */
  clock?: () => number;
}

export interface RegisterProfile {
  name?: string;
  address?: string;
  email?: string;
  etc?: string;
}

export interface RegisterOptions {
  /** Currency of the scrip to open; default the center's first. */
  currency?: string;
  /** The center's X25519 public key (hex or bytes) obtained out of band; registration is refused if the center presents another. */
  pinnedPublicKey?: string | Uint8Array;
}

export interface Balance {
  value: bigint;
  currency: string;
  /** Serial of the live scrip. */
  serial: bigint;
  expiresAt: Date;
  expired: boolean;
  /** An operation the wallet could not finish yet, if any. */
  pending: { kind: PendingOperation["kind"]; id: string; step: PendingOperation["step"] } | null;
}

export interface HistoryEntry {
  kind: HistoryRecord["kind"];
  at: Date;
  /** Signed change of the balance. */
  amount: bigint;
  balance: bigint;
  currency: string;
  serial: bigint;
  tranId?: string;
  requestId?: string;
  item?: string;
  method?: DeliveryMethodName;
  sellerUrl?: string;
  vendorId?: string;
  payoutId?: string;
  payoutAccount?: string;
  recovered?: boolean;
}

export interface RegisterResult {
  walletId: string;
  customId: { secretId: number; serialNumber: bigint };
  currency: string;
  centerPublicKey: string;
  serial: bigint;
}

export interface EarnResult {
  tranId: string;
  item: string;
  vendorId: string;
  amount: bigint;
  balance: bigint;
  currency: string;
  serial: bigint;
  /** Finished by recover() after an interruption. */
  recovered: boolean;
}

export interface Delivery {
  method: DeliveryMethodName;
  contentType: string;
  /** File name to save under (SAVE); empty for VIEW. */
  fileName: string;
  content: Uint8Array;
}

export interface BuyResult {
  tranId: string;
  requestUrl: string;
  method: DeliveryMethodName;
  vendorId: string;
  price: bigint;
  balance: bigint;
  currency: string;
  serial: bigint;
  receipt: Receipt;
  /** The content (S7); absent if delivery failed after payment, see `deliveryError` and `redeliver()`. */
  delivery?: Delivery;
  deliveryError?: ScripwireError;
  recovered: boolean;
}

export interface RenewResult {
  requestId: string;
  value: bigint;
  currency: string;
  previousSerial: bigint;
  serial: bigint;
  expiresAt: Date;
  recovered: boolean;
}

export interface RedeemResult {
  requestId: string;
  payoutId: string;
  amount: bigint;
  payoutAccount: string;
  balance: bigint;
  currency: string;
  serial: bigint;
  recovered: boolean;
}

export interface RecoveryResult {
  kind: PendingOperation["kind"];
  id: string;
  /**
   * `completed`: the operation finished. `abandoned`: the center refused to go
   * on (for M4/S4/renew/redeem that means nothing moved); the journal is
   * cleared and the wallet keeps the scrip that is live.
   */
  outcome: "completed" | "abandoned";
  result?: EarnResult | BuyResult | RenewResult | RedeemResult;
  /** Why it was abandoned. */
  error?: ScripwireError;
}

export interface CenterInfo {
  url: string;
  center: { dnsName: string; ipAddr: string; serverName: string; port: number };
  publicKey: string;
  acceptedHashAlgorithms: string[];
  currencies: string[];
  redeemThreshold: Record<string, bigint>;
  scripLifetimeSeconds: bigint;
  /** Whether the key matches this wallet's pinned key; undefined for an unregistered wallet. */
  pinned?: boolean;
}

export interface Catalog {
  vendorId: string;
  vendor: { dnsName: string; serverName: string };
  entries: { requestUrl: string; title: string; price: bigint; currency: string; methods: DeliveryMethodName[] }[];
  items: { itemId: string; kind: "AD" | "SURVEY" | "QUIZ"; prompt: string; choices: string[]; reward: bigint; currency: string; campaignId: string }[];
}

function hdr(cmdType: CmdType, nowMs: number): HeaderType {
  return create(HeaderTypeSchema, { cmdType, protocolVersion: PROTOCOL_VERSION, serverDateUnixMs: BigInt(nowMs) });
}

function code(c: CmdType): string {
  return CmdType[c] ?? String(c);
}

function randomId(prefix: string): string {
  return `${prefix}${randomBytes(16).toString("hex")}`;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

function sameId(a: { secretId: number; serialNumber: bigint } | undefined, b: { secretId: number; serialNumber: bigint }): boolean {
  return !!a && a.secretId === b.secretId && a.serialNumber === b.serialNumber;
}

function clone<T>(v: T): T {
  return JSON.parse(JSON.stringify(v)) as T;
}

/**
 * A customer's wallet: one live scrip at one payment center.
 *
 * @example
 * ```ts
 * import { Wallet, FileWalletStore } from "scripwire/wallet";
 * const wallet = await Wallet.open({ store: new FileWalletStore("wallet.json") });
 * if (!wallet.registered) await wallet.register("http://127.0.0.1:7100", { name: "Kim" });
 * await wallet.earn("http://127.0.0.1:7200", "q1", "hash");
 * const { delivery } = await wallet.buy("http://127.0.0.1:7200", "/articles/hash-cash", "VIEW");
 * console.log(wallet.balance().value, new TextDecoder().decode(delivery?.content));
 * await wallet.close();
 * ```
 */
export class Wallet {
  private state: WalletState | undefined;
  private secret: Uint8Array | undefined;
  private center: CenterClient | undefined;
  private centerInfoCache: GetCenterInfoResponse | undefined;
  private readonly sellers = new Map<string, SellerClient>();
  private queue: Promise<unknown> = Promise.resolve();
  private closed = false;
  private readonly clock: () => number;
  private readonly maxRetransmissions: number;
  /** Why the automatic recovery on open could not finish, if it could not. The journal is kept. */
  recoveryError: ScripwireError | undefined;
  /** What the automatic recovery on open did, if there was anything to recover. */
  recovery: RecoveryResult | undefined;

  private constructor(private readonly opts: WalletOptions) {
    this.clock = opts.clock ?? Date.now;
    this.maxRetransmissions = opts.maxRetransmissions ?? RETRANSMISSIONS_MAX_DEFAULT;
  }

  /**
   * Opens a wallet on a store (locking it if the store can), and finishes any
   * operation an earlier process left in the journal.
   *
   * @example
   * ```ts
   * const wallet = await Wallet.open({ store: new MemoryWalletStore(), protocol: "grpc" });
   * ```
   * @throws {StateError} WALLET_LOCKED, PASSPHRASE_REQUIRED, BAD_WALLET_FILE.
   * @throws {AuthenticationError} BAD_PASSPHRASE.
   */
  static async open(opts: WalletOptions): Promise<Wallet> {
    const w = new Wallet(opts);
    await opts.store.lock?.();
    try {
      w.state = await opts.store.load();
      if (w.state && w.state.version !== 1) throw new StateError("BAD_WALLET_FILE", `wallet state version ${String(w.state.version)} is not supported`);
      if (w.state?.pending && opts.recoverOnOpen !== false) {
        try {
          w.recovery = await w.recover();
        } catch (e) {
          if (!(e instanceof ScripwireError)) throw e;
          w.recoveryError = e;
        }
      }
      return w;
    } catch (e) {
      await w.close();
      throw e;
    }
  }

  /** Closes connections and releases the store's lock. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.queue.catch(() => {});
    this.center?.close();
    for (const s of this.sellers.values()) s.close();
    this.sellers.clear();
    await this.opts.store.unlock?.();
  }

  /** Whether the wallet has registered with a center. */
  get registered(): boolean {
    return this.state !== undefined;
  }

  /** The wallet id, customer id and center, or undefined before registration. */
  get identity(): { walletId: string; customId: { secretId: number; serialNumber: bigint }; centerUrl: string; centerPublicKey: string } | undefined {
    const s = this.state;
    if (!s) return undefined;
    return {
      walletId: s.walletId,
      customId: { secretId: s.customId.secretId, serialNumber: BigInt(s.customId.serialNumber) },
      centerUrl: this.centerUrl(),
      centerPublicKey: s.centerPublicKey,
    };
  }

  /** The journalled operation, if one is unfinished. */
  get pending(): PendingOperation | null {
    return this.state?.pending ? clone(this.state.pending) : null;
  }

  // ------------------------------------------------------------------ plumbing

  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    if (this.closed) return Promise.reject(new StateError("WALLET_CLOSED", "the wallet is closed"));
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => {});
    return run;
  }

  private progress(step: string, message: string): void {
    this.opts.onProgress?.({ step, message });
  }

  private async hook(step: WalletStep): Promise<void> {
    await this.opts.onStep?.(step);
  }

  private st(): WalletState {
    if (!this.state) {
      throw new StateError("NOT_REGISTERED", "this wallet is not registered with a payment center", {
        hint: "run 'scripwire wallet register --center <url>' first",
      });
    }
    return this.state;
  }

  private centerUrl(): string {
    return this.opts.centerUrl ?? this.st().centerUrl;
  }

  private cs(): Uint8Array {
    this.secret ??= fromHexString(this.st().customSecret);
    return this.secret;
  }

  private customId(): { secretId: number; serialNumber: bigint } {
    const c = this.st().customId;
    return { secretId: c.secretId, serialNumber: BigInt(c.serialNumber) };
  }

  private scrip(): ScripType {
    return decodeScrip(this.st().scrip);
  }

  private centerClient(url = this.centerUrl()): CenterClient {
    if (this.center && this.center.baseUrl === url) return this.center;
    this.center?.close();
    this.center = new CenterClient(url, { protocol: this.opts.protocol, timeoutMs: this.opts.timeoutMs, ca: this.opts.ca, transport: this.opts.transport?.(url, "center") });
    this.centerInfoCache = undefined;
    return this.center;
  }

  private seller(url: string): SellerClient {
    let s = this.sellers.get(url);
    if (!s) {
      s = new SellerClient(url, { protocol: this.opts.protocol, timeoutMs: this.opts.timeoutMs, ca: this.opts.ca, transport: this.opts.transport?.(url, "seller") });
      this.sellers.set(url, s);
    }
    return s;
  }

  /** Saves `mutate(copy of state)`; the in-memory state changes only once the save is durable. */
  private async persist(mutate: (s: WalletState) => void): Promise<void> {
    const next = clone(this.st());
    mutate(next);
    if (next.history.length > HISTORY_ENTRIES_MAX) next.history.splice(0, next.history.length - HISTORY_ENTRIES_MAX);
    const receipts = Object.values(next.receipts);
    if (receipts.length > RECEIPTS_MAX) {
      receipts.sort((a, b) => a.paidAtMs - b.paidAtMs);
      for (const r of receipts.slice(0, receipts.length - RECEIPTS_MAX)) delete next.receipts[r.tranId];
    }
    await this.opts.store.save(next);
    this.state = next;
  }

  private async setPending(p: PendingOperation | null): Promise<void> {
    await this.persist((s) => {
      s.pending = p;
    });
  }

  private hash(c: CmdType | string, contextId: string, pCount: number, scrip: ScripType, extra: Pick<MessageHashInput, "order" | "amount" | "account"> = {}): Uint8Array {
    return computeMessageHash(scrip.hashAlgorithm, this.cs(), { code: typeof c === "string" ? c : code(c), contextId, pCount, scrip, ...extra });
  }

  /** Verifies a reply's hash; a hash under an algorithm we cannot compute fails like a wrong one. */
  private verified(c: CmdType | string, contextId: string, pCount: number, scrip: ScripType, hash: Uint8Array, extra: Pick<MessageHashInput, "order" | "amount" | "account"> = {}): boolean {
    try {
      return verifyMessageHash(scrip.hashAlgorithm, this.cs(), { code: typeof c === "string" ? c : code(c), contextId, pCount, scrip, ...extra }, hash);
    } catch {
      return false;
    }
  }

  /**
   * A GM5_2..GM5_4 / PM5_2..PM5_3 refusal echoes our scrip (and pOder) with a
   * hash under Custom_Secret: only the center can make it. The wallet acts on
   * a refusal (it may drop the journal), so a forged one must not count.
   */
  private checkRefusal(what: string, c: CmdType, tranId: string, presented: ScripType, echoed: ScripType | undefined, pCount: number, hash: Uint8Array, order?: Offer): void {
    const same = echoed?.scrip?.scripId?.serialNumber === presented.scrip!.scripId!.serialNumber;
    if (!echoed || !same || !this.verified(c, tranId, pCount, echoed, hash, order ? { order } : {})) {
      throw new IntegrityError("BAD_REPLY_HASH", `${what}: the ${code(c)} refusal does not authenticate under Custom_Secret; it was ignored`);
    }
  }

  /**
   * Verifies an M7/PM7 scrip hash. The spec binds it to the request's
   * `p_count + 1`, but the center replays the reply it stored for the FIRST
   * confirmation, bound to that request's pCount; the reply has no p_count
   * field to say which. So accept the pCounts this wallet actually sent for
   * the step (0..pCount, each + 1): still a MAC under Custom_Secret over this
   * scrip, this TranID and this message code.
   */
  private verifiedConfirmation(c: CmdType, tranId: string, pCountSent: number, scrip: ScripType, hash: Uint8Array): boolean {
    for (let p = pCountSent; p >= 0; p--) if (this.verified(c, tranId, p + 1, scrip, hash)) return true;
    return false;
  }

  /**
   * The checks a scrip must pass before the wallet adopts it (after its hash
   * verified): ours, our currency, our center, the expected value.
   */
  private checkAdoptable(s: ScripType | undefined, expectValue: bigint, what: string): ScripType {
    const st = this.st();
    const b = s?.scrip;
    const fail = (why: string) => new IntegrityError("UNEXPECTED_SCRIP", `${what}: ${why}; the scrip was not adopted`);
    if (!s || !b || !b.scripId) throw fail("no scrip in the reply");
    if (!sameId(b.customId, this.customId())) throw fail("it is made out to another customer");
    if (b.currency !== st.currency) throw fail(`it is in ${b.currency}, the wallet holds ${st.currency}`);
    if (!b.vendorId || b.vendorId.dnsName !== st.center.dnsName || b.vendorId.port !== st.center.port) throw fail("it names another issuer");
    if (b.value !== expectValue) throw fail(`it holds ${b.value} ${b.currency}; ${expectValue} was due`);
    if (s.certificate.length !== 32) throw fail("its certificate is not 32 bytes");
    return s;
  }

  private retryDelay(n: number): Promise<void> {
    return sleep(Math.min(RETRY_DELAY_MS_BASE * 2 ** n, RETRY_DELAY_MS_MAX));
  }

  /** GetCenterInfo once per wallet instance, refusing to continue if the center's key is not the pinned one. */
  private async ensureCenter(): Promise<GetCenterInfoResponse> {
    const client = this.centerClient();
    if (this.centerInfoCache) return this.centerInfoCache;
    const info = await client.getCenterInfo();
    const st = this.st();
    const got = toHexString(info.publicKey);
    if (got !== st.centerPublicKey) {
      throw new StateError("PINNED_KEY_MISMATCH", `the center at ${client.baseUrl} presents key ${got}, but this wallet pinned ${st.centerPublicKey}`, {
        hint: "this is not the center the wallet registered with (or its key was replaced); do not continue unless its operator confirms the new key",
      });
    }
    this.centerInfoCache = info;
    return info;
  }

  /** Before a new operation: registered, reachable center with the pinned key, and no unfinished operation. */
  private async ready(): Promise<void> {
    this.st();
    await this.ensureCenter();
    if (this.state!.pending) {
      try {
        await this.recoverLocked();
      } catch (e) {
        throw new StateError("PENDING_OPERATION", `the previous ${this.state!.pending?.kind ?? "operation"} is not finished: ${(e as Error).message}`, {
          hint: "it resumes automatically; try again when the center is reachable",
          cause: e,
        });
      }
    }
  }

  // ------------------------------------------------------------------ queries

  /**
   * The live scrip's value, read locally (no network).
   *
   * @throws {StateError} NOT_REGISTERED.
   */
  balance(): Balance {
    const s = this.scrip();
    const b = s.scrip!;
    const p = this.st().pending;
    const expiresAt = new Date(Number(b.expirationDateUnix) * 1000);
    return {
      value: b.value,
      currency: b.currency,
      serial: b.scripId!.serialNumber,
      expiresAt,
      expired: expiresAt.getTime() < this.clock(),
      pending: p ? { kind: p.kind, id: p.id, step: p.step } : null,
    };
  }

  /**
   * Everything the wallet did, oldest first.
   *
   * @throws {StateError} NOT_REGISTERED.
   */
  history(): HistoryEntry[] {
    return this.st().history.map(({ atMs, amount, balance, serial, ...rest }) => ({
      ...rest,
      at: new Date(atMs),
      amount: BigInt(amount),
      balance: BigInt(balance),
      serial: BigInt(serial),
    }));
  }

  /** Receipts kept for redelivery, newest first. */
  receipts(): { tranId: string; requestUrl: string; method: DeliveryMethodName; sellerUrl: string; paidAt: Date; receipt: Receipt }[] {
    return Object.values(this.st().receipts)
      .sort((a, b) => b.paidAtMs - a.paidAtMs)
      .map((r) => ({ tranId: r.tranId, requestUrl: r.requestUrl, method: r.method, sellerUrl: r.sellerUrl, paidAt: new Date(r.paidAtMs), receipt: decodeReceipt(r.receipt) }));
  }

  /**
   * The center's public facts (GetCenterInfo); for a registered wallet, also
   * whether its key matches the pinned one.
   *
   * @throws {UnavailableError} the center could not be reached.
   */
  centerInfo(centerUrl?: string): Promise<CenterInfo> {
    return this.exclusive(async () => {
      const url = centerUrl ?? this.centerUrl();
      const own = this.state !== undefined && url === this.centerUrl();
      const client = own ? this.centerClient() : new CenterClient(url, { protocol: this.opts.protocol, timeoutMs: this.opts.timeoutMs, ca: this.opts.ca, transport: this.opts.transport?.(url, "center") });
      let info: GetCenterInfoResponse;
      try {
        info = await client.getCenterInfo();
      } finally {
        if (!own) client.close();
      }
      const key = toHexString(info.publicKey);
      return {
        url,
        center: { dnsName: info.center?.dnsName ?? "", ipAddr: info.center?.ipAddr ?? "", serverName: info.center?.serverName ?? "", port: info.center?.port ?? 0 },
        publicKey: key,
        acceptedHashAlgorithms: info.acceptedHashAlgorithms.map((a) => HashAlgorithm[a] ?? String(a)),
        currencies: [...info.currencies],
        redeemThreshold: { ...info.redeemThreshold },
        scripLifetimeSeconds: info.scripLifetimeSeconds,
        pinned: this.state ? key === this.state.centerPublicKey : undefined,
      };
    });
  }

  /**
   * A seller's catalog and campaign items. Works before registration.
   *
   * @throws {UnavailableError} the seller could not be reached.
   */
  catalog(sellerUrl: string): Promise<Catalog> {
    return this.exclusive(async () => {
      const c = await this.seller(sellerUrl).getCatalog();
      const kind = (k: CampaignItemKind) => (k === CampaignItemKind.QUIZ ? "QUIZ" : k === CampaignItemKind.SURVEY ? "SURVEY" : "AD") as Catalog["items"][number]["kind"];
      return {
        vendorId: c.vendorId,
        vendor: { dnsName: c.vendor?.dnsName ?? "", serverName: c.vendor?.serverName ?? "" },
        entries: c.entries.map((e) => ({ requestUrl: e.requestUrl, title: e.title, price: e.price, currency: e.currency, methods: e.deliveryMethods.map(methodName) })),
        items: c.campaignItems.map((i) => ({ itemId: i.itemId, kind: kind(i.kind), prompt: i.prompt, choices: [...i.choices], reward: i.reward, currency: i.currency, campaignId: i.campaignId })),
      };
    });
  }

  // ------------------------------------------------------------------ R1 -> R2

  /**
   * Registers with a payment center (R1 -> R2): pins the center's public key,
   * seals a fresh session key to it, and receives a zero-value scrip and the
   * Custom_Secret every later message is authenticated with.
   *
   * @example
   * ```ts
   * await wallet.register("http://127.0.0.1:7100", { name: "Kim", email: "kim@example.com" });
   * ```
   * @throws {StateError} ALREADY_REGISTERED, or PINNED_KEY_MISMATCH if `pinnedPublicKey` is not the center's key.
   * @throws {IntegrityError} the reply did not decrypt or its scrip is not what was asked.
   * @throws {UnavailableError} the center could not be reached.
   */
  register(centerUrl: string, profile: RegisterProfile = {}, opts: RegisterOptions = {}): Promise<RegisterResult> {
    return this.exclusive(async () => {
      if (this.state) {
        throw new StateError("ALREADY_REGISTERED", `this wallet is already registered (customer ${this.state.customId.serialNumber} at ${this.state.centerUrl})`, {
          hint: "use another wallet file for another registration",
        });
      }
      const center = this.centerClient(centerUrl);
      this.progress("info", `info → center: fetching the center's public key from ${centerUrl}`);
      const info = await center.getCenterInfo();
      const key = toHexString(info.publicKey);
      if (opts.pinnedPublicKey !== undefined) {
        const want = typeof opts.pinnedPublicKey === "string" ? opts.pinnedPublicKey.toLowerCase() : toHexString(opts.pinnedPublicKey);
        if (want !== key) {
          throw new StateError("PINNED_KEY_MISMATCH", `the center at ${centerUrl} presents key ${key}, not the pinned ${want}`, {
            hint: "you may be talking to the wrong server; check the URL and the key with the center's operator",
          });
        }
      }
      if (info.publicKey.length !== 32) throw new IntegrityError("BAD_CENTER_KEY", "the center's public key is not 32 bytes");
      const currency = opts.currency ?? info.currencies[0] ?? "";
      const walletId = randomBytes(16).toString("hex");
      const ks = new Uint8Array(randomBytes(32));
      const sealed = sealSessionKey(info.publicKey, walletId, ks);
      this.progress("R1", `R1 → center: registering wallet ${walletId}`);
      let res;
      for (let n = 0; ; n++) {
        try {
          res = await center.register({
            header: hdr(CmdType.UM1, this.clock()),
            walletId,
            name: profile.name ?? "",
            address: profile.address ?? "",
            email: profile.email ?? "",
            etc: profile.etc ?? "",
            sealedSessionKey: sealed,
            currency: opts.currency ?? "",
          });
          break;
        } catch (e) {
          // The same wallet id and sealed key replay the same registration, so retrying is safe.
          if (e instanceof UnavailableError && n < this.maxRetransmissions) {
            await this.retryDelay(n);
            continue;
          }
          throw e;
        }
      }
      const scrip = res.scrip;
      const body = scrip?.scrip;
      if (!scrip || !body || !body.customId || !body.scripId) throw new IntegrityError("BAD_REGISTRATION", "R2 carried no scrip");
      let secret: Uint8Array;
      try {
        secret = decryptCustomSecret(ks, walletId, body.customId, res.encryptedCustomSecret);
      } catch (e) {
        throw new IntegrityError("BAD_REGISTRATION", "KS[Custom_Secret] in R2 does not decrypt under our session key", { cause: e });
      }
      const c = info.center;
      if (body.value !== 0n || body.currency !== currency || !c || body.vendorId?.dnsName !== c.dnsName || body.vendorId?.port !== c.port) {
        throw new IntegrityError("BAD_REGISTRATION", "the R2 scrip is not a zero-value scrip of this center in the requested currency");
      }
      const now = this.clock();
      const state: WalletState = {
        version: 1,
        walletId,
        centerUrl,
        centerPublicKey: key,
        center: { dnsName: c.dnsName, ipAddr: c.ipAddr, serverName: c.serverName, port: c.port },
        currency,
        customId: { secretId: body.customId.secretId, serialNumber: body.customId.serialNumber.toString() },
        customSecret: toHexString(secret),
        scrip: encodeScrip(scrip),
        pending: null,
        history: [{ kind: "registered", atMs: now, amount: "0", balance: "0", currency, serial: body.scripId.serialNumber.toString() }],
        receipts: {},
        createdAtMs: now,
      };
      await this.opts.store.save(state);
      this.state = state;
      this.secret = secret;
      this.centerInfoCache = info;
      this.progress("R2", `R2 ← center: customer ${body.customId.serialNumber}, scrip 0 ${currency}`);
      return {
        walletId,
        customId: { secretId: body.customId.secretId, serialNumber: body.customId.serialNumber },
        currency,
        centerPublicKey: key,
        serial: body.scripId.serialNumber,
      };
    });
  }

  // ------------------------------------------------------------------ M1 -> M7

  /**
   * Earns scrip by answering a seller's quiz, survey or advertisement:
   * M1 -> M2 (permit) -> M3 -> M4 -> M5 (new scrip, verified) -> M6 -> M7.
   *
   * @example
   * ```ts
   * const r = await wallet.earn(sellerUrl, "q1", "hash");
   * console.log(`+${r.amount} ${r.currency}, balance ${r.balance}`);
   * ```
   * @throws {RefusedError} ISSUE_REFUSED (wrong answer, GM2_2), ALREADY_REWARDED / BUDGET_EXHAUSTED (GM5_3), EXPIRED (GM5_2), OFFER_EXPIRED.
   * @throws {UnavailableError} a server could not be reached; an M4 already sent is finished on the next open.
   * @throws {IntegrityError} the new scrip's hash did not verify; it was not adopted.
   * @throws {StateError} NOT_REGISTERED, PINNED_KEY_MISMATCH, PENDING_OPERATION.
   */
  earn(sellerUrl: string, itemId: string, answer: string): Promise<EarnResult> {
    return this.exclusive(async () => {
      if (!itemId) throw new RangeError('"itemId" expected a campaign item id');
      if (answer.length > ANSWER_CHARS_MAX) throw new RangeError(`"answer" expected at most ${ANSWER_CHARS_MAX} characters`);
      await this.ready();
      const st = this.st();
      this.progress("M1", `M1 → seller: answering ${itemId}`);
      const m2 = await this.seller(sellerUrl).requestIssue({ header: hdr(CmdType.GM1_1, this.clock()), item: itemId, value: answer, customId: this.customId() });
      const h = m2.header;
      if (h?.cmdType === CmdType.GM2_2) {
        this.progress("M2", `M2 ← seller: refused (${h.errorMessage})`);
        throw new RefusedError("GM2_2", h.errorReason || "ISSUE_REFUSED", h.errorMessage || "the seller refused to issue scrip", { document: m2.htmlDocument });
      }
      const permit = m2.permit;
      if (h?.cmdType !== CmdType.GM2_1 || !permit) throw new IntegrityError("UNEXPECTED_REPLY", `M2: expected GM2_1 or GM2_2, got ${h ? code(h.cmdType) : "no header"}`);
      if (permit.kind !== OfferKind.ISSUE || permit.item !== itemId || permit.currency !== st.currency || permit.amount <= 0n || !sameId(permit.customId, this.customId())) {
        throw new IntegrityError("UNEXPECTED_OFFER", "M2: the permit is not an issue permit for this item, customer and currency");
      }
      this.progress("M2", `M2 ← seller: permit ${permit.amount} ${permit.currency} (TranID ${permit.tranId})`);
      this.progress("M3", `M3 → center: presenting the permit`);
      await this.centerClient().initIssue({ header: hdr(CmdType.GM3_1, this.clock()), permit });
      await this.setPending({
        kind: "earn",
        step: "M4",
        id: permit.tranId,
        pCount: 0,
        scrip: st.scrip,
        offer: encodeOffer(permit),
        sellerUrl,
        item: itemId,
        startedAtMs: this.clock(),
      });
      await this.hook("before-M4");
      return this.withRecoveredScrip(() => this.finishEarn(false), "M6");
    });
  }

  private async finishEarn(recovering: boolean): Promise<EarnResult> {
    let p = this.st().pending!;
    const permit = decodeOffer(p.offer!);
    if (p.step === "M4") {
      const newScrip = await this.issueStep(p, recovering);
      await this.persist((s) => {
        s.scrip = encodeScrip(newScrip);
        s.pending = { ...p, step: "M6", pCount: 0, newScrip: encodeScrip(newScrip) };
      });
      p = this.st().pending!;
      await this.hook("after-M5-received");
      await this.confirmIssueStep(p, false);
    } else {
      // Journalled at M6: resend with pCount + 1 when recovering; fresh after a probe found the M5 scrip.
      await this.confirmIssueStep(p, recovering);
    }
    const s = this.scrip().scrip!;
    await this.persist((st) => {
      st.pending = null;
      st.history.push({
        kind: "earned",
        atMs: this.clock(),
        amount: permit.amount.toString(),
        balance: s.value.toString(),
        currency: s.currency,
        serial: s.scripId!.serialNumber.toString(),
        tranId: p.id,
        item: p.item,
        sellerUrl: p.sellerUrl,
        vendorId: permit.vendorId,
        ...(recovering ? { recovered: true } : {}),
      });
    });
    return {
      tranId: p.id,
      item: p.item ?? "",
      vendorId: permit.vendorId,
      amount: permit.amount,
      balance: s.value,
      currency: s.currency,
      serial: s.scripId!.serialNumber,
      recovered: recovering,
    };
  }

  /**
   * Sends M4 until it gets a definitive answer; returns the verified M5 scrip.
   * A refusal where nothing moved clears the journal and throws; an unknown
   * outcome (unreachable, unverifiable) keeps the journal and throws.
   */
  private async issueStep(p: PendingOperation, recovering: boolean): Promise<ScripType> {
    const scrip = decodeScrip(p.scrip);
    const permit = decodeOffer(p.offer!);
    const tranId = p.id;
    let pCount = recovering ? p.pCount + 1 : p.pCount;
    const uncertain = () => recovering || pCount > 0;
    for (let tries = 0; ; tries++) {
      if (pCount !== this.st().pending!.pCount) await this.persist((s) => void (s.pending!.pCount = pCount));
      this.progress("M4", `M4 → center: issue ${permit.amount} ${permit.currency} for TranID ${tranId}${pCount ? ` (retransmission ${pCount})` : ""}`);
      let res;
      try {
        res = await this.centerClient().issue({ header: hdr(CmdType.GM4_1, this.clock()), tranId, scrip, scripHash: this.hash(CmdType.GM4_1, tranId, pCount, scrip), pCount });
      } catch (e) {
        if (e instanceof UnavailableError && tries < this.maxRetransmissions) {
          await this.retryDelay(tries);
          pCount++;
          continue;
        }
        throw await this.settleUnknown(e, uncertain(), () => this.probeIssue(tranId, scrip));
      }
      await this.hook("after-M4-sent");
      const h = res.header;
      switch (h?.cmdType) {
        case CmdType.GM5_1: {
          if (!this.verified(CmdType.GM5_1, tranId, res.pCount, res.newScrip ?? scrip, res.newScripHash)) {
            throw new IntegrityError("BAD_REPLY_HASH", "M5: the new scrip's hash does not verify under Custom_Secret");
          }
          const s = this.checkAdoptable(res.newScrip, scrip.scrip!.value + permit.amount, "M5");
          this.progress("M5", `M5 ← center: new scrip ${s.scrip!.value} ${s.scrip!.currency}`);
          return s;
        }
        case CmdType.GM5_4:
          this.checkRefusal("M5", h.cmdType, tranId, scrip, res.scrip, res.pCount, res.scripHash);
          this.progress("M5", `M5 ← center: server error (${h.errorMessage}); retransmitting`);
          if (tries < this.maxRetransmissions) {
            await this.retryDelay(tries);
            pCount = Math.max(pCount + 1, res.pCount);
            continue;
          }
          throw new UnavailableError(h.errorReason || "SERVER_ERROR", `payment center: ${h.errorMessage || "server error"} (after ${tries + 1} tries)`);
        case CmdType.GM5_2:
        case CmdType.GM5_3: {
          this.checkRefusal("M5", h.cmdType, tranId, scrip, res.scrip, res.pCount, res.scripHash);
          this.progress("M5", `M5 ← center: refused (${h.errorReason})`);
          const refusal = new RefusedError(code(h.cmdType), h.errorReason || "REFUSED", `payment center: ${h.errorMessage || "issue refused"}`);
          throw await this.settleUnknown(refusal, uncertain(), () => this.probeIssue(tranId, scrip));
        }
        default:
          throw new IntegrityError("UNEXPECTED_REPLY", `M5: unexpected cmdType ${h ? code(h.cmdType) : "(no header)"}`);
      }
    }
  }

  /**
   * After a definitive error on M4/S4: if the request may have executed
   * before (a retransmission), ask the center (GM6_2/PM6_2) whether it did.
   * If it did, the recovered scrip is returned through `RecoveredScrip`;
   * if not, the journal is cleared (nothing moved) and the error returned.
   * Unavailable errors keep the journal.
   */
  private async settleUnknown(e: unknown, uncertain: boolean, probe: () => Promise<ScripType | undefined>): Promise<unknown> {
    if (!(e instanceof ScripwireError) || e instanceof UnavailableError || e instanceof IntegrityError) return e;
    if (uncertain) {
      const found = await probe();
      if (found) return new RecoveredScrip(found);
    }
    await this.setPending(null);
    return e;
  }

  /** GM6_2 presenting the scrip we hold: the center resends the M5 scrip if the TranID executed. */
  private async probeIssue(tranId: string, scrip: ScripType): Promise<ScripType | undefined> {
    this.progress("M6", `M6 → center: asking whether TranID ${tranId} executed (GM6_2)`);
    let res;
    try {
      res = await this.centerClient().confirmIssue({ header: hdr(CmdType.GM6_2, this.clock()), tranId, newScrip: scrip, newScripHash: this.hash(CmdType.GM6_2, tranId, 0, scrip), pCount: 0 });
    } catch (e) {
      if (e instanceof RefusedError) return undefined;
      throw e;
    }
    if (res.state !== TransactionState.EXECUTED && res.state !== TransactionState.CONFIRMED) return undefined;
    if (!res.scrip || !this.verified(CmdType.GM7_1, tranId, 1, res.scrip, res.scripHash)) {
      throw new IntegrityError("BAD_REPLY_HASH", "M7 (GM6_2): the resent scrip's hash does not verify under Custom_Secret");
    }
    return res.scrip;
  }

  /** Sends M6 (GM6_1) until M7 confirms; verifies M7. */
  private async confirmIssueStep(p: PendingOperation, recovering: boolean): Promise<void> {
    const newScrip = decodeScrip(p.newScrip!);
    const tranId = p.id;
    let pCount = recovering ? p.pCount + 1 : p.pCount;
    for (let tries = 0; ; tries++) {
      if (pCount !== this.st().pending!.pCount) await this.persist((s) => void (s.pending!.pCount = pCount));
      this.progress("M6", `M6 → center: accepting the new scrip${pCount ? ` (retransmission ${pCount})` : ""}`);
      let res;
      try {
        res = await this.centerClient().confirmIssue({
          header: hdr(CmdType.GM6_1, this.clock()),
          tranId,
          newScrip,
          newScripHash: this.hash(CmdType.GM6_1, tranId, pCount, newScrip),
          pCount,
        });
      } catch (e) {
        if (e instanceof UnavailableError && tries < this.maxRetransmissions) {
          await this.retryDelay(tries);
          pCount++;
          continue;
        }
        if (e instanceof ScripwireError && !(e instanceof UnavailableError)) {
          // The value already moved with M5 and the scrip is ours; only the
          // confirmation was refused. Keep the scrip, close the journal.
          await this.setPending(null);
        }
        throw e;
      }
      await this.hook("after-M6-sent");
      const s = res.scrip;
      if (res.header?.cmdType !== CmdType.GM7_1 || res.state !== TransactionState.CONFIRMED || !s || s.scrip?.scripId?.serialNumber !== newScrip.scrip!.scripId!.serialNumber) {
        throw new IntegrityError("UNEXPECTED_REPLY", `M7: expected a confirmation of the new scrip, got state ${TransactionState[res.state] ?? res.state}`);
      }
      if (!this.verifiedConfirmation(CmdType.GM7_1, tranId, pCount, s, res.scripHash)) throw new IntegrityError("BAD_REPLY_HASH", "M7: the scrip hash does not verify under Custom_Secret");
      this.progress("M7", `M7 ← center: issuance confirmed`);
      return;
    }
  }

  // ------------------------------------------------------------------ S1 -> S7

  /**
   * Buys content: S1 -> S2 (pOder) -> S3 -> S4 -> S5 (change, verified) ->
   * S6 -> receipt -> S7 (content). The receipt is kept for `redeliver`.
   *
   * @example
   * ```ts
   * const r = await wallet.buy(sellerUrl, "/articles/hash-cash", "VIEW");
   * console.log(new TextDecoder().decode(r.delivery!.content));
   * ```
   * @throws {RefusedError} NOT_FOR_SALE (PM2_2), INSUFFICIENT_VALUE / EXPIRED (PM5_2), PRICE_TOO_HIGH (over `maxPrice`).
   * @throws {UnavailableError} a server could not be reached; an S4 already sent is finished on the next open.
   * @throws {IntegrityError} the change scrip's hash did not verify; it was not adopted.
   * @throws {StateError} NOT_REGISTERED, PINNED_KEY_MISMATCH, PENDING_OPERATION.
   */
  buy(sellerUrl: string, requestUrl: string, method: DeliveryMethodName, opts: { maxPrice?: bigint } = {}): Promise<BuyResult> {
    return this.exclusive(async () => {
      const pMethod = methodValue(method);
      await this.ready();
      const st = this.st();
      this.progress("S1", `S1 → seller: asking for ${requestUrl} (${method})`);
      const s2 = await this.seller(sellerUrl).requestService({ header: hdr(CmdType.PM1_1, this.clock()), requestUrl, pMethod, customId: this.customId() });
      const h = s2.header;
      if (h?.cmdType === CmdType.PM2_2) {
        this.progress("S2", `S2 ← seller: not for sale (${h.errorMessage})`);
        throw new RefusedError("PM2_2", h.errorReason || "NOT_FOR_SALE", h.errorMessage || "not for sale", { document: s2.htmlDocument });
      }
      const order = s2.order;
      if (h?.cmdType !== CmdType.PM2_1 || !order) throw new IntegrityError("UNEXPECTED_REPLY", `S2: expected PM2_1 or PM2_2, got ${h ? code(h.cmdType) : "no header"}`);
      if (
        order.kind !== OfferKind.PAY ||
        order.item !== requestUrl ||
        order.deliveryMethod !== pMethod ||
        order.currency !== st.currency ||
        order.amount <= 0n ||
        !sameId(order.customId, this.customId())
      ) {
        throw new IntegrityError("UNEXPECTED_OFFER", "S2: the payment information is not for this URL, method, customer and currency");
      }
      this.progress("S2", `S2 ← seller: price ${order.amount} ${order.currency} (TranID ${order.tranId})`);
      if (opts.maxPrice !== undefined && order.amount > opts.maxPrice) {
        throw new RefusedError("PM2_1", "PRICE_TOO_HIGH", `the price is ${order.amount} ${order.currency}, above your limit of ${opts.maxPrice}`);
      }
      this.progress("S3", `S3 → center: presenting the payment information`);
      await this.centerClient().initPayment({ header: hdr(CmdType.PM3_1, this.clock()), order });
      await this.setPending({
        kind: "buy",
        step: "S4",
        id: order.tranId,
        pCount: 0,
        scrip: st.scrip,
        offer: encodeOffer(order),
        sellerUrl,
        item: requestUrl,
        method,
        startedAtMs: this.clock(),
      });
      await this.hook("before-S4");
      const r = await this.withRecoveredScrip(() => this.finishBuy(false), "S6");
      return this.deliverInto(r);
    });
  }

  private async deliverInto(r: BuyResult): Promise<BuyResult> {
    const rec = this.st().receipts[r.tranId]!;
    try {
      r.delivery = await this.deliver(rec.sellerUrl, r.receipt);
    } catch (e) {
      if (!(e instanceof ScripwireError)) throw e;
      r.deliveryError = e;
    }
    return r;
  }

  private async deliver(sellerUrl: string, receipt: Receipt): Promise<Delivery> {
    this.progress("S7", `S7 → seller: presenting the receipt for ${receipt.requestUrl}`);
    const d = await this.seller(sellerUrl).deliver({ header: hdr(CmdType.PM8_1, this.clock()), receipt });
    if (d.deliveryMethod !== receipt.deliveryMethod) throw new IntegrityError("UNEXPECTED_REPLY", "S7: content delivered by another method than paid for");
    const delivery: Delivery = { method: methodName(d.deliveryMethod), contentType: d.contentType, fileName: d.fileName, content: d.content };
    this.progress("S7", `S7 ← seller: ${d.content.length} bytes (${d.contentType})`);
    return delivery;
  }

  private async finishBuy(recovering: boolean): Promise<BuyResult> {
    let p = this.st().pending!;
    const order = decodeOffer(p.offer!);
    let receipt: Receipt;
    if (p.step === "S4") {
      const change = await this.payStep(p, recovering);
      await this.persist((s) => {
        s.scrip = encodeScrip(change);
        s.pending = { ...p, step: "S6", pCount: 0, newScrip: encodeScrip(change) };
      });
      p = this.st().pending!;
      await this.hook("after-S5-received");
      receipt = await this.confirmPaymentStep(p, order, false);
    } else {
      receipt = await this.confirmPaymentStep(p, order, recovering);
    }
    const s = this.scrip().scrip!;
    const now = this.clock();
    await this.persist((st) => {
      st.pending = null;
      st.history.push({
        kind: "bought",
        atMs: now,
        amount: (-order.amount).toString(),
        balance: s.value.toString(),
        currency: s.currency,
        serial: s.scripId!.serialNumber.toString(),
        tranId: p.id,
        item: p.item,
        method: p.method,
        sellerUrl: p.sellerUrl,
        vendorId: order.vendorId,
        ...(recovering ? { recovered: true } : {}),
      });
      st.receipts[p.id] = { tranId: p.id, sellerUrl: p.sellerUrl!, requestUrl: p.item!, method: p.method!, receipt: encodeReceipt(receipt), paidAtMs: now };
    });
    return {
      tranId: p.id,
      requestUrl: p.item!,
      method: p.method!,
      vendorId: order.vendorId,
      price: order.amount,
      balance: s.value,
      currency: s.currency,
      serial: s.scripId!.serialNumber,
      receipt,
      recovered: recovering,
    };
  }

  /** Sends S4 until a definitive answer; returns the verified change scrip. */
  private async payStep(p: PendingOperation, recovering: boolean): Promise<ScripType> {
    const scrip = decodeScrip(p.scrip);
    const order = decodeOffer(p.offer!);
    const tranId = p.id;
    let pCount = recovering ? p.pCount + 1 : p.pCount;
    const uncertain = () => recovering || pCount > 0;
    for (let tries = 0; ; tries++) {
      if (pCount !== this.st().pending!.pCount) await this.persist((s) => void (s.pending!.pCount = pCount));
      this.progress("S4", `S4 → center: paying ${order.amount} ${order.currency} for TranID ${tranId}${pCount ? ` (retransmission ${pCount})` : ""}`);
      let res;
      try {
        res = await this.centerClient().pay({ header: hdr(CmdType.PM4_1, this.clock()), scrip, order, hash: this.hash(CmdType.PM4_1, tranId, pCount, scrip, { order }), pCount });
      } catch (e) {
        if (e instanceof UnavailableError && tries < this.maxRetransmissions) {
          await this.retryDelay(tries);
          pCount++;
          continue;
        }
        throw await this.settleUnknown(e, uncertain(), () => this.probePayment(tranId, scrip));
      }
      await this.hook("after-S4-sent");
      const h = res.header;
      switch (h?.cmdType) {
        case CmdType.PM5_1: {
          if (!this.verified(CmdType.PM5_1, tranId, res.pCount, res.newScrip ?? scrip, res.newScripHash)) {
            throw new IntegrityError("BAD_REPLY_HASH", "S5: the change scrip's hash does not verify under Custom_Secret");
          }
          const s = this.checkAdoptable(res.newScrip, scrip.scrip!.value - order.amount, "S5");
          this.progress("S5", `S5 ← center: change ${s.scrip!.value} ${s.scrip!.currency}`);
          return s;
        }
        case CmdType.PM5_3:
          this.checkRefusal("S5", h.cmdType, tranId, scrip, res.scrip, res.pCount, res.hash, res.order);
          this.progress("S5", `S5 ← center: server error (${h.errorMessage}); retransmitting`);
          if (tries < this.maxRetransmissions) {
            await this.retryDelay(tries);
            pCount = Math.max(pCount + 1, res.pCount);
            continue;
          }
          throw new UnavailableError(h.errorReason || "SERVER_ERROR", `payment center: ${h.errorMessage || "server error"} (after ${tries + 1} tries)`);
        case CmdType.PM5_2: {
          this.checkRefusal("S5", h.cmdType, tranId, scrip, res.scrip, res.pCount, res.hash, res.order);
          this.progress("S5", `S5 ← center: refused (${h.errorReason})`);
          const refusal = new RefusedError("PM5_2", h.errorReason || "REFUSED", `payment center: ${h.errorMessage || "payment refused"}`);
          throw await this.settleUnknown(refusal, uncertain(), () => this.probePayment(tranId, scrip));
        }
        default:
          throw new IntegrityError("UNEXPECTED_REPLY", `S5: unexpected cmdType ${h ? code(h.cmdType) : "(no header)"}`);
      }
    }
  }

  /** PM6_2 presenting the scrip we hold: the center resends the change if the TranID executed. */
  private async probePayment(tranId: string, scrip: ScripType): Promise<ScripType | undefined> {
    this.progress("S6", `S6 → center: asking whether TranID ${tranId} executed (PM6_2)`);
    let res;
    try {
      res = await this.centerClient().confirmPayment({ header: hdr(CmdType.PM6_2, this.clock()), tranId, newScrip: scrip, newScripHash: this.hash(CmdType.PM6_2, tranId, 0, scrip), pCount: 0 });
    } catch (e) {
      if (e instanceof RefusedError) return undefined;
      throw e;
    }
    if (res.state !== TransactionState.EXECUTED && res.state !== TransactionState.CONFIRMED) return undefined;
    if (!res.scrip || !this.verified(CmdType.PM7_1, tranId, 1, res.scrip, res.scripHash)) {
      throw new IntegrityError("BAD_REPLY_HASH", "S6 (PM6_2): the resent scrip's hash does not verify under Custom_Secret");
    }
    return res.scrip;
  }

  /** Sends S6 (PM6_1) until the receipt comes back; verifies it. */
  private async confirmPaymentStep(p: PendingOperation, order: Offer, recovering: boolean): Promise<Receipt> {
    const newScrip = decodeScrip(p.newScrip!);
    const tranId = p.id;
    let pCount = recovering ? p.pCount + 1 : p.pCount;
    for (let tries = 0; ; tries++) {
      if (pCount !== this.st().pending!.pCount) await this.persist((s) => void (s.pending!.pCount = pCount));
      this.progress("S6", `S6 → center: accepting the change${pCount ? ` (retransmission ${pCount})` : ""}`);
      let res;
      try {
        res = await this.centerClient().confirmPayment({
          header: hdr(CmdType.PM6_1, this.clock()),
          tranId,
          newScrip,
          newScripHash: this.hash(CmdType.PM6_1, tranId, pCount, newScrip),
          pCount,
        });
      } catch (e) {
        if (e instanceof UnavailableError && tries < this.maxRetransmissions) {
          await this.retryDelay(tries);
          pCount++;
          continue;
        }
        if (e instanceof ScripwireError && !(e instanceof UnavailableError)) await this.setPending(null);
        throw e;
      }
      await this.hook("after-S6-sent");
      const s = res.scrip;
      if (res.header?.cmdType !== CmdType.PM7_1 || res.state !== TransactionState.CONFIRMED || !s || s.scrip?.scripId?.serialNumber !== newScrip.scrip!.scripId!.serialNumber) {
        throw new IntegrityError("UNEXPECTED_REPLY", `S6: expected a confirmation with a receipt, got state ${TransactionState[res.state] ?? res.state}`);
      }
      if (!this.verifiedConfirmation(CmdType.PM7_1, tranId, pCount, s, res.scripHash)) throw new IntegrityError("BAD_REPLY_HASH", "S6: the scrip hash does not verify under Custom_Secret");
      const r = res.receipt;
      if (
        !r ||
        r.tranId !== tranId ||
        r.vendorId !== order.vendorId ||
        r.requestUrl !== order.item ||
        r.price !== order.amount ||
        r.currency !== order.currency ||
        r.deliveryMethod !== order.deliveryMethod ||
        !sameId(r.customId, this.customId()) ||
        r.mac.length !== 32
      ) {
        throw new IntegrityError("BAD_RECEIPT", "S6: the receipt does not match the payment information");
      }
      this.progress("S6", `S6 ← center: receipt for ${r.requestUrl}, ${r.price} ${r.currency}`);
      return r;
    }
  }

  /**
   * Delivers purchased content again (S7) on the kept receipt, without paying again.
   *
   * @example
   * ```ts
   * const d = await wallet.redeliver(tranId);
   * ```
   * @throws {StateError} NO_RECEIPT if the wallet has no receipt for the TranID.
   * @throws {UnavailableError} the seller could not be reached.
   * @throws {AuthenticationError} the seller did not accept the receipt.
   */
  redeliver(tranId: string): Promise<Delivery> {
    return this.exclusive(async () => {
      const rec = this.st().receipts[tranId];
      if (!rec) throw new StateError("NO_RECEIPT", `this wallet holds no receipt for TranID ${tranId}`, { hint: "see 'scripwire wallet history' for the TranIDs of purchases" });
      return this.deliver(rec.sellerUrl, decodeReceipt(rec.receipt));
    });
  }

  // ------------------------------------------------------------------ renew / redeem

  /**
   * Replaces the live scrip (expired or not) by one with the same value, a
   * fresh serial and a fresh expiry.
   *
   * @example
   * ```ts
   * if (wallet.balance().expired) await wallet.renew();
   * ```
   * @throws {RefusedError} the center refused (e.g. SCRIP_NOT_LIVE).
   * @throws {UnavailableError} the center could not be reached; the renewal is finished on the next open.
   * @throws {IntegrityError} the new scrip's hash did not verify.
   */
  renew(): Promise<RenewResult> {
    return this.exclusive(async () => {
      await this.ready();
      await this.setPending({ kind: "renew", step: "RN1", id: randomId("rn_"), pCount: 0, scrip: this.st().scrip, startedAtMs: this.clock() });
      await this.hook("before-RN1");
      return this.finishRenew(false);
    });
  }

  private async finishRenew(recovering: boolean): Promise<RenewResult> {
    const p = this.st().pending!;
    const old = decodeScrip(p.scrip);
    const res = await this.replaceStep(p, recovering, "RN1", (pCount) =>
      this.centerClient().renew({ header: hdr(CmdType.RN1, this.clock()), requestId: p.id, scrip: old, scripHash: this.hash(CmdType.RN1, p.id, pCount, old), pCount }),
    );
    await this.hook("after-RN1-sent");
    if (!res.newScrip || !this.verified(CmdType.RN2, p.id, 0, res.newScrip, res.newScripHash)) {
      throw new IntegrityError("BAD_REPLY_HASH", "RN2: the new scrip's hash does not verify under Custom_Secret");
    }
    const s = this.checkAdoptable(res.newScrip, old.scrip!.value, "RN2");
    const b = s.scrip!;
    await this.persist((st) => {
      st.scrip = encodeScrip(s);
      st.pending = null;
      st.history.push({
        kind: "renewed",
        atMs: this.clock(),
        amount: "0",
        balance: b.value.toString(),
        currency: b.currency,
        serial: b.scripId!.serialNumber.toString(),
        requestId: p.id,
        ...(recovering ? { recovered: true } : {}),
      });
    });
    this.progress("RN2", `RN2 ← center: renewed ${b.value} ${b.currency} until ${new Date(Number(b.expirationDateUnix) * 1000).toISOString()}`);
    return {
      requestId: p.id,
      value: b.value,
      currency: b.currency,
      previousSerial: old.scrip!.scripId!.serialNumber,
      serial: b.scripId!.serialNumber,
      expiresAt: new Date(Number(b.expirationDateUnix) * 1000),
      recovered: recovering,
    };
  }

  /**
   * Sends a renew/redeem request until a definitive answer. These are
   * idempotent by request id at the center (a retransmission gets the stored
   * reply), so a definitive refusal means nothing moved: the journal is cleared.
   */
  private async replaceStep<T>(p: PendingOperation, recovering: boolean, label: "RN1" | "RD1", send: (pCount: number) => Promise<T>): Promise<T> {
    let pCount = recovering ? p.pCount + 1 : p.pCount;
    for (let tries = 0; ; tries++) {
      if (pCount !== this.st().pending!.pCount) await this.persist((s) => void (s.pending!.pCount = pCount));
      this.progress(label, `${label} → center: ${label === "RN1" ? "renewing the scrip" : `redeeming ${p.amount === "0" ? "everything" : p.amount} to ${p.account}`}${pCount ? ` (retransmission ${pCount})` : ""}`);
      try {
        return await send(pCount);
      } catch (e) {
        if (e instanceof UnavailableError && tries < this.maxRetransmissions) {
          await this.retryDelay(tries);
          pCount++;
          continue;
        }
        if (e instanceof ScripwireError && !(e instanceof UnavailableError)) await this.setPending(null);
        throw e;
      }
    }
  }

  /**
   * Exchanges scrip for real money (RD1 -> RD2): the center records a payout
   * to `payoutAccount` and returns a scrip with what is left.
   *
   * @param amount smallest units to redeem; 0n redeems everything.
   * @example
   * ```ts
   * const r = await wallet.redeem(5000n, "KB 123-45-6789");
   * console.log(r.payoutId);
   * ```
   * @throws {RefusedError} BELOW_THRESHOLD, INSUFFICIENT_VALUE.
   * @throws {UnavailableError} the center could not be reached; the redemption is finished on the next open.
   * @throws {IntegrityError} the new scrip's hash did not verify.
   */
  redeem(amount: bigint, payoutAccount: string): Promise<RedeemResult> {
    return this.exclusive(async () => {
      if (typeof amount !== "bigint" || amount < 0n) throw new RangeError('"amount" expected a non-negative bigint (0n redeems everything)');
      if (!payoutAccount || payoutAccount.length > 256) throw new RangeError('"payoutAccount" expected 1..256 characters');
      await this.ready();
      await this.setPending({
        kind: "redeem",
        step: "RD1",
        id: randomId("rd_"),
        pCount: 0,
        scrip: this.st().scrip,
        amount: amount.toString(),
        account: payoutAccount,
        startedAtMs: this.clock(),
      });
      await this.hook("before-RD1");
      return this.finishRedeem(false);
    });
  }

  private async finishRedeem(recovering: boolean): Promise<RedeemResult> {
    const p = this.st().pending!;
    const old = decodeScrip(p.scrip);
    const amount = BigInt(p.amount!);
    const account = p.account!;
    const res = await this.replaceStep(p, recovering, "RD1", (pCount) =>
      this.centerClient().redeem({
        header: hdr(CmdType.RD1, this.clock()),
        requestId: p.id,
        scrip: old,
        scripHash: this.hash(CmdType.RD1, p.id, pCount, old, { amount, account }),
        amount,
        payoutAccount: account,
        pCount,
      }),
    );
    await this.hook("after-RD1-sent");
    const payout = res.payout;
    if (!payout || payout.amount <= 0n || (amount !== 0n && payout.amount !== amount) || payout.payoutAccount !== account || payout.currency !== old.scrip!.currency) {
      throw new IntegrityError("UNEXPECTED_REPLY", "RD2: the payout is not what was asked");
    }
    if (!res.newScrip || !this.verified(CmdType.RD2, p.id, 0, res.newScrip, res.newScripHash, { amount: payout.amount, account })) {
      throw new IntegrityError("BAD_REPLY_HASH", "RD2: the new scrip's hash does not verify under Custom_Secret");
    }
    const s = this.checkAdoptable(res.newScrip, old.scrip!.value - payout.amount, "RD2");
    const b = s.scrip!;
    await this.persist((st) => {
      st.scrip = encodeScrip(s);
      st.pending = null;
      st.history.push({
        kind: "redeemed",
        atMs: this.clock(),
        amount: (-payout.amount).toString(),
        balance: b.value.toString(),
        currency: b.currency,
        serial: b.scripId!.serialNumber.toString(),
        requestId: p.id,
        payoutId: payout.payoutId,
        payoutAccount: account,
        ...(recovering ? { recovered: true } : {}),
      });
    });
    this.progress("RD2", `RD2 ← center: payout ${payout.payoutId} of ${payout.amount} ${payout.currency}; ${b.value} left`);
    return {
      requestId: p.id,
      payoutId: payout.payoutId,
      amount: payout.amount,
      payoutAccount: account,
      balance: b.value,
      currency: b.currency,
      serial: b.scripId!.serialNumber,
      recovered: recovering,
    };
  }

  // ------------------------------------------------------------------ recovery

  /**
   * Finishes the journalled operation, if any, by re-sending its step with
   * pCount + 1 (the center replays its stored reply, so nothing moves twice).
   * Called automatically by `open()`.
   *
   * @example
   * ```ts
   * const r = await wallet.recover();
   * if (r?.outcome === "completed") console.log(`finished the interrupted ${r.kind}`);
   * ```
   * @returns undefined if nothing was pending.
   * @throws {UnavailableError} the center could not be reached; the journal is kept.
   * @throws {IntegrityError} a reply did not verify; the journal is kept.
   */
  recover(): Promise<RecoveryResult | undefined> {
    return this.exclusive(() => this.recoverLocked());
  }

  private async recoverLocked(): Promise<RecoveryResult | undefined> {
    const p = this.state?.pending;
    if (!p) return undefined;
    await this.ensureCenter();
    this.progress("recover", `recover: finishing the interrupted ${p.kind} ${p.id} at ${p.step}`);
    try {
      let result: RecoveryResult["result"];
      switch (p.kind) {
        case "earn":
          result = await this.withRecoveredScrip(() => this.finishEarn(true), "M6");
          break;
        case "buy":
          result = await this.withRecoveredScrip(() => this.finishBuy(true), "S6");
          break;
        case "renew":
          result = await this.finishRenew(true);
          break;
        case "redeem":
          result = await this.finishRedeem(true);
          break;
      }
      return { kind: p.kind, id: p.id, outcome: "completed", result };
    } catch (e) {
      // A refusal that cleared the journal: nothing moved, the operation is abandoned.
      if (e instanceof ScripwireError && !this.state!.pending) return { kind: p.kind, id: p.id, outcome: "abandoned", error: e };
      throw e;
    }
  }

  /**
   * Runs a flow; if M4/S4 ended in a refusal but the probe found that the
   * TranID had executed, adopts the probed scrip (value checked) and
   * finishes with M6/S6.
   */
  private async withRecoveredScrip<T>(run: () => Promise<T>, confirmStep: "M6" | "S6"): Promise<T> {
    try {
      return await run();
    } catch (e) {
      if (!(e instanceof RecoveredScrip)) throw e;
      const p = this.st().pending!;
      const offer = decodeOffer(p.offer!);
      const old = decodeScrip(p.scrip).scrip!.value;
      const due = confirmStep === "M6" ? old + offer.amount : old - offer.amount;
      const s = this.checkAdoptable(e.scrip, due, confirmStep === "M6" ? "M7 (GM6_2)" : "S6 (PM6_2)");
      await this.persist((st) => {
        st.scrip = encodeScrip(s);
        st.pending = { ...p, step: confirmStep, pCount: 0, newScrip: encodeScrip(s) };
      });
      return run();
    }
  }
}

/** Internal signal: the probe found that M4/S4 executed; carries the scrip to adopt. Never escapes the class. */
class RecoveredScrip extends Error {
  constructor(readonly scrip: ScripType) {
    super("the transaction executed; finishing it");
    this.name = "RecoveredScrip";
  }
}
