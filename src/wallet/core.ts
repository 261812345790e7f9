/**
 * The wallet core: registration (R1-R2), earning scrip (M1-M7), buying
 * content (S1-S7), renewal, redemption, redelivery and crash recovery.
 * Platform-neutral: no `node:*`, no `Buffer`; storage is an injected
 * {@link WalletStore} (journal.ts applies its records) and the network an
 * injected {@link Connector} (client.ts). Node's `Wallet` (wallet.ts) and
 * the browser wallet (browser/) are this class with their own store and
 * connector.
 *
 * Layout:
 *   core.ts     the flows: what each operation asks the seller and the
 *               center, what it journals, what it records in the history.
 *   steps.ts    the step runner: retransmission with pCount, refusal
 *               checks, the GM6_2/PM6_2 probe, and ONE table-driven value
 *               step (VALUE_STEPS) serving earning (M3-M7) and buying (S3-S6).
 *   journal.ts  the write-ahead journal over the store (append-only records).
 *
 * Crash safety: before M4/S4/RN1/RD1 leaves, its inputs are journalled;
 * the M5/S5 scrip is journalled with the step M6/S6 before M6/S6 leaves;
 * the journal is cleared only with the completion (M7, the receipt, RN2,
 * RD2). `recover()` re-sends the journalled step with pCount + 1; the center
 * replays its stored reply for the same input scrip, so a wallet killed at
 * any point ends with exactly one movement of value and one live scrip. A
 * definitive refusal (nothing moved) clears the journal.
 *
 * Every scrip the wallet adopts is authenticated first: its hash under
 * Custom_Secret must verify, and it must carry our customer id, our currency,
 * our center and exactly the value the protocol step implies.
 */
import type { GetCenterInfoResponse } from "../../gen/scripwire/v1/center_pb.js";
import { CampaignItemKind } from "../../gen/scripwire/v1/seller_pb.js";
import { CmdType, HashAlgorithm, OfferKind, type Offer, type Receipt, type ScripType } from "../../gen/scripwire/v1/types_pb.js";
import { computeMessageHash, verifyMessageHash } from "../crypto/scrip-auth.js";
import { decryptCustomSecret, sealSessionKey } from "../crypto/registration.js";
import type { MessageHashInput } from "../crypto/canonical.js";
import { randomBytes, randomId } from "./bytes.js";
import { CenterRpc, SellerRpc, type Connector } from "./client.js";
import { decodeReceipt, decodeScrip, encodeOffer, encodeReceipt, encodeScrip, fromHexString, methodName, methodValue, toHexString } from "./codec.js";
import { IntegrityError, RefusedError, ScripwireError, StateError, UnavailableError } from "./errors.js";
import { Journal } from "./journal.js";
import { cloneState, type DeliveryMethodName, type HistoryRecord, type JournalRecord, type PendingOperation, type WalletState, type WalletStore } from "./state.js";
import { readRecoveryCode, recoveryCodeOf, restoredState, syncOnce, syncWallet, type RestoreHost, type RestoreOptions, type RestoreResult, type SyncResult } from "./restore.js";
import {
  RETRANSMISSIONS_MAX_DEFAULT,
  VALUE_STEPS,
  code,
  hdr,
  retryDelay,
  retryable,
  runValueExchange,
  sameId,
  sendReplacement,
  type CustomId,
  type ExchangeOutcome,
  type StepContext,
  type ValueStepSpec,
  type WalletStep,
} from "./steps.js";

export { RETRANSMISSIONS_MAX_DEFAULT, type WalletStep };
export { HISTORY_ENTRIES_MAX, RECEIPTS_MAX } from "./state.js";

/** The seller refuses longer answers; refuse them here first. */
const ANSWER_CHARS_MAX = 2_000;

/** One protocol step, for progress display: `M5 ← center: new scrip 80 KRW`. */
export interface WalletProgress {
  /** Patent step ("M4", "S5", "R1", "RN1"...). */
  step: string;
  message: string;
}

