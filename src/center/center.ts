/**
 * The payment center's protocol logic (R1-R2, M3-M7, S3-S6, renew, redeem,
 * settlements), as plain functions of request messages to response messages
 * over a Ledger and a KeyRing. No transport here: service.ts adapts this to
 * Connect, and tests can drive it in-process or over a socket.
 *
 * Order of checks on every scrip-bearing request, so refusals are precise:
 *   1. shape (INVALID_ARGUMENT),
 *   2. the message hash under the customer's Custom_Secret (UNAUTHENTICATED:
 *      the sender is not that customer; same answer whether or not the
 *      customer exists),
 *   3. scrip validity: certificate, issuer, algorithm policy, expiry
 *      (GM5_2 / PM5_2, echoing the scrip with pCount + 1),
 *   4. the ledger's atomic decision (live serial, TranID state, budget).
 */
import { create, toBinary, fromBinary } from "@bufbuild/protobuf";
import { sha256Of } from "../crypto/hash.js";
import { randomBytes } from "node:crypto";
import { EventEmitter } from "node:events";
import type { GenMessage } from "@bufbuild/protobuf/codegenv2";
import { rememberEncoding } from "../server/encoded.js";
import {
  GetCenterInfoResponseSchema,
  ListSettlementsResponseSchema,
  RedeemResponseSchema,
  RegisterResponseSchema,
  RenewResponseSchema,
  SettlementKind,
  SettlementSchema,
  TransactionState,
  type ConfirmIssueRequest,
  type ConfirmIssueResponse,
  type ConfirmPaymentRequest,
  type ConfirmPaymentResponse,
  type GetCenterInfoResponse,
  type InitIssueRequest,
  type InitIssueResponse,
  type InitPaymentRequest,
  type InitPaymentResponse,
  type IssueRequest,
  type IssueResponse,
  type ListSettlementsRequest,
  type ListSettlementsResponse,
  type PayRequest,
  type PayResponse,
  type RedeemRequest,
  type RedeemResponse,
  type RegisterRequest,
  type RegisterResponse,
  type RenewRequest,
  type RenewResponse,
  type Settlement,
} from "../../gen/scripwire/v1/center_pb.js";
import {
  CmdType,
  HashAlgorithm,
  IdTypeSchema,
  OfferKind,
  PayoutSchema,
  ReceiptSchema,
  ScripBodyTypeSchema,
  ScripTypeSchema,
  ServerTypeSchema,
  type HeaderType,
  type Offer,
  type Receipt,
  type ScripType,
  type ServerType,
} from "../../gen/scripwire/v1/types_pb.js";
import { offerInput } from "../crypto/canonical.js";
import { MAC_BYTES } from "../crypto/mac.js";
import { encryptCustomSecret, openSessionKey, SEALED_SESSION_KEY_BYTES } from "../crypto/registration.js";
import {
  computeCertificate,
  computeMessageHash,
  computeReceiptMac,
  verifyCertificate,
  verifyMessageHash,
  verifyOfferMac,
  verifySettlementsMac,
} from "../crypto/scrip-auth.js";
import { UnsupportedAlgorithmError } from "../crypto/mac.js";
import { LedgerError, type ExecuteOp, type Ledger, type LedgerResult, type Refusal, type ScripRow, type TransactionRecord, type VendorKeyRecord, type VendorRecord } from "../ledger/ledger.js";
import { I64_MAX } from "../money.js";
import { randomSerial } from "./serials.js";
import { checkProtocolVersion, cmdCode, header, P_COUNT_MAX } from "../protocol/header.js";
import { raise, refusal, ProtocolError, type Invalid, type Reason } from "../protocol/refusal.js";
import { KeyRing } from "./keyring.js";
import { initReply, ISSUE, PAY, type ValueStep } from "./steps.js";

type Msg = { $typeName: string };
type HeaderShape = { header?: HeaderType };
type InitShape = HeaderShape;
type ConfirmShape = Msg & { tranId: string; scrip?: ScripType; scripHash: Uint8Array };
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type AnyStep = ValueStep<any, any, any, any, any, any>;


export interface CenterConfig {
  /** How the center names itself in every scrip's vendor_id; a scrip naming another issuer is foreign. */
  identity: { dnsName: string; ipAddr?: string; serverName: string; port: number };
  /** Currencies this center issues; the first is the default for registration. */
  currencies: string[];
  /** Accepted hash algorithms; the first is what new scrip uses. Default: HMAC-SHA-256 only. */
  acceptedAlgorithms?: HashAlgorithm[];
  /** Lifetime of newly issued scrip (default 30 days). */
  scripLifetimeSeconds?: number;
  /** Minimum redemption per currency (default 1000 units). */
  redeemThreshold?: Record<string, bigint>;
  /** Injected clock, milliseconds (default Date.now). */
  clock?: () => number;
}

/** How long a settlement request's timestamp stays acceptable, against replay. */
export const SETTLEMENT_REQUEST_SKEW_MS = 5 * 60_000;
/** Vendor records are cached this long; a rotated vendor key is picked up on the first miss anyway. */
const VENDOR_CACHE_MS = 5_000;
const ID_PATTERN = /^[A-Za-z0-9._:-]{1,128}$/;
const EXPIRED_MESSAGE = "the scrip has expired; renew it (scripwire wallet renew)";

/**
 * A reply encoded for the ledger, its bytes remembered with it, so the
 * transport sends those bytes instead of encoding the same message again
 * (src/server/encoded.ts). Only for replies returned unchanged.
 */
function storedReply<T extends Msg>(schema: GenMessage<T>, reply: T): Uint8Array {
  const bytes = toBinary(schema, reply);
  rememberEncoding(reply, bytes);
  return bytes;
}

/** A stored reply replayed unchanged: decoded, with its bytes remembered. */
function replayed<T extends Msg>(schema: GenMessage<T>, bytes: Uint8Array): T {
  const reply = fromBinary(schema, bytes);
  rememberEncoding(reply, bytes);
  return reply;
}

