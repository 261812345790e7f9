/**
 * A simulated wallet: a seeded state machine that earns (M1..M7), pays
 * (S1..S6), redeems, renews and now and then tries to cheat, over a network
 * that drops, duplicates and delays, against a center that is SIGKILLed.
 *
 * It keeps what a real wallet keeps on disk, and nothing more survives its
 * own crash: the Custom_Secret, the live scrip, and a journal of the one
 * pending request ({TranID, offer, presented scrip, pCount, phase}) written
 * BEFORE the request leaves. On any loss it retransmits with pCount + 1 once
 * the center is back (or, sometimes, cancels instead); it adopts a new scrip
 * only when the reply's hash verifies under its Custom_Secret. Every adoption
 * is checked against the auditor's model of what the value must be.
 */
import { create, equals } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, type CallOptions, type Client, type Transport } from "@connectrpc/connect";
import {
  ConfirmIssueResponseSchema,
  ConfirmPaymentResponseSchema,
  IssueResponseSchema,
  PaymentCenterService,
  PayResponseSchema,
  TransactionState,
  type ConfirmIssueResponse,
  type ConfirmPaymentResponse,
  type IssueResponse,
  type PayResponse,
} from "../../gen/scripwire/v1/center_pb.js";
import { SellerService } from "../../gen/scripwire/v1/seller_pb.js";
import { CmdType, DeliveryMethod, HeaderTypeSchema, type Offer, type ScripType } from "../../gen/scripwire/v1/types_pb.js";
import { decryptCustomSecret, sealSessionKey } from "../../src/crypto/registration.js";
import { computeMessageHash, verifyMessageHash } from "../../src/crypto/scrip-auth.js";
import { computeSyncRequestHash, verifySyncReplyHash } from "../../src/crypto/sync-auth.js";
import { P_COUNT_MAX } from "../../src/protocol/header.js";
import { errorReason } from "../../src/server/errors.js";
import { INDEFINITE, ReplyLost, type Faults } from "./faults.js";
import type { Model, Stats } from "./model.js";
import type { Prng } from "./prng.js";

const hdr = (cmdType: CmdType) => create(HeaderTypeSchema, { cmdType, protocolVersion: "scripwire/1" });
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const hex = (b: Uint8Array | undefined) => (b ? Buffer.from(b).toString("hex").slice(0, 16) : "-");

/** A wallet that cannot finish one pending request in this many attempts is stuck: a liveness violation. */
export const ATTEMPTS_PER_REQUEST_MAX = 400;

export interface CatalogEntry {
  url: string;
  price: bigint;
  method: DeliveryMethod;
}

/** What every wallet shares: clients, the world's catalog, the auditor. */
export interface WalletEnv {
  sellerTransport: Transport;
  center: { up: boolean; waitUp(): Promise<void> };
  faults: Faults;
  centerPublicKey: Uint8Array;
  vendorId: string;
  itemRewards: Map<string, bigint>;
  items: string[];
  catalog: CatalogEntry[];
  redeemThreshold: bigint;
  model: Model;
  stats: Stats;
  /** Set at the end: finish the pending request, start nothing new. */
  draining: boolean;
  /** Per-operation weights of the workload. */
  mix: Record<Op, number>;
}

export type Op = "earn" | "pay" | "redeem" | "renew" | "race" | "replay" | "restore" | "idle";

type Phase = "init" | "execute" | "cancel" | "confirm" | "undo";

/** The one pending request, as persisted before it is sent. */
interface TxJournal {
  phase: Phase;
  offer: Offer;
  /** The scrip presented in M4/S4 (the wallet's live scrip when the transaction began). */
  scrip: ScripType;
  /** The scrip M5/S5 issued, once adopted. */
  newScrip?: ScripType;
  pCount: number;
  attempts: number;
}

type Journal =
  | (TxJournal & { kind: "issue" })
  | (TxJournal & { kind: "pay" })
  | { kind: "race"; phase: "init" | "execute"; offers: Offer[]; scrip: ScripType; pCount: number; attempts: number }
  | { kind: "redeem"; requestId: string; amount: bigint; account: string; scrip: ScripType; pCount: number; attempts: number }
  | { kind: "renew"; requestId: string; scrip: ScripType; pCount: number; attempts: number }
  /** Restore/sync (SY1): the device is "lost"; only the recovery code (customer id + Custom_Secret) is left. */
  | { kind: "sync"; pCount: number; attempts: number };

/** What survives a wallet crash (a real wallet fsyncs this before each send). */
interface Durable {
  registration?: { sessionKey: Uint8Array; sealed: Uint8Array };
  customSecret?: Uint8Array;
  scrip?: ScripType;
  journal?: Journal;
  /** The auditor's view of this wallet's value (harness-side, not the wallet's). */
  modelValue: bigint;
  used: Set<string>;
  /** A scrip this wallet held before: dead, so spending it again must fail. */
  deadScrip?: ScripType;
  /** Refunds this wallet has seen folded into its scrip (their value is in modelValue). */
  folded: Set<string>;
  /** The final sync of the drain phase is done. */
  finalSynced?: boolean;
}

class Crashed extends Error {}

type Attempt<T> = { ok: true; v: T } | { ok: false; lost: true; err: unknown } | { ok: false; lost: false; err: ConnectError };


export class SimWallet {
  readonly walletId: string;
  readonly name: string;
  private readonly center: Client<typeof PaymentCenterService>;
  private readonly seller: Client<typeof SellerService>;
  private readonly d: Durable = { modelValue: 0n, used: new Set(), folded: new Set() };
  private epoch = 0;
  private loop: Promise<void> | undefined;

