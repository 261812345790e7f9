/**
 * Recovery code: what a customer writes down at registration (after R2) so a
 * lost wallet can be rebuilt from the center with `wallet restore`.
 *
 * It carries the customer id (custom_id: secret_id, serial_number) and the
 * 32-byte Custom_Secret themselves. The secret cannot be shorter: it is what
 * the center derives (HMAC of its master key, docs/canonical-encoding.md §5.6)
 * and what every message hash is keyed with, so the code IS the customer's
 * credential, and must be kept like a password.
 *
 * Text form (docs/canonical-encoding.md §5.10):
 *
 *   "SW1-" then 75 symbols of Crockford base32 in groups of five:
 *     71 data symbols   payload = u32 secret_id ‖ u64 serial_number ‖ Custom_Secret (44 bytes,
 *                       352 bits, most significant bit first, 3 zero bits of padding)
 *      3 hash symbols   the first 15 bits of SHA-256(str("scripwire/v1/recovery-code") ‖ payload)
 *      1 check symbol   Luhn mod 32 over the 74 symbols before it
 *
 * The Luhn symbol catches every single mistyped symbol and most swaps of two
 * neighbours with certainty; the hash catches anything else with probability
 * 1 - 2^-15. Reading is forgiving where it cannot be wrong: case, spaces and
 * dashes are ignored, O reads as 0, I and L as 1.
 */
import { sha256 } from "@noble/hashes/sha2.js";
import { CanonicalWriter } from "./canonical.js";

export const RECOVERY_CODE_PREFIX = "SW1";
export const RECOVERY_TAG = "scripwire/v1/recovery-code";
const ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
const PAYLOAD_BYTES = 44;
const DATA_SYMBOLS = 71; // ceil(352 / 5)
const HASH_SYMBOLS = 3;
const SYMBOLS = DATA_SYMBOLS + HASH_SYMBOLS + 1;
const GROUP = 5;
const U64_MAX = (1n << 64n) - 1n;

export interface RecoveryContents {
  customId: { secretId: number; serialNumber: bigint };
  customSecret: Uint8Array;
}

/** A code that cannot be read; `reason` says whether it is malformed or mistyped. */
export class RecoveryCodeError extends Error {
  constructor(
    readonly reason: "BAD_RECOVERY_CODE" | "RECOVERY_CODE_MISTYPED",
    message: string,
  ) {
    super(message);
    this.name = "RecoveryCodeError";
  }
}

function payloadOf(c: RecoveryContents): Uint8Array {
  if (c.customSecret.length !== 32) throw new RangeError("Custom_Secret must be 32 bytes");
  if (c.customId.serialNumber < 0n || c.customId.serialNumber > U64_MAX) throw new RangeError("serial_number out of range");
  const w = new CanonicalWriter(PAYLOAD_BYTES);
  w.u32(c.customId.secretId);
  w.u64(c.customId.serialNumber);
  const head = w.finish();
  const out = new Uint8Array(PAYLOAD_BYTES);
  out.set(head, 0);
  out.set(c.customSecret, 12);
  return out;
}

/** Bits of `bytes`, most significant first, as 5-bit symbols (zero-padded at the end). */
function toSymbols(bytes: Uint8Array, count: number): number[] {
  const out: number[] = [];
  let acc = 0;
  let bits = 0;
  for (const b of bytes) {
    acc = (acc << 8) | b;
    bits += 8;
    while (bits >= 5) {
      bits -= 5;
      out.push((acc >> bits) & 31);
    }
    acc &= (1 << bits) - 1;
  }
  if (bits > 0) out.push((acc << (5 - bits)) & 31);
  return out.slice(0, count);
}

function fromSymbols(symbols: number[], byteCount: number): Uint8Array | undefined {
  const out = new Uint8Array(byteCount);
  let acc = 0;
  let bits = 0;
  let n = 0;
  for (const s of symbols) {
    acc = (acc << 5) | s;
    bits += 5;
    if (bits >= 8) {
      bits -= 8;
      if (n < byteCount) out[n++] = (acc >> bits) & 0xff;
      acc &= (1 << bits) - 1;
    }
  }
  // The padding bits must be zero: one text, one payload.
  if (n !== byteCount || acc !== 0) return undefined;
  return out;
}

