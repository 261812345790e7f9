/**
 * Restore, sync and the recovery code, on the wallet side.
 *
 *   - recovery code: customer id + Custom_Secret as a checksummed text
 *     (src/crypto/recovery.ts), shown once at registration and again on
 *     request from an unlocked wallet;
 *   - sync (SY1 -> SY2): asks the center what it knows of this customer,
 *     authenticated by a MAC under Custom_Secret over a fresh timestamp and
 *     nonce; the reply is authenticated the same way and bound to our nonce.
 *     The wallet finishes every transaction the center reports as executed
 *     but unconfirmed (GM6_1 / PM6_1: the center replays a confirmation that
 *     already happened, so a transaction is finished exactly once whichever
 *     device does it), then adopts the center's live scrip; pending refund
 *     credits were folded into that scrip by the center;
 *   - restore: a fresh wallet from a recovery code and the center's address.
 *
 * Platform-neutral like core.ts: the WalletCore class keeps the state, the
 * journal and the lock, and hands this module a narrow RestoreHost.
 */
import { create } from "@bufbuild/protobuf";
import { TransactionState, type GetCenterInfoResponse, type SyncResponse } from "../../gen/scripwire/v1/center_pb.js";
import { CmdType, HeaderTypeSchema, OfferKind, type Receipt, type ScripType } from "../../gen/scripwire/v1/types_pb.js";
import { decodeRecoveryCode, encodeRecoveryCode, RecoveryCodeError } from "../crypto/recovery.js";
import { computeMessageHash, verifyMessageHash } from "../crypto/scrip-auth.js";
import { computeSyncRequestHash, verifySyncReplyHash } from "../crypto/sync-auth.js";
import { randomBytes } from "./bytes.js";
import type { CenterRpc } from "./client.js";
import { decodeScrip, encodeReceipt, encodeScrip, methodName, toHexString } from "./codec.js";
import { AuthenticationError, IntegrityError, ScripwireError, StateError } from "./errors.js";
import type { HistoryRecord, JournalRecord, WalletState } from "./state.js";

const PROTOCOL_VERSION = "scripwire/1";
/** Rounds of sync -> finish what is in flight -> sync again; each round finishes at least one transaction. */
const SYNC_ROUNDS_MAX = 4;

/** What the wallet core exposes to restore/sync. */
export interface RestoreHost {
  clock(): number;
  progress(step: string, message: string): void;
  state(): WalletState;
  customSecret(): Uint8Array;
  center(): CenterRpc;
  /** Makes one journal record durable (journal.ts). */
  commit(r: JournalRecord): Promise<void>;
}

export interface SyncResult {
  /** Whether the wallet's scrip was replaced by the center's live one. */
  changed: boolean;
  value: bigint;
  currency: string;
  serial: bigint;
  /** Transactions this sync finished (confirmed) on the wallet's behalf. */
  finished: { tranId: string; kind: "earn" | "buy"; amount: bigint; vendorId: string; item: string }[];
  /** Refunds now carried by the scrip (folded) and still pending (a payment in flight holds them back). */
  refunds: { refundId: string; tranId: string; vendorId: string; amount: bigint; currency: string; pending: boolean }[];
  /** Transactions initiated but not executed: nothing moved; they expire on their own. */
  initiated: { tranId: string; kind: "earn" | "buy"; amount: bigint; vendorId: string }[];
}

export interface RestoreOptions {
  /** The center's X25519 public key (hex), obtained out of band; restore is refused if the center presents another. */
  pinnedPublicKey?: string;
  /** Which currency's scrip to hold; default the center's first currency the customer has a scrip in. */
  currency?: string;
  /** Seller URL to record with receipts of purchases the restore finishes (for `redeliver`). */
  sellerUrl?: string;
}

export interface RestoreResult extends SyncResult {
  customId: { secretId: number; serialNumber: bigint };
  centerPublicKey: string;
}

function hdr(cmdType: CmdType, nowMs: number) {
  return create(HeaderTypeSchema, { cmdType, protocolVersion: PROTOCOL_VERSION, serverDateUnixMs: BigInt(nowMs) });
}

/** The recovery code of a registered wallet's customer. */
export function recoveryCodeOf(state: WalletState, customSecret: Uint8Array): string {
  return encodeRecoveryCode({ customId: { secretId: state.customId.secretId, serialNumber: BigInt(state.customId.serialNumber) }, customSecret });
}

/** Reads a recovery code, turning a bad one into a typed wallet error. */
export function readRecoveryCode(code: string): { customId: { secretId: number; serialNumber: bigint }; customSecret: Uint8Array } {
  try {
    return decodeRecoveryCode(code);
  } catch (e) {
    if (e instanceof RecoveryCodeError) {
      throw new ScripwireError("INVALID_ARGUMENT", e.reason, e.message, {
        hint: "a recovery code is SW1- followed by 15 groups of 5 characters, exactly as shown at registration",
        cause: e,
      });
    }
    throw e;
  }
}