  constructor(
    readonly index: number,
    private readonly rng: Prng,
    private readonly env: WalletEnv,
    centerTransport: Transport,
  ) {
    this.name = `w${index}`;
    this.walletId = `torture-${rng.seed.toString(16)}-${index}`;
    this.center = createClient(PaymentCenterService, centerTransport);
    this.seller = createClient(SellerService, env.sellerTransport);
  }

  get scrip(): ScripType | undefined {
    return this.d.scrip;
  }

  get modelValue(): bigint {
    return this.d.modelValue;
  }

  get pending(): string | undefined {
    const j = this.d.journal;
    return j ? `${j.kind}${"phase" in j ? "/" + j.phase : ""}` : undefined;
  }

  /** Starts (or restarts) the wallet's loop; any loop still running from before is dead from now on. */
  start(): void {
    const epoch = ++this.epoch;
    this.loop = this.run(epoch);
  }

  /** Wallet crash: everything in memory is gone (in-flight replies are never seen); the durable state stays. */
  crash(): void {
    this.epoch++;
    this.env.stats.walletCrashes++;
  }

  /** Restart after a crash: recover from the journal, then carry on. */
  restart(): void {
    this.start();
  }

  async finished(): Promise<void> {
    await this.loop;
  }

  // ------------------------------------------------------------ plumbing

  private check(epoch: number): void {
    if (epoch !== this.epoch) throw new Crashed();
  }

  private violation(what: string): void {
    this.env.model.violation(this.name, what);
  }

  private hash(code: CmdType, contextId: string, pCount: number, scrip: ScripType, extra: { order?: Offer; amount?: bigint; account?: string } = {}): Uint8Array {
    return computeMessageHash(scrip.hashAlgorithm, this.d.customSecret!, { code: CmdType[code], contextId, pCount, scrip, ...extra });
  }

  /**
   * Verifies a reply hash. A replayed reply (the center's stored answer to the
   * first attempt) carries the pCount of that first attempt, so every pCount
   * up to this attempt's + 1 is accepted; the key is what authenticates.
   */
  private verified(code: CmdType, contextId: string, pMax: number, scrip: ScripType | undefined, hash: Uint8Array, extra: { order?: Offer; amount?: bigint; account?: string } = {}): boolean {
    if (!scrip) return false;
    for (let p = Math.min(pMax, P_COUNT_MAX + 1); p >= 0; p--) {
      if (verifyMessageHash(scrip.hashAlgorithm, this.d.customSecret!, { code: CmdType[code], contextId, pCount: p, scrip, ...extra }, hash)) {
        if (p !== pMax) this.env.stats.earlierPCount++;
        return true;
      }
    }
    return false;
  }

  private async rpc<T>(epoch: number, fn: (o: CallOptions) => Promise<T>, same?: (a: T, b: T) => void): Promise<Attempt<T>> {
    if (!this.env.center.up) await this.env.center.waitUp();
    this.check(epoch);
    const t0 = Date.now();
    try {
      const v = await this.env.faults.call(this.rng, fn, same);
      this.check(epoch);
      return { ok: true, v };
    } catch (e) {
      this.check(epoch);
      if (e instanceof ReplyLost) return { ok: false, lost: true, err: e };
      const ce = ConnectError.from(e);
      if (INDEFINITE.has(ce.code)) {
        this.env.stats.transportErrors++;
        this.env.stats.transportError(`${Code[ce.code]}`, Date.now() - t0);
        return { ok: false, lost: true, err: ce };
      }
      if (ce.code === Code.ResourceExhausted && errorReason(ce) === "RATE_LIMITED") {
        // Refused before the center looked at it: wait as told, then send again.
        this.env.stats.transportError("RATE_LIMITED", Date.now() - t0);
        await sleep(Math.min(5_000, Number(ce.metadata.get("scripwire-retry-after-ms") ?? 100)));
        this.check(epoch);
        return { ok: false, lost: true, err: ce };
      }
      return { ok: false, lost: false, err: ce };
    }
  }

  /** After a loss: back off a little (more when the center is down) and count the retransmission. */
  private async lost(epoch: number, j: Journal): Promise<void> {
    j.pCount = Math.min(j.pCount + 1, P_COUNT_MAX);
    j.attempts++;
    this.env.stats.retransmissions++;
    if (j.attempts > ATTEMPTS_PER_REQUEST_MAX) {
      this.violation(`stuck: ${this.pending} did not complete in ${ATTEMPTS_PER_REQUEST_MAX} attempts`);
      throw new Crashed();
    }
    await sleep(this.rng.int(5, 60));
    this.check(epoch);
  }

  private adopt(scrip: ScripType, expectValue: bigint, how: string): void {
    const v = scrip.scrip?.value ?? -1n;
    if (v !== expectValue) this.violation(`${how}: adopted scrip holds ${v}, the model expects ${expectValue}`);
    if (this.d.scrip) this.d.deadScrip = this.d.scrip;
    this.d.scrip = scrip;
    this.env.model.adoptSerial(scrip.scrip!.scripId!.serialNumber, this.name);
  }

  private definite(what: string, e: ConnectError): void {
    this.violation(`${what}: unexpected ${Code[e.code]} ${errorReason(e) ?? ""}: ${e.rawMessage}`);
  }

  // ------------------------------------------------------------ main loop