function hex(b: Uint8Array): string {
  return Buffer.from(b).toString("hex");
}

/** The command code in a stored reply's header if it decodes as `schema`, else undefined. */
function storedReplyCode(schema: GenMessage<Msg>, bytes: Uint8Array): CmdType | undefined {
  try {
    return (fromBinary(schema, bytes) as HeaderShape).header?.cmdType;
  } catch {
    return undefined;
  }
}

/** SHA-256 of the offer's canonical bytes and MAC: what binds a TranID to one exact offer. */
export function offerHash(o: Offer): Uint8Array {
  return sha256Of(offerInput(o), o.mac);
}

export class PaymentCenter {
  readonly keys: KeyRing;
  readonly events = new EventEmitter();
  private readonly algorithms: HashAlgorithm[];
  private readonly lifetime: bigint;
  private readonly threshold: Record<string, bigint>;
  private readonly clock: () => number;
  private readonly identity: ServerType;
  private vendorCache = new Map<string, { at: number; v: { vendor: VendorRecord; keys: VendorKeyRecord[] } }>();

  constructor(
    readonly ledger: Ledger,
    readonly config: CenterConfig,
  ) {
    if (config.currencies.length === 0) throw new Error("a center needs at least one currency");
    this.keys = new KeyRing(ledger, config.clock ?? Date.now);
    this.algorithms = config.acceptedAlgorithms?.length ? config.acceptedAlgorithms : [HashAlgorithm.HMAC_SHA256];
    this.lifetime = BigInt(config.scripLifetimeSeconds ?? 30 * 86_400);
    this.threshold = config.redeemThreshold ?? Object.fromEntries(config.currencies.map((c) => [c, 1000n]));
    this.clock = config.clock ?? Date.now;
    this.identity = create(ServerTypeSchema, { ...config.identity, ipAddr: config.identity.ipAddr ?? "" });
    this.events.setMaxListeners(0);
  }

  async start(): Promise<void> {
    await this.ledger.migrate();
    await this.keys.load();
  }

  private nowMs(): number {
    return this.clock();
  }

  private nowSec(): bigint {
    return BigInt(Math.floor(this.clock() / 1000));
  }

  info(): GetCenterInfoResponse {
    return create(GetCenterInfoResponseSchema, {
      header: header(CmdType.UNSPECIFIED, this.nowMs()),
      center: this.identity,
      publicKey: this.keys.centerKeyPair().publicKey,
      acceptedHashAlgorithms: this.algorithms,
      currencies: this.config.currencies,
      redeemThreshold: Object.fromEntries(Object.entries(this.threshold)),
      scripLifetimeSeconds: this.lifetime,
    });
  }

  // ---------------------------------------------------------------- shared checks

  /** The header names one of the calls this method serves, in this protocol's version. */
  private checkHeader(h: HeaderType | undefined, allowed: CmdType[]): CmdType {
    const got = h?.cmdType;
    if (got === undefined || !allowed.includes(got)) {
      throw refusal(
        "WRONG_CMD_TYPE",
        `header.cmd_type must be one of ${allowed.map((c) => CmdType[c]).join(", ")}; got ${got === undefined ? "no header" : (CmdType[got] ?? got)}`,
      );
    }
    checkProtocolVersion(h!);
    return got;
  }

  private checkPCount(p: number): void {
    if (p > P_COUNT_MAX) throw refusal("P_COUNT_TOO_HIGH", `p_count ${p} exceeds ${P_COUNT_MAX}; start a new transaction`);
  }

  private checkTranId(t: string): void {
    if (!ID_PATTERN.test(t)) throw refusal("BAD_TRAN_ID", "tran_id must be 1-128 characters of [A-Za-z0-9._:-]");
  }

  /** Shape of a presented scrip, before any key is used. */
  private checkScripShape(s: ScripType | undefined, field: string): asserts s is ScripType & { scrip: NonNullable<ScripType["scrip"]> } {
    if (!s || !s.scrip) throw refusal("MISSING_SCRIP", `${field} is required: send the scrip exactly as the center issued it`);
    const b = s.scrip;
    if (s.certificate.length !== MAC_BYTES) throw refusal("BAD_SCRIP", `${field}.certificate must be ${MAC_BYTES} bytes`);
    if (!b.scripId || !b.customId) throw refusal("BAD_SCRIP", `${field}.scrip must carry scrip_id and custom_id`);
    if (b.value < 0n) throw refusal("BAD_SCRIP", `${field}.scrip.value must not be negative`);
  }

  private async customSecretFor(s: ScripType): Promise<Uint8Array> {
    const id = s.scrip!.customId!;
    // A generation rotated in on another replica is picked up here (a gated reload).
    const cs = await this.keys.findCustomSecret(id.secretId, id.serialNumber);
    // Same answer for an unknown generation as for a bad hash: nothing about
    // which customers or key generations exist leaks.
    if (!cs) throw refusal("BAD_HASH", "the message hash does not verify; recompute it with your Custom_Secret");
    return cs;
  }

  private async verifyRequestHash(
    s: ScripType,
    code: CmdType,
    contextId: string,
    pCount: number,
    hash: Uint8Array,
    extra: { order?: Offer; amount?: bigint; account?: string } = {},
  ): Promise<Uint8Array> {
    if (hash.length !== MAC_BYTES) throw refusal("BAD_LENGTH", `the message hash must be ${MAC_BYTES} bytes`);
    if (!this.algorithms.includes(s.hashAlgorithm)) {
      throw refusal("ALGORITHM_NOT_ACCEPTED", `hash algorithm ${s.hashAlgorithm} is not accepted by this center; renew the scrip`);
    }
    const cs = await this.customSecretFor(s);
    if (!verifyMessageHash(s.hashAlgorithm, cs, { code: cmdCode(code), contextId, pCount, scrip: s, ...extra }, hash)) {
      throw refusal("BAD_HASH", "the message hash does not verify; recompute it with your Custom_Secret");
    }
    return cs;
  }

