/**
 * Guarding the admin surface: the token's strength at startup, and a
 * per-address back-off on wrong tokens so the token cannot be guessed at the
 * speed of the network.
 *
 * Before this, a wrong token cost the guesser one round trip: ~380 guesses a
 * second from one client, with nothing in the log saying from where. Now each
 * wrong token from an address doubles the time that address must wait before
 * its next admin call is even looked at ({@link ADMIN_BACKOFF_FIRST_MS} ..
 * {@link ADMIN_BACKOFF_MAX_MS}); calls inside the wait are refused with
 * RESOURCE_EXHAUSTED and a retry-after, WITHOUT comparing their token, so a
 * guess made during the wait teaches the guesser nothing. A right token
 * clears the address's record. Every refusal is logged with the peer address.
 */
import { Code, ConnectError, type HandlerContext } from "@connectrpc/connect";
import { sha256 } from "@noble/hashes/sha2.js";
import { constantTimeEqual } from "../crypto/mac.js";
import { permissionDenied, unauthenticated } from "./errors.js";
import { ERROR_REASON_KEY } from "./errors.js";
import { addressKey, REMOTE_ADDRESS, RETRY_AFTER_MS_KEY } from "./limits.js";
import type { Logger } from "./log.js";

/** Shortest admin token accepted: 16 characters. */
export const ADMIN_TOKEN_LENGTH_MIN = 16;
/**
 * Least estimated entropy of an admin token, in bits (length times the
 * Shannon entropy of its characters). 16 random hex characters estimate at
 * ~52; `aaaaaaaaaaaaaaaa` at 0 and `abababababababab` at 16.
 */
export const ADMIN_TOKEN_ENTROPY_MIN_BITS = 48;
/** Fewest distinct characters in an admin token (a cheap second opinion on the entropy estimate). */
export const ADMIN_TOKEN_DISTINCT_MIN = 8;
/** Wait after the first wrong token from an address; doubles with each further one. */
export const ADMIN_BACKOFF_FIRST_MS = 250;
/** Longest wait: a guesser from one address gets at most one guess this often (120 a hour). */
export const ADMIN_BACKOFF_MAX_MS = 30_000;
/** An address's failures are forgotten after this long without one (a typo on Monday does not slow Tuesday). */
export const ADMIN_FAILURES_FORGET_MS = 15 * 60_000;
/** Addresses whose failures are remembered; the least recently failing is dropped first (bounds memory under a spread attack). */
export const ADMIN_FAILURE_ADDRESSES_MAX = 10_000;

/** Reason of a call refused because its address is backing off. */
export const ADMIN_BACKOFF = "ADMIN_BACKOFF";

export class WeakAdminTokenError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "WeakAdminTokenError";
  }
}

/** Estimated entropy in bits: length x Shannon entropy per character of the token itself. */
export function tokenEntropyBits(token: string): number {
  const counts = new Map<string, number>();
  for (const ch of token) counts.set(ch, (counts.get(ch) ?? 0) + 1);
  const n = [...token].length;
  let perChar = 0;
  for (const c of counts.values()) perChar -= (c / n) * Math.log2(c / n);
  return perChar * n;
}

/**
 * Refuses a token that is short, repetitive or otherwise guessable, with a
 * message that says how to make a good one. Run before anything is created
 * on disk, so a refused start leaves nothing behind.
 */
export function checkAdminToken(token: string | undefined): void {
  const how = "generate one with `openssl rand -hex 24` and pass it as --admin-token or SCRIPWIRE_ADMIN_TOKEN";
  if (token === undefined || token === "") throw new WeakAdminTokenError(`an admin token is required; ${how}`);
  const n = [...token].length;
  if (n < ADMIN_TOKEN_LENGTH_MIN) throw new WeakAdminTokenError(`the admin token must be at least ${ADMIN_TOKEN_LENGTH_MIN} characters (got ${n}); ${how}`);
  const distinct = new Set(token).size;
  const bits = tokenEntropyBits(token);
  if (distinct < ADMIN_TOKEN_DISTINCT_MIN || bits < ADMIN_TOKEN_ENTROPY_MIN_BITS) {
    throw new WeakAdminTokenError(
      `the admin token is too guessable (${distinct} distinct characters, ~${Math.floor(bits)} bits estimated; at least ${ADMIN_TOKEN_DISTINCT_MIN} and ${ADMIN_TOKEN_ENTROPY_MIN_BITS} needed); ${how}`,
    );
  }
}

