/**
 * The auditor's model: what the center's ledger must hold, rebuilt only from
 * what the wallets sent and what they were told (TigerBeetle's auditor idea).
 * Every reply that moves value updates it; at the end it is compared with the
 * ledger, account by account.
 */
import type { Receipt } from "../../gen/scripwire/v1/types_pb.js";

/** Violations echoed to stderr as they happen; all are counted. */
export const VIOLATIONS_PRINTED_MAX = 25;

export interface Violation {
  at: number;
  who: string;
  what: string;
}

export class Model {
  /** Campaign id -> amount funded through the admin API. */
  readonly funded = new Map<string, bigint>();
  /** Rewards adopted by wallets (GM5_1), less rewards undone (GM6_3 / GM4_2 after execution). */
  issuedNet = 0n;
  /** Prices paid (PM5_1), less payments undone (PM6_3 / PM4_2 after execution). */
  vendorNet = 0n;
  /** Sum of redemptions the wallets were told about (RD2). */
  payouts = 0n;
  /** Issuances confirmed by M7 (GM7_1, state CONFIRMED): tranId -> amount. */
  readonly confirmedIssues = new Map<string, bigint>();
  /** Payments confirmed with a receipt (PM7_1, state CONFIRMED): tranId -> receipt. */
  readonly receipts = new Map<string, Receipt>();
  /** Every serial a wallet ever adopted: the center must never hand the same one out twice. */
  readonly adoptedSerials = new Map<bigint, string>();
  /** Refunds the center confirmed (RF2): refundId -> what and for whom. */
  readonly refunds = new Map<string, { tranId: string; amount: bigint; customerSerial: bigint }>();
  /**
   * Refunds a sync folded before the refunder had its RF2 answer (the answer
   * was dropped and the refunder was still retransmitting): checked at the
   * end against the RF2 answers, refund by refund.
   */
  readonly foldsAwaitingRf2 = new Map<string, { amount: bigint; customerSerial: bigint }>();
  /** TranID -> amount refunded. */
  readonly refundsByTran = new Map<string, bigint>();
  /** Refund credits wallets saw folded into their scrip (SY2). */
  folded = 0n;
  readonly violations: Violation[] = [];
  private readonly t0 = Date.now();

  violation(who: string, what: string): void {
    this.violations.push({ at: Date.now() - this.t0, who, what });
    // The first ones as they happen (the report lists them again); a broken center would flood the terminal.
    if (this.violations.length <= VIOLATIONS_PRINTED_MAX) process.stderr.write(`VIOLATION [${who}] ${what}\n`);
  }

  adoptSerial(serial: bigint, who: string): void {
    const prev = this.adoptedSerials.get(serial);
    if (prev !== undefined) this.violation(who, `serial ${serial} was already adopted by ${prev}: the center issued one serial twice`);
    this.adoptedSerials.set(serial, who);
  }

  get fundedTotal(): bigint {
    let s = 0n;
    for (const v of this.funded.values()) s += v;
    return s;
  }
}

/** Operation and outcome counters for the report. */
export class Stats {
  readonly ops = new Map<string, number>();
  readonly refusals = new Map<string, number>();
  retransmissions = 0;
  transportErrors = 0;
  walletCrashes = 0;
  /** Replies whose hash verified only at an earlier pCount than this attempt's + 1 (replays of a stored reply). */
  earlierPCount = 0;
  centerCrashes = 0;

  /** Transport errors by code: count and total time spent waiting for them. */
  readonly transport = new Map<string, { n: number; ms: number }>();

  transportError(code: string, ms: number): void {
    const t = this.transport.get(code) ?? { n: 0, ms: 0 };
    t.n++;
    t.ms += ms;
    this.transport.set(code, t);
  }

  op(name: string): void {
    this.ops.set(name, (this.ops.get(name) ?? 0) + 1);
  }

  refusal(reason: string): void {
    this.refusals.set(reason, (this.refusals.get(reason) ?? 0) + 1);
  }

  get opsTotal(): number {
    let n = 0;
    for (const v of this.ops.values()) n += v;
    return n;
  }
}

export function refundedTotal(m: Model): bigint {
  let s = 0n;
  for (const r of m.refunds.values()) s += r.amount;
  return s;
}
