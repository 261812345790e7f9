/**
 * What a WatchSettlements stream may cost the center. A watch is a long-lived
 * stream that polls the ledger every second, so before this one signed
 * request replayed 2 000 times within its 5-minute window held 2 000 streams
 * (29 % of a core) and gave an eavesdropper on a plaintext link a permanent
 * feed. Now:
 * - a watch request is single-use: its MAC is remembered (in the ledger, so
 *   every replica sees it) for twice the clock-skew window its timestamp may
 *   be accepted in, and a second use is refused with REPLAYED_REQUEST;
 * - at most {@link SETTLEMENT_WATCHES_PER_VENDOR_MAX} watches per vendor and
 *   {@link SETTLEMENT_WATCHES_PER_ADDRESS_MAX} per address run at once on a
 *   center; more are refused with RESOURCE_EXHAUSTED.
 */
import { sha256 } from "@noble/hashes/sha2.js";
import type { Ledger } from "../ledger/ledger.js";
import { resourceExhausted, unauthenticated } from "../server/errors.js";
import { addressKey } from "../server/limits.js";

/** A seller needs one watch; a few more cover a restart overlapping the old stream and a second replica. */
export const SETTLEMENT_WATCHES_PER_VENDOR_MAX = 4;
/** Watches from one address (or IPv6 /64): a host running several sellers, not a flood. */
export const SETTLEMENT_WATCHES_PER_ADDRESS_MAX = 8;
/**
 * How long a watch request's MAC is remembered: the center accepts
 * timestamps up to 5 minutes either side of its clock, so a request can be
 * presented during 10 minutes; remembered that long, it can be used once.
 */
export const SETTLEMENT_NONCE_WINDOW_MS = 2 * 5 * 60_000;
/** The sync_nonces rows of settlement requests use this customer serial (real serials are positive). */
const SETTLEMENT_NONCE_OWNER = -1n;

export class SettlementWatchGate {
  private readonly perVendor = new Map<string, number>();
  private readonly perAddress = new Map<string, number>();

  constructor(
    private readonly ledger: Ledger,
    private readonly clock: () => number = Date.now,
  ) {}

  /** The refusal when the vendor or the address has all its watches open. */
  private full(vendorId: string, addr: string): Error | undefined {
    if ((this.perVendor.get(vendorId) ?? 0) >= SETTLEMENT_WATCHES_PER_VENDOR_MAX) {
      return resourceExhausted("TOO_MANY_WATCHES", `vendor ${vendorId} already has ${SETTLEMENT_WATCHES_PER_VENDOR_MAX} settlement watches open on this center; close one first`);
    }
    if ((this.perAddress.get(addr) ?? 0) >= SETTLEMENT_WATCHES_PER_ADDRESS_MAX) {
      return resourceExhausted("TOO_MANY_WATCHES", `this address already has ${SETTLEMENT_WATCHES_PER_ADDRESS_MAX} settlement watches open; close one first`);
    }
    return undefined;
  }

  /**
   * Claims the request's MAC as a nonce and a slot for its vendor and
   * address; returns the function that gives the slot back when the stream
   * ends. Call only after the MAC verified (an unauthenticated request must
   * not burn a vendor's nonce or slot).
   */
  async enter(vendorId: string, mac: Uint8Array, address: string | undefined): Promise<() => void> {
    const addr = address ? addressKey(address) : "in-process";
    const busy = this.full(vendorId, addr);
    if (busy) throw busy;
    const now = BigInt(this.clock());
    const nonce = sha256(new Uint8Array([...new TextEncoder().encode("scripwire/settlement-watch\0"), ...mac]));
    if (!(await this.ledger.claimSyncNonce(SETTLEMENT_NONCE_OWNER, nonce, now, now - BigInt(SETTLEMENT_NONCE_WINDOW_MS)))) {
      throw unauthenticated("REPLAYED_REQUEST", "this signed watch request was already used; sign a new one (fresh timestamp_unix_ms)");
    }
    // Checked again after the ledger round trip: requests arriving together all
    // passed the check above while each awaited its nonce. Only the rare loser
    // of that race has used its nonce for nothing (it signs a fresh request).
    const full = this.full(vendorId, addr);
    if (full) throw full;
    const bump = (m: Map<string, number>, k: string, d: number) => {
      const n = (m.get(k) ?? 0) + d;
      if (n <= 0) m.delete(k);
      else m.set(k, n);
    };
    bump(this.perVendor, vendorId, 1);
    bump(this.perAddress, addr, 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      bump(this.perVendor, vendorId, -1);
      bump(this.perAddress, addr, -1);
    };
  }
}
