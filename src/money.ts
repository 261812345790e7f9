/**
 * Money is an int64 count of the currency's smallest unit, held as bigint.
 * Every sum is checked: a value that would leave int64 or go negative is an
 * error, never a wrap-around.
 */
export const I64_MAX = (1n << 63n) - 1n;

export class MoneyError extends RangeError {
  constructor(message: string) {
    super(message);
    this.name = "MoneyError";
  }
}

export function checkedAdd(a: bigint, b: bigint): bigint {
  const r = a + b;
  if (r > I64_MAX || r < 0n) throw new MoneyError(`${a} + ${b} leaves the range 0..${I64_MAX}`);
  return r;
}

export function checkedSub(a: bigint, b: bigint): bigint {
  const r = a - b;
  if (r < 0n || r > I64_MAX) throw new MoneyError(`${a} - ${b} leaves the range 0..${I64_MAX}`);
  return r;
}

/** A positive amount, as offers, prices and fundings must be. */
export function isPositiveAmount(v: bigint): boolean {
  return v > 0n && v <= I64_MAX;
}