  /** Why the scrip is not valid e-cash of this center (the patent's validity error), if it is not. */
  private async scripInvalid(s: ScripType, allowExpired = false): Promise<Invalid | undefined> {
    const b = s.scrip!;
    const v = b.vendorId;
    if (!v || v.dnsName !== this.identity.dnsName || v.port !== this.identity.port) return { reason: "FOREIGN_SCRIP", message: "this scrip was not issued by this center" };
    const certKey = await this.keys.find("certificate", b.scripId!.secretId);
    if (!certKey || !verifyCertificate(certKey, s)) return { reason: "BAD_CERTIFICATE", message: "the scrip's certificate does not verify; it was altered" };
    if (!this.config.currencies.includes(b.currency)) return { reason: "UNKNOWN_CURRENCY", message: `${b.currency} is not issued here` };
    if (!allowExpired && this.expired(s)) return { reason: "EXPIRED", message: EXPIRED_MESSAGE };
    return undefined;
  }

  private expired(s: ScripType): boolean {
    return s.scrip!.expirationDateUnix < this.nowSec();
  }

  private newScrip(alg: HashAlgorithm, base: ScripType, value: bigint, ad: string): { scrip: ScripType; row: ScripRow } {
    const cert = this.keys.current("certificate");
    const b = base.scrip!;
    const serial = randomSerial();
    const expires = this.nowSec() + this.lifetime;
    const body = create(ScripBodyTypeSchema, {
      currency: b.currency,
      value,
      vendorId: this.identity,
      scripId: create(IdTypeSchema, { secretId: cert.secretId, serialNumber: serial }),
      customId: create(IdTypeSchema, { secretId: b.customId!.secretId, serialNumber: b.customId!.serialNumber }),
      ad,
      expirationDateUnix: expires,
    });
    const scrip = create(ScripTypeSchema, { hashAlgorithm: alg, scrip: body, certificate: computeCertificate(alg, cert.key, body) });
    return {
      scrip,
      row: { serial, customerSerial: b.customId!.serialNumber, currency: b.currency, value, expiresAt: expires },
    };
  }

  private hashFor(cs: Uint8Array, code: CmdType, contextId: string, pCount: number, s: ScripType, order?: Offer): Uint8Array {
    return computeMessageHash(s.hashAlgorithm, cs, { code: cmdCode(code), contextId, pCount, scrip: s, order });
  }

  /**
   * A vendor's record and secrets, cached for VENDOR_CACHE_MS. A vendor this
   * replica has not seen (created on another replica) or a key generation it
   * lacks (rotated on another) is read from the ledger, but through the reload
   * gate: a caller naming invented vendors or key ids gets "unknown" rather
   * than a database read per call.
   */
  private readonly vendorLoads = new Map<string, Promise<{ vendor: VendorRecord; keys: VendorKeyRecord[] } | undefined>>();

  private async vendor(vendorId: string, refresh = false): Promise<{ vendor: VendorRecord; keys: VendorKeyRecord[] } | undefined> {
    const hit = this.vendorCache.get(vendorId);
    if (hit && !refresh && this.nowMs() - hit.at < VENDOR_CACHE_MS) return hit.v;
    // Concurrent misses on one vendor share one read (a center starting under
    // load gets many at once): otherwise each would spend a reload token and
    // those past the gate's budget would see a known vendor as unknown.
    const pending = this.vendorLoads.get(vendorId);
    if (pending) return (await pending) ?? (refresh ? hit?.v : undefined);
    const gateKey = `vendor/${vendorId}`;
    if ((!hit || refresh) && !this.keys.gate.allow(gateKey)) return refresh ? hit?.v : undefined;
    const load = this.ledger.getVendor(vendorId).then((v) => {
      if (!v) this.keys.gate.missed(gateKey);
      if (v) this.vendorCache.set(vendorId, { at: this.nowMs(), v });
      return v;
    });
    this.vendorLoads.set(vendorId, load);
    try {
      return await load;
    } finally {
      this.vendorLoads.delete(vendorId);
    }
  }

  private async vendorKey(vendorId: string, keyId: number): Promise<Uint8Array | undefined> {
    let v = await this.vendor(vendorId);
    let k = v?.keys.find((x) => x.keyId === keyId);
    if (!k && v) {
      v = await this.vendor(vendorId, true);
      k = v?.keys.find((x) => x.keyId === keyId);
      if (!k) this.keys.gate.missed(`vendor/${vendorId}`);
    }
    return k?.secret;
  }

  /** Why a seller's offer is not acceptable, if it is not. */
  private async offerInvalid(o: Offer, kind: OfferKind): Promise<Invalid | undefined> {
    if (o.kind !== kind) return { reason: "WRONG_OFFER_KIND", message: `expected ${OfferKind[kind]} offer` };
    if (!this.algorithms.includes(o.hashAlgorithm)) return { reason: "ALGORITHM_NOT_ACCEPTED", message: "the offer's hash algorithm is not accepted" };
    const key = await this.vendorKey(o.vendorId, o.vendorKeyId);
    if (!key || !verifyOfferMac(key, o)) return { reason: "BAD_OFFER_MAC", message: "the offer's MAC does not verify; it was altered or is not from that seller" };
    // The offer names the seller (its ServerType) as well as its vendor id: the
    // name must be the one the center registered, so a wallet shown the offer's
    // vendor.dns_name is shown the seller that will be paid. Port and address
    // are compared where the record has them; the display name is not checked.
    const v = (await this.vendor(o.vendorId))?.vendor;
    const s = o.vendor;
    if (v && (!s || s.dnsName !== v.dnsName || (v.port !== 0 && s.port !== v.port) || (v.ipAddr !== "" && s.ipAddr !== v.ipAddr))) {
      return {
        reason: "VENDOR_MISMATCH",
        message: `the offer's vendor (${s?.dnsName ?? "none"}:${s?.port ?? 0}) is not how vendor ${o.vendorId} is registered at this center (${v.dnsName}${v.port ? `:${v.port}` : ""}); fix the seller's identity`,
      };
    }
    return undefined;
  }

