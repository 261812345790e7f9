/**
 * Restore and sync at the payment center (SY1 -> SY2): a customer who holds
 * only the recovery code (customer id + Custom_Secret) gets back what the
 * center knows of them: the live scrip of each currency, the transactions
 * still in flight (with the scrip an executed one issued, so the wallet can
 * confirm it), and the refund credits. Pending credits are first folded into
 * a freshly issued scrip, so the scrip stays the one thing that carries value.
 *
 * Authentication is a MAC under Custom_Secret over the customer id, a
 * timestamp and a nonce (docs/canonical-encoding.md §5.7); the center keeps
 * every nonce for the freshness window, so a recorded request cannot be
 * played again. A wrong hash, an unknown customer or key generation, a stale
 * timestamp and a used nonce all get the one same answer (UNAUTHENTICATED
 * BAD_HASH, one message): nothing tells a guesser which part was wrong or
 * whether the customer exists.
 *
 * No transport here beyond the Connect error constructors; service.ts adapts
 * it, passing the caller's address for the per-address limit.
 */
import { create, fromBinary } from "@bufbuild/protobuf";
import {
  InFlightTransactionSchema,
  IssueResponseSchema,
  PayResponseSchema,
  RefundCreditSchema,
  SyncResponseSchema,
  TransactionState,
  type InFlightTransaction,
  type RefundCredit,
  type SyncRequest,
  type SyncResponse,
} from "../../gen/scripwire/v1/center_pb.js";
import { CmdType, DeliveryMethod, HashAlgorithm, IdTypeSchema, OfferKind, ScripBodyTypeSchema, ScripTypeSchema, ServerTypeSchema, type ScripType } from "../../gen/scripwire/v1/types_pb.js";
import { MAC_BYTES } from "../crypto/mac.js";
import { computeCertificate } from "../crypto/scrip-auth.js";
import { computeSyncReplyHash, SYNC_NONCE_MAX, SYNC_NONCE_MIN, verifySyncRequestHash } from "../crypto/sync-auth.js";
import type { RefundRecord, ScripRow, TransactionRecord } from "../ledger/ledger.js";
import { I64_MAX } from "../money.js";
import { randomSerial } from "./serials.js";
import { invalidArgument, resourceExhausted, unauthenticated, unavailable } from "../server/errors.js";
import { header } from "../protocol/header.js";
import { addressKey, TokenBuckets, type BucketOptions } from "../server/limits.js";
import type { PaymentCenter } from "./center.js";

/**
 * How far a sync request's timestamp may be from the center's clock. Nonces
 * are kept TWICE this long: a request dated up to this far ahead stays
 * acceptable until this far past its date, i.e. for twice the skew after the
 * center first sees it.
 */
export const SYNC_REQUEST_SKEW_MS = 5 * 60_000;
/**
 * Sync calls per customer: a wallet syncs on restore, on demand and when a
 * spend finds its scrip dead, i.e. rarely. Charged only once the request's
 * hash verifies: customer ids are in every offer and receipt, so charging
 * unverified requests would let any seller keep a customer from restoring by
 * sending garbage under their id; guessing a 256-bit Custom_Secret is not
 * made any harder by counting failures (the per-address bucket bounds the
 * work an unverified request costs).
 */
export const SYNC_PER_CUSTOMER: BucketOptions = { ratePerSecond: 1, burst: 10 };
/** Sync calls per address (or IPv6 /64): room for a NAT full of wallets restoring, not for a scan. */
export const SYNC_PER_ADDRESS: BucketOptions = { ratePerSecond: 5, burst: 30 };

const SYNC_FAILED = "the sync request does not verify: wrong recovery code, a request already used, or a clock more than 5 minutes off";

export interface SyncOptions {
  perCustomer?: BucketOptions | false;
  perAddress?: BucketOptions | false;
}

export class SyncService {
  private readonly customers: TokenBuckets | undefined;
  private readonly addresses: TokenBuckets | undefined;
  private readonly clock: () => number;