  private async run(epoch: number): Promise<void> {
    try {
      if (!this.d.customSecret) await this.register(epoch);
      for (;;) {
        if (this.d.journal) await this.resume(epoch);
        this.check(epoch);
        if (this.env.draining) {
          // Once the refunder has stopped: one last sync collects every refund credit.
          if (!this.d.finalSynced) {
            this.d.journal = { kind: "sync", pCount: 0, attempts: 0 };
            await this.resume(epoch);
            this.d.finalSynced = true;
          }
          return;
        }
        const op = this.rng.weighted(this.env.mix);
        switch (op) {
          case "earn":
            await this.earn(epoch);
            break;
          case "pay":
            await this.pay(epoch);
            break;
          case "redeem":
            await this.redeem(epoch);
            break;
          case "renew":
            await this.renew(epoch);
            break;
          case "race":
            await this.race(epoch);
            break;
          case "replay":
            await this.replay(epoch);
            break;
          case "restore":
            this.d.journal = { kind: "sync", pCount: 0, attempts: 0 };
            await this.resume(epoch);
            break;
          case "idle":
            await sleep(this.rng.int(1, 50));
            break;
        }
      }
    } catch (e) {
      if (e instanceof Crashed) return;
      this.violation(`wallet loop threw: ${e instanceof Error ? e.stack : String(e)}`);
    }
  }

  // ------------------------------------------------------------ R1 -> R2

  private async register(epoch: number): Promise<void> {
    if (!this.d.registration) {
      const sessionKey = this.rng.bytes(32);
      this.d.registration = { sessionKey, sealed: sealSessionKey(this.env.centerPublicKey, this.walletId, sessionKey) };
    }
    const reg = this.d.registration;
    for (let attempt = 0; ; attempt++) {
      if (attempt > ATTEMPTS_PER_REQUEST_MAX) {
        this.violation("stuck: registration never completed");
        throw new Crashed();
      }
      const r = await this.rpc(epoch, (o) =>
        this.center.register({ header: hdr(CmdType.UM1), walletId: this.walletId, name: this.name, sealedSessionKey: reg.sealed, currency: "KRW" }, o),
      );
      if (r.ok) {
        const scrip = r.v.scrip!;
        this.d.customSecret = decryptCustomSecret(reg.sessionKey, this.walletId, scrip.scrip!.customId!, r.v.encryptedCustomSecret);
        this.adopt(scrip, 0n, "UM2");
        this.env.stats.op("register");
        return;
      }
      if (!r.lost) {
        this.definite("register", r.err);
        throw new Crashed();
      }
      this.env.stats.retransmissions++;
      await sleep(this.rng.int(5, 60));
      this.check(epoch);
    }
  }

  // ------------------------------------------------------------ operations

  /** Seller calls move no value; they are retried until they answer. */
  private async sellerCall<T>(epoch: number, fn: (o: CallOptions) => Promise<T>): Promise<T | undefined> {
    for (let i = 0; i < 20; i++) {
      try {
        const v = await this.env.faults.call(this.rng, fn);
        this.check(epoch);
        return v;
      } catch (e) {
        this.check(epoch);
        if (e instanceof ReplyLost) continue;
        const ce = ConnectError.from(e);
        if (INDEFINITE.has(ce.code)) continue;
        this.definite("seller", ce);
        return undefined;
      }
    }
    return undefined;
  }

  private async earn(epoch: number): Promise<void> {
    const fresh = this.env.items.filter((i) => !this.d.used.has(i));
    // Mostly new items; sometimes one already rewarded, which must be refused (ALREADY_REWARDED).
    const item = fresh.length > 0 && !this.rng.chance(0.03) ? this.rng.pick(fresh) : this.rng.pick(this.env.items);
    const m2 = await this.sellerCall(epoch, (o) => this.seller.requestIssue({ header: hdr(CmdType.GM1_1), item, value: "seen", customId: this.d.scrip!.scrip!.customId }, o));
    if (!m2) return;
    if (m2.header?.cmdType !== CmdType.GM2_1 || !m2.permit) {
      this.violation(`M2 refused for ${item}: ${m2.header?.errorMessage}`);
      return;
    }
    if (m2.permit.amount !== this.env.itemRewards.get(item)) this.violation(`M2 permit amount ${m2.permit.amount} is not the catalog reward of ${item}`);
    this.d.used.add(item);
    this.d.journal = { kind: "issue", phase: "init", offer: m2.permit, scrip: this.d.scrip!, pCount: 0, attempts: 0 };
    await this.resume(epoch);
  }

  private affordable(): CatalogEntry[] {
    const v = this.d.scrip!.scrip!.value;
    return this.env.catalog.filter((c) => c.price <= v);
  }

  private async order(epoch: number, entry: CatalogEntry): Promise<Offer | undefined> {
    const s2 = await this.sellerCall(epoch, (o) =>
      this.seller.requestService({ header: hdr(CmdType.PM1_1), requestUrl: entry.url, pMethod: entry.method, customId: this.d.scrip!.scrip!.customId }, o),
    );
    if (!s2) return undefined;
    if (s2.header?.cmdType !== CmdType.PM2_1 || !s2.order) {
      this.violation(`S2 refused for ${entry.url}: ${s2.header?.errorMessage}`);
      return undefined;
    }
    if (s2.order.amount !== entry.price) this.violation(`S2 order price ${s2.order.amount} is not the catalog price of ${entry.url}`);
    return s2.order;
  }

  private async pay(epoch: number): Promise<void> {
    const can = this.affordable();
    // Mostly what the wallet can afford; sometimes more, which must be refused (INSUFFICIENT_VALUE).
    const overreach = can.length === 0 || this.rng.chance(0.03);
    if (can.length === 0 && !this.rng.chance(0.1)) return this.earn(epoch);
    const entry = overreach ? this.rng.pick(this.env.catalog) : this.rng.pick(can);
    const offer = await this.order(epoch, entry);
    if (!offer) return;
    this.d.journal = { kind: "pay", phase: "init", offer, scrip: this.d.scrip!, pCount: 0, attempts: 0 };
    await this.resume(epoch);
  }

