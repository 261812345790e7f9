/**
 * A small seeded PRNG (sfc32, seeded through splitmix32) so every random
 * decision of the torture harness and the fuzz suite comes from one printed
 * seed. Not cryptographic; it only has to be fast, well mixed and replayable.
 */

/** splitmix32: turns any 32-bit seed (and a label) into well-mixed state words. */
function splitmix32(a: number): () => number {
  return () => {
    a = (a + 0x9e3779b9) | 0;
    let z = a;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    return (z ^ (z >>> 16)) >>> 0;
  };
}

function hashLabel(label: string | number): number {
  const s = String(label);
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

/** A child seed for one actor (wallet 7, "chaos", ...) so actors draw independently of each other's pace. */
export function deriveSeed(seed: number, label: string | number): number {
  const g = splitmix32((seed ^ hashLabel(label)) >>> 0);
  g();
  return g();
}

export class Prng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  constructor(readonly seed: number) {
    const g = splitmix32(seed >>> 0);
    this.a = g();
    this.b = g();
    this.c = g();
    this.d = g();
    for (let i = 0; i < 12; i++) this.u32();
  }

  /** Uniform 32-bit unsigned integer. */
  u32(): number {
    const t = (((this.a + this.b) | 0) + this.d) | 0;
    this.d = (this.d + 1) | 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) | 0;
    this.c = (this.c << 21) | (this.c >>> 11);
    this.c = (this.c + t) | 0;
    return t >>> 0;
  }

  /** Uniform in [0, 1). */
  float(): number {
    return this.u32() / 4294967296;
  }

  /** Uniform integer in [lo, hi] (inclusive). */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.float() * (hi - lo + 1));
  }

  chance(p: number): boolean {
    return this.float() < p;
  }

  pick<T>(xs: readonly T[]): T {
    if (xs.length === 0) throw new RangeError("pick from an empty list");
    return xs[this.int(0, xs.length - 1)]!;
  }

  /** Picks a key of `weights` with probability proportional to its weight. */
  weighted<K extends string>(weights: Record<K, number>): K {
    const entries = Object.entries(weights) as [K, number][];
    const total = entries.reduce((s, [, w]) => s + w, 0);
    let r = this.float() * total;
    for (const [k, w] of entries) {
      if ((r -= w) < 0) return k;
    }
    return entries[entries.length - 1]![0];
  }

  bytes(n: number): Uint8Array {
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) out[i] = this.u32() & 0xff;
    return out;
  }

  /** A fresh hex id, e.g. for TranIDs and request ids, drawn from the seed. */
  hex(bytes: number): string {
    return Buffer.from(this.bytes(bytes)).toString("hex");
  }
}

/** A 32-bit seed from the environment's entropy, for runs that were not given one. */
export function freshSeed(): number {
  return (Math.floor(Math.random() * 0x1_0000_0000) ^ Date.now()) >>> 0;
}
