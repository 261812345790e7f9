/**
 * When a cache miss may go to the database. A center replica holds keys and
 * vendor records in memory; another replica may have rotated or created one
 * since, so a miss must be able to reload. But the ids on a request are the
 * caller's choice, and a caller inventing ids must not turn every request into
 * a database read. So a miss reloads only
 *   - if the last reload for the same cache key (a vendor id, a key family)
 *     that still did not find what was asked is at least RELOAD_PER_KEY_MS
 *     old (a found id costs nothing; an unknown one one read a second), and
 *   - at most RELOADS_PER_SECOND across all keys (a token bucket), so spraying
 *     distinct unknown vendor ids costs the database a bounded rate.
 * A miss that is not allowed to reload answers "unknown" (the same as a real
 * unknown id), and the next request after the interval reloads.
 */
export const RELOAD_PER_KEY_MS = 1_000;
export const RELOADS_PER_SECOND = 20;

export class ReloadGate {
  private last = new Map<string, number>();
  private tokens = RELOADS_PER_SECOND;
  private refilledAt: number;
  /** Misses that were answered without a reload (for metrics and tests). */
  denied = 0;

  constructor(private readonly clock: () => number = Date.now) {
    this.refilledAt = clock();
  }

  /** True if a miss on `key` may reload now (spends one from the overall budget). */
  allow(key: string): boolean {
    const now = this.clock();
    const prev = this.last.get(key);
    if (prev !== undefined && now - prev < RELOAD_PER_KEY_MS) {
      this.denied++;
      return false;
    }
    this.tokens = Math.min(RELOADS_PER_SECOND, this.tokens + ((now - this.refilledAt) * RELOADS_PER_SECOND) / 1000);
    this.refilledAt = now;
    if (this.tokens < 1) {
      this.denied++;
      return false;
    }
    this.tokens -= 1;
    return true;
  }

  /** A reload for `key` did not find what was asked: the next misses on it wait RELOAD_PER_KEY_MS. */
  missed(key: string): void {
    const now = this.clock();
    // Bounded memory: entries older than the interval carry no information.
    if (this.last.size >= 10_000) for (const [k, t] of this.last) if (now - t >= RELOAD_PER_KEY_MS) this.last.delete(k);
    this.last.set(key, now);
  }
}