  private async redeem(epoch: number): Promise<void> {
    const v = this.d.scrip!.scrip!.value;
    if (v < this.env.redeemThreshold) return this.earn(epoch);
    const amount = BigInt(this.rng.int(Number(this.env.redeemThreshold), Number(v)));
    this.d.journal = { kind: "redeem", requestId: `rd-${this.rng.hex(12)}`, amount, account: `bank:${this.walletId}`, scrip: this.d.scrip!, pCount: 0, attempts: 0 };
    await this.resume(epoch);
  }

  private async renew(epoch: number): Promise<void> {
    this.d.journal = { kind: "renew", requestId: `rn-${this.rng.hex(12)}`, scrip: this.d.scrip!, pCount: 0, attempts: 0 };
    await this.resume(epoch);
  }

  /** A double-spend attempt: one live scrip, two orders, both S4s at once. At most one may win. */
  private async race(epoch: number): Promise<void> {
    const v = this.d.scrip!.scrip!.value;
    const can = this.env.catalog.filter((c) => c.price * 2n <= v);
    if (can.length === 0) return this.earn(epoch);
    const a = await this.order(epoch, this.rng.pick(can));
    const b = a && (await this.order(epoch, this.rng.pick(can)));
    if (!a || !b) return;
    this.d.journal = { kind: "race", phase: "init", offers: [a, b], scrip: this.d.scrip!, pCount: 0, attempts: 0 };
    await this.resume(epoch);
  }

  /** Spend a scrip this wallet already spent: must be refused, whatever the faults. */
  private async replay(epoch: number): Promise<void> {
    const dead = this.d.deadScrip;
    if (!dead || dead.scrip!.value === 0n) return;
    const entry = this.env.catalog.filter((c) => c.price <= dead.scrip!.value);
    if (entry.length === 0) return;
    const offer = await this.order(epoch, this.rng.pick(entry));
    if (!offer) return;
    const init = await this.rpc(epoch, (o) => this.center.initPayment({ header: hdr(CmdType.PM3_1), order: offer }, o));
    if (!init.ok) return;
    const r = await this.rpc(epoch, (o) =>
      this.center.pay({ header: hdr(CmdType.PM4_1), scrip: dead, order: offer, hash: this.hash(CmdType.PM4_1, offer.tranId, 0, dead, { order: offer }), pCount: 0 }, o),
    );
    if (!r.ok) return;
    const cmd = r.v.header?.cmdType;
    if (cmd === CmdType.PM5_1) this.violation(`DOUBLE SPEND: dead serial ${dead.scrip!.scripId!.serialNumber} was accepted again (tran ${offer.tranId})`);
    else if (cmd === CmdType.PM5_2) {
      const reason = r.v.header!.errorReason;
      if (reason !== "SCRIP_NOT_LIVE" && reason !== "EXPIRED") this.violation(`replayed dead scrip refused with ${reason}, expected SCRIP_NOT_LIVE`);
      this.env.stats.refusal(`replay:${reason}`);
      this.env.stats.op("replay-refused");
    }
  }

  // ------------------------------------------------------------ the journal's state machine

  private async resume(epoch: number): Promise<void> {
    while (this.d.journal) {
      const j = this.d.journal;
      switch (j.kind) {
        case "issue":
          await this.stepIssue(epoch, j);
          break;
        case "pay":
          await this.stepPay(epoch, j);
          break;
        case "race":
          await this.stepRace(epoch, j);
          break;
        case "redeem":
          await this.stepRedeem(epoch, j);
          break;
        case "renew":
          await this.stepRenew(epoch, j);
          break;
        case "sync":
          await this.stepSync(epoch, j);
          break;
      }
      this.check(epoch);
    }
  }

  private done(op: string): void {
    this.d.journal = undefined;
    this.env.stats.op(op);
  }

  /** On a loss in the execute phase, a wallet may give up and cancel instead of retransmitting. */
  private maybeCancel(j: { phase: Phase }): void {
    if (j.phase === "execute" && !this.env.draining && this.rng.chance(0.15)) j.phase = "cancel";
  }

  private sameIssue = (what: string) => (a: IssueResponse, b: IssueResponse) => {
    const ok = (r: IssueResponse) => r.header?.cmdType === CmdType.GM5_1 || r.header?.errorReason === "CANCELLED";
    if (ok(a) && ok(b) && (!equals(IssueResponseSchema, { ...a, header: undefined }, { ...b, header: undefined }))) {
      this.violation(`${what}: two copies of one request got different replies (new serials ${a.newScrip?.scrip?.scripId?.serialNumber} / ${b.newScrip?.scrip?.scripId?.serialNumber})`);
    }
  };

  private samePay = (what: string) => (a: PayResponse, b: PayResponse) => {
    const ok = (r: PayResponse) => r.header?.cmdType === CmdType.PM5_1 || r.header?.errorReason === "CANCELLED";
    if (ok(a) && ok(b) && !equals(PayResponseSchema, { ...a, header: undefined }, { ...b, header: undefined })) {
      this.violation(`${what}: two copies of one request got different replies (new serials ${a.newScrip?.scrip?.scripId?.serialNumber} / ${b.newScrip?.scrip?.scripId?.serialNumber})`);
    }
  };