/** One SY1 -> SY2 exchange; the reply is authenticated before anything in it is used. */
export async function syncOnce(
  center: CenterRpc,
  customId: { secretId: number; serialNumber: bigint },
  customSecret: Uint8Array,
  clock: () => number,
): Promise<SyncResponse> {
  const nonce = randomBytes(32);
  const timestampUnixMs = BigInt(clock());
  const hash = computeSyncRequestHash(customSecret, { customId, timestampUnixMs, nonce });
  let res: SyncResponse;
  try {
    res = await center.sync({ header: hdr(CmdType.SY1, clock()), customId, timestampUnixMs, nonce, hash });
  } catch (e) {
    if (e instanceof AuthenticationError) {
      throw new AuthenticationError(e.reason, "the center did not accept the sync request: wrong recovery code, or this computer's clock is more than 5 minutes off", {
        hint: "check the code character by character and the system clock; the center does not say which it was",
        cause: e,
      });
    }
    throw e;
  }
  const ok = verifySyncReplyHash(
    customSecret,
    { customId, requestNonce: nonce, serverTimeUnixMs: res.serverTimeUnixMs, scrips: res.scrips, inFlight: res.inFlight, credits: res.credits },
    res.hash,
  );
  if (res.header?.cmdType !== CmdType.SY2 || !ok) throw new IntegrityError("BAD_REPLY_HASH", "SY2: the sync reply does not authenticate under Custom_Secret; nothing was adopted");
  for (const s of [...res.scrips, ...res.inFlight.map((t) => t.newScrip).filter((s): s is ScripType => !!s)]) {
    const id = s.scrip?.customId;
    if (!id || id.secretId !== customId.secretId || id.serialNumber !== customId.serialNumber || s.certificate.length !== 32 || (s.scrip?.value ?? -1n) < 0n) {
      throw new IntegrityError("UNEXPECTED_SCRIP", "SY2: a scrip in the sync reply is not this customer's");
    }
  }
  return res;
}

/**
 * Sync a registered wallet: finish what is in flight, adopt the live scrip.
 * The caller holds the wallet's lock and has finished its own journal first.
 */
export async function syncWallet(core: RestoreHost, opts: { sellerUrl?: string; restoring?: boolean } = {}): Promise<SyncResult> {
  const st0 = core.state();
  const customId = { secretId: st0.customId.secretId, serialNumber: BigInt(st0.customId.serialNumber) };
  const cs = core.customSecret();
  const finished: SyncResult["finished"] = [];
  let res: SyncResponse | undefined;
  for (let round = 0; round < SYNC_ROUNDS_MAX; round++) {
    core.progress("SY1", "SY1 → center: what is my live scrip?");
    res = await syncOnce(core.center(), customId, cs, core.clock);
    const executed = res.inFlight.filter((t) => t.state === TransactionState.EXECUTED && t.currency === st0.currency && t.newScrip);
    core.progress("SY2", `SY2 ← center: ${res.scrips.length} live scrip(s), ${res.inFlight.length} in flight, ${res.credits.length} refund(s)`);
    if (executed.length === 0) break;
    for (const t of executed) finished.push(await finishExecuted(core, t, opts.sellerUrl));
  }
  const r = res!;
  const st = core.state();
  const live = r.scrips.find((s) => s.scrip!.currency === st.currency);
  if (!live) throw new StateError("NO_LIVE_SCRIP", `the center holds no live ${st.currency} scrip for this customer`, { hint: "the wallet keeps its scrip unchanged" });
  const b = live.scrip!;
  const center = st.center;
  if (!b.vendorId || b.vendorId.dnsName !== center.dnsName || b.vendorId.port !== center.port) {
    throw new IntegrityError("UNEXPECTED_SCRIP", "SY2: the live scrip names another issuer; it was not adopted");
  }
  const held = valueAndSerial(st.scrip);
  const before = held?.value ?? 0n;
  const changed = held?.serial !== b.scripId!.serialNumber;
  const known = new Set(st.history.filter((h) => h.kind === "refunded").map((h) => h.requestId));
  const refunds: SyncResult["refunds"] = r.credits
    .filter((c) => c.currency === st.currency)
    .map((c) => ({ refundId: c.refundId, tranId: c.tranId, vendorId: c.vendorId, amount: c.amount, currency: c.currency, pending: c.foldedIntoSerial === 0n }));
  const now = core.clock();
  // One record adopts the scrip (with its history line when it changed);
  // the refund lines follow. A crash in between loses only history lines.
  await core.commit({
    scrip: encodeScrip(live),
    ...(changed ? { history: entry("synced", now, b.value - before, b.value, b.currency, b.scripId!.serialNumber, {}) } : {}),
  });
  for (const c of refunds) {
    if (c.pending || known.has(c.refundId)) continue;
    await core.commit({ history: entry("refunded", now, c.amount, b.value, b.currency, b.scripId!.serialNumber, { tranId: c.tranId, vendorId: c.vendorId, requestId: c.refundId }) });
  }
  core.progress("SY2", `SY2 ← center: live scrip ${b.value} ${b.currency}${changed ? " (adopted)" : " (the one this wallet holds)"}`);
  return {
    changed,
    value: b.value,
    currency: b.currency,
    serial: b.scripId!.serialNumber,
    finished,
    refunds,
    initiated: r.inFlight
      .filter((t) => t.state === TransactionState.INITIATED)
      .map((t) => ({ tranId: t.tranId, kind: t.kind === OfferKind.ISSUE ? "earn" : "buy", amount: t.amount, vendorId: t.vendorId })),
  };
}