  private checkOfferShape(o: Offer | undefined, field: string): asserts o is Offer {
    if (!o) throw refusal("MISSING_OFFER", `${field} is required: pass the seller's offer exactly as received`);
    this.checkTranId(o.tranId);
    if (o.amount <= 0n) throw refusal("BAD_AMOUNT", `${field}.amount must be positive`);
    if (o.mac.length !== MAC_BYTES) throw refusal("BAD_LENGTH", `${field}.mac must be ${MAC_BYTES} bytes`);
    if (!o.customId) throw refusal("BAD_OFFER", `${field}.custom_id is required`);
  }

  // ---------------------------------------------------------------- R1 -> R2

  async register(req: RegisterRequest): Promise<RegisterResponse> {
    this.checkHeader(req.header, [CmdType.UM1]);
    if (!ID_PATTERN.test(req.walletId)) throw refusal("BAD_WALLET_ID", "wallet_id must be 1-128 characters of [A-Za-z0-9._:-]");
    for (const [f, v] of [["name", req.name], ["address", req.address], ["email", req.email], ["etc", req.etc]] as const) {
      if (v.length > 512) throw refusal("FIELD_TOO_LONG", `${f} is limited to 512 characters`);
    }
    if (req.sealedSessionKey.length !== SEALED_SESSION_KEY_BYTES) {
      throw refusal("BAD_SEALED_KEY", `sealed_session_key must be ${SEALED_SESSION_KEY_BYTES} bytes (KUcenter[KS])`);
    }
    const currency = req.currency || this.config.currencies[0]!;
    if (!this.config.currencies.includes(currency)) {
      throw refusal("UNKNOWN_CURRENCY", `currency ${currency} is not issued here; choose one of ${this.config.currencies.join(", ")}`);
    }
    let ks: Uint8Array;
    try {
      ks = openSessionKey(this.keys.centerKeyPair(), req.walletId, req.sealedSessionKey);
    } catch {
      throw refusal("BAD_SEALED_KEY", "sealed_session_key does not open with this center's key; fetch GetCenterInfo and pin its public_key");
    }
    const sealedHash = sha256Of(req.sealedSessionKey);
    const custom = this.keys.current("custom");
    for (let attempt = 0; attempt < 4; attempt++) {
      const customerSerial = randomSerial();
      const cs = this.keys.customSecret(custom.secretId, customerSerial)!;
      const base = create(ScripTypeSchema, {
        scrip: create(ScripBodyTypeSchema, {
          currency,
          customId: create(IdTypeSchema, { secretId: custom.secretId, serialNumber: customerSerial }),
        }),
      });
      const { scrip, row } = this.newScrip(this.algorithms[0]!, base, 0n, "");
      const reply = create(RegisterResponseSchema, {
        header: header(CmdType.UM2, this.nowMs()),
        scrip,
        encryptedCustomSecret: encryptCustomSecret(ks, req.walletId, { secretId: custom.secretId, serialNumber: customerSerial }, cs),
      });
      const r = await this.ledger.registerCustomer({
        customerSerial,
        walletId: req.walletId,
        secretId: custom.secretId,
        profile: { name: req.name, address: req.address, email: req.email, etc: req.etc },
        sealedHash,
        scrip: row,
        reply: toBinary(RegisterResponseSchema, reply),
        now: this.nowSec(),
      });
      if (r.status === "done") return reply;
      if (r.status === "replayed") return fromBinary(RegisterResponseSchema, r.reply);
      if (r.refusal === "WALLET_ID_TAKEN") {
        throw refusal("WALLET_ID_TAKEN", "this wallet_id is registered with a different session key; generate a new wallet id");
      }
    }
    throw refusal("SERIAL_COLLISION", "could not allocate a customer serial; retry");
  }

  // ---------------------------------------------------------------- the journalled value step (M3-M7, S3-S7)

  // The six patent calls, each one step of the table in steps.ts.
  initIssue(req: InitIssueRequest): Promise<InitIssueResponse> { return this.initStep(ISSUE, req); }
  initPayment(req: InitPaymentRequest): Promise<InitPaymentResponse> { return this.initStep(PAY, req); }
  issue(req: IssueRequest): Promise<IssueResponse> { return this.executeStep(ISSUE, req); }
  pay(req: PayRequest): Promise<PayResponse> { return this.executeStep(PAY, req); }
  confirmIssue(req: ConfirmIssueRequest): Promise<ConfirmIssueResponse> { return this.confirmStep(ISSUE, req); }
  confirmPayment(req: ConfirmPaymentRequest): Promise<ConfirmPaymentResponse> { return this.confirmStep(PAY, req); }

  /** M3 / S3: record the seller's signed offer against its TranID. */
  private async initStep<IQ extends InitShape, IR extends Msg>(spec: ValueStep<IQ, IR, unknown, Msg, unknown, Msg>, req: IQ): Promise<IR> {
    this.checkHeader(req.header, [spec.init.cmd]);
    const offer = spec.init.offer(req);
    this.checkOfferShape(offer, spec.init.field);
    const bad = await this.offerInvalid(offer, spec.offerKind);
    if (bad) throw raise(bad);
    if (offer.expiresAtUnix < this.nowSec()) throw refusal("OFFER_EXPIRED", "the seller's offer has expired; ask the seller for a new one");
    const r = await this.ledger.initTransaction(
      {
        vendorId: offer.vendorId,
        tranId: offer.tranId,
        kind: spec.kind,
        customerSerial: offer.customId!.serialNumber,
        amount: offer.amount,
        currency: offer.currency,
        campaignId: offer.campaignId,
        item: offer.item,
        deliveryMethod: offer.deliveryMethod,
        expiresAt: offer.expiresAtUnix,
        offerHash: offerHash(offer),
        vendorKeyId: offer.vendorKeyId,
      },
      this.nowSec(),
    );
    if (r.status === "refused") throw refusal(ledgerReason(r.refusal), r.detail);
    return initReply(spec.init.schema, header(spec.init.cmd, this.nowMs()), r.tx, stateOf(r.tx));
  }