  private sameM7 = (what: string) => (a: ConfirmIssueResponse, b: ConfirmIssueResponse) => {
    if (a.state === b.state && a.state !== TransactionState.UNSPECIFIED) {
      if (!equals(ConfirmIssueResponseSchema, { ...a, header: undefined, scripHash: new Uint8Array() }, { ...b, header: undefined, scripHash: new Uint8Array() })) {
        this.violation(`${what}: two copies of one confirmation got different replies`);
      }
    } else if (a.state !== b.state) this.violation(`${what}: two copies of one confirmation got states ${TransactionState[a.state]} and ${TransactionState[b.state]}`);
  };

  private sameReceipt = (what: string) => (a: ConfirmPaymentResponse, b: ConfirmPaymentResponse) => {
    if (a.state !== b.state) this.violation(`${what}: two copies of one confirmation got states ${TransactionState[a.state]} and ${TransactionState[b.state]}`);
    else if (!equals(ConfirmPaymentResponseSchema, { ...a, header: undefined, scripHash: new Uint8Array() }, { ...b, header: undefined, scripHash: new Uint8Array() })) {
      this.violation(`${what}: two copies of one confirmation got different replies (receipt MACs ${hex(a.receipt?.mac)} / ${hex(b.receipt?.mac)})`);
    }
  };

  private async stepIssue(epoch: number, j: Extract<Journal, { kind: "issue" }>): Promise<void> {
    const tranId = j.offer.tranId;
    const amount = j.offer.amount;
    const before = j.scrip.scrip!.value;
    switch (j.phase) {
      case "init": {
        const r = await this.rpc(epoch, (o) => this.center.initIssue({ header: hdr(CmdType.GM3_1), permit: j.offer }, o));
        if (r.ok) j.phase = "execute";
        else if (r.lost) await this.lost(epoch, j);
        else {
          this.definite(`M3 ${tranId}`, r.err);
          this.done("issue-abandoned");
        }
        return;
      }
      case "execute":
      case "cancel": {
        const cmd = j.phase === "execute" ? CmdType.GM4_1 : CmdType.GM4_2;
        const p = j.pCount;
        const r = await this.rpc(
          epoch,
          (o) => this.center.issue({ header: hdr(cmd), tranId, scrip: j.scrip, scripHash: this.hash(cmd, tranId, p, j.scrip), pCount: p }, o),
          this.sameIssue(`M4 ${CmdType[cmd]} ${tranId}`),
        );
        if (!r.ok) {
          if (!r.lost) {
            this.definite(`M4 ${tranId}`, r.err);
            this.done("issue-error");
            return;
          }
          this.maybeCancel(j);
          return this.lost(epoch, j);
        }
        const m5 = r.v;
        const got = m5.header?.cmdType;
        if (got === CmdType.GM5_1 && cmd === CmdType.GM4_1) {
          if (!this.verified(CmdType.GM5_1, tranId, 0, m5.newScrip, m5.newScripHash)) {
            this.violation(`M5 ${tranId}: new scrip's hash does not verify; not adopted`);
            j.phase = "cancel";
            return this.lost(epoch, j);
          }
          this.d.modelValue += amount;
          this.env.model.issuedNet += amount;
          this.adopt(m5.newScrip!, this.d.modelValue, `GM5_1 ${tranId}`);
          j.newScrip = m5.newScrip!;
          j.phase = this.rng.chance(0.08) ? "undo" : "confirm";
          j.pCount = 0;
          j.attempts = 0;
          return;
        }
        if (got === CmdType.GM5_4) {
          j.pCount = Math.max(m5.pCount, j.pCount);
          return this.lost(epoch, j);
        }
        if (got === CmdType.GM5_3 && m5.header?.errorReason === "CANCELLED" && cmd === CmdType.GM4_2) {
          if (m5.newScrip) {
            if (!this.verified(CmdType.GM5_3, tranId, p + 1, m5.newScrip, m5.newScripHash)) {
              this.violation(`GM4_2 ${tranId}: restored scrip's hash does not verify`);
            }
            this.adopt(m5.newScrip, before, `GM4_2 restore ${tranId}`);
          }
          this.done(m5.newScrip ? "issue-cancelled-after-execution" : "issue-cancelled");
          return;
        }
        // A refusal: echoed scrip, hash at pCount + 1. Nothing moved.
        const reason = m5.header?.errorReason ?? "?";
        if (!this.verified(got ?? CmdType.UNSPECIFIED, tranId, p + 1, m5.scrip, m5.scripHash)) this.violation(`M5 refusal ${reason} for ${tranId} does not authenticate`);
        this.env.stats.refusal(`issue:${reason}`);
        if (cmd === CmdType.GM4_2 || (reason !== "ALREADY_REWARDED" && reason !== "BUDGET_EXHAUSTED")) {
          this.violation(`${CmdType[cmd]} ${tranId} refused unexpectedly: ${CmdType[got ?? 0]} ${reason}: ${m5.header?.errorMessage}`);
        }
        this.done("issue-refused");
        return;
      }
      case "confirm":
      case "undo": {
        const cmd = j.phase === "confirm" ? CmdType.GM6_1 : CmdType.GM6_3;
        const p = j.pCount;
        const s = j.newScrip!;
        const r = await this.rpc(
          epoch,
          (o) => this.center.confirmIssue({ header: hdr(cmd), tranId, newScrip: s, newScripHash: this.hash(cmd, tranId, p, s), pCount: p }, o),
          this.sameM7(`M6 ${CmdType[cmd]} ${tranId}`),
        );
        if (!r.ok) {
          if (!r.lost) {
            this.definite(`M6 ${CmdType[cmd]} ${tranId}`, r.err);
            this.done("issue-error");
            return;
          }
          return this.lost(epoch, j);
        }
        const m7 = r.v;
        if (cmd === CmdType.GM6_1) {
          if (m7.state !== TransactionState.CONFIRMED) this.violation(`M7 ${tranId}: state ${TransactionState[m7.state]}, expected CONFIRMED`);
          if (!this.verified(CmdType.GM7_1, tranId, p + 1, m7.scrip, m7.scripHash)) this.violation(`M7 ${tranId} does not authenticate`);
          this.env.model.confirmedIssues.set(tranId, amount);
          this.done("earn");
        } else {
          if (m7.state !== TransactionState.CANCELLED || !m7.scrip) {
            this.violation(`GM6_3 ${tranId}: state ${TransactionState[m7.state]}, expected CANCELLED with the restored scrip`);
            this.done("issue-error");
            return;
          }
          if (!this.verified(CmdType.GM7_1, tranId, p + 1, m7.scrip, m7.scripHash)) this.violation(`GM6_3 ${tranId}: restored scrip does not authenticate`);
          this.d.modelValue -= amount;
          this.env.model.issuedNet -= amount;
          this.adopt(m7.scrip, this.d.modelValue, `GM6_3 ${tranId}`);
          this.done("earn-undone");
        }
        return;
      }
    }
  }

