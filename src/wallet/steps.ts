/**
 * The step runner: how the wallet sends one journalled request and what it
 * believes of the reply. Platform-neutral, transport- and storage-free: it
 * talks to the center through a {@link StepContext} that core.ts provides.
 *
 * The earn (M3-M7) and buy (S3-S6) exchanges are the SAME journalled value
 * step, parameterised by one row of {@link VALUE_STEPS}: the message codes,
 * which RPCs carry them, whether the hash binds pOder, and the sign of the
 * value change. A fix to retransmission, refusal checks or recovery lands
 * once, for both.
 */
import { create } from "@bufbuild/protobuf";
import { TransactionState } from "../../gen/scripwire/v1/center_pb.js";
import { CmdType, HeaderTypeSchema, type HeaderType, type Offer, type Receipt, type ScripType } from "../../gen/scripwire/v1/types_pb.js";
import type { MessageHashInput } from "../crypto/canonical.js";
import type { CenterRpc } from "./client.js";
import { decodeOffer, decodeScrip, encodeScrip } from "./codec.js";
import { IntegrityError, RateLimitedError, RefusedError, ScripwireError, UnavailableError } from "./errors.js";
import type { Journal } from "./journal.js";
import type { PendingOperation } from "./state.js";

export const PROTOCOL_VERSION = "scripwire/1";
/** Retransmissions (pCount + 1 each) after a GM5_4/PM5_3 or an unreachable server, per step. Bounded: the center refuses pCount > 64 anyway. */
export const RETRANSMISSIONS_MAX_DEFAULT = 4;
/** First retransmission delay; doubles each time up to {@link RETRY_DELAY_MS_MAX}. */
const RETRY_DELAY_MS_BASE = 50;
const RETRY_DELAY_MS_MAX = 1_000;

/**
 * Points in a protocol run where the `onStep` hook is called. Tests wire it
 * to SIGKILL (Node) or to closing the popup (browser) to prove recovery;
 * `after-*-sent` fires after the reply has arrived (so the center has
 * processed the request) but before the wallet saved anything from it.
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

export type CustomId = { secretId: number; serialNumber: bigint };
type HashExtra = Pick<MessageHashInput, "order" | "amount" | "account">;

/** What the steps need from the wallet; core.ts implements it. */
export interface StepContext {
  readonly journal: Journal;
  center(): CenterRpc;
  now(): number;
  readonly maxRetransmissions: number;
  progress(step: string, message: string): void;
  hook(step: WalletStep): Promise<void>;
  /** H[... || Custom_Secret] for message `c`. */
  hash(c: CmdType, contextId: string, pCount: number, scrip: ScripType, extra?: HashExtra): Uint8Array;
  /** Verifies a reply's hash; an algorithm we cannot compute fails like a wrong hash. */
  verified(c: CmdType, contextId: string, pCount: number, scrip: ScripType, hash: Uint8Array, extra?: HashExtra): boolean;
  /** The checks a scrip passes before the wallet adopts it: ours, our currency and center, exactly `expectValue`. */
  adoptable(s: ScripType | undefined, expectValue: bigint, what: string): ScripType;
  customId(): CustomId;
}

export function hdr(cmdType: CmdType, nowMs: number): HeaderType {
  return create(HeaderTypeSchema, { cmdType, protocolVersion: PROTOCOL_VERSION, serverDateUnixMs: BigInt(nowMs) });
}

export function code(c: CmdType): string {
  return CmdType[c] ?? String(c);
}

