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
import { sha256 } from "@noble/hashes/sha2.js";
import { randomBytes } from "node:crypto";
import { EventEmitter } from "node:events";
import {
  ConfirmIssueResponseSchema,
  ConfirmPaymentResponseSchema,
  GetCenterInfoResponseSchema,
  InitIssueResponseSchema,
  InitPaymentResponseSchema,
  IssueResponseSchema,
  ListSettlementsResponseSchema,
  PayResponseSchema,
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
import { LedgerError, type ExecuteOp, type Ledger, type LedgerResult, type Refusal, type ScripRow, type TransactionRecord, type VendorKeyRecord, type VendorRecord } from "../ledger/ledger.js";
import { I64_MAX } from "../money.js";
import { alreadyExists, failedPrecondition, invalidArgument, unauthenticated, unavailable } from "../protocol/errors.js";
import { cmdCode, header, P_COUNT_MAX } from "../protocol/header.js";
import { KeyRing } from "./keyring.js";


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

function randomSerial(): bigint {
  // 63 random bits, never 0: fits SQLite INTEGER and PostgreSQL BIGINT.
  const v = randomBytes(8).readBigUInt64BE() & I64_MAX;
  return v === 0n ? 1n : v;
}

function hex(b: Uint8Array): string {
  return Buffer.from(b).toString("hex");
}

/** SHA-256 of the offer's canonical bytes and MAC: what binds a TranID to one exact offer. */
export function offerHash(o: Offer): Uint8Array {
  const h = sha256.create();
  h.update(offerInput(o));
  h.update(o.mac);
  return h.digest();
}

type Refused = { status: "refused"; refusal: Refusal; detail: string };

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
    this.keys = new KeyRing(ledger);
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

  private checkCmd(got: CmdType | undefined, allowed: CmdType[]): CmdType {
    if (got === undefined || !allowed.includes(got)) {
      throw invalidArgument(
        "WRONG_CMD_TYPE",
        `header.cmd_type must be one of ${allowed.map((c) => CmdType[c]).join(", ")}; got ${got === undefined ? "no header" : (CmdType[got] ?? got)}`,
      );
    }
    return got;
  }

  private checkPCount(p: number): void {
    if (p > P_COUNT_MAX) throw invalidArgument("P_COUNT_TOO_HIGH", `p_count ${p} exceeds ${P_COUNT_MAX}; start a new transaction`);
  }

  private checkTranId(t: string): void {
    if (!ID_PATTERN.test(t)) throw invalidArgument("BAD_TRAN_ID", "tran_id must be 1-128 characters of [A-Za-z0-9._:-]");
  }

  /** Shape of a presented scrip, before any key is used. */
  private checkScripShape(s: ScripType | undefined, field: string): asserts s is ScripType & { scrip: NonNullable<ScripType["scrip"]> } {
    if (!s || !s.scrip) throw invalidArgument("MISSING_SCRIP", `${field} is required: send the scrip exactly as the center issued it`);
    const b = s.scrip;
    if (s.certificate.length !== MAC_BYTES) throw invalidArgument("BAD_SCRIP", `${field}.certificate must be ${MAC_BYTES} bytes`);
    if (!b.scripId || !b.customId) throw invalidArgument("BAD_SCRIP", `${field}.scrip must carry scrip_id and custom_id`);
    if (b.value < 0n) throw invalidArgument("BAD_SCRIP", `${field}.scrip.value must not be negative`);
  }

  private customSecretFor(s: ScripType): Uint8Array {
    const id = s.scrip!.customId!;
    const cs = this.keys.customSecret(id.secretId, id.serialNumber);
    // Same answer for an unknown generation as for a bad hash: nothing about
    // which customers or key generations exist leaks.
    if (!cs) throw unauthenticated("BAD_HASH", "the message hash does not verify; recompute it with your Custom_Secret");
    return cs;
  }

  private verifyRequestHash(
    s: ScripType,
    code: CmdType,
    contextId: string,
    pCount: number,
    hash: Uint8Array,
    extra: { order?: Offer; amount?: bigint; account?: string } = {},
  ): Uint8Array {
    if (hash.length !== MAC_BYTES) throw invalidArgument("BAD_HASH", `the message hash must be ${MAC_BYTES} bytes`);
    if (!this.algorithms.includes(s.hashAlgorithm)) {
      throw invalidArgument("ALGORITHM_NOT_ACCEPTED", `hash algorithm ${s.hashAlgorithm} is not accepted by this center; renew the scrip`);
    }
    const cs = this.customSecretFor(s);
    if (!verifyMessageHash(s.hashAlgorithm, cs, { code: cmdCode(code), contextId, pCount, scrip: s, ...extra }, hash)) {
      throw unauthenticated("BAD_HASH", "the message hash does not verify; recompute it with your Custom_Secret");
    }
    return cs;
  }

  /** Returns a refusal text if the scrip is not valid e-cash of this center (the patent's validity error). */
  private async scripInvalid(s: ScripType, allowExpired = false): Promise<string | undefined> {
    const b = s.scrip!;
    const v = b.vendorId;
    if (!v || v.dnsName !== this.identity.dnsName || v.port !== this.identity.port) return "FOREIGN_SCRIP: this scrip was not issued by this center";
    const certKey = await this.keys.find("certificate", b.scripId!.secretId);
    if (!certKey || !verifyCertificate(certKey, s)) return "BAD_CERTIFICATE: the scrip's certificate does not verify; it was altered";
    if (!this.config.currencies.includes(b.currency)) return `UNKNOWN_CURRENCY: ${b.currency} is not issued here`;
    if (!allowExpired && this.expired(s)) return `EXPIRED: ${EXPIRED_MESSAGE}`;
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

  private async vendor(vendorId: string, refresh = false): Promise<{ vendor: VendorRecord; keys: VendorKeyRecord[] } | undefined> {
    const hit = this.vendorCache.get(vendorId);
    if (hit && !refresh && this.nowMs() - hit.at < VENDOR_CACHE_MS) return hit.v;
    const v = await this.ledger.getVendor(vendorId);
    if (v) this.vendorCache.set(vendorId, { at: this.nowMs(), v });
    return v;
  }

  private async vendorKey(vendorId: string, keyId: number): Promise<Uint8Array | undefined> {
    let v = await this.vendor(vendorId);
    let k = v?.keys.find((x) => x.keyId === keyId);
    if (!k) {
      v = await this.vendor(vendorId, true);
      k = v?.keys.find((x) => x.keyId === keyId);
    }
    return k?.secret;
  }

  /** Verifies a seller's offer; returns a refusal text or undefined. */
  private async offerInvalid(o: Offer, kind: OfferKind): Promise<string | undefined> {
    if (o.kind !== kind) return `WRONG_OFFER_KIND: expected ${OfferKind[kind]} offer`;
    if (!this.algorithms.includes(o.hashAlgorithm)) return "ALGORITHM_NOT_ACCEPTED: the offer's hash algorithm is not accepted";
    const key = await this.vendorKey(o.vendorId, o.vendorKeyId);
    if (!key || !verifyOfferMac(key, o)) return "BAD_OFFER_MAC: the offer's MAC does not verify; it was altered or is not from that seller";
    return undefined;
  }

  private checkOfferShape(o: Offer | undefined, field: string): asserts o is Offer {
    if (!o) throw invalidArgument("MISSING_OFFER", `${field} is required: pass the seller's offer exactly as received`);
    this.checkTranId(o.tranId);
    if (o.amount <= 0n) throw invalidArgument("BAD_AMOUNT", `${field}.amount must be positive`);
    if (o.mac.length !== MAC_BYTES) throw invalidArgument("BAD_OFFER_MAC", `${field}.mac must be ${MAC_BYTES} bytes`);
    if (!o.customId) throw invalidArgument("BAD_OFFER", `${field}.custom_id is required`);
  }

  // ---------------------------------------------------------------- R1 -> R2

  async register(req: RegisterRequest): Promise<RegisterResponse> {
    this.checkCmd(req.header?.cmdType, [CmdType.UM1]);
    if (!ID_PATTERN.test(req.walletId)) throw invalidArgument("BAD_WALLET_ID", "wallet_id must be 1-128 characters of [A-Za-z0-9._:-]");
    for (const [f, v] of [["name", req.name], ["address", req.address], ["email", req.email], ["etc", req.etc]] as const) {
      if (v.length > 512) throw invalidArgument("FIELD_TOO_LONG", `${f} is limited to 512 characters`);
    }
    if (req.sealedSessionKey.length !== SEALED_SESSION_KEY_BYTES) {
      throw invalidArgument("BAD_SEALED_KEY", `sealed_session_key must be ${SEALED_SESSION_KEY_BYTES} bytes (KUcenter[KS])`);
    }
    const currency = req.currency || this.config.currencies[0]!;
    if (!this.config.currencies.includes(currency)) {
      throw invalidArgument("UNKNOWN_CURRENCY", `currency ${currency} is not issued here; choose one of ${this.config.currencies.join(", ")}`);
    }
    let ks: Uint8Array;
    try {
      ks = openSessionKey(this.keys.centerKeyPair(), req.walletId, req.sealedSessionKey);
    } catch {
      throw invalidArgument("BAD_SEALED_KEY", "sealed_session_key does not open with this center's key; fetch GetCenterInfo and pin its public_key");
    }
    const sealedHash = sha256(req.sealedSessionKey);
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
        throw alreadyExists("WALLET_ID_TAKEN", "this wallet_id is registered with a different session key; generate a new wallet id");
      }
    }
    throw unavailable("SERIAL_COLLISION", "could not allocate a customer serial; retry");
  }

  // ---------------------------------------------------------------- M3 / S3

  private async init(offer: Offer, kind: OfferKind): Promise<TransactionRecord> {
    const bad = await this.offerInvalid(offer, kind);
    if (bad) throw unauthenticated(bad.split(":")[0]!, bad);
    if (offer.expiresAtUnix < this.nowSec()) {
      throw failedPrecondition("OFFER_EXPIRED", "the seller's offer has expired; ask the seller for a new one");
    }
    const customerSerial = offer.customId!.serialNumber;
    const r = await this.ledger.initTransaction(
      {
        vendorId: offer.vendorId,
        tranId: offer.tranId,
        kind: kind === OfferKind.ISSUE ? "issue" : "pay",
        customerSerial,
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
    if (r.status === "refused") {
      throw failedPrecondition(r.refusal, `${r.detail}`);
    }
    return r.tx;
  }

  async initIssue(req: InitIssueRequest): Promise<InitIssueResponse> {
    this.checkCmd(req.header?.cmdType, [CmdType.GM3_1]);
    this.checkOfferShape(req.permit, "permit");
    const tx = await this.init(req.permit, OfferKind.ISSUE);
    return create(InitIssueResponseSchema, { header: header(CmdType.GM3_1, this.nowMs()), tranId: tx.tranId, state: stateOf(tx) });
  }

  async initPayment(req: InitPaymentRequest): Promise<InitPaymentResponse> {
    this.checkCmd(req.header?.cmdType, [CmdType.PM3_1]);
    this.checkOfferShape(req.order, "order");
    const tx = await this.init(req.order, OfferKind.PAY);
    return create(InitPaymentResponseSchema, { header: header(CmdType.PM3_1, this.nowMs()), tranId: tx.tranId, state: stateOf(tx) });
  }

  // ---------------------------------------------------------------- M4 -> M5

  /** The vendor a TranID belongs to is found through the transaction table; M4 names only the TranID. */
  private async txForIssue(tranId: string, customerSerial: bigint): Promise<TransactionRecord | undefined> {
    return this.ledger.getTransactionForCustomer(tranId, customerSerial, "issue");
  }

  async issue(req: IssueRequest): Promise<IssueResponse> {
    const cmd = this.checkCmd(req.header?.cmdType, [CmdType.GM4_1, CmdType.GM4_2]);
    this.checkTranId(req.tranId);
    this.checkPCount(req.pCount);
    this.checkScripShape(req.scrip, "scrip");
    const scrip = req.scrip;
    const cs = this.verifyRequestHash(scrip, cmd, req.tranId, req.pCount, req.scripHash);
    const customer = scrip.scrip.customId!.serialNumber;

    const refuse = (code: CmdType, reason: string, message: string): IssueResponse =>
      create(IssueResponseSchema, {
        header: header(code, this.nowMs(), message, reason),
        tranId: req.tranId,
        scrip,
        scripHash: this.hashFor(cs, code, req.tranId, req.pCount + 1, scrip),
        pCount: req.pCount + 1,
      });

    try {
      // Expiry is checked after the replay below: a retransmission of an M4
      // that already executed gets its stored M5 even if the scrip has expired since.
      const invalid = await this.scripInvalid(scrip, true);
      if (invalid) return refuse(CmdType.GM5_2, invalid.split(":")[0]!, invalid);
      for (let attempt = 0; attempt < 4; attempt++) {
        const tx = await this.txForIssue(req.tranId, customer);
        if (!tx) return refuse(CmdType.GM5_3, "UNKNOWN_TRANSACTION", "no such TranID for this customer; send InitIssue (M3) with the seller's permit first");
        if (cmd === CmdType.GM4_2) {
          const r = await this.cancelTx(tx, scrip, cs, scrip.scrip.scripId!.serialNumber, (restored) =>
            create(IssueResponseSchema, {
              header: header(CmdType.GM5_3, this.nowMs(), "issuance cancelled at the wallet's request", "CANCELLED"),
              tranId: req.tranId,
              newScrip: restored?.scrip,
              newScripHash: restored ? this.hashFor(cs, CmdType.GM5_3, req.tranId, req.pCount + 1, restored.scrip) : new Uint8Array(0),
              scrip,
              scripHash: this.hashFor(cs, CmdType.GM5_3, req.tranId, req.pCount + 1, scrip),
              pCount: req.pCount + 1,
            }),
          );
          if (r === "retry") continue;
          if (r.status === "refused") return refuse(CmdType.GM5_3, r.refusal, r.detail);
          const m5 = fromBinary(IssueResponseSchema, r.reply);
          if (r.status === "replayed") {
            // Stored for an earlier try: re-hash for this one's pCount + 1, as every error echo is.
            m5.pCount = req.pCount + 1;
            if (m5.scrip) m5.scripHash = this.hashFor(cs, CmdType.GM5_3, req.tranId, m5.pCount, m5.scrip);
            if (m5.newScrip) m5.newScripHash = this.hashFor(cs, CmdType.GM5_3, req.tranId, m5.pCount, m5.newScrip);
          }
          return m5;
        }
        // Fast path for a retransmitted M4 whose M5 was lost: same reply, nothing moves.
        const stored = storedExecuteReply(tx, scrip);
        if (stored) return fromBinary(IssueResponseSchema, stored);
        if (this.expired(scrip)) return refuse(CmdType.GM5_2, "EXPIRED", EXPIRED_MESSAGE);
        const value = scrip.scrip.value + tx.amount;
        if (value > I64_MAX) return refuse(CmdType.GM5_3, "OVERFLOW", "the issued value would overflow the scrip");
        const alg = this.algorithms[0]!;
        const out = this.newScrip(alg, scrip, value, tx.item);
        const reply = create(IssueResponseSchema, {
          header: header(CmdType.GM5_1, this.nowMs()),
          tranId: req.tranId,
          newScrip: out.scrip,
          newScripHash: this.hashFor(cs, CmdType.GM5_1, req.tranId, 0, out.scrip),
          pCount: 0,
        });
        const r = await this.ledger.executeIssue(this.executeOp(tx, scrip, out.row, toBinary(IssueResponseSchema, reply)));
        if (r.status === "done") return reply;
        if (r.status === "replayed") return fromBinary(IssueResponseSchema, r.reply);
        if (r.refusal === "STATE_CHANGED") continue;
        const validity = r.refusal === "SCRIP_NOT_LIVE" || r.refusal === "CURRENCY_MISMATCH";
        return refuse(validity ? CmdType.GM5_2 : CmdType.GM5_3, r.refusal, r.detail);
      }
      return refuse(CmdType.GM5_4, "CONTENDED", "the transaction is busy; retransmit with pCount + 1");
    } catch (e) {
      if (isProtocolError(e)) throw e;
      return refuse(CmdType.GM5_4, "SERVER_ERROR", "the payment server failed to process the request; retransmit with pCount + 1");
    }
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
  private async cancelTx(
    tx: TransactionRecord,
    presented: ScripType,
    cs: Uint8Array,
    presentedSerial: bigint,
    build: (restored: { scrip: ScripType } | undefined) => { $typeName: string },
  ): Promise<LedgerResult | "retry"> {
    if (tx.state === "cancelled" && tx.cancelReply) return { status: "replayed", reply: tx.cancelReply };
    if (tx.state === "confirmed") return { status: "refused", refusal: "TRANSACTION_STATE", detail: "already confirmed; it can no longer be cancelled" };
    let restored: { scrip: ScripType; row: ScripRow } | undefined;
    if (tx.state === "executed") {
      const before = tx.kind === "issue"
        ? presentedSerial === tx.inSerial ? presented.scrip!.value : presented.scrip!.value - tx.amount
        : presentedSerial === tx.inSerial ? presented.scrip!.value : presented.scrip!.value + tx.amount;
      if (before < 0n || before > I64_MAX) return { status: "refused", refusal: "SCRIP_NOT_LIVE", detail: "the presented scrip does not belong to this transaction" };
      restored = this.newScrip(this.algorithms[0]!, presented, before, presented.scrip!.ad);
    }
    const reply = build(restored ? { scrip: restored.scrip } : undefined);
    let r: LedgerResult;
    try {
      r = await this.ledger.cancel({
        vendorId: tx.vendorId,
        tranId: tx.tranId,
        customerSerial: tx.customerSerial,
        expectState: tx.state === "executed" ? "executed" : "initiated",
        presentedSerial,
        restored: restored?.row ?? null,
        reply: encodeAny(reply),
        now: this.nowSec(),
      });
    } catch (e) {
      // The presented scrip does not fit the transaction (e.g. a value that
      // does not restore the pre-transaction balance): a refusal, not a fault.
      if (e instanceof LedgerError) return { status: "refused", refusal: "SCRIP_NOT_LIVE", detail: e.message };
      throw e;
    }
    if (r.status === "refused" && r.refusal === "STATE_CHANGED") return "retry";
    if (r.status === "done") return { status: "done", reply: encodeAny(reply) };
    return r;
  }

  // ---------------------------------------------------------------- M6 -> M7

  async confirmIssue(req: ConfirmIssueRequest): Promise<ConfirmIssueResponse> {
    const cmd = this.checkCmd(req.header?.cmdType, [CmdType.GM6_1, CmdType.GM6_2, CmdType.GM6_3]);
    this.checkTranId(req.tranId);
    this.checkPCount(req.pCount);
    this.checkScripShape(req.newScrip, "new_scrip");
    const s = req.newScrip;
    const cs = this.verifyRequestHash(s, cmd, req.tranId, req.pCount, req.newScripHash);
    const customer = s.scrip.customId!.serialNumber;
    const serial = s.scrip.scripId!.serialNumber;
    const m7 = (state: TransactionState, scrip: ScripType | undefined, message = "", reason = ""): ConfirmIssueResponse =>
      create(ConfirmIssueResponseSchema, {
        header: header(CmdType.GM7_1, this.nowMs(), message, reason),
        tranId: req.tranId,
        state,
        scrip,
        scripHash: scrip ? this.hashFor(cs, CmdType.GM7_1, req.tranId, req.pCount + 1, scrip) : new Uint8Array(0),
      });
    // Every variant presents a scrip, and an undo moves value: it must be ours, unaltered.
    const invalid = await this.scripInvalid(s, true);
    if (invalid) throw failedPrecondition(invalid.split(":")[0]!, invalid);
    for (let attempt = 0; attempt < 4; attempt++) {
      const tx = await this.txForIssue(req.tranId, customer);
      if (!tx) throw failedPrecondition("UNKNOWN_TRANSACTION", "no such TranID for this customer");
      if (cmd === CmdType.GM6_2) {
        // Resend the M5 scrip: nothing changes at the center.
        if (!tx.executeReply) throw failedPrecondition("TRANSACTION_STATE", `TranID is ${tx.state}; there is no issued scrip to resend`);
        const m5 = fromBinary(IssueResponseSchema, tx.executeReply);
        return m7(stateOf(tx), m5.newScrip);
      }
      if (cmd === CmdType.GM6_3) {
        const r = await this.cancelTx(tx, s, cs, serial, (restored) =>
          m7(TransactionState.CANCELLED, restored?.scrip, "issuance cancelled", "CANCELLED"),
        );
        if (r === "retry") continue;
        if (r.status === "refused") throw failedPrecondition(r.refusal, r.detail);
        return this.rehashIssueConfirm(fromBinary(ConfirmIssueResponseSchema, r.reply), cs, req.pCount);
      }
      const reply = m7(TransactionState.CONFIRMED, s);
      const r = await this.ledger.confirm({
        vendorId: tx.vendorId,
        tranId: tx.tranId,
        customerSerial: customer,
        presentedSerial: serial,
        reply: toBinary(ConfirmIssueResponseSchema, reply),
        now: this.nowSec(),
      });
      if (r.status === "refused" && r.refusal === "STATE_CHANGED") continue;
      if (r.status === "refused") throw failedPrecondition(r.refusal, r.detail);
      if (r.status === "done") this.events.emit("settlement", tx.vendorId);
      return r.status === "done" ? reply : this.rehashIssueConfirm(fromBinary(ConfirmIssueResponseSchema, r.reply), cs, req.pCount);
    }
    throw unavailable("CONTENDED", "the transaction is busy; retry");
  }

  // ---------------------------------------------------------------- S4 -> S5

  async pay(req: PayRequest): Promise<PayResponse> {
    const cmd = this.checkCmd(req.header?.cmdType, [CmdType.PM4_1, CmdType.PM4_2]);
    this.checkPCount(req.pCount);
    this.checkScripShape(req.scrip, "scrip");
    this.checkOfferShape(req.order, "order");
    const scrip = req.scrip;
    const order = req.order;
    const cs = this.verifyRequestHash(scrip, cmd, order.tranId, req.pCount, req.hash, { order });
    const customer = scrip.scrip.customId!.serialNumber;
    const refuse = (code: CmdType, reason: string, message: string): PayResponse =>
      create(PayResponseSchema, {
        header: header(code, this.nowMs(), message, reason),
        scrip,
        order,
        hash: this.hashFor(cs, code, order.tranId, req.pCount + 1, scrip, order),
        pCount: req.pCount + 1,
      });
    try {
      const invalid = (await this.scripInvalid(scrip, true)) ?? (await this.offerInvalid(order, OfferKind.PAY));
      if (invalid) return refuse(CmdType.PM5_2, invalid.split(":")[0]!, invalid);
      if (order.customId!.serialNumber !== customer || order.customId!.secretId !== scrip.scrip.customId!.secretId) {
        return refuse(CmdType.PM5_2, "WRONG_CUSTOMER", "this offer was made to another customer");
      }
      if (order.currency !== scrip.scrip.currency) return refuse(CmdType.PM5_2, "CURRENCY_MISMATCH", `the price is in ${order.currency}, the scrip in ${scrip.scrip.currency}`);
      for (let attempt = 0; attempt < 4; attempt++) {
        const tx = await this.ledger.getTransaction(order.vendorId, order.tranId);
        if (!tx) return refuse(CmdType.PM5_2, "UNKNOWN_TRANSACTION", "no such TranID; send InitPayment (S3) with the offer first");
        if (Buffer.compare(Buffer.from(tx.offerHash), Buffer.from(offerHash(order))) !== 0) {
          return refuse(CmdType.PM5_2, "OFFER_MISMATCH", "this pOder is not the offer the TranID was initialised with");
        }
        if (cmd === CmdType.PM4_2) {
          const r = await this.cancelTx(tx, scrip, cs, scrip.scrip.scripId!.serialNumber, (restored) =>
            create(PayResponseSchema, {
              header: header(CmdType.PM5_2, this.nowMs(), "payment cancelled at the wallet's request", "CANCELLED"),
              newScrip: restored?.scrip,
              newScripHash: restored ? this.hashFor(cs, CmdType.PM5_2, order.tranId, req.pCount + 1, restored.scrip) : new Uint8Array(0),
              scrip,
              order,
              hash: this.hashFor(cs, CmdType.PM5_2, order.tranId, req.pCount + 1, scrip, order),
              pCount: req.pCount + 1,
            }),
          );
          if (r === "retry") continue;
          if (r.status === "refused") return refuse(CmdType.PM5_2, r.refusal, r.detail);
          const s5 = fromBinary(PayResponseSchema, r.reply);
          if (r.status === "replayed") {
            s5.pCount = req.pCount + 1;
            if (s5.scrip) s5.hash = this.hashFor(cs, CmdType.PM5_2, order.tranId, s5.pCount, s5.scrip, s5.order);
            if (s5.newScrip) s5.newScripHash = this.hashFor(cs, CmdType.PM5_2, order.tranId, s5.pCount, s5.newScrip);
          }
          return s5;
        }
        const stored = storedExecuteReply(tx, scrip);
        if (stored) return fromBinary(PayResponseSchema, stored);
        if (this.expired(scrip)) return refuse(CmdType.PM5_2, "EXPIRED", EXPIRED_MESSAGE);
        if (scrip.scrip.value < tx.amount) {
          return refuse(CmdType.PM5_2, "INSUFFICIENT_VALUE", `the scrip holds ${scrip.scrip.value} ${tx.currency}; the price is ${tx.amount}. Earn more first`);
        }
        const out = this.newScrip(this.algorithms[0]!, scrip, scrip.scrip.value - tx.amount, scrip.scrip.ad);
        const reply = create(PayResponseSchema, {
          header: header(CmdType.PM5_1, this.nowMs()),
          newScrip: out.scrip,
          newScripHash: this.hashFor(cs, CmdType.PM5_1, order.tranId, 0, out.scrip),
          pCount: 0,
        });
        const r = await this.ledger.executePayment(this.executeOp(tx, scrip, out.row, toBinary(PayResponseSchema, reply)));
        if (r.status === "done") return reply;
        if (r.status === "replayed") return fromBinary(PayResponseSchema, r.reply);
        if (r.refusal === "STATE_CHANGED") continue;
        return refuse(CmdType.PM5_2, r.refusal, r.detail);
      }
      return refuse(CmdType.PM5_3, "CONTENDED", "the transaction is busy; retransmit with pCount + 1");
    } catch (e) {
      if (isProtocolError(e)) throw e;
      return refuse(CmdType.PM5_3, "SERVER_ERROR", "the payment server failed to process the payment; retransmit with pCount + 1");
    }
  }

  // ---------------------------------------------------------------- S6 -> receipt

  async confirmPayment(req: ConfirmPaymentRequest): Promise<ConfirmPaymentResponse> {
    const cmd = this.checkCmd(req.header?.cmdType, [CmdType.PM6_1, CmdType.PM6_2, CmdType.PM6_3]);
    this.checkTranId(req.tranId);
    this.checkPCount(req.pCount);
    this.checkScripShape(req.newScrip, "new_scrip");
    const s = req.newScrip;
    const cs = this.verifyRequestHash(s, cmd, req.tranId, req.pCount, req.newScripHash);
    const customer = s.scrip.customId!.serialNumber;
    const serial = s.scrip.scripId!.serialNumber;
    const reply = (state: TransactionState, scrip: ScripType | undefined, receipt?: Receipt, message = "", reason = ""): ConfirmPaymentResponse =>
      create(ConfirmPaymentResponseSchema, {
        header: header(CmdType.PM7_1, this.nowMs(), message, reason),
        tranId: req.tranId,
        state,
        receipt,
        scrip,
        scripHash: scrip ? this.hashFor(cs, CmdType.PM7_1, req.tranId, req.pCount + 1, scrip) : new Uint8Array(0),
      });
    const invalid = await this.scripInvalid(s, true);
    if (invalid) throw failedPrecondition(invalid.split(":")[0]!, invalid);
    for (let attempt = 0; attempt < 4; attempt++) {
      const tx = await this.ledger.getTransactionForCustomer(req.tranId, customer, "pay");
      if (!tx) throw failedPrecondition("UNKNOWN_TRANSACTION", "no such TranID for this customer");
      if (cmd === CmdType.PM6_2) {
        if (!tx.executeReply) throw failedPrecondition("TRANSACTION_STATE", `TranID is ${tx.state}; there is no change scrip to resend`);
        return reply(stateOf(tx), fromBinary(PayResponseSchema, tx.executeReply).newScrip);
      }
      if (cmd === CmdType.PM6_3) {
        const r = await this.cancelTx(tx, s, cs, serial, (restored) => reply(TransactionState.CANCELLED, restored?.scrip, undefined, "payment undone", "CANCELLED"));
        if (r === "retry") continue;
        if (r.status === "refused") throw failedPrecondition(r.refusal, r.detail);
        return this.rehashPaymentConfirm(fromBinary(ConfirmPaymentResponseSchema, r.reply), cs, req.pCount);
      }
      const vkSecret = await this.vendorKey(tx.vendorId, tx.vendorKeyId);
      if (!vkSecret) throw unavailable("VENDOR_KEY_MISSING", "the seller has no key at this center");
      const vk = { keyId: tx.vendorKeyId, secret: vkSecret };
      const receipt = create(ReceiptSchema, {
        vendorId: tx.vendorId,
        tranId: tx.tranId,
        requestUrl: tx.item,
        price: tx.amount,
        currency: tx.currency,
        deliveryMethod: tx.deliveryMethod,
        customId: create(IdTypeSchema, { secretId: s.scrip.customId!.secretId, serialNumber: customer }),
        paidAtUnix: this.nowSec(),
        vendorKeyId: vk.keyId,
        hashAlgorithm: HashAlgorithm.HMAC_SHA256,
      });
      receipt.mac = computeReceiptMac(vk.secret, receipt);
      const out = reply(TransactionState.CONFIRMED, s, receipt);
      const r = await this.ledger.confirm({
        vendorId: tx.vendorId,
        tranId: tx.tranId,
        customerSerial: customer,
        presentedSerial: serial,
        reply: toBinary(ConfirmPaymentResponseSchema, out),
        now: this.nowSec(),
      });
      if (r.status === "refused" && r.refusal === "STATE_CHANGED") continue;
      if (r.status === "refused") throw failedPrecondition(r.refusal, r.detail);
      if (r.status === "done") this.events.emit("settlement", tx.vendorId);
      return r.status === "done" ? out : this.rehashPaymentConfirm(fromBinary(ConfirmPaymentResponseSchema, r.reply), cs, req.pCount);
    }
    throw unavailable("CONTENDED", "the transaction is busy; retry");
  }

  /**
   * A stored M7 / PM7 answered an earlier try; its hash was made for that
   * try's pCount + 1. Re-made for this request so every reply the wallet gets
   * follows one rule. Nothing else in it changes.
   */
  private rehashIssueConfirm(m: ConfirmIssueResponse, cs: Uint8Array, pCount: number): ConfirmIssueResponse {
    if (m.scrip) m.scripHash = this.hashFor(cs, CmdType.GM7_1, m.tranId, pCount + 1, m.scrip);
    return m;
  }

  private rehashPaymentConfirm(m: ConfirmPaymentResponse, cs: Uint8Array, pCount: number): ConfirmPaymentResponse {
    if (m.scrip) m.scripHash = this.hashFor(cs, CmdType.PM7_1, m.tranId, pCount + 1, m.scrip);
    return m;
  }

  // ---------------------------------------------------------------- renew / redeem

  private checkRequestId(id: string): void {
    if (!ID_PATTERN.test(id)) throw invalidArgument("BAD_REQUEST_ID", "request_id must be 1-128 characters of [A-Za-z0-9._:-]");
  }

  async renew(req: RenewRequest): Promise<RenewResponse> {
    this.checkCmd(req.header?.cmdType, [CmdType.RN1]);
    this.checkRequestId(req.requestId);
    this.checkPCount(req.pCount);
    this.checkScripShape(req.scrip, "scrip");
    const s = req.scrip;
    const cs = this.verifyRequestHash(s, CmdType.RN1, req.requestId, req.pCount, req.scripHash);
    const invalid = await this.scripInvalid(s, true);
    if (invalid) throw failedPrecondition(invalid.split(":")[0]!, invalid);
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
    if (r.status === "refused") throw failedPrecondition(r.refusal, r.detail);
    return r.status === "done" ? reply : fromBinary(RenewResponseSchema, r.reply);
  }

  async redeem(req: RedeemRequest): Promise<RedeemResponse> {
    this.checkCmd(req.header?.cmdType, [CmdType.RD1]);
    this.checkRequestId(req.requestId);
    this.checkPCount(req.pCount);
    this.checkScripShape(req.scrip, "scrip");
    if (req.amount < 0n) throw invalidArgument("BAD_AMOUNT", "amount must not be negative (0 redeems everything)");
    if (!req.payoutAccount || req.payoutAccount.length > 256) throw invalidArgument("BAD_PAYOUT_ACCOUNT", "payout_account is required (at most 256 characters)");
    const s = req.scrip;
    const cs = this.verifyRequestHash(s, CmdType.RD1, req.requestId, req.pCount, req.scripHash, {
      amount: req.amount,
      account: req.payoutAccount,
    });
    const invalid = await this.scripInvalid(s, true);
    if (invalid) throw failedPrecondition(invalid.split(":")[0]!, invalid);
    const amount = req.amount === 0n ? s.scrip.value : req.amount;
    const min = this.threshold[s.scrip.currency] ?? 0n;
    if (amount < min || amount <= 0n) {
      throw failedPrecondition("BELOW_THRESHOLD", `redemption needs at least ${min} ${s.scrip.currency}; this request is for ${amount}`);
    }
    if (amount > s.scrip.value) throw failedPrecondition("INSUFFICIENT_VALUE", `the scrip holds ${s.scrip.value}; cannot redeem ${amount}`);
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
    if (r.status === "refused") throw failedPrecondition(r.refusal, r.detail);
    return r.status === "done" ? reply : fromBinary(RedeemResponseSchema, r.reply);
  }

  // ---------------------------------------------------------------- settlements

  async authenticateVendor(vendorId: string, afterSequence: bigint, timestampMs: bigint, keyId: number, mac: Uint8Array): Promise<void> {
    const fail = () => unauthenticated("BAD_VENDOR_MAC", "the settlement request's MAC does not verify; sign it with your current vendor secret");
    if (mac.length !== MAC_BYTES) throw fail();
    if (Math.abs(Number(timestampMs) - this.nowMs()) > SETTLEMENT_REQUEST_SKEW_MS) {
      throw unauthenticated("STALE_REQUEST", "timestamp_unix_ms is more than 5 minutes from the center's clock; check your clock");
    }
    const key = await this.vendorKey(vendorId, keyId);
    if (!key || !verifySettlementsMac(HashAlgorithm.HMAC_SHA256, key, vendorId, afterSequence, timestampMs, mac)) throw fail();
  }

  async listSettlements(req: ListSettlementsRequest): Promise<ListSettlementsResponse> {
    await this.authenticateVendor(req.vendorId, req.afterSequence, req.timestampUnixMs, req.vendorKeyId, req.mac);
    const limit = req.limit === 0 ? 100 : req.limit;
    if (limit > 1000) throw invalidArgument("LIMIT_TOO_HIGH", "limit is at most 1000");
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

const SCHEMAS = {
  "scripwire.v1.IssueResponse": IssueResponseSchema,
  "scripwire.v1.PayResponse": PayResponseSchema,
  "scripwire.v1.ConfirmIssueResponse": ConfirmIssueResponseSchema,
  "scripwire.v1.ConfirmPaymentResponse": ConfirmPaymentResponseSchema,
} as const;

function encodeAny(m: { $typeName: string }): Uint8Array {
  const schema = SCHEMAS[m.$typeName as keyof typeof SCHEMAS];
  if (!schema) throw new Error(`no schema for ${m.$typeName}`);
  return toBinary(schema as never, m as never);
}

/** Errors that are the caller's fault pass through; anything else becomes GM5_4 / PM5_3. */
function isProtocolError(e: unknown): boolean {
  return e instanceof Error && (e.name === "ConnectError" || e instanceof RangeError || e.name === "UnsupportedAlgorithmError");
}