  constructor(
    private readonly center: PaymentCenter,
    opts: SyncOptions = {},
  ) {
    this.clock = center.config.clock ?? Date.now;
    this.customers = opts.perCustomer === false ? undefined : new TokenBuckets(opts.perCustomer ?? SYNC_PER_CUSTOMER, this.clock);
    this.addresses = opts.perAddress === false ? undefined : new TokenBuckets(opts.perAddress ?? SYNC_PER_ADDRESS, this.clock);
  }

  private get algorithm(): HashAlgorithm {
    return this.center.config.acceptedAlgorithms?.[0] ?? HashAlgorithm.HMAC_SHA256;
  }

  private limit(buckets: TokenBuckets | undefined, key: string, who: string): void {
    const wait = buckets?.take(key) ?? 0;
    if (wait > 0) throw resourceExhausted("RATE_LIMITED", `too many sync requests ${who}; retry in ${(wait / 1000).toFixed(2)} s`);
  }

  /**
   * A scrip for a live ledger row: same serial, value and expiry, certified
   * now under the current certificate generation. The ledger knows a scrip by
   * its serial, so this spends exactly like the copy the lost wallet held;
   * only the informational `ad` is not kept by the ledger and comes back empty.
   */
  private certify(row: ScripRow, customSecretId: number): ScripType {
    const cert = this.center.keys.current("certificate");
    const id = this.center.config.identity;
    const body = create(ScripBodyTypeSchema, {
      currency: row.currency,
      value: row.value,
      vendorId: create(ServerTypeSchema, { dnsName: id.dnsName, ipAddr: id.ipAddr ?? "", serverName: id.serverName, port: id.port }),
      scripId: create(IdTypeSchema, { secretId: cert.secretId, serialNumber: row.serial }),
      customId: create(IdTypeSchema, { secretId: customSecretId, serialNumber: row.customerSerial }),
      ad: "",
      expirationDateUnix: row.expiresAt,
    });
    const alg = this.algorithm;
    return create(ScripTypeSchema, { hashAlgorithm: alg, scrip: body, certificate: computeCertificate(alg, cert.key, body) });
  }

  async sync(req: SyncRequest, remoteAddress?: string): Promise<SyncResponse> {
    if (req.header?.cmdType !== CmdType.SY1) throw invalidArgument("WRONG_CMD_TYPE", "header.cmd_type must be SY1");
    const id = req.customId;
    if (!id) throw invalidArgument("MISSING_CUSTOM_ID", "custom_id is required (from the recovery code or the wallet)");
    if (req.nonce.length < SYNC_NONCE_MIN || req.nonce.length > SYNC_NONCE_MAX) {
      throw invalidArgument("BAD_NONCE", `nonce must be ${SYNC_NONCE_MIN}..${SYNC_NONCE_MAX} fresh random bytes`);
    }
    if (req.hash.length !== MAC_BYTES) throw invalidArgument("BAD_LENGTH", `hash must be ${MAC_BYTES} bytes`);
    if (remoteAddress) this.limit(this.addresses, addressKey(remoteAddress), "from this address");

    const fail = () => unauthenticated("BAD_HASH", SYNC_FAILED);
    const cs = await this.center.keys.findCustomSecret(id.secretId, id.serialNumber);
    if (!cs || !verifySyncRequestHash(cs, { customId: id, timestampUnixMs: req.timestampUnixMs, nonce: req.nonce }, req.hash)) throw fail();
    const now = this.clock();
    if (Math.abs(Number(req.timestampUnixMs) - now) > SYNC_REQUEST_SKEW_MS) throw fail();
    let state = await this.center.ledger.customerState(id.serialNumber);
    if (!state || state.secretId !== id.secretId) throw fail();
    // After verification, before the nonce is used: a limited wallet retries with a fresh request.
    this.limit(this.customers, `${id.secretId}/${id.serialNumber}`, "for this customer");
    const nowMs = BigInt(now);
    if (!(await this.center.ledger.claimSyncNonce(id.serialNumber, req.nonce, nowMs, nowMs - 2n * BigInt(SYNC_REQUEST_SKEW_MS)))) throw fail();

    // Fold pending credits into a fresh scrip, per currency, unless a
    // transaction of that currency is executed and awaiting confirmation.
    for (let attempt = 0; attempt < 4; attempt++) {
      const fold = this.nextFold(state);
      if (!fold) break;
      const r = await this.center.ledger.foldCredits(fold);
      if (r.status === "refused" && r.refusal === "IN_FLIGHT") break;
      state = (await this.center.ledger.customerState(id.serialNumber))!;
      if (r.status === "done") attempt = -1; // another currency may have credits too
      if (attempt === 3) throw unavailable("CONTENDED", "the customer's scrip is busy; sync again");
    }

    const scrips = state.live.map((row) => this.certify(row, id.secretId));
    const inFlight = state.inFlight.map(inFlightOf);
    const credits = state.credits.map(creditOf);
    const serverTime = BigInt(this.clock());
    const hash = computeSyncReplyHash(cs, { customId: id, requestNonce: req.nonce, serverTimeUnixMs: serverTime, scrips, inFlight, credits });
    return create(SyncResponseSchema, { header: header(CmdType.SY2, Number(serverTime)), scrips, inFlight, credits, serverTimeUnixMs: serverTime, hash });
  }