/** Value and serial of an encoded scrip, or undefined if it does not decode. */
function valueAndSerial(encoded: string): { value: bigint; serial: bigint } | undefined {
  try {
    const s = decodeScrip(encoded).scrip;
    return s?.scripId ? { value: s.value, serial: s.scripId.serialNumber } : undefined;
  } catch {
    return undefined;
  }
}

function entry(
  kind: HistoryRecord["kind"],
  atMs: number,
  amount: bigint,
  balance: bigint,
  currency: string,
  serial: bigint,
  extra: Partial<HistoryRecord>,
): HistoryRecord {
  return { kind, atMs, amount: amount.toString(), balance: balance.toString(), currency, serial: serial.toString(), ...extra };
}

/**
 * GM6_1 / PM6_1 for a transaction the center executed and is waiting to
 * have confirmed. If it was already confirmed (by another device), the
 * center replays the stored confirmation: the value moved once either way.
 */
async function finishExecuted(
  core: RestoreHost,
  t: SyncResponse["inFlight"][number],
  sellerUrl: string | undefined,
): Promise<SyncResult["finished"][number]> {
  const cs = core.customSecret();
  const scrip = t.newScrip!;
  const isIssue = t.kind === OfferKind.ISSUE;
  const code = isIssue ? CmdType.GM6_1 : CmdType.PM6_1;
  const reply = isIssue ? CmdType.GM7_1 : CmdType.PM7_1;
  const name = (c: CmdType) => CmdType[c]!;
  const newScripHash = computeMessageHash(scrip.hashAlgorithm, cs, { code: name(code), contextId: t.tranId, pCount: 0, scrip });
  core.progress(isIssue ? "M6" : "S6", `${isIssue ? "M6" : "S6"} → center: finishing ${t.tranId} (${t.amount} ${t.currency}) found in flight`);
  const req = { header: hdr(code, core.clock()), tranId: t.tranId, newScrip: scrip, newScripHash, pCount: 0 };
  const res = isIssue ? await core.center().confirmIssue(req) : await core.center().confirmPayment(req);
  const s = res.scrip;
  if (res.state !== TransactionState.CONFIRMED || !s || !verifyMessageHash(s.hashAlgorithm, cs, { code: name(reply), contextId: t.tranId, pCount: 1, scrip: s }, res.scripHash)) {
    throw new IntegrityError("BAD_REPLY_HASH", `${name(reply)}: the confirmation of ${t.tranId} does not authenticate; nothing was adopted`);
  }
  const now = core.clock();
  const receipt: Receipt | undefined = !isIssue ? (res as { receipt?: Receipt }).receipt : undefined;
  const v = scrip.scrip!;
  await core.commit({
    history: entry(isIssue ? "earned" : "bought", now, isIssue ? t.amount : -t.amount, v.value, v.currency, v.scripId!.serialNumber, {
      tranId: t.tranId,
      item: t.item,
      vendorId: t.vendorId,
      recovered: true,
      ...(isIssue ? {} : { method: methodName(t.deliveryMethod), sellerUrl: sellerUrl ?? "" }),
    }),
    ...(receipt
      ? { receipt: { tranId: t.tranId, sellerUrl: sellerUrl ?? "", requestUrl: t.item, method: methodName(t.deliveryMethod), receipt: encodeReceipt(receipt), paidAtMs: now } }
      : {}),
  });
  return { tranId: t.tranId, kind: isIssue ? "earn" : "buy", amount: t.amount, vendorId: t.vendorId, item: t.item };
}

/** The state of a wallet rebuilt from a recovery code: what R2 would have given, with the center's live scrip. */
export function restoredState(
  centerUrl: string,
  info: GetCenterInfoResponse,
  customId: { secretId: number; serialNumber: bigint },
  customSecret: Uint8Array,
  live: ScripType,
  now: number,
): WalletState {
  const c = info.center!;
  const b = live.scrip!;
  return {
    version: 1,
    // The R1 wallet id is not needed to act as the customer (the center knows
    // customers by custom_id); a restored wallet gets a fresh local one.
    walletId: toHexString(randomBytes(16)),
    centerUrl,
    centerPublicKey: toHexString(info.publicKey),
    center: { dnsName: c.dnsName, ipAddr: c.ipAddr, serverName: c.serverName, port: c.port },
    currency: b.currency,
    customId: { secretId: customId.secretId, serialNumber: customId.serialNumber.toString() },
    customSecret: toHexString(customSecret),
    scrip: encodeScrip(live),
    pending: null,
    history: [{ kind: "restored", atMs: now, amount: b.value.toString(), balance: b.value.toString(), currency: b.currency, serial: b.scripId!.serialNumber.toString() }],
    receipts: {},
    createdAtMs: now,
  };
}