  private async stepPay(epoch: number, j: Extract<Journal, { kind: "pay" }>): Promise<void> {
    const tranId = j.offer.tranId;
    const price = j.offer.amount;
    const before = j.scrip.scrip!.value;
    switch (j.phase) {
      case "init": {
        const r = await this.rpc(epoch, (o) => this.center.initPayment({ header: hdr(CmdType.PM3_1), order: j.offer }, o));
        if (r.ok) j.phase = "execute";
        else if (r.lost) await this.lost(epoch, j);
        else {
          this.definite(`S3 ${tranId}`, r.err);
          this.done("pay-abandoned");
        }
        return;
      }
      case "execute":
      case "cancel": {
        const cmd = j.phase === "execute" ? CmdType.PM4_1 : CmdType.PM4_2;
        const p = j.pCount;
        const r = await this.rpc(
          epoch,
          (o) => this.center.pay({ header: hdr(cmd), scrip: j.scrip, order: j.offer, hash: this.hash(cmd, tranId, p, j.scrip, { order: j.offer }), pCount: p }, o),
          this.samePay(`S4 ${CmdType[cmd]} ${tranId}`),
        );
        if (!r.ok) {
          if (!r.lost) {
            this.definite(`S4 ${tranId}`, r.err);
            this.done("pay-error");
            return;
          }
          this.maybeCancel(j);
          return this.lost(epoch, j);
        }
        const s5 = r.v;
        const got = s5.header?.cmdType;
        if (got === CmdType.PM5_1 && cmd === CmdType.PM4_1) {
          if (!this.verified(CmdType.PM5_1, tranId, 0, s5.newScrip, s5.newScripHash)) {
            this.violation(`S5 ${tranId}: change scrip's hash does not verify; not adopted`);
            j.phase = "cancel";
            return this.lost(epoch, j);
          }
          this.d.modelValue -= price;
          this.env.model.vendorNet += price;
          this.adopt(s5.newScrip!, this.d.modelValue, `PM5_1 ${tranId}`);
          j.newScrip = s5.newScrip!;
          j.phase = this.rng.chance(0.08) ? "undo" : "confirm";
          j.pCount = 0;
          j.attempts = 0;
          return;
        }
        if (got === CmdType.PM5_3) {
          j.pCount = Math.max(s5.pCount, j.pCount);
          return this.lost(epoch, j);
        }
        if (got === CmdType.PM5_2 && s5.header?.errorReason === "CANCELLED" && cmd === CmdType.PM4_2) {
          if (s5.newScrip) {
            if (!this.verified(CmdType.PM5_2, tranId, p + 1, s5.newScrip, s5.newScripHash)) this.violation(`PM4_2 ${tranId}: restored scrip's hash does not verify`);
            this.adopt(s5.newScrip, before, `PM4_2 restore ${tranId}`);
          }
          this.done(s5.newScrip ? "pay-cancelled-after-execution" : "pay-cancelled");
          return;
        }
        const reason = s5.header?.errorReason ?? "?";
        if (!this.verified(got ?? CmdType.UNSPECIFIED, tranId, p + 1, s5.scrip, s5.hash, { order: j.offer })) this.violation(`S5 refusal ${reason} for ${tranId} does not authenticate`);
        this.env.stats.refusal(`pay:${reason}`);
        const expected = reason === "INSUFFICIENT_VALUE" && price > before;
        if (cmd === CmdType.PM4_2 || !expected) this.violation(`${CmdType[cmd]} ${tranId} refused unexpectedly: ${CmdType[got ?? 0]} ${reason}: ${s5.header?.errorMessage}`);
        this.done("pay-refused");
        return;
      }
      case "confirm":
      case "undo": {
        const cmd = j.phase === "confirm" ? CmdType.PM6_1 : CmdType.PM6_3;
        const p = j.pCount;
        const s = j.newScrip!;
        const r = await this.rpc(
          epoch,
          (o) => this.center.confirmPayment({ header: hdr(cmd), tranId, newScrip: s, newScripHash: this.hash(cmd, tranId, p, s), pCount: p }, o),
          this.sameReceipt(`S6 ${CmdType[cmd]} ${tranId}`),
        );
        if (!r.ok) {
          if (!r.lost) {
            this.definite(`S6 ${CmdType[cmd]} ${tranId}`, r.err);
            this.done("pay-error");
            return;
          }
          return this.lost(epoch, j);
        }
        const s7 = r.v;
        if (cmd === CmdType.PM6_1) {
          const rc = s7.receipt;
          if (s7.state !== TransactionState.CONFIRMED || !rc) {
            this.violation(`S6 ${tranId}: state ${TransactionState[s7.state]} without a receipt`);
          } else {
            if (rc.tranId !== tranId || rc.price !== price || rc.vendorId !== j.offer.vendorId || rc.requestUrl !== j.offer.item) {
              this.violation(`S6 ${tranId}: receipt does not match the order (${rc.tranId} ${rc.price} ${rc.requestUrl})`);
            }
            if (!this.verified(CmdType.PM7_1, tranId, p + 1, s7.scrip, s7.scripHash)) this.violation(`S6 ${tranId} reply does not authenticate`);
            const prev = this.env.model.receipts.get(tranId);
            if (prev && Buffer.compare(Buffer.from(prev.mac), Buffer.from(rc.mac)) !== 0) this.violation(`S6 ${tranId}: a second, different receipt for one payment`);
            this.env.model.receipts.set(tranId, rc);
          }
          this.done("pay");
        } else {
          if (s7.state !== TransactionState.CANCELLED || !s7.scrip) {
            this.violation(`PM6_3 ${tranId}: state ${TransactionState[s7.state]}, expected CANCELLED with the restored scrip`);
            this.done("pay-error");
            return;
          }
          if (s7.receipt) this.violation(`PM6_3 ${tranId}: an undone payment came with a receipt`);
          if (!this.verified(CmdType.PM7_1, tranId, p + 1, s7.scrip, s7.scripHash)) this.violation(`PM6_3 ${tranId}: restored scrip does not authenticate`);
          this.d.modelValue += price;
          this.env.model.vendorNet -= price;
          this.adopt(s7.scrip, this.d.modelValue, `PM6_3 ${tranId}`);
          this.done("pay-undone");
        }
        return;
      }
    }
  }