  /** The fold to attempt next: the first currency with pending credits, a live scrip and nothing executed. */
  private nextFold(state: { live: ScripRow[]; inFlight: TransactionRecord[]; credits: RefundRecord[] }) {
    for (const live of state.live) {
      const pending = state.credits.filter((c) => c.foldedSerial === 0n && c.currency === live.currency);
      if (pending.length === 0) continue;
      if (state.inFlight.some((t) => t.state === "executed" && t.currency === live.currency)) continue;
      const total = pending.reduce((a, c) => a + c.amount, 0n);
      if (live.value + total > I64_MAX) continue;
      const lifetime = BigInt(this.center.config.scripLifetimeSeconds ?? 30 * 86_400);
      const out: ScripRow = {
        serial: randomSerial(),
        customerSerial: live.customerSerial,
        currency: live.currency,
        value: live.value + total,
        expiresAt: BigInt(Math.floor(this.clock() / 1000)) + lifetime,
      };
      return {
        customerSerial: live.customerSerial,
        currency: live.currency,
        inSerial: live.serial,
        inValue: live.value,
        refundIds: pending.map((c) => c.refundId),
        total,
        out,
        now: BigInt(Math.floor(this.clock() / 1000)),
      };
    }
    return undefined;
  }
}

function inFlightOf(t: TransactionRecord): InFlightTransaction {
  let newScrip: ScripType | undefined;
  if (t.state === "executed" && t.executeReply) {
    newScrip = t.kind === "issue" ? fromBinary(IssueResponseSchema, t.executeReply).newScrip : fromBinary(PayResponseSchema, t.executeReply).newScrip;
  }
  return create(InFlightTransactionSchema, {
    vendorId: t.vendorId,
    tranId: t.tranId,
    kind: t.kind === "issue" ? OfferKind.ISSUE : OfferKind.PAY,
    state: t.state === "executed" ? TransactionState.EXECUTED : TransactionState.INITIATED,
    amount: t.amount,
    currency: t.currency,
    item: t.item,
    deliveryMethod: t.deliveryMethod as DeliveryMethod,
    newScrip,
  });
}

function creditOf(r: RefundRecord): RefundCredit {
  return create(RefundCreditSchema, {
    refundId: r.refundId,
    vendorId: r.vendorId,
    tranId: r.tranId,
    amount: r.amount,
    currency: r.currency,
    refundedAtUnix: r.createdAt,
    foldedIntoSerial: r.foldedSerial,
  });
}