/** Options of the platform-neutral core; Node's `WalletOptions` (wallet.ts) adds protocol, CA and transports. */
export interface WalletCoreOptions {
  /** Where the wallet's state lives. */
  store: WalletStore;
  /** How to reach a center or seller: connect-node (wallet.ts) or connect-web (browser/). */
  connect: Connector;
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

/** A history line as the API gives it: the stored {@link HistoryRecord} with dates and bigints. */
export type HistoryEntry = Omit<HistoryRecord, "atMs" | "amount" | "balance" | "serial"> & {
  at: Date;
  /** Signed change of the balance. */
  amount: bigint;
  balance: bigint;
  serial: bigint;
};

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

/**
 * A customer's wallet: one live scrip at one payment center. Construct with
 * {@link WalletCore.open} (or Node's `Wallet.open`), never `new` alone: the
 * store must be loaded first.
 */
export class WalletCore {
  protected journal!: Journal;
  private secret: Uint8Array | undefined;
  private centerRpc: CenterRpc | undefined;
  private centerInfoCache: GetCenterInfoResponse | undefined;
  private readonly sellers = new Map<string, SellerRpc>();
  private queue: Promise<unknown> = Promise.resolve();
  private closed = false;
  private readonly clock: () => number;
  /** What the steps see of this wallet (steps.ts); not public API. */
  private readonly ctx: StepContext;
  /** Why the automatic recovery on open could not finish, if it could not. The journal is kept. */
  recoveryError: ScripwireError | undefined;
  /** What the automatic recovery on open did, if there was anything to recover. */
  recovery: RecoveryResult | undefined;

  constructor(protected readonly opts: WalletCoreOptions) {
    this.clock = opts.clock ?? Date.now;
    const self = this;
    this.ctx = {
      get journal() {
        return self.journal;
      },
      center: () => this.centerClient(),
      now: () => this.clock(),
      maxRetransmissions: opts.maxRetransmissions ?? RETRANSMISSIONS_MAX_DEFAULT,
      progress: (step, message) => this.progress(step, message),
      hook: async (step) => {
        await this.opts.onStep?.(step);
      },
      hash: (c, contextId, pCount, scrip, extra = {}) => computeMessageHash(scrip.hashAlgorithm, this.cs(), { code: code(c), contextId, pCount, scrip, ...extra }),
      verified: (c, contextId, pCount, scrip, hash, extra = {}) => {
        try {
          return verifyMessageHash(scrip.hashAlgorithm, this.cs(), { code: code(c), contextId, pCount, scrip, ...extra }, hash);
        } catch {
          return false;
        }
      },
      adoptable: (s, expectValue, what) => this.checkAdoptable(s, expectValue, what),
      customId: () => this.customId(),
    };
  }

  /**
   * Opens a wallet on a store (locking it if the store can), and finishes any
   * operation an earlier run left in the journal.
   *
   * @throws {StateError} WALLET_LOCKED, PASSPHRASE_REQUIRED, BAD_WALLET_FILE.
   * @throws {AuthenticationError} BAD_PASSPHRASE.
   */
  static async open(opts: WalletCoreOptions): Promise<WalletCore> {
    const w = new WalletCore(opts);
    await w.start();
    return w;
  }

  /** Locks and loads the store, then recovers (open() of each platform calls this). */
  protected async start(): Promise<void> {
    await this.opts.store.lock?.();
    try {
      this.journal = await Journal.open(this.opts.store);
      if (this.journal.pending && this.opts.recoverOnOpen !== false) {
        try {
          this.recovery = await this.recover();
        } catch (e) {
          if (!(e instanceof ScripwireError)) throw e;
          this.recoveryError = e;
        }
      }
    } catch (e) {
      await this.close();
      throw e;
    }
  }

  /** Closes connections, folds the journal's records into a snapshot, and releases the store's lock. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.queue.catch(() => {});
    this.centerRpc?.close();
    for (const s of this.sellers.values()) s.close();
    this.sellers.clear();
    try {
      await this.journal?.compact();
    } finally {
      await this.opts.store.unlock?.();
    }
  }

  /** Whether the wallet has registered with a center. */
  get registered(): boolean {
    return this.journal?.state !== undefined;
  }

  /** The wallet id, customer id and center, or undefined before registration. */
  get identity(): { walletId: string; customId: CustomId; centerUrl: string; centerPublicKey: string } | undefined {
    const s = this.journal?.state;
    if (!s) return undefined;
    return { walletId: s.walletId, customId: this.customId(), centerUrl: this.centerUrl(), centerPublicKey: s.centerPublicKey };
  }