export function sameId(a: CustomId | undefined, b: CustomId): boolean {
  return !!a && a.secretId === b.secretId && a.serialNumber === b.serialNumber;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
/**
 * Longest server-requested wait the wallet sits through on its own; a longer
 * one is handed to the caller (RateLimitedError carries it) rather than
 * freezing an interactive wallet.
 */
export const RATE_LIMIT_WAIT_MS_MAX = 30_000;

/**
 * Wait before retransmission `n`: the server's retry-after when it gave one
 * (a RateLimitedError), else exponential back-off.
 */
export const retryDelay = (n: number, cause?: unknown): Promise<void> =>
  sleep(cause instanceof RateLimitedError ? cause.retryAfterMs : Math.min(RETRY_DELAY_MS_BASE * 2 ** n, RETRY_DELAY_MS_MAX));

/** Whether to retry after `e`: unavailable, and (if rate-limited) not asked to wait longer than {@link RATE_LIMIT_WAIT_MS_MAX}. */
export const retryable = (e: unknown): boolean => e instanceof UnavailableError && !(e instanceof RateLimitedError && e.retryAfterMs > RATE_LIMIT_WAIT_MS_MAX);

/** What a reply handler decides: done with a value, or retransmit with this pCount. */
type Outcome<R> = { value: R } | { retry: number };

/**
 * Sends one journalled request until it is answered. Before each send the
 * pCount about to go out is journalled; an unreachable server is retried
 * with pCount + 1 (up to `maxRetransmissions`, with backoff). `onReply` may
 * ask for a retransmission (GM5_4/PM5_3); `onError` turns a definitive
 * failure into the error to throw (and may clear the journal).
 */
export async function retransmit<T, R>(
  ctx: StepContext,
  label: string,
  startPCount: number,
  describe: string,
  send: (pCount: number) => Promise<T>,
  onReply: (res: T, pCount: number, tries: number) => Promise<Outcome<R>> | Outcome<R>,
  onError: (e: unknown, pCount: number) => Promise<unknown>,
): Promise<R> {
  let pCount = startPCount;
  for (let tries = 0; ; tries++) {
    await ctx.journal.setPCount(pCount);
    ctx.progress(label, `${label} → center: ${describe}${pCount ? ` (retransmission ${pCount})` : ""}`);
    let res: T;
    try {
      res = await send(pCount);
    } catch (e) {
      if (retryable(e) && tries < ctx.maxRetransmissions) {
        await retryDelay(tries, e);
        pCount++;
        continue;
      }
      throw await onError(e, pCount);
    }
    const out = await onReply(res, pCount, tries);
    if ("value" in out) return out.value;
    await retryDelay(tries);
    pCount = out.retry;
  }
}

// ------------------------------------------------------------------ the value step table

/** M5/S5 reply, normalised over IssueResponse and PayResponse. */
export interface ValueReply {
  header?: HeaderType;
  pCount: number;
  newScrip?: ScripType;
  newScripHash: Uint8Array;
  /** A refusal echoes our scrip (and pOder) with a hash under Custom_Secret. */
  echoed?: ScripType;
  echoedHash: Uint8Array;
  echoedOrder?: Offer;
}

/** M7/PM7 (or the GM6_2/PM6_2 probe's) reply, normalised. */
export interface ConfirmReply {
  header?: HeaderType;
  state: TransactionState;
  scrip?: ScripType;
  scripHash: Uint8Array;
  receipt?: Receipt;
}

interface Send {
  header: HeaderType;
  tranId: string;
  scrip: ScripType;
  offer: Offer;
  hash: Uint8Array;
  pCount: number;
}
interface Confirm {
  header: HeaderType;
  tranId: string;
  newScrip: ScripType;
  newScripHash: Uint8Array;
  pCount: number;
}

/** One row: everything that differs between earning (M3-M7) and buying (S3-S6). */
export interface ValueStepSpec {
  kind: "earn" | "buy";
  /** Patent step names: present the offer, send value, its reply, confirm. */
  steps: { init: "M3" | "S3"; send: "M4" | "S4"; reply: "M5" | "S5"; confirm: "M6" | "S6"; done: "M7" | "S6" };
  codes: { init: CmdType; send: CmdType; ok: CmdType; retry: CmdType; refused: readonly CmdType[]; probe: CmdType; confirm: CmdType; confirmed: CmdType };
  /** Signed change of the value: + the permit (earn), - the price (buy). */
  delta(offer: Offer): bigint;
  /** S4's hash is H[ScripType || pOder || Custom_Secret]; M4's has no pOder. */
  bindsOffer: boolean;
  init(center: CenterRpc, header: HeaderType, offer: Offer): Promise<unknown>;
  send(center: CenterRpc, r: Send): Promise<ValueReply>;
  confirm(center: CenterRpc, r: Confirm): Promise<ConfirmReply>;
  words: { sending: string; newScrip: string; accepting: string; refused: string };
  /** The receipt a buy's confirmation must carry; earning has none. */
  receipt?(r: ConfirmReply, offer: Offer, customId: CustomId): Receipt;
}

export const VALUE_STEPS: { earn: ValueStepSpec; buy: ValueStepSpec } = {
  earn: {
    kind: "earn",
    steps: { init: "M3", send: "M4", reply: "M5", confirm: "M6", done: "M7" },
    codes: { init: CmdType.GM3_1, send: CmdType.GM4_1, ok: CmdType.GM5_1, retry: CmdType.GM5_4, refused: [CmdType.GM5_2, CmdType.GM5_3], probe: CmdType.GM6_2, confirm: CmdType.GM6_1, confirmed: CmdType.GM7_1 },
    delta: (o) => o.amount,
    bindsOffer: false,
    init: (c, header, permit) => c.initIssue({ header, permit }),
    send: async (c, r) => {
      const res = await c.issue({ header: r.header, tranId: r.tranId, scrip: r.scrip, scripHash: r.hash, pCount: r.pCount });
      return { header: res.header, pCount: res.pCount, newScrip: res.newScrip, newScripHash: res.newScripHash, echoed: res.scrip, echoedHash: res.scripHash };
    },
    confirm: async (c, r) => {
      const res = await c.confirmIssue(r);
      return { header: res.header, state: res.state, scrip: res.scrip, scripHash: res.scripHash };
    },
    words: { sending: "issue", newScrip: "new scrip", accepting: "accepting the new scrip", refused: "issue refused" },
  },
  buy: {
    kind: "buy",
    steps: { init: "S3", send: "S4", reply: "S5", confirm: "S6", done: "S6" },
    codes: { init: CmdType.PM3_1, send: CmdType.PM4_1, ok: CmdType.PM5_1, retry: CmdType.PM5_3, refused: [CmdType.PM5_2], probe: CmdType.PM6_2, confirm: CmdType.PM6_1, confirmed: CmdType.PM7_1 },
    delta: (o) => -o.amount,
    bindsOffer: true,
    init: (c, header, order) => c.initPayment({ header, order }),
    send: async (c, r) => {
      const res = await c.pay({ header: r.header, scrip: r.scrip, order: r.offer, hash: r.hash, pCount: r.pCount });
      return { header: res.header, pCount: res.pCount, newScrip: res.newScrip, newScripHash: res.newScripHash, echoed: res.scrip, echoedHash: res.hash, echoedOrder: res.order };
    },
    confirm: async (c, r) => {
      const res = await c.confirmPayment(r);
      return { header: res.header, state: res.state, scrip: res.scrip, scripHash: res.scripHash, receipt: res.receipt };
    },
    words: { sending: "paying", newScrip: "change", accepting: "accepting the change", refused: "payment refused" },
    receipt: (res, order, customId) => {
      const r = res.receipt;
      if (
        !r ||
        r.tranId !== order.tranId ||
        r.vendorId !== order.vendorId ||
        r.requestUrl !== order.item ||
        r.price !== order.amount ||
        r.currency !== order.currency ||
        r.deliveryMethod !== order.deliveryMethod ||
        !sameId(r.customId, customId) ||
        r.mac.length !== 32
      ) {
        throw new IntegrityError("BAD_RECEIPT", "S6: the receipt does not match the payment information");
      }
      return r;
    },
  },
};

/** Internal signal: the probe found that M4/S4 executed; carries the scrip to adopt. Never escapes {@link runValueExchange}. */
class RecoveredScrip extends Error {
  constructor(readonly scrip: ScripType) {
    super("the transaction executed; finishing it");
    this.name = "RecoveredScrip";
  }
}

/**
 * A GM5_2..GM5_4 / PM5_2..PM5_3 refusal echoes our scrip (and pOder) with a
 * hash under Custom_Secret: only the center can make it. The wallet acts on
 * a refusal (it may drop the journal), so a forged one must not count.
 */
function checkRefusal(ctx: StepContext, spec: ValueStepSpec, tranId: string, presented: ScripType, res: ValueReply): void {
  const c = res.header!.cmdType;
  const same = res.echoed?.scrip?.scripId?.serialNumber === presented.scrip!.scripId!.serialNumber;
  const extra = spec.bindsOffer && res.echoedOrder ? { order: res.echoedOrder } : {};
  if (!res.echoed || !same || !ctx.verified(c, tranId, res.pCount, res.echoed, res.echoedHash, extra)) {
    throw new IntegrityError("BAD_REPLY_HASH", `${spec.steps.reply}: the ${code(c)} refusal does not authenticate under Custom_Secret; it was ignored`);
  }
}

/**
 * After a definitive error on M4/S4: if the request may have executed
 * before (a retransmission), ask the center (GM6_2/PM6_2) whether it did.
 * If it did, the recovered scrip comes back as {@link RecoveredScrip};
 * if not, the journal is cleared (nothing moved) and the error returned.
 * Unavailable and integrity errors keep the journal.
 */
async function settleUnknown(ctx: StepContext, spec: ValueStepSpec, e: unknown, uncertain: boolean, tranId: string, scrip: ScripType): Promise<unknown> {
  if (!(e instanceof ScripwireError) || e instanceof UnavailableError || e instanceof IntegrityError) return e;
  if (uncertain) {
    const found = await probe(ctx, spec, tranId, scrip);
    if (found) return new RecoveredScrip(found);
  }
  await ctx.journal.setPending(null);
  return e;
}

/** GM6_2/PM6_2 presenting the scrip we hold: the center resends the M5/S5 scrip if the TranID executed. */
async function probe(ctx: StepContext, spec: ValueStepSpec, tranId: string, scrip: ScripType): Promise<ScripType | undefined> {
  const c = spec.codes;
  ctx.progress(spec.steps.confirm, `${spec.steps.confirm} → center: asking whether TranID ${tranId} executed (${code(c.probe)})`);
  let res: ConfirmReply;
  try {
    res = await spec.confirm(ctx.center(), { header: hdr(c.probe, ctx.now()), tranId, newScrip: scrip, newScripHash: ctx.hash(c.probe, tranId, 0, scrip), pCount: 0 });
  } catch (e) {
    if (e instanceof RefusedError) return undefined;
    throw e;
  }
  if (res.state !== TransactionState.EXECUTED && res.state !== TransactionState.CONFIRMED) return undefined;
  if (!res.scrip || !ctx.verified(c.confirmed, tranId, 1, res.scrip, res.scripHash)) {
    throw new IntegrityError("BAD_REPLY_HASH", `${spec.steps.confirm} (${code(c.probe)}): the resent scrip's hash does not verify under Custom_Secret`);
  }
  return res.scrip;
}

/**
 * M4/S4 until a definitive answer; returns the verified M5/S5 scrip. A
 * refusal where nothing moved clears the journal and throws; an unknown
 * outcome (unreachable, unverifiable) keeps the journal and throws.
 */
async function sendValue(ctx: StepContext, spec: ValueStepSpec, p: PendingOperation, recovering: boolean): Promise<ScripType> {
  const scrip = decodeScrip(p.scrip);
  const offer = decodeOffer(p.offer!);
  const tranId = p.id;
  const c = spec.codes;
  const label = spec.steps.reply;
  const extra = spec.bindsOffer ? { order: offer } : {};
  return retransmit<ValueReply, ScripType>(
    ctx,
    spec.steps.send,
    recovering ? p.pCount + 1 : p.pCount,
    `${spec.words.sending} ${offer.amount} ${offer.currency} for TranID ${tranId}`,
    (pCount) => spec.send(ctx.center(), { header: hdr(c.send, ctx.now()), tranId, scrip, offer, hash: ctx.hash(c.send, tranId, pCount, scrip, extra), pCount }),
    async (res, pCount, tries) => {
      await ctx.hook(`after-${spec.steps.send}-sent`);
      const h = res.header;
      const uncertain = recovering || pCount > 0;
      if (h?.cmdType === c.ok) {
        if (!ctx.verified(c.ok, tranId, res.pCount, res.newScrip ?? scrip, res.newScripHash)) {
          throw new IntegrityError("BAD_REPLY_HASH", `${label}: the ${spec.words.newScrip}'s hash does not verify under Custom_Secret`);
        }
        const s = ctx.adoptable(res.newScrip, scrip.scrip!.value + spec.delta(offer), label);
        ctx.progress(label, `${label} ← center: ${spec.words.newScrip} ${s.scrip!.value} ${s.scrip!.currency}`);
        return { value: s };
      }
      if (h?.cmdType === c.retry) {
        checkRefusal(ctx, spec, tranId, scrip, res);
        ctx.progress(label, `${label} ← center: server error (${h.errorMessage}); retransmitting`);
        if (tries < ctx.maxRetransmissions) return { retry: Math.max(pCount + 1, res.pCount) };
        throw new UnavailableError(h.errorReason || "SERVER_ERROR", `payment center: ${h.errorMessage || "server error"} (after ${tries + 1} tries)`);
      }
      if (h && c.refused.includes(h.cmdType)) {
        checkRefusal(ctx, spec, tranId, scrip, res);
        ctx.progress(label, `${label} ← center: refused (${h.errorReason})`);
        const refusal = new RefusedError(code(h.cmdType), h.errorReason || "REFUSED", `payment center: ${h.errorMessage || spec.words.refused}`);
        throw await settleUnknown(ctx, spec, refusal, uncertain, tranId, scrip);
      }
      throw new IntegrityError("UNEXPECTED_REPLY", `${label}: unexpected cmdType ${h ? code(h.cmdType) : "(no header)"}`);
    },
    (e, pCount) => settleUnknown(ctx, spec, e, recovering || pCount > 0, tranId, scrip),
  );
}

/**
 * Verifies an M7/PM7 scrip hash. The spec binds it to the request's
 * `p_count + 1`, but the center replays the reply it stored for the FIRST
 * confirmation, bound to that request's pCount; the reply has no p_count
 * field to say which. So accept the pCounts this wallet actually sent for
 * the step (0..pCount, each + 1): still a MAC under Custom_Secret over this
 * scrip, this TranID and this message code.
 */
function verifiedConfirmation(ctx: StepContext, c: CmdType, tranId: string, pCountSent: number, scrip: ScripType, hash: Uint8Array): boolean {
  for (let p = pCountSent; p >= 0; p--) if (ctx.verified(c, tranId, p + 1, scrip, hash)) return true;
  return false;
}

/** M6/S6 until M7/the receipt confirms; verifies it. */
async function sendConfirm(ctx: StepContext, spec: ValueStepSpec, p: PendingOperation, offer: Offer, recovering: boolean): Promise<Receipt | undefined> {
  const newScrip = decodeScrip(p.newScrip!);
  const tranId = p.id;
  const c = spec.codes;
  const done = spec.steps.done;
  return retransmit<ConfirmReply, Receipt | undefined>(
    ctx,
    spec.steps.confirm,
    recovering ? p.pCount + 1 : p.pCount,
    spec.words.accepting,
    (pCount) => spec.confirm(ctx.center(), { header: hdr(c.confirm, ctx.now()), tranId, newScrip, newScripHash: ctx.hash(c.confirm, tranId, pCount, newScrip), pCount }),
    async (res, pCount) => {
      await ctx.hook(`after-${spec.steps.confirm}-sent`);
      const s = res.scrip;
      if (res.header?.cmdType !== c.confirmed || res.state !== TransactionState.CONFIRMED || !s || s.scrip?.scripId?.serialNumber !== newScrip.scrip!.scripId!.serialNumber) {
        throw new IntegrityError("UNEXPECTED_REPLY", `${done}: expected a confirmation of the new scrip, got state ${TransactionState[res.state] ?? res.state}`);
      }
      if (!verifiedConfirmation(ctx, c.confirmed, tranId, pCount, s, res.scripHash)) throw new IntegrityError("BAD_REPLY_HASH", `${done}: the scrip hash does not verify under Custom_Secret`);
      const receipt = spec.receipt?.(res, offer, ctx.customId());
      ctx.progress(done, receipt ? `${done} ← center: receipt for ${receipt.requestUrl}, ${receipt.price} ${receipt.currency}` : `${done} ← center: issuance confirmed`);
      return { value: receipt };
    },
    async (e) => {
      // The value already moved with M5/S5 and the scrip is ours; only the
      // confirmation was refused. Keep the scrip, close the journal.
      if (e instanceof ScripwireError && !(e instanceof UnavailableError)) await ctx.journal.setPending(null);
      return e;
    },
  );
}

export interface ExchangeOutcome {
  /** The journal entry as it stood at the end (its id, offer, item...). */
  pending: PendingOperation;
  offer: Offer;
  /** The buy's receipt; undefined for earning. */
  receipt?: Receipt;
}

/**
 * Runs the journalled exchange from where the journal stands (M4/S4 or
 * M6/S6) to its confirmation. The new scrip and the step M6/S6 are
 * journalled in one record before M6/S6 leaves. If M4/S4 ended in a refusal
 * but the probe found that the TranID had executed, the probed scrip is
 * adopted (value checked) and the exchange finishes with M6/S6.
 * The journal still holds the operation on return: the caller clears it
 * together with the history line (one record).
 */
export async function runValueExchange(ctx: StepContext, spec: ValueStepSpec, recovering: boolean): Promise<ExchangeOutcome> {
  const run = async (recoveringNow: boolean): Promise<ExchangeOutcome> => {
    let p = ctx.journal.pending!;
    const offer = decodeOffer(p.offer!);
    let receipt: Receipt | undefined;
    if (p.step === spec.steps.send) {
      const s = await sendValue(ctx, spec, p, recoveringNow);
      await ctx.journal.commit({ scrip: encodeScrip(s), pending: { ...p, step: spec.steps.confirm, pCount: 0, newScrip: encodeScrip(s) } });
      p = ctx.journal.pending!;
      await ctx.hook(`after-${spec.steps.reply}-received`);
      receipt = await sendConfirm(ctx, spec, p, offer, false);
    } else {
      // Journalled at M6/S6: resend with pCount + 1 when recovering; fresh after a probe found the M5/S5 scrip.
      receipt = await sendConfirm(ctx, spec, p, offer, recoveringNow);
    }
    return { pending: p, offer, receipt };
  };
  try {
    return await run(recovering);
  } catch (e) {
    if (!(e instanceof RecoveredScrip)) throw e;
    const p = ctx.journal.pending!;
    const offer = decodeOffer(p.offer!);
    const due = decodeScrip(p.scrip).scrip!.value + spec.delta(offer);
    const s = ctx.adoptable(e.scrip, due, `${spec.steps.confirm} (${code(spec.codes.probe)})`);
    await ctx.journal.commit({ scrip: encodeScrip(s), pending: { ...p, step: spec.steps.confirm, pCount: 0, newScrip: encodeScrip(s) } });
    return run(recovering);
  }
}

/**
 * RN1/RD1 until a definitive answer. These are idempotent by request id at
 * the center (a retransmission gets the stored reply), so a definitive
 * refusal means nothing moved: the journal is cleared.
 */
export function sendReplacement<T>(ctx: StepContext, p: PendingOperation, recovering: boolean, label: "RN1" | "RD1", describe: string, send: (pCount: number) => Promise<T>): Promise<T> {
  return retransmit<T, T>(
    ctx,
    label,
    recovering ? p.pCount + 1 : p.pCount,
    describe,
    send,
    (res) => ({ value: res }),
    async (e) => {
      if (e instanceof ScripwireError && !(e instanceof UnavailableError)) await ctx.journal.setPending(null);
      return e;
    },
  );
}