  private async stepRace(epoch: number, j: Extract<Journal, { kind: "race" }>): Promise<void> {
    if (j.phase === "init") {
      const rs = await Promise.all(j.offers.map((offer) => this.rpc(epoch, (o) => this.center.initPayment({ header: hdr(CmdType.PM3_1), order: offer }, o))));
      if (rs.every((r) => r.ok)) j.phase = "execute";
      else if (rs.some((r) => !r.ok && !r.lost)) {
        this.violation(`race S3: ${rs.map((r) => (r.ok ? "ok" : String(r.err))).join(", ")}`);
        this.done("race-abandoned");
      } else await this.lost(epoch, j);
      return;
    }
    const p = j.pCount;
    const rs = await Promise.all(
      j.offers.map((offer) =>
        this.rpc(epoch, (o) => this.center.pay({ header: hdr(CmdType.PM4_1), scrip: j.scrip, order: offer, hash: this.hash(CmdType.PM4_1, offer.tranId, p, j.scrip, { order: offer }), pCount: p }, o)),
      ),
    );
    const winners = rs.flatMap((r, i) => (r.ok && r.v.header?.cmdType === CmdType.PM5_1 ? [{ i, s5: r.v }] : []));
    const serials = new Set(winners.map((w) => w.s5.newScrip?.scrip?.scripId?.serialNumber));
    if (winners.length > 1) {
      this.violation(`DOUBLE SPEND: serial ${j.scrip.scrip!.scripId!.serialNumber} paid both ${j.offers[0]!.tranId} and ${j.offers[1]!.tranId} (${serials.size} change scrips)`);
    }
    for (const r of rs) {
      if (r.ok && r.v.header?.cmdType === CmdType.PM5_2) {
        const reason = r.v.header.errorReason;
        this.env.stats.refusal(`race:${reason}`);
        if (reason !== "SCRIP_NOT_LIVE") this.violation(`race: the loser was refused with ${reason}, expected SCRIP_NOT_LIVE`);
      }
      if (!r.ok && !r.lost) this.definite("race S4", r.err);
    }
    const w = winners[0];
    if (w) {
      const offer = j.offers[w.i]!;
      if (!this.verified(CmdType.PM5_1, offer.tranId, 0, w.s5.newScrip, w.s5.newScripHash)) this.violation(`race S5 ${offer.tranId} does not verify`);
      this.d.modelValue -= offer.amount;
      this.env.model.vendorNet += offer.amount;
      this.adopt(w.s5.newScrip!, this.d.modelValue, `race PM5_1 ${offer.tranId}`);
      this.env.stats.op("race-one-won");
      this.d.journal = { kind: "pay", phase: "confirm", offer, scrip: j.scrip, newScrip: w.s5.newScrip!, pCount: 0, attempts: 0 };
      return;
    }
    if (rs.every((r) => r.ok && r.v.header?.cmdType === CmdType.PM5_2)) {
      this.violation(`race: both payments refused; the scrip was live, one had to win`);
      this.done("race-error");
      return;
    }
    // Some copy was lost (or PM5_3): whoever won will replay its stored S5.
    await this.lost(epoch, j);
  }