  /** The journalled operation, if one is unfinished. */
  get pending(): PendingOperation | null {
    const p = this.journal?.pending;
    return p ? cloneState(p) : null;
  }

  // ------------------------------------------------------------------ plumbing

  protected exclusive<T>(fn: () => Promise<T>): Promise<T> {
    if (this.closed) return Promise.reject(new StateError("WALLET_CLOSED", "the wallet is closed"));
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => {});
    return run;
  }

  private progress(step: string, message: string): void {
    this.opts.onProgress?.({ step, message });
  }

  private st(): WalletState {
    return this.journal.st;
  }

  private centerUrl(): string {
    return this.opts.centerUrl ?? this.st().centerUrl;
  }

  private cs(): Uint8Array {
    this.secret ??= fromHexString(this.st().customSecret);
    return this.secret;
  }

  private customId(): CustomId {
    const c = this.st().customId;
    return { secretId: c.secretId, serialNumber: BigInt(c.serialNumber) };
  }

  private scrip(): ScripType {
    return decodeScrip(this.st().scrip);
  }

  private connectCenter(url: string): CenterRpc {
    return new CenterRpc(url, this.opts.connect(url, "center"), this.opts.timeoutMs);
  }

  private centerClient(url = this.centerUrl()): CenterRpc {
    if (this.centerRpc && this.centerRpc.baseUrl === url) return this.centerRpc;
    this.centerRpc?.close();
    this.centerRpc = this.connectCenter(url);
    this.centerInfoCache = undefined;
    return this.centerRpc;
  }