  /**
   * M4 -> M5 / S4 -> S5: spend the presented scrip and issue one whose value
   * differs by the TranID's amount, or cancel (GM4_2 / PM4_2). Refusals are
   * answers, not errors: they echo the scrip (and pOder) with a hash for
   * pCount + 1, as Tables 7 and 13 spell them.
   */
  private async executeStep<EQ extends HeaderShape, ER extends Msg>(spec: ValueStep<never, Msg, EQ, ER, unknown, Msg>, req: EQ): Promise<ER> {
    const x = spec.execute;
    const q = x.read(req);
    const cmd = this.checkHeader(req.header, [x.cmds.run, x.cmds.cancel]);
    this.checkPCount(q.pCount);
    this.checkScripShape(q.scrip, "scrip");
    if (x.offerField) this.checkOfferShape(q.order, x.offerField);
    else this.checkTranId(q.tranId);
    const scrip = q.scrip;
    const { tranId, order } = q;
    const cs = await this.verifyRequestHash(scrip, cmd, tranId, q.pCount, q.hash, { order });
    const customer = scrip.scrip.customId!.serialNumber;
    const p1 = q.pCount + 1;
    const echo = (code: CmdType, why: Invalid, newScrip?: ScripType): ER =>
      x.toReply({
        header: header(code, this.nowMs(), why.message, why.reason),
        tranId,
        newScrip,
        newScripHash: newScrip ? this.hashFor(cs, code, tranId, p1, newScrip) : new Uint8Array(0),
        scrip,
        scripHash: this.hashFor(cs, code, tranId, p1, scrip, order),
        order,
        pCount: p1,
      });
    try {
      // Expiry is checked after the replay below: a retransmission of an M4/S4
      // that already executed gets its stored M5/S5 even if the scrip has expired since.
      const invalid = (await this.scripInvalid(scrip, true)) ?? (order ? await this.pOderInvalid(order, scrip) : undefined);
      if (invalid) return echo(x.codes.invalid, invalid);
      for (let attempt = 0; attempt < 4; attempt++) {
        const tx = await this.findTransaction(spec, tranId, customer, order);
        if (!tx) return echo(x.codes.rejected, { reason: "UNKNOWN_TRANSACTION", message: x.unknownTransaction });
        if ("reason" in tx) return echo(x.codes.rejected, tx);
        if (cmd === x.cmds.cancel) {
          const r = await this.cancelTx(
            spec,
            tx,
            scrip,
            x.schema,
            (restored) => echo(x.codes.rejected, { reason: "CANCELLED", message: x.cancelled }, restored),
            x.codes.rejected,
          );
          if (r === "retry") continue;
          if (r.status === "refused") return echo(x.codes.rejected, { reason: ledgerReason(r.refusal), message: r.detail });
          const m = fromBinary(x.schema, r.reply);
          if (r.status === "done") return m;
          // Stored for an earlier try: re-hashed for this one's pCount + 1, as every echo is.
          const f = x.fromReply(m);
          const code = f.header.cmdType;
          f.pCount = p1;
          if (f.scrip) f.scripHash = this.hashFor(cs, code, tranId, p1, f.scrip, f.order);
          if (f.newScrip) f.newScripHash = this.hashFor(cs, code, tranId, p1, f.newScrip);
          return x.toReply(f);
        }
        // A retransmitted M4/S4 whose M5/S5 was lost: the same reply, nothing moves.
        const stored = storedExecuteReply(tx, scrip);
        if (stored) return replayed(x.schema, stored);
        if (this.expired(scrip)) return echo(x.codes.invalid, { reason: "EXPIRED", message: EXPIRED_MESSAGE });
        const value = x.value(scrip.scrip.value, tx.amount, tx.currency);
        if (typeof value !== "bigint") return echo(x.codes.rejected, value);
        const out = this.newScrip(this.algorithms[0]!, scrip, value, x.ad(tx, scrip));
        const reply = x.toReply({
          header: header(x.codes.ok, this.nowMs()),
          tranId,
          newScrip: out.scrip,
          newScripHash: this.hashFor(cs, x.codes.ok, tranId, 0, out.scrip),
          scripHash: new Uint8Array(0),
          pCount: 0,
        });
        const r = await x.run(this.ledger, this.executeOp(tx, scrip, out.row, storedReply(x.schema, reply)));
        if (r.status === "done") return reply;
        if (r.status === "replayed") return replayed(x.schema, r.reply);
        if (r.refusal === "STATE_CHANGED") continue;
        const validity = r.refusal === "SCRIP_NOT_LIVE" || r.refusal === "CURRENCY_MISMATCH";
        return echo(validity ? x.codes.invalid : x.codes.rejected, { reason: ledgerReason(r.refusal), message: r.detail });
      }
      return echo(x.codes.fault, { reason: "CONTENDED", message: "the transaction is busy; retransmit with pCount + 1" });
    } catch (e) {
      if (isCallerError(e)) throw e;
      return echo(x.codes.fault, { reason: "SERVER_ERROR", message: "the payment server failed to process the request; retransmit with pCount + 1" });
    }
  }