function hashSymbols(payload: Uint8Array): number[] {
  const w = new CanonicalWriter(96);
  w.str(RECOVERY_TAG);
  w.bytes(payload);
  const d = sha256(w.finish());
  return toSymbols(d.subarray(0, 2), HASH_SYMBOLS); // 16 bits -> first 15 used
}

/** Luhn mod 32: the symbol that makes the weighted sum of all symbols 0 mod 32. */
export function luhn32(symbols: readonly number[]): number {
  let factor = 2;
  let sum = 0;
  for (let i = symbols.length - 1; i >= 0; i--) {
    let addend = factor * symbols[i]!;
    factor = factor === 2 ? 1 : 2;
    addend = Math.floor(addend / 32) + (addend % 32);
    sum += addend;
  }
  return (32 - (sum % 32)) % 32;
}

/** The recovery code for a customer id and Custom_Secret. */
export function encodeRecoveryCode(c: RecoveryContents): string {
  const payload = payloadOf(c);
  const symbols = [...toSymbols(payload, DATA_SYMBOLS), ...hashSymbols(payload)];
  symbols.push(luhn32(symbols));
  const text = symbols.map((s) => ALPHABET[s]).join("");
  const groups: string[] = [];
  for (let i = 0; i < text.length; i += GROUP) groups.push(text.slice(i, i + GROUP));
  return `${RECOVERY_CODE_PREFIX}-${groups.join("-")}`;
}

function symbolOf(ch: string): number {
  const c = ch === "O" ? "0" : ch === "I" || ch === "L" ? "1" : ch;
  return ALPHABET.indexOf(c);
}

/**
 * Reads a recovery code back.
 * @throws {RecoveryCodeError} BAD_RECOVERY_CODE (not a code: wrong prefix,
 *   length or characters), RECOVERY_CODE_MISTYPED (the checksum does not match).
 */
export function decodeRecoveryCode(text: string): RecoveryContents {
  const compact = text.toUpperCase().replace(/[\s-]/g, "");
  if (!compact.startsWith(RECOVERY_CODE_PREFIX)) {
    throw new RecoveryCodeError("BAD_RECOVERY_CODE", `a recovery code starts with ${RECOVERY_CODE_PREFIX}-`);
  }
  const body = compact.slice(RECOVERY_CODE_PREFIX.length);
  if (body.length !== SYMBOLS) {
    throw new RecoveryCodeError("BAD_RECOVERY_CODE", `a recovery code has ${SYMBOLS} characters after ${RECOVERY_CODE_PREFIX}- (15 groups of 5); this one has ${body.length}`);
  }
  const symbols: number[] = [];
  for (let i = 0; i < body.length; i++) {
    const s = symbolOf(body[i]!);
    if (s < 0) throw new RecoveryCodeError("BAD_RECOVERY_CODE", `character ${JSON.stringify(body[i])} in group ${Math.floor(i / GROUP) + 1} is not used in recovery codes`);
    symbols.push(s);
  }
  const mistyped = () => new RecoveryCodeError("RECOVERY_CODE_MISTYPED", "the recovery code's checksum does not match: a character is mistyped; compare it with what you wrote down");
  if (luhn32(symbols.slice(0, SYMBOLS - 1)) !== symbols[SYMBOLS - 1]) throw mistyped();
  const payload = fromSymbols(symbols.slice(0, DATA_SYMBOLS), PAYLOAD_BYTES);
  if (!payload) throw mistyped();
  const want = hashSymbols(payload);
  for (let i = 0; i < HASH_SYMBOLS; i++) if (symbols[DATA_SYMBOLS + i] !== want[i]) throw mistyped();
  const view = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
  return {
    customId: { secretId: view.getUint32(0, false), serialNumber: view.getBigUint64(4, false) },
    customSecret: payload.slice(12, 44),
  };
}
