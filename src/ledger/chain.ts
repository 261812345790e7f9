/**
 * The ledger's tamper-evident journal: pure definitions (no I/O).
 *
 * Every value-moving row the ledger writes (an account opened, a transfer, a
 * scrip issued, a scrip spent, a settlement, a payout, a campaign's counters)
 * leaves an EVENT: a "fact" string captured by a database trigger in the same
 * transaction as the row itself (schema in chain-schema.ts). A single sealer
 * later integrates committed events into a hash chain in seal order, and signs
 * the chain head now and then (a CHECKPOINT). Byte layouts are normative and
 * specified in docs/canonical-encoding.md §10, with vectors in
 * testdata/chain-vectors.json.
 *
 *   link(n) = SHA-256( "scripwire/chain/v1" 0x00 || link(n-1) || u64(n) || u64(event_id) || fact )
 *   link(0) = 32 zero bytes
 *
 * A checkpoint signs (size n, link(n), time, key generation) with Ed25519; a
 * key separate from every scrip key, rotated by generation.
 */
import { ed25519 } from "@noble/curves/ed25519.js";
import { sha256Of } from "../crypto/hash.js";

export const CHAIN_TAG = "scripwire/chain/v1";
export const CHECKPOINT_TAG = "scripwire/checkpoint/v1";
export const ZERO_LINK = new Uint8Array(32);

const enc = new TextEncoder();
const dec = new TextDecoder("utf-8", { fatal: true });

function u64(v: bigint): Uint8Array {
  if (v < 0n || v >= 1n << 64n) throw new RangeError(`u64 out of range: ${v}`);
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, v);
  return b;
}

function u32(v: number): Uint8Array {
  if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) throw new RangeError(`u32 out of range: ${v}`);
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, v);
  return b;
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** The bytes hashed for chain position `n` (n >= 1). */
export function linkInput(prev: Uint8Array, n: bigint, eventId: bigint, fact: Uint8Array): Uint8Array {
  if (prev.length !== 32) throw new RangeError("previous link must be 32 bytes");
  return concat([enc.encode(CHAIN_TAG), new Uint8Array([0]), prev, u64(n), u64(eventId), fact]);
}

export function link(prev: Uint8Array, n: bigint, eventId: bigint, fact: Uint8Array): Uint8Array {
  return sha256Of(linkInput(prev, n, eventId, fact));
}

// ---------------------------------------------------------------- facts

/**
 * A fact is a list of text fields, each written as its UTF-8 byte length in
 * ASCII decimal, ':' and the bytes (a netstring without the trailing comma):
 * built by the triggers in SQL, so the format is one both SQLite and
 * PostgreSQL can produce with `||`, CAST and a byte-length function.
 */
export function encodeFact(fields: string[]): Uint8Array {
  return enc.encode(fields.map((f) => `${enc.encode(f).length}:${f}`).join(""));
}

/** Parses a fact; throws on anything not produced by encodeFact. */
export function decodeFact(bytes: Uint8Array): string[] {
  const out: string[] = [];
  let i = 0;
  while (i < bytes.length) {
    let j = i;
    while (j < bytes.length && bytes[j]! >= 0x30 && bytes[j]! <= 0x39 && j - i < 10) j++;
    if (j === i || bytes[j] !== 0x3a) throw new Error(`malformed fact at byte ${i}`);
    const len = Number(dec.decode(bytes.subarray(i, j)));
    if (j - i > 1 && bytes[i] === 0x30) throw new Error(`malformed fact length at byte ${i}`);
    const start = j + 1;
    if (start + len > bytes.length) throw new Error(`fact field overruns at byte ${i}`);
    out.push(dec.decode(bytes.subarray(start, start + len)));
    i = start + len;
  }
  return out;
}

/** Fact types and their fields after the type (the order the triggers write them). */
export const FACT_FIELDS = {
  account: ["account_id", "kind", "currency"],
  transfer: ["transfer_id", "kind", "ref", "debit_account", "credit_account", "amount", "currency", "created_at"],
  scrip: ["serial", "customer_serial", "currency", "value", "expires_at", "created_at"],
  spend: ["serial", "spent_at"],
  settlement: ["sequence", "kind", "vendor_id", "tran_id", "amount", "currency", "item", "settled_at"],
  payout: ["payout_id", "customer_serial", "amount", "currency", "account", "created_at"],
  campaign: ["campaign_id", "vendor_id", "currency", "cap", "funded", "issued"],
  refund: ["refund_id", "vendor_id", "tran_id", "request_id", "customer_serial", "amount", "paid", "currency", "reason", "created_at", "settlement_sequence", "folded_serial", "folded_at"],
} as const;

export type FactType = keyof typeof FACT_FIELDS;
export type Fact = { type: FactType; f: Record<string, string> };