  /** S4's pOder must be a valid order, to this customer, in the scrip's currency. */
  private async pOderInvalid(order: Offer, scrip: ScripType): Promise<Invalid | undefined> {
    const bad = await this.offerInvalid(order, OfferKind.PAY);
    if (bad) return bad;
    const id = scrip.scrip!.customId!;
    if (order.customId!.serialNumber !== id.serialNumber || order.customId!.secretId !== id.secretId) {
      return { reason: "WRONG_CUSTOMER", message: "this offer was made to another customer" };
    }
    if (order.currency !== scrip.scrip!.currency) {
      return { reason: "CURRENCY_MISMATCH", message: `the price is in ${order.currency}, the scrip in ${scrip.scrip!.currency}` };
    }
    return undefined;
  }

  /**
   * The TranID a request names. M4 names only the TranID, so it is found
   * through the customer (unique per customer); S4 carries the pOder, so it is
   * found through the seller and must be exactly that offer.
   */
  private async findTransaction(spec: AnyStep, tranId: string, customer: bigint, order: Offer | undefined): Promise<TransactionRecord | Invalid | undefined> {
    if (!order) return this.ledger.getTransactionForCustomer(tranId, customer, spec.kind);
    const tx = await this.ledger.getTransaction(order.vendorId, tranId);
    if (tx && Buffer.compare(Buffer.from(tx.offerHash), Buffer.from(offerHash(order))) !== 0) {
      return { reason: "OFFER_MISMATCH", message: "this pOder is not the offer the TranID was initialised with" };
    }
    return tx;
  }

  /** M4/S4's ledger operation: spend the presented scrip, make `out` live, store the reply. */
  private executeOp(tx: TransactionRecord, scrip: ScripType, out: ScripRow, reply: Uint8Array): ExecuteOp {
    return {
      vendorId: tx.vendorId,
      tranId: tx.tranId,
      customerSerial: scrip.scrip!.customId!.serialNumber,
      inSerial: scrip.scrip!.scripId!.serialNumber,
      inValue: scrip.scrip!.value,
      out,
      reply,
      now: this.nowSec(),
    };
  }

  /**
   * Cancel or undo a transaction. From `initiated` nothing moved; from
   * `executed` the issued scrip is replaced by one carrying the value before
   * the transaction (under a fresh serial: the old serial stays dead).
   */
  private async cancelTx<R extends Msg>(
    spec: AnyStep,
    tx: TransactionRecord,
    presented: ScripType,
    schema: GenMessage<R>,
    build: (restored: ScripType | undefined) => R,
    replyCode: CmdType,
  ): Promise<LedgerResult | "retry"> {
    if (tx.state === "cancelled" && tx.cancelReply) {
      // The stored answer is replayed only to the step that made it: a
      // transaction cancelled at S4 (PM4_2, a PayResponse) and then "undone"
      // at S6 (PM6_3, a ConfirmPaymentResponse), or the reverse, has nothing
      // left to undo. Decoding one step's reply as the other's was an
      // INTERNAL "illegal tag" (found by the x10 fuzz run, 2026-11-30).
      if (storedReplyCode(schema, tx.cancelReply) === replyCode) return { status: "replayed", reply: tx.cancelReply };
      return { status: "refused", refusal: "TRANSACTION_STATE", detail: "the TranID was already cancelled at the other step; there is nothing left to cancel" };
    }
    if (tx.state === "confirmed") return { status: "refused", refusal: "TRANSACTION_STATE", detail: "already confirmed; it can no longer be cancelled" };
    const presentedSerial = presented.scrip!.scripId!.serialNumber;
    let restored: { scrip: ScripType; row: ScripRow } | undefined;
    if (tx.state === "executed") {
      const isInput = presentedSerial === tx.inSerial;
      const before = spec.restoredValue(presented.scrip!.value, tx.amount, isInput);
      if (before < 0n || before > I64_MAX) return { status: "refused", refusal: "SCRIP_NOT_LIVE", detail: "the presented scrip does not belong to this transaction" };
      // The restored scrip is the one from before the transaction: an undone
      // issuance's `ad` (the campaign item that paid) does not stay on it.
      restored = this.newScrip(this.algorithms[0]!, presented, before, isInput ? presented.scrip!.ad : spec.restoredAd(presented));
    }
    const reply = toBinary(schema, build(restored?.scrip));
    let r: LedgerResult;
    try {
      r = await this.ledger.cancel({
        vendorId: tx.vendorId,
        tranId: tx.tranId,
        customerSerial: tx.customerSerial,
        expectState: tx.state === "executed" ? "executed" : "initiated",
        presentedSerial,
        restored: restored?.row ?? null,
        reply,
        now: this.nowSec(),
      });
    } catch (e) {
      // The presented scrip does not fit the transaction (e.g. a value that
      // does not restore the pre-transaction balance): a refusal, not a fault.
      if (e instanceof LedgerError) return { status: "refused", refusal: "SCRIP_NOT_LIVE", detail: e.message };
      throw e;
    }
    if (r.status === "refused" && r.refusal === "STATE_CHANGED") return "retry";
    if (r.status === "done") return { status: "done", reply };
    return r;
  }

