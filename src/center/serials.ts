/**
 * Random serial numbers for new scrips and customers: 63 random bits, never
 * 0, so they fit SQLite INTEGER and PostgreSQL BIGINT.
 *
 * Drawn from a pool of OS randomness refilled 512 serials at a time: one
 * `randomBytes(8)` per serial cost ~2-3 µs of the writer thread's time on
 * every M4/S4 (a syscall-backed fill for 8 bytes), a slice of the pool
 * ~0.1 µs. The bytes are the same CSPRNG output either way; each is used
 * once and the pool lives only in this process's memory.
 */
import { randomFillSync } from "node:crypto";
import { I64_MAX } from "../money.js";

const POOL_SERIALS = 512;
const pool = new DataView(new ArrayBuffer(POOL_SERIALS * 8));
let next = POOL_SERIALS;

export function randomSerial(): bigint {
  if (next === POOL_SERIALS) {
    randomFillSync(new Uint8Array(pool.buffer));
    next = 0;
  }
  const v = pool.getBigUint64(8 * next++) & I64_MAX;
  return v === 0n ? 1n : v;
}