interface Failures {
  count: number;
  lastMs: number;
  /** No admin call from this address is looked at before this time. */
  untilMs: number;
}

export interface AdminGuardOptions {
  token: string;
  logger?: Logger;
  clock?: () => number;
}

/**
 * Checks `authorization: Bearer <token>` in constant time (both sides hashed,
 * so lengths don't leak either), with per-address back-off on failures.
 */
export class AdminGuard {
  private readonly tokenHash: Uint8Array;
  private readonly failures = new Map<string, Failures>();
  private readonly clock: () => number;
  /** Wrong tokens seen and calls refused during a back-off, for tests and metrics. */
  readonly stats = { wrongTokens: 0, backoffRefusals: 0 };

  constructor(private readonly opts: AdminGuardOptions) {
    checkAdminToken(opts.token);
    this.tokenHash = sha256(new TextEncoder().encode(opts.token));
    this.clock = opts.clock ?? Date.now;
  }

  /** Throws unless the call carries the admin token and its address is not backing off. */
  check(ctx: HandlerContext): void {
    const peer = ctx.values.get(REMOTE_ADDRESS) ?? "in-process";
    const key = peer === "in-process" ? peer : addressKey(peer);
    const method = ctx.method.name;
    const now = this.clock();
    let f = this.failures.get(key);
    if (f && now - f.lastMs > ADMIN_FAILURES_FORGET_MS) {
      this.failures.delete(key);
      f = undefined;
    }
    if (f && now < f.untilMs) {
      this.stats.backoffRefusals++;
      const wait = f.untilMs - now;
      this.opts.logger?.info("admin call refused: backing off after wrong tokens", { method, peer, failures: f.count, retry_after_ms: wait });
      throw new ConnectError(`too many wrong admin tokens from this address; retry in ${(wait / 1000).toFixed(2)} s`, Code.ResourceExhausted, {
        [ERROR_REASON_KEY]: ADMIN_BACKOFF,
        [RETRY_AFTER_MS_KEY]: String(wait),
        "retry-after": String(Math.max(1, Math.ceil(wait / 1000))),
      });
    }
    const got = ctx.requestHeader.get("authorization") ?? "";
    const m = /^Bearer (.+)$/.exec(got);
    const ok = m !== null && constantTimeEqual(this.tokenHash, sha256(new TextEncoder().encode(m[1]!)));
    if (ok) {
      if (f) this.failures.delete(key);
      this.opts.logger?.info("admin call", { method, peer });
      return;
    }
    if (!m) {
      // No token at all is a misconfigured client, not a guess: refused, logged, not counted.
      this.opts.logger?.info("admin call without a token", { method, peer });
      throw unauthenticated("ADMIN_TOKEN_MISSING", "admin calls need 'authorization: Bearer <token>' (scripwire center admin ... --admin-token <token>, or SCRIPWIRE_ADMIN_TOKEN)");
    }
    this.stats.wrongTokens++;
    const count = (f?.count ?? 0) + 1;
    const backoff = Math.min(ADMIN_BACKOFF_MAX_MS, ADMIN_BACKOFF_FIRST_MS * 2 ** Math.min(count - 1, 20));
    this.failures.delete(key); // re-insert: Map order is the LRU order
    if (this.failures.size >= ADMIN_FAILURE_ADDRESSES_MAX) this.failures.delete(this.failures.keys().next().value!);
    this.failures.set(key, { count, lastMs: now, untilMs: now + backoff });
    this.opts.logger?.info("admin token refused", { method, peer, failures: count, backoff_ms: backoff });
    throw permissionDenied("ADMIN_TOKEN_WRONG", "the admin token is not valid for this center");
  }
}