  /** M6 -> M7 / S6 -> PM7: confirm (the seller is paid, a payment earns a receipt), resend, or undo. */
  private async confirmStep<CQ extends HeaderShape, CR extends ConfirmShape>(spec: ValueStep<never, Msg, never, Msg, CQ, CR>, req: CQ): Promise<CR> {
    const c = spec.confirm;
    const q = c.read(req);
    const cmd = this.checkHeader(req.header, [c.cmds.done, c.cmds.resend, c.cmds.undo]);
    this.checkTranId(q.tranId);
    this.checkPCount(q.pCount);
    this.checkScripShape(q.scrip, "new_scrip");
    const s = q.scrip;
    const tranId = q.tranId;
    const cs = await this.verifyRequestHash(s, cmd, tranId, q.pCount, q.hash);
    const customer = s.scrip.customId!.serialNumber;
    const serial = s.scrip.scripId!.serialNumber;
    const reply = (state: TransactionState, scrip: ScripType | undefined, receipt?: Receipt): CR =>
      c.toReply({
        header: header(c.code, this.nowMs()),
        tranId,
        state,
        scrip,
        scripHash: scrip ? this.hashFor(cs, c.code, tranId, q.pCount + 1, scrip) : new Uint8Array(0),
        receipt,
      });
    // Every variant presents a scrip, and an undo moves value: it must be ours, unaltered.
    const invalid = await this.scripInvalid(s, true);
    if (invalid) throw raise(invalid);
    for (let attempt = 0; attempt < 4; attempt++) {
      const tx = await this.ledger.getTransactionForCustomer(tranId, customer, spec.kind);
      if (!tx) throw refusal("UNKNOWN_TRANSACTION", "no such TranID for this customer");
      if (cmd === c.cmds.resend) {
        // Resend the M5/S5 scrip: nothing changes at the center.
        if (!tx.executeReply) throw refusal("TRANSACTION_STATE", `TranID is ${tx.state}; ${c.nothingToResend}`);
        return reply(stateOf(tx), spec.execute.fromReply(fromBinary(spec.execute.schema, tx.executeReply)).newScrip);
      }
      if (cmd === c.cmds.undo) {
        const r = await this.cancelTx(spec, tx, s, c.schema, (restored) => reply(TransactionState.CANCELLED, restored), c.code);
        if (r === "retry") continue;
        if (r.status === "refused") throw refusal(ledgerReason(r.refusal), r.detail);
        return this.rehashConfirm(c.code, fromBinary(c.schema, r.reply), cs, q.pCount);
      }
      const receipt = c.receipt ? await this.receipt(tx, s) : undefined;
      const out = reply(TransactionState.CONFIRMED, s, receipt);
      const r = await this.ledger.confirm({
        vendorId: tx.vendorId,
        tranId: tx.tranId,
        customerSerial: customer,
        presentedSerial: serial,
        reply: storedReply(c.schema, out),
        now: this.nowSec(),
      });
      if (r.status === "refused" && r.refusal === "STATE_CHANGED") continue;
      if (r.status === "refused") throw refusal(ledgerReason(r.refusal), r.detail);
      if (r.status === "done") this.events.emit("settlement", tx.vendorId);
      return r.status === "done" ? out : this.rehashConfirm(c.code, fromBinary(c.schema, r.reply), cs, q.pCount);
    }
    throw refusal("CONTENDED", "the transaction is busy; retry");
  }

  /** The seller's proof of payment (S6 -> PM7), MACed with the vendor secret the offer was signed with. */
  private async receipt(tx: TransactionRecord, s: ScripType): Promise<Receipt> {
    const secret = await this.vendorKey(tx.vendorId, tx.vendorKeyId);
    if (!secret) throw refusal("VENDOR_KEY_MISSING", "the seller has no key at this center");
    const receipt = create(ReceiptSchema, {
      vendorId: tx.vendorId,
      tranId: tx.tranId,
      requestUrl: tx.item,
      price: tx.amount,
      currency: tx.currency,
      deliveryMethod: tx.deliveryMethod,
      customId: create(IdTypeSchema, { secretId: s.scrip!.customId!.secretId, serialNumber: tx.customerSerial }),
      paidAtUnix: this.nowSec(),
      vendorKeyId: tx.vendorKeyId,
      hashAlgorithm: HashAlgorithm.HMAC_SHA256,
    });
    receipt.mac = computeReceiptMac(secret, receipt);
    return receipt;
  }

  /**
   * A stored M7 / PM7 answered an earlier try; its hash was made for that
   * try's pCount + 1. Re-made for this request so every reply the wallet gets
   * follows one rule. Nothing else in it changes.
   */
  private rehashConfirm<CR extends ConfirmShape>(code: CmdType, m: CR, cs: Uint8Array, pCount: number): CR {
    if (m.scrip) m.scripHash = this.hashFor(cs, code, m.tranId, pCount + 1, m.scrip);
    return m;
  }

  // ---------------------------------------------------------------- renew / redeem

  private checkRequestId(id: string): void {
    if (!ID_PATTERN.test(id)) throw refusal("BAD_REQUEST_ID", "request_id must be 1-128 characters of [A-Za-z0-9._:-]");
  }

  async renew(req: RenewRequest): Promise<RenewResponse> {
    this.checkHeader(req.header, [CmdType.RN1]);
    this.checkRequestId(req.requestId);
    this.checkPCount(req.pCount);
    this.checkScripShape(req.scrip, "scrip");
    const s = req.scrip;
    const cs = await this.verifyRequestHash(s, CmdType.RN1, req.requestId, req.pCount, req.scripHash);
    const invalid = await this.scripInvalid(s, true);
    if (invalid) throw raise(invalid);
    const out = this.newScrip(this.algorithms[0]!, s, s.scrip.value, s.scrip.ad);
    const reply = create(RenewResponseSchema, {
      header: header(CmdType.RN2, this.nowMs()),
      newScrip: out.scrip,
      newScripHash: this.hashFor(cs, CmdType.RN2, req.requestId, 0, out.scrip),
    });
    const r = await this.ledger.replace({
      requestId: req.requestId,
      kind: "renew",
      customerSerial: s.scrip.customId!.serialNumber,
      inSerial: s.scrip.scripId!.serialNumber,
      inValue: s.scrip.value,
      out: out.row,
      reply: toBinary(RenewResponseSchema, reply),
      now: this.nowSec(),
    });
    if (r.status === "refused") throw refusal(ledgerReason(r.refusal), r.detail);
    return r.status === "done" ? reply : fromBinary(RenewResponseSchema, r.reply);
  }