  private async stepRedeem(epoch: number, j: Extract<Journal, { kind: "redeem" }>): Promise<void> {
    const p = j.pCount;
    const r = await this.rpc(epoch, (o) =>
      this.center.redeem(
        {
          header: hdr(CmdType.RD1),
          requestId: j.requestId,
          scrip: j.scrip,
          scripHash: this.hash(CmdType.RD1, j.requestId, p, j.scrip, { amount: j.amount, account: j.account }),
          amount: j.amount,
          payoutAccount: j.account,
          pCount: p,
        },
        o,
      ),
    );
    if (!r.ok) {
      if (!r.lost) {
        this.definite(`RD1 ${j.requestId}`, r.err);
        this.done("redeem-error");
        return;
      }
      return this.lost(epoch, j);
    }
    const rd2 = r.v;
    if (!this.verified(CmdType.RD2, j.requestId, 0, rd2.newScrip, rd2.newScripHash, { amount: j.amount, account: j.account })) {
      this.violation(`RD2 ${j.requestId} does not authenticate; not adopted`);
      this.done("redeem-error");
      return;
    }
    if (rd2.payout?.amount !== j.amount) this.violation(`RD2 ${j.requestId}: payout ${rd2.payout?.amount}, requested ${j.amount}`);
    this.d.modelValue -= j.amount;
    this.env.model.payouts += j.amount;
    this.adopt(rd2.newScrip!, this.d.modelValue, `RD2 ${j.requestId}`);
    this.done("redeem");
  }

  private async stepRenew(epoch: number, j: Extract<Journal, { kind: "renew" }>): Promise<void> {
    const p = j.pCount;
    const r = await this.rpc(epoch, (o) =>
      this.center.renew({ header: hdr(CmdType.RN1), requestId: j.requestId, scrip: j.scrip, scripHash: this.hash(CmdType.RN1, j.requestId, p, j.scrip), pCount: p }, o),
    );
    if (!r.ok) {
      if (!r.lost) {
        this.definite(`RN1 ${j.requestId}`, r.err);
        this.done("renew-error");
        return;
      }
      return this.lost(epoch, j);
    }
    if (!this.verified(CmdType.RN2, j.requestId, 0, r.v.newScrip, r.v.newScripHash)) {
      this.violation(`RN2 ${j.requestId} does not authenticate; not adopted`);
      this.done("renew-error");
      return;
    }
    this.adopt(r.v.newScrip!, this.d.modelValue, `RN2 ${j.requestId}`);
    this.done("renew");
  }

  // ------------------------------------------------------------ restore / sync

  private syncRequest() {
    const customId = this.d.scrip!.scrip!.customId!;
    const nonce = this.rng.bytes(32);
    const timestampUnixMs = BigInt(Date.now());
    return { header: hdr(CmdType.SY1), customId, timestampUnixMs, nonce, hash: computeSyncRequestHash(this.d.customSecret!, { customId, timestampUnixMs, nonce }) };
  }

  /**
   * The device is lost; the recovery code is all that is left. A fresh nonce
   * per attempt (a lost reply's request must not be re-sent: its nonce is
   * used). The reply must authenticate, hold the serial this wallet last
   * adopted (or a fresh one that folded refund credits the harness really
   * made for this customer) and exactly the model's value.
   */
  private async stepSync(epoch: number, j: Extract<Journal, { kind: "sync" }>): Promise<void> {
    const req = this.syncRequest();
    const r = await this.rpc(epoch, (o) => this.center.sync(req, o));
    if (!r.ok) {
      if (!r.lost) {
        this.definite("SY1", r.err);
        this.done("sync-error");
        return;
      }
      return this.lost(epoch, j);
    }
    const res = r.v;
    const customId = req.customId;
    const ok = verifySyncReplyHash(
      this.d.customSecret!,
      { customId, requestNonce: req.nonce, serverTimeUnixMs: res.serverTimeUnixMs, scrips: res.scrips, inFlight: res.inFlight, credits: res.credits },
      res.hash,
    );
    if (!ok) {
      this.violation("SY2 does not authenticate; not adopted");
      this.done("sync-error");
      return;
    }
    for (const c of res.credits) {
      if (c.foldedIntoSerial === 0n || this.d.folded.has(c.refundId)) continue;
      const known = this.env.model.refunds.get(c.refundId);
      if (!known) {
        // The refund may be executed while its RF2 answer is still on the way
        // (dropped, retransmitted): adopt it now, prove it at the end.
        this.env.model.foldsAwaitingRf2.set(c.refundId, { amount: c.amount, customerSerial: customId.serialNumber });
      } else if (known.customerSerial !== customId.serialNumber || known.amount !== c.amount) {
        this.violation(`SY2 reports refund ${c.refundId} of ${c.amount} folded, which the harness made for another customer or amount`);
        continue;
      }
      this.d.folded.add(c.refundId);
      this.d.modelValue += c.amount;
      this.env.model.folded += c.amount;
    }
    const live = res.scrips.find((s) => s.scrip?.currency === "KRW");
    if (!live) {
      this.violation("SY2 holds no live KRW scrip");
      this.done("sync-error");
      return;
    }
    const held = this.d.scrip!.scrip!.scripId!.serialNumber;
    if (live.scrip!.scripId!.serialNumber === held) {
      if (live.scrip!.value !== this.d.modelValue) this.violation(`SY2: live scrip ${held} holds ${live.scrip!.value}, the model ${this.d.modelValue}`);
      this.d.scrip = live; // re-certified copy of the same serial
    } else {
      this.adopt(live, this.d.modelValue, "SY2 (credits folded)");
    }
    if (res.inFlight.some((t) => t.state === TransactionState.EXECUTED)) this.env.stats.op("sync-saw-executed");
    // Sometimes the same recorded request again: it must be refused (used nonce), like a wrong code.
    if (this.rng.chance(0.2)) {
      const again = await this.rpc(epoch, (o) => this.center.sync(req, o));
      if (again.ok) this.violation("a replayed SY1 was answered");
      else if (!again.lost && (again.err.code !== Code.Unauthenticated || errorReason(again.err) !== "BAD_HASH")) this.definite("replayed SY1", again.err);
      else if (!again.lost) this.env.stats.refusal("SYNC_REPLAY_REFUSED");
    }
    this.done("restore");
  }
}