  private seller(url: string): SellerRpc {
    let s = this.sellers.get(url);
    if (!s) {
      s = new SellerRpc(url, this.opts.connect(url, "seller"), this.opts.timeoutMs);
      this.sellers.set(url, s);
    }
    return s;
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
  protected async ready(): Promise<void> {
    this.st();
    await this.ensureCenter();
    if (this.journal.pending) {
      try {
        await this.recoverLocked();
      } catch (e) {
        throw new StateError("PENDING_OPERATION", `the previous ${this.journal.pending?.kind ?? "operation"} is not finished: ${(e as Error).message}`, {
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
      const own = this.journal.state !== undefined && url === this.centerUrl();
      const client = own ? this.centerClient() : this.connectCenter(url);
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
        pinned: this.journal.state ? key === this.journal.state.centerPublicKey : undefined,
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
      const existing = this.journal.state;
      if (existing) {
        throw new StateError("ALREADY_REGISTERED", `this wallet is already registered (customer ${existing.customId.serialNumber} at ${existing.centerUrl})`, {
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
      const walletId = randomId();
      const ks = randomBytes(32);
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
          if (retryable(e) && n < this.ctx.maxRetransmissions) {
            await retryDelay(n, e);
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
      await this.journal.create({
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
      });
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

  // ------------------------------------------------------------------ M1 -> M2, S1 -> S2 (the seller's half)

  /**
   * M1 -> M2: the seller's permit for an answer. Public so a page can show
   * the permit (what, from whom) before the buyer approves collecting it.
   *
   * @throws {RefusedError} ISSUE_REFUSED (wrong answer, GM2_2).
   */
  async requestPermit(sellerUrl: string, itemId: string, answer: string): Promise<Offer> {
    if (!itemId) throw new RangeError('"itemId" expected a campaign item id');
    if (answer.length > ANSWER_CHARS_MAX) throw new RangeError(`"answer" expected at most ${ANSWER_CHARS_MAX} characters`);
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
    return permit;
  }

  /**
   * S1 -> S2: the seller's payment information (pOder) for a URL.
   *
   * @throws {RefusedError} NOT_FOR_SALE (PM2_2).
   */
  async requestOrder(sellerUrl: string, requestUrl: string, method: DeliveryMethodName): Promise<Offer> {
    const pMethod = methodValue(method);
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
    const offerOk = order.kind === OfferKind.PAY && order.item === requestUrl && order.deliveryMethod === pMethod && order.currency === st.currency && order.amount > 0n;
    if (!offerOk || !sameId(order.customId, this.customId())) {
      throw new IntegrityError("UNEXPECTED_OFFER", "S2: the payment information is not for this URL, method, customer and currency");
    }
    this.progress("S2", `S2 ← seller: price ${order.amount} ${order.currency} (TranID ${order.tranId})`);
    return order;
  }

  // ------------------------------------------------------------------ M3 -> M7, S3 -> S6 (the center's half)

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
      const permit = await this.requestPermit(sellerUrl, itemId, answer);
      return (await this.exchange(VALUE_STEPS.earn, permit, { sellerUrl, item: itemId })) as EarnResult;
    });
  }

  /**
   * Collects a permit the seller already gave (M2, e.g. shown on a mall
   * page): M3 -> M7. The permit must be for this wallet's customer id.
   */
  collect(sellerUrl: string, permit: Offer): Promise<EarnResult> {
    return this.exclusive(async () => {
      await this.ready();
      if (permit.kind !== OfferKind.ISSUE || permit.currency !== this.st().currency || permit.amount <= 0n || !sameId(permit.customId, this.customId())) {
        throw new IntegrityError("UNEXPECTED_OFFER", "M2: the permit is not an issue permit for this customer and currency");
      }
      return (await this.exchange(VALUE_STEPS.earn, permit, { sellerUrl, item: permit.item })) as EarnResult;
    });
  }

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
  buy(sellerUrl: string, requestUrl: string, method: DeliveryMethodName, opts: { maxPrice?: bigint; deliver?: boolean } = {}): Promise<BuyResult> {
    return this.exclusive(async () => {
      methodValue(method);
      await this.ready();
      const order = await this.requestOrder(sellerUrl, requestUrl, method);
      return this.payOrder(sellerUrl, order, opts);
    });
  }

  /**
   * Pays a pOder the seller already gave (S2, e.g. handed over by a mall
   * page): S3 -> S6, then S7 unless `deliver: false` (the mall delivers).
   */
  pay(sellerUrl: string, order: Offer, opts: { maxPrice?: bigint; deliver?: boolean } = {}): Promise<BuyResult> {
    return this.exclusive(async () => {
      await this.ready();
      if (order.kind !== OfferKind.PAY || order.currency !== this.st().currency || order.amount <= 0n || !sameId(order.customId, this.customId())) {
        throw new IntegrityError("UNEXPECTED_OFFER", "S2: the payment information is not for this customer and currency");
      }
      return this.payOrder(sellerUrl, order, opts);
    });
  }

  private async payOrder(sellerUrl: string, order: Offer, opts: { maxPrice?: bigint; deliver?: boolean }): Promise<BuyResult> {
    if (opts.maxPrice !== undefined && order.amount > opts.maxPrice) {
      throw new RefusedError("PM2_1", "PRICE_TOO_HIGH", `the price is ${order.amount} ${order.currency}, above your limit of ${opts.maxPrice}`);
    }
    const r = (await this.exchange(VALUE_STEPS.buy, order, { sellerUrl, item: order.item, method: methodName(order.deliveryMethod) })) as BuyResult;
    return opts.deliver === false ? r : this.deliverInto(r);
  }

  /** M3/S3, then the journalled exchange from M4/S4: the one path both earning and buying take. */
  private async exchange(spec: ValueStepSpec, offer: Offer, where: Pick<PendingOperation, "sellerUrl" | "item" | "method">): Promise<EarnResult | BuyResult> {
    const { init, send } = spec.steps;
    this.progress(init, `${init} → center: presenting the ${spec.kind === "earn" ? "permit" : "payment information"}`);
    await spec.init(this.centerClient(), hdr(spec.codes.init, this.clock()), offer);
    await this.journal.setPending({ kind: spec.kind, step: send, id: offer.tranId, pCount: 0, scrip: this.st().scrip, offer: encodeOffer(offer), ...where, startedAtMs: this.clock() });
    await this.ctx.hook(`before-${send}`);
    return this.finishExchange(spec, false);
  }

  /** Runs the value exchange, then clears the journal with the history line (and receipt) in one record. */
  private async finishExchange(spec: ValueStepSpec, recovering: boolean): Promise<EarnResult | BuyResult> {
    const out: ExchangeOutcome = await runValueExchange(this.ctx, spec, recovering);
    const { pending: p, offer, receipt } = out;
    const s = this.scrip().scrip!;
    const now = this.clock();
    const amount = spec.delta(offer);
    const record: JournalRecord = {
      pending: null,
      history: {
        kind: spec.kind === "earn" ? "earned" : "bought",
        atMs: now,
        amount: amount.toString(),
        balance: s.value.toString(),
        currency: s.currency,
        serial: s.scripId!.serialNumber.toString(),
        tranId: p.id,
        item: p.item,
        ...(p.method ? { method: p.method } : {}),
        sellerUrl: p.sellerUrl,
        vendorId: offer.vendorId,
        ...(recovering ? { recovered: true } : {}),
      },
    };
    if (receipt) record.receipt = { tranId: p.id, sellerUrl: p.sellerUrl!, requestUrl: p.item!, method: p.method!, receipt: encodeReceipt(receipt), paidAtMs: now };
    await this.journal.commit(record);
    const common = { tranId: p.id, vendorId: offer.vendorId, balance: s.value, currency: s.currency, serial: s.scripId!.serialNumber, recovered: recovering };
    if (!receipt) return { ...common, item: p.item ?? "", amount };
    return { ...common, requestUrl: p.item!, method: p.method!, price: offer.amount, receipt };
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

  /**
   * Delivers purchased content again (S7) on the kept receipt, without paying again.
   *
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
   * @throws {RefusedError} the center refused (e.g. SCRIP_NOT_LIVE).
   * @throws {UnavailableError} the center could not be reached; the renewal is finished on the next open.
   * @throws {IntegrityError} the new scrip's hash did not verify.
   */
  renew(): Promise<RenewResult> {
    return this.exclusive(async () => {
      await this.ready();
      await this.journal.setPending({ kind: "renew", step: "RN1", id: randomId("rn_"), pCount: 0, scrip: this.st().scrip, startedAtMs: this.clock() });
      await this.ctx.hook("before-RN1");
      return this.finishRenew(false);
    });
  }

  private async finishRenew(recovering: boolean): Promise<RenewResult> {
    const p = this.st().pending!;
    const old = decodeScrip(p.scrip);
    const res = await sendReplacement(this.ctx, p, recovering, "RN1", "renewing the scrip", (pCount) =>
      this.centerClient().renew({ header: hdr(CmdType.RN1, this.clock()), requestId: p.id, scrip: old, scripHash: this.ctx.hash(CmdType.RN1, p.id, pCount, old), pCount }),
    );
    await this.ctx.hook("after-RN1-sent");
    if (!res.newScrip || !this.ctx.verified(CmdType.RN2, p.id, 0, res.newScrip, res.newScripHash)) {
      throw new IntegrityError("BAD_REPLY_HASH", "RN2: the new scrip's hash does not verify under Custom_Secret");
    }
    const b = await this.adoptReplacement(p, res.newScrip, old.scrip!.value, "RN2", { kind: "renewed", amount: "0" }, recovering);
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

  /** Checks and adopts the RN2/RD2 scrip, clearing the journal with its history line in one record. */
  private async adoptReplacement(p: PendingOperation, scrip: ScripType, due: bigint, what: string, line: Pick<HistoryRecord, "kind" | "amount" | "payoutId" | "payoutAccount">, recovering: boolean) {
    const s = this.checkAdoptable(scrip, due, what);
    const b = s.scrip!;
    await this.journal.commit({
      scrip: encodeScrip(s),
      pending: null,
      history: {
        ...line,
        atMs: this.clock(),
        balance: b.value.toString(),
        currency: b.currency,
        serial: b.scripId!.serialNumber.toString(),
        requestId: p.id,
        ...(recovering ? { recovered: true } : {}),
      },
    });
    return b;
  }

  /**
   * Exchanges scrip for real money (RD1 -> RD2): the center records a payout
   * to `payoutAccount` and returns a scrip with what is left.
   *
   * @param amount smallest units to redeem; 0n redeems everything.
   * @throws {RefusedError} BELOW_THRESHOLD, INSUFFICIENT_VALUE.
   * @throws {UnavailableError} the center could not be reached; the redemption is finished on the next open.
   * @throws {IntegrityError} the new scrip's hash did not verify.
   */
  redeem(amount: bigint, payoutAccount: string): Promise<RedeemResult> {
    return this.exclusive(async () => {
      if (typeof amount !== "bigint" || amount < 0n) throw new RangeError('"amount" expected a non-negative bigint (0n redeems everything)');
      if (!payoutAccount || payoutAccount.length > 256) throw new RangeError('"payoutAccount" expected 1..256 characters');
      await this.ready();
      await this.journal.setPending({
        kind: "redeem",
        step: "RD1",
        id: randomId("rd_"),
        pCount: 0,
        scrip: this.st().scrip,
        amount: amount.toString(),
        account: payoutAccount,
        startedAtMs: this.clock(),
      });
      await this.ctx.hook("before-RD1");
      return this.finishRedeem(false);
    });
  }

  private async finishRedeem(recovering: boolean): Promise<RedeemResult> {
    const p = this.st().pending!;
    const old = decodeScrip(p.scrip);
    const amount = BigInt(p.amount!);
    const account = p.account!;
    const res = await sendReplacement(this.ctx, p, recovering, "RD1", `redeeming ${amount === 0n ? "everything" : amount} to ${account}`, (pCount) =>
      this.centerClient().redeem({
        header: hdr(CmdType.RD1, this.clock()),
        requestId: p.id,
        scrip: old,
        scripHash: this.ctx.hash(CmdType.RD1, p.id, pCount, old, { amount, account }),
        amount,
        payoutAccount: account,
        pCount,
      }),
    );
    await this.ctx.hook("after-RD1-sent");
    const payout = res.payout;
    if (!payout || payout.amount <= 0n || (amount !== 0n && payout.amount !== amount) || payout.payoutAccount !== account || payout.currency !== old.scrip!.currency) {
      throw new IntegrityError("UNEXPECTED_REPLY", "RD2: the payout is not what was asked");
    }
    if (!res.newScrip || !this.ctx.verified(CmdType.RD2, p.id, 0, res.newScrip, res.newScripHash, { amount: payout.amount, account })) {
      throw new IntegrityError("BAD_REPLY_HASH", "RD2: the new scrip's hash does not verify under Custom_Secret");
    }
    const line = { kind: "redeemed" as const, amount: (-payout.amount).toString(), payoutId: payout.payoutId, payoutAccount: account };
    const b = await this.adoptReplacement(p, res.newScrip, old.scrip!.value - payout.amount, "RD2", line, recovering);
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

  // ------------------------------------------------------------------ recovery code, restore, sync (restore.ts)

  /** What restore.ts may touch: state, secret, center client, journal commits. */
  private restoreHost(): RestoreHost {
    return {
      clock: () => this.clock(),
      progress: (step, message) => this.progress(step, message),
      state: () => this.st(),
      customSecret: () => this.cs(),
      center: () => this.centerClient(),
      commit: (r) => this.journal.commit(r),
    };
  }

  /**
   * The recovery code: customer id and Custom_Secret as 15 checksummed
   * groups. With the center's address it restores this wallet anywhere, so
   * it is shown to the customer only (never logged) and kept like a password.
   *
   * @throws {StateError} NOT_REGISTERED.
   */
  recoveryCode(): string {
    return recoveryCodeOf(this.st(), this.cs());
  }

  /**
   * Rebuilds a lost wallet in this (empty) one from a recovery code: asks the
   * center (SY1 -> SY2) for the customer's live scrip, finishes any
   * transaction it reports executed but unconfirmed (exactly once: the center
   * replays a confirmation already made), and adopts the live scrip.
   *
   * @example
   * ```ts
   * const w = await Wallet.open({ store: new FileWalletStore("new.json") });
   * await w.restore("https://center.example", "SW1-....");
   * ```
   * @throws {StateError} ALREADY_REGISTERED, PINNED_KEY_MISMATCH, NO_LIVE_SCRIP.
   * @throws {ScripwireError} INVALID_ARGUMENT BAD_RECOVERY_CODE / RECOVERY_CODE_MISTYPED: the code cannot be read.
   * @throws {AuthenticationError} BAD_HASH: the center did not accept the code (or the clock is off).
   */
  restore(centerUrl: string, code: string, opts: RestoreOptions = {}): Promise<RestoreResult> {
    return this.exclusive(async () => {
      const existing = this.journal.state;
      if (existing) {
        throw new StateError("ALREADY_REGISTERED", `this wallet already holds customer ${existing.customId.serialNumber}`, { hint: "restore into a new wallet file" });
      }
      const { customId, customSecret } = readRecoveryCode(code);
      const center = this.centerClient(centerUrl);
      const info = await center.getCenterInfo();
      const key = toHexString(info.publicKey);
      if (opts.pinnedPublicKey !== undefined && opts.pinnedPublicKey.toLowerCase() !== key) {
        throw new StateError("PINNED_KEY_MISMATCH", `the center at ${centerUrl} presents key ${key}, not the pinned ${opts.pinnedPublicKey}`, {
          hint: "you may be talking to the wrong server; check the URL and the key with the center's operator",
        });
      }
      if (!info.center || info.publicKey.length !== 32) throw new IntegrityError("BAD_CENTER_KEY", "the center did not present its identity and a 32-byte key");
      this.progress("SY1", `SY1 → center: restoring customer ${customId.serialNumber} from ${centerUrl}`);
      const first = await syncOnce(center, customId, customSecret, this.clock);
      const want = opts.currency ?? info.currencies.find((c) => first.scrips.some((s) => s.scrip?.currency === c)) ?? first.scrips[0]?.scrip?.currency;
      const live = first.scrips.find((s) => s.scrip?.currency === want);
      if (!live) throw new StateError("NO_LIVE_SCRIP", `the center holds no live ${want ?? ""} scrip for this customer`);
      await this.journal.create(restoredState(centerUrl, info, customId, customSecret, live, this.clock()));
      this.secret = customSecret;
      this.centerInfoCache = info;
      const r = await syncWallet(this.restoreHost(), { sellerUrl: opts.sellerUrl, restoring: true });
      return { ...r, customId, centerPublicKey: key };
    });
  }

  /**
   * Converges with the center: finishes this wallet's own unfinished
   * operation, then any transaction the center reports executed but
   * unconfirmed (possibly started on another device), and adopts the
   * center's live scrip, which carries any refund credited since.
   *
   * @throws {StateError} NOT_REGISTERED, PINNED_KEY_MISMATCH, PENDING_OPERATION.
   * @throws {AuthenticationError} the center did not accept the request (clock more than 5 minutes off).
   * @throws {IntegrityError} the reply did not authenticate; nothing was adopted.
   */
  sync(opts: { sellerUrl?: string } = {}): Promise<SyncResult> {
    return this.exclusive(async () => {
      await this.ready();
      return syncWallet(this.restoreHost(), opts);
    });
  }

  // ------------------------------------------------------------------ recovery

  /**
   * Finishes the journalled operation, if any, by re-sending its step with
   * pCount + 1 (the center replays its stored reply, so nothing moves twice).
   * Called automatically by `open()`.
   *
   * @returns undefined if nothing was pending.
   * @throws {UnavailableError} the center could not be reached; the journal is kept.
   * @throws {IntegrityError} a reply did not verify; the journal is kept.
   */
  recover(): Promise<RecoveryResult | undefined> {
    return this.exclusive(() => this.recoverLocked());
  }

  private async recoverLocked(): Promise<RecoveryResult | undefined> {
    const p = this.journal.pending;
    if (!p) return undefined;
    await this.ensureCenter();
    this.progress("recover", `recover: finishing the interrupted ${p.kind} ${p.id} at ${p.step}`);
    try {
      let result: RecoveryResult["result"];
      if (p.kind === "earn" || p.kind === "buy") result = await this.finishExchange(VALUE_STEPS[p.kind], true);
      else if (p.kind === "renew") result = await this.finishRenew(true);
      else result = await this.finishRedeem(true);
      return { kind: p.kind, id: p.id, outcome: "completed", result };
    } catch (e) {
      // A refusal that cleared the journal: nothing moved, the operation is abandoned.
      if (e instanceof ScripwireError && !this.journal.pending) return { kind: p.kind, id: p.id, outcome: "abandoned", error: e };
      throw e;
    }
  }
}