  async redeem(req: RedeemRequest): Promise<RedeemResponse> {
    this.checkHeader(req.header, [CmdType.RD1]);
    this.checkRequestId(req.requestId);
    this.checkPCount(req.pCount);
    this.checkScripShape(req.scrip, "scrip");
    if (req.amount < 0n) throw refusal("BAD_AMOUNT", "amount must not be negative (0 redeems everything)");
    if (!req.payoutAccount || req.payoutAccount.length > 256) throw refusal("BAD_PAYOUT_ACCOUNT", "payout_account is required (at most 256 characters)");
    const s = req.scrip;
    const cs = await this.verifyRequestHash(s, CmdType.RD1, req.requestId, req.pCount, req.scripHash, {
      amount: req.amount,
      account: req.payoutAccount,
    });
    const invalid = await this.scripInvalid(s, true);
    if (invalid) throw raise(invalid);
    const amount = req.amount === 0n ? s.scrip.value : req.amount;
    const min = this.threshold[s.scrip.currency] ?? 0n;
    if (amount < min || amount <= 0n) {
      throw refusal("BELOW_THRESHOLD", `redemption needs at least ${min} ${s.scrip.currency}; this request is for ${amount}`);
    }
    if (amount > s.scrip.value) throw refusal("INSUFFICIENT_VALUE", `the scrip holds ${s.scrip.value}; cannot redeem ${amount}`);
    const out = this.newScrip(this.algorithms[0]!, s, s.scrip.value - amount, s.scrip.ad);
    const payoutId = `po_${hex(randomBytes(12))}`;
    const reply = create(RedeemResponseSchema, {
      header: header(CmdType.RD2, this.nowMs()),
      newScrip: out.scrip,
      newScripHash: computeMessageHash(out.scrip.hashAlgorithm, cs, {
        code: "RD2",
        contextId: req.requestId,
        pCount: 0,
        scrip: out.scrip,
        amount,
        account: req.payoutAccount,
      }),
      payout: create(PayoutSchema, {
        payoutId,
        customId: s.scrip.customId,
        amount,
        currency: s.scrip.currency,
        payoutAccount: req.payoutAccount,
        createdAtUnix: this.nowSec(),
      }),
    });
    const r = await this.ledger.replace({
      requestId: req.requestId,
      kind: "redeem",
      customerSerial: s.scrip.customId!.serialNumber,
      inSerial: s.scrip.scripId!.serialNumber,
      inValue: s.scrip.value,
      out: out.row,
      payout: { payoutId, amount, account: req.payoutAccount },
      reply: toBinary(RedeemResponseSchema, reply),
      now: this.nowSec(),
    });
    if (r.status === "refused") throw refusal(ledgerReason(r.refusal), r.detail);
    return r.status === "done" ? reply : fromBinary(RedeemResponseSchema, r.reply);
  }

  // ---------------------------------------------------------------- settlements

  async authenticateVendor(vendorId: string, afterSequence: bigint, timestampMs: bigint, keyId: number, mac: Uint8Array): Promise<void> {
    const fail = () => refusal("BAD_VENDOR_MAC", "the settlement request's MAC does not verify; sign it with your current vendor secret");
    if (mac.length !== MAC_BYTES) throw fail();
    if (Math.abs(Number(timestampMs) - this.nowMs()) > SETTLEMENT_REQUEST_SKEW_MS) {
      throw refusal("STALE_REQUEST", "timestamp_unix_ms is more than 5 minutes from the center's clock; check your clock");
    }
    const key = await this.vendorKey(vendorId, keyId);
    if (!key || !verifySettlementsMac(HashAlgorithm.HMAC_SHA256, key, vendorId, afterSequence, timestampMs, mac)) throw fail();
  }

  async listSettlements(req: ListSettlementsRequest): Promise<ListSettlementsResponse> {
    await this.authenticateVendor(req.vendorId, req.afterSequence, req.timestampUnixMs, req.vendorKeyId, req.mac);
    const limit = req.limit === 0 ? 100 : req.limit;
    if (limit > 1000) throw refusal("LIMIT_TOO_HIGH", "limit is at most 1000");
    const rows = await this.ledger.listSettlements(req.vendorId, req.afterSequence, limit);
    return create(ListSettlementsResponseSchema, {
      header: header(CmdType.ST2, this.nowMs()),
      settlements: rows.map(toSettlement),
      nextSequence: rows.length ? rows[rows.length - 1]!.sequence : req.afterSequence,
    });
  }
}

export function toSettlement(r: { sequence: bigint; kind: string; vendorId: string; tranId: string; amount: bigint; currency: string; item: string; settledAt: bigint }): Settlement {
  return create(SettlementSchema, {
    sequence: r.sequence,
    kind: r.kind === "pay" ? SettlementKind.PAYMENT : r.kind === "refund" ? SettlementKind.REFUND : SettlementKind.ISSUE,
    vendorId: r.vendorId,
    tranId: r.tranId,
    amount: r.amount,
    currency: r.currency,
    item: r.item,
    settledAtUnix: r.settledAt,
  });
}

/**
 * The stored M5/S5 when this request retransmits one that already executed
 * with the same scrip: a lost reply is recovered byte for byte, nothing moves.
 */
function storedExecuteReply(tx: TransactionRecord, presented: ScripType): Uint8Array | undefined {
  const executed = tx.state === "executed" || tx.state === "confirmed";
  return executed && tx.inSerial === presented.scrip!.scripId!.serialNumber ? (tx.executeReply ?? undefined) : undefined;
}

function stateOf(tx: TransactionRecord): TransactionState {
  switch (tx.state) {
    case "initiated":
      return TransactionState.INITIATED;
    case "executed":
      return TransactionState.EXECUTED;
    case "confirmed":
      return TransactionState.CONFIRMED;
    case "cancelled":
      return TransactionState.CANCELLED;
  }
}

/** A ledger refusal as a catalogued reason: a lost race that was not retried away is contention. */
function ledgerReason(r: Refusal): Reason {
  return r === "STATE_CHANGED" ? "CONTENDED" : r;
}

/** Errors that are the caller's fault pass through; anything else becomes GM5_4 / PM5_3. */
function isCallerError(e: unknown): boolean {
  return e instanceof ProtocolError || e instanceof RangeError || e instanceof UnsupportedAlgorithmError;
}
