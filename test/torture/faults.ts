/**
 * Client-side network faults, applied call by call from the caller's own PRNG
 * so a wallet's fault schedule replays from the seed:
 *   - delay:     hold the request (and sometimes the reply) for a while;
 *   - duplicate: send the very same request twice, concurrently;
 *   - drop:      receive the reply, then throw it away as if it were lost;
 *   - timeout:   every call carries a deadline, so a hung call becomes a loss.
 * The center cannot tell a dropped reply from one lost on the wire: the
 * request ran, the wallet just never learned how.
 */
import { Code, ConnectError, type CallOptions } from "@connectrpc/connect";
import type { Prng } from "./prng.js";

export interface FaultRates {
  /** Probability that a received reply is discarded as lost. */
  drop: number;
  /** Probability that a request is sent twice at once. */
  duplicate: number;
  /** Probability that a request (or its reply) is held back. */
  delay: number;
  /** Upper bound of one injected delay. */
  delayMsMax: number;
}

export const NO_FAULTS: FaultRates = { drop: 0, duplicate: 0, delay: 0, delayMsMax: 0 };

/** Deadline of every call: long enough for a loaded 2-core box, short enough that a dead center is noticed. */
export const CALL_TIMEOUT_MS = 5_000;

/** The reply arrived but the harness threw it away, as if lost on the wire. */
export class ReplyLost extends Error {
  constructor() {
    super("reply dropped by fault injection");
    this.name = "ReplyLost";
  }
}

/** Codes that mean "the request may or may not have run": retransmit. */
export const INDEFINITE: ReadonlySet<Code> = new Set([Code.Unavailable, Code.DeadlineExceeded, Code.Canceled, Code.Aborted, Code.Unknown, Code.Internal]);

/** A failure that says nothing about whether the request ran. */
export function isIndefinite(e: unknown): boolean {
  return e instanceof ReplyLost || INDEFINITE.has(ConnectError.from(e).code);
}

export interface FaultCounters {
  calls: number;
  dropped: number;
  duplicated: number;
  delayed: number;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export class Faults {
  rates: FaultRates;
  readonly counters: FaultCounters = { calls: 0, dropped: 0, duplicated: 0, delayed: 0 };

  constructor(rates: FaultRates) {
    this.rates = rates;
  }

  /**
   * Runs one RPC under the current fault rates. With duplication, both copies
   * are awaited and `same(a, b)` is asked whether two successful replies to
   * one request agree (they must: the center stores and replays its reply).
   */
  async call<T>(rng: Prng, fn: (opts: CallOptions) => Promise<T>, same?: (a: T, b: T) => void): Promise<T> {
    const r = this.rates;
    this.counters.calls++;
    const opts: CallOptions = { timeoutMs: CALL_TIMEOUT_MS };
    if (r.delay > 0 && rng.chance(r.delay)) {
      this.counters.delayed++;
      await sleep(rng.int(1, r.delayMsMax));
    }
    let result: T;
    if (r.duplicate > 0 && rng.chance(r.duplicate)) {
      this.counters.duplicated++;
      // A short stagger on the copy makes it meet the original at every
      // stage of the center's pipeline, not only in the same event-loop turn.
      const stagger = rng.int(0, 3);
      const [a, b] = await Promise.allSettled([fn(opts), sleep(stagger).then(() => fn(opts))]);
      if (a.status === "fulfilled" && b.status === "fulfilled" && same) same(a.value, b.value);
      const first = rng.chance(0.5) ? [a, b] : [b, a];
      const ok = first.find((x) => x.status === "fulfilled") as PromiseFulfilledResult<T> | undefined;
      if (!ok) {
        // Both failed. If one copy's fate is unknown (the center died under
        // it), the other's refusal may be the copy's own doing — a
        // single-use request (SY1's nonce) refused because its twin had
        // used it — so the attempt as a whole is a loss, not a refusal.
        // Found by the long run (SY1 BAD_HASH after a kill, 2026-11-30).
        const reasons = first.map((x) => (x as PromiseRejectedResult).reason);
        throw reasons.find(isIndefinite) ?? reasons[0];
      }
      result = ok.value;
    } else {
      result = await fn(opts);
    }
    if (r.delay > 0 && rng.chance(r.delay / 2)) {
      this.counters.delayed++;
      await sleep(rng.int(1, r.delayMsMax));
    }
    if (r.drop > 0 && rng.chance(r.drop)) {
      this.counters.dropped++;
      throw new ReplyLost();
    }
    return result;
  }
}
