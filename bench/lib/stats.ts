/**
 * Timing and statistics helpers shared by every bench section.
 *
 * Micro-benchmarks take the MEDIAN of several timed samples (each long enough
 * to swamp timer resolution), so one GC pause or a noisy neighbour moves the
 * result by one sample, not by its whole cost.
 */

export interface MicroResult {
  /** Median time per operation across samples, microseconds. */
  us: number;
  /** Fastest sample, microseconds per operation (the least-disturbed run). */
  usMin: number;
  /** Operations per timed sample (calibrated). */
  opsPerSample: number;
  samples: number;
}

export interface MicroOptions {
  /** Target wall time of one sample, milliseconds. */
  sampleMs: number;
  /** Number of timed samples; the median is reported. */
  samples: number;
}

let sink: unknown;
/** Keeps results alive so the JIT cannot drop the work being measured. */
export function consume(v: unknown): void {
  sink = v;
}
/** The last value kept alive by consume(). */
export function lastConsumed(): unknown {
  return sink;
}

function nowNs(): bigint {
  return process.hrtime.bigint();
}

/**
 * Times several functions with their samples INTERLEAVED (a, b, c, a, b, c,
 * ...), after a warm-up of each, so JIT tier-up, frequency scaling and
 * neighbours' load hit every function alike. Comparing functions measured
 * one after the other gave differences of 2x that were only warm-up.
 */
export function microGroup(fns: Array<() => unknown>, opts: MicroOptions & { warmupMs?: number }): MicroResult[] {
  const sizes = fns.map((fn) => {
    // Warm-up (tier-up) and calibration.
    const warmEnd = Number(nowNs()) / 1e6 + (opts.warmupMs ?? opts.sampleMs * 4);
    let n = 1;
    for (;;) {
      const t0 = nowNs();
      for (let i = 0; i < n; i++) consume(fn());
      const ms = Number(nowNs() - t0) / 1e6;
      if ((ms >= opts.sampleMs / 4 && Number(nowNs()) / 1e6 >= warmEnd) || n >= 1 << 24) {
        return Math.max(1, Math.round((n * opts.sampleMs) / Math.max(ms, 0.001)));
      }
      if (ms < opts.sampleMs / 4) n *= 2;
    }
  });
  const per: number[][] = fns.map(() => []);
  for (let s = 0; s < opts.samples; s++) {
    fns.forEach((fn, k) => {
      const n = sizes[k]!;
      const t0 = nowNs();
      for (let i = 0; i < n; i++) consume(fn());
      per[k]!.push(Number(nowNs() - t0) / 1e3 / n);
    });
  }
  return per.map((p, k) => {
    p.sort((a, b) => a - b);
    return { us: median(p), usMin: p[0]!, opsPerSample: sizes[k]!, samples: opts.samples };
  });
}

export function median(sorted: number[]): number {
  if (sorted.length === 0) return NaN;
  const m = sorted.length >> 1;
  return sorted.length % 2 ? sorted[m]! : (sorted[m - 1]! + sorted[m]!) / 2;
}

/** Growable latency log (microseconds). Percentiles sort a copy once. */
export class LatencyLog {
  private buf = new Float64Array(1 << 14);
  private n = 0;

  add(us: number): void {
    if (this.n === this.buf.length) {
      const next = new Float64Array(this.buf.length * 2);
      next.set(this.buf);
      this.buf = next;
    }
    this.buf[this.n++] = us;
  }

  get count(): number {
    return this.n;
  }

  summary(): LatencySummary {
    const s = this.buf.slice(0, this.n).sort();
    const pick = (q: number) => (this.n === 0 ? NaN : s[Math.min(this.n - 1, Math.floor(q * this.n))]!);
    let sum = 0;
    for (let i = 0; i < this.n; i++) sum += s[i]!;
    return { count: this.n, p50Us: pick(0.5), p90Us: pick(0.9), p99Us: pick(0.99), maxUs: this.n ? s[this.n - 1]! : NaN, meanUs: this.n ? sum / this.n : NaN };
  }
}

export interface LatencySummary {
  count: number;
  p50Us: number;
  p90Us: number;
  p99Us: number;
  maxUs: number;
  meanUs: number;
}

/** Rounds to a few significant digits for tables and JSON. */
export function sig(v: number, digits = 3): number {
  if (!Number.isFinite(v) || v === 0) return v;
  const p = Math.pow(10, digits - 1 - Math.floor(Math.log10(Math.abs(v))));
  return Math.round(v * p) / p;
}

export function fmtUs(us: number): string {
  if (!Number.isFinite(us)) return "n/a";
  if (us >= 10_000) return `${sig(us / 1000, 3)} ms`;
  if (us >= 100) return `${Math.round(us)} µs`;
  return `${sig(us, 3)} µs`;
}

export function fmtRate(r: number): string {
  if (!Number.isFinite(r)) return "n/a";
  return r >= 100 ? `${Math.round(r).toLocaleString("en-US")}/s` : `${sig(r, 3)}/s`;
}

export function fmtRatio(r: number): string {
  if (!Number.isFinite(r)) return "n/a";
  return r >= 10 ? `${Math.round(r)}×` : `${sig(r, 2)}×`;
}

export function fmtBytes(b: number): string {
  if (b >= 1 << 20) return `${sig(b / (1 << 20), 3)} MiB`;
  if (b >= 1 << 10) return `${sig(b / (1 << 10), 3)} KiB`;
  return `${b} B`;
}