export function parseFact(bytes: Uint8Array): Fact {
  const fields = decodeFact(bytes);
  const type = fields[0] as FactType;
  const names = FACT_FIELDS[type];
  if (!names) throw new Error(`unknown fact type ${JSON.stringify(fields[0])}`);
  if (fields.length !== names.length + 1) throw new Error(`${type} fact has ${fields.length - 1} fields, expected ${names.length}`);
  const f: Record<string, string> = {};
  names.forEach((n, i) => (f[n] = fields[i + 1]!));
  return { type, f };
}

// ---------------------------------------------------------------- checkpoints

export interface Checkpoint {
  /** Number of sealed events the head covers. */
  size: bigint;
  /** link(size): 32 bytes. */
  head: Uint8Array;
  /** When it was signed, Unix milliseconds. */
  timestampMs: bigint;
  /** Generation of the checkpoint signing key. */
  keyId: number;
  /** Ed25519 public key of that generation (32 bytes), so a holder can verify without asking. */
  publicKey: Uint8Array;
  /** Ed25519 signature (64 bytes) over checkpointInput(). */
  signature: Uint8Array;
}

/** The bytes an Ed25519 checkpoint signature covers. */
export function checkpointInput(c: { size: bigint; head: Uint8Array; timestampMs: bigint; keyId: number }): Uint8Array {
  if (c.head.length !== 32) throw new RangeError("checkpoint head must be 32 bytes");
  return concat([enc.encode(CHECKPOINT_TAG), new Uint8Array([0]), u64(c.size), c.head, u64(c.timestampMs), u32(c.keyId)]);
}

export function checkpointPublicKey(secretKey: Uint8Array): Uint8Array {
  return ed25519.getPublicKey(secretKey);
}

export function signCheckpoint(c: { size: bigint; head: Uint8Array; timestampMs: bigint; keyId: number }, secretKey: Uint8Array): Checkpoint {
  return { ...c, publicKey: ed25519.getPublicKey(secretKey), signature: ed25519.sign(checkpointInput(c), secretKey) };
}

/** True when the signature verifies under the checkpoint's own public key (trusting that key is the caller's business). */
export function checkpointSignatureValid(c: Checkpoint): boolean {
  try {
    return c.signature.length === 64 && c.publicKey.length === 32 && ed25519.verify(c.signature, checkpointInput(c), c.publicKey);
  } catch {
    return false;
  }
}

/** The JSON form a seller or auditor saves (`scripwire audit --checkpoint file.json`). */
export interface CheckpointJson {
  size: string;
  head: string;
  timestampMs: string;
  keyId: number;
  publicKey: string;
  signature: string;
}

const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");
function unhex(s: unknown, len: number, what: string): Uint8Array {
  if (typeof s !== "string" || !/^[0-9a-f]*$/i.test(s) || s.length !== len * 2) throw new Error(`checkpoint ${what} must be ${len} bytes of hex`);
  return new Uint8Array(Buffer.from(s, "hex"));
}

export function checkpointToJson(c: Checkpoint): CheckpointJson {
  return { size: c.size.toString(), head: hex(c.head), timestampMs: c.timestampMs.toString(), keyId: c.keyId, publicKey: hex(c.publicKey), signature: hex(c.signature) };
}

export function checkpointFromJson(j: unknown): Checkpoint {
  const o = j as Record<string, unknown>;
  if (!o || typeof o !== "object") throw new Error("checkpoint must be a JSON object");
  const int = (v: unknown, what: string) => {
    if (typeof v !== "string" || !/^[0-9]{1,20}$/.test(v)) throw new Error(`checkpoint ${what} must be a decimal string`);
    return BigInt(v);
  };
  if (typeof o.keyId !== "number" || !Number.isInteger(o.keyId) || o.keyId < 0) throw new Error("checkpoint keyId must be a non-negative integer");
  return {
    size: int(o.size, "size"),
    head: unhex(o.head, 32, "head"),
    timestampMs: int(o.timestampMs, "timestampMs"),
    keyId: o.keyId,
    publicKey: unhex(o.publicKey, 32, "publicKey"),
    signature: unhex(o.signature, 64, "signature"),
  };
}

/**
 * Consistency between two checkpoints of one chain: the newer extends the
 * older iff recomputing the links from the older head over the events in
 * (old.size, new.size] gives the newer head. `facts` are those events in
 * chain order (event id and fact bytes), as a seller or auditor can fetch
 * them; a hash chain's proof is linear in the distance, which is fine for a
 * party that checks every checkpoint it receives.
 */
export function chainExtends(older: Pick<Checkpoint, "size" | "head">, newer: Pick<Checkpoint, "size" | "head">, events: { eventId: bigint; fact: Uint8Array }[]): boolean {
  if (newer.size < older.size) return false;
  if (BigInt(events.length) !== newer.size - older.size) return false;
  let h = older.head;
  let n = older.size;
  for (const e of events) h = link(h, ++n, e.eventId, e.fact);
  return Buffer.compare(Buffer.from(h), Buffer.from(newer.head)) === 0;
}
