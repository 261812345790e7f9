/**
 * Canonical byte encoding of every hashed Scripwire structure.
 *
 * This file is the reference for docs/canonical-encoding.md: a new
 * implementation in any language must produce exactly these bytes. The rules:
 *   - u8 / u32 / u64: unsigned, big-endian, fixed width (1 / 4 / 8 bytes).
 *   - i64: two's complement, big-endian, 8 bytes.
 *   - str: u32 byte length, then the UTF-8 bytes (no terminator, no BOM,
 *     no normalisation: the bytes the sender had).
 *   - bytes: u32 length, then the bytes.
 *   - a nested message: its fields inline, in field-number order; an absent
 *     message encodes exactly like one with every field at its default.
 *   - every hash input starts with str(domain tag), so a hash made for one
 *     use never verifies in another.
 * No field is ever skipped: "every field is covered" is what makes the MACs
 * bind the whole message.
 */
import { bytesToHex } from "@noble/hashes/utils.js";
import type {
  IdType,
  Offer,
  Receipt,
  ScripBodyType,
  ScripType,
  ServerType,
} from "../../gen/scripwire/v1/types_pb.js";

const U32_MAX = 0xffff_ffff;
const U64_MAX = (1n << 64n) - 1n;
const I64_MIN = -(1n << 63n);
const I64_MAX = (1n << 63n) - 1n;

const utf8 = new TextEncoder();

/** Append-only byte builder; grows by doubling so encoding a scrip allocates once or twice. */
export class CanonicalWriter {
  private buf: Uint8Array;
  private view: DataView;
  private len = 0;

  constructor(initialCapacity = 512) {
    this.buf = new Uint8Array(initialCapacity);
    this.view = new DataView(this.buf.buffer);
  }

  private ensure(extra: number): void {
    const need = this.len + extra;
    if (need <= this.buf.length) return;
    let cap = this.buf.length * 2;
    while (cap < need) cap *= 2;
    const next = new Uint8Array(cap);
    next.set(this.buf.subarray(0, this.len));
    this.buf = next;
    this.view = new DataView(next.buffer);
  }

  u8(v: number): this {
    if (!Number.isInteger(v) || v < 0 || v > 0xff) throw new RangeError(`u8 out of range: ${v}`);
    this.ensure(1);
    this.buf[this.len++] = v;
    return this;
  }

  u32(v: number): this {
    if (!Number.isInteger(v) || v < 0 || v > U32_MAX) throw new RangeError(`u32 out of range: ${v}`);
    this.ensure(4);
    this.view.setUint32(this.len, v, false);
    this.len += 4;
    return this;
  }

  u64(v: bigint): this {
    if (typeof v !== "bigint" || v < 0n || v > U64_MAX) throw new RangeError(`u64 out of range: ${v}`);
    this.ensure(8);
    this.view.setBigUint64(this.len, v, false);
    this.len += 8;
    return this;
  }

  i64(v: bigint): this {
    if (typeof v !== "bigint" || v < I64_MIN || v > I64_MAX) throw new RangeError(`i64 out of range: ${v}`);
    this.ensure(8);
    this.view.setBigInt64(this.len, v, false);
    this.len += 8;
    return this;
  }

  bytes(b: Uint8Array): this {
    this.u32(b.length);
    this.ensure(b.length);
    this.buf.set(b, this.len);
    this.len += b.length;
    return this;
  }

  str(s: string): this {
    // Worst case UTF-8 is 3 bytes per UTF-16 unit; encodeInto avoids a temporary array.
    this.ensure(4 + s.length * 3);
    const at = this.len;
    this.len += 4;
    const { written } = utf8.encodeInto(s, this.buf.subarray(this.len));
    this.view.setUint32(at, written, false);
    this.len += written;
    return this;
  }

  /** The encoded bytes (a copy-free view; do not keep it across further writes). */
  finish(): Uint8Array {
    return this.buf.subarray(0, this.len);
  }
}

/** Domain-separation tags, one per use. Changing one is a protocol version change. */
export const TAG = {
  certificate: "scripwire/v1/certificate",
  offer: "scripwire/v1/offer",
  receipt: "scripwire/v1/receipt",
  settlements: "scripwire/v1/settlements",
  customSecret: "scripwire/v1/custom-secret",
  sealSessionKey: "scripwire/v1/R1",
  encryptCustomSecret: "scripwire/v1/R2",
  /** Message hashes: "scripwire/v1/msg/" + the cmdType code, e.g. "scripwire/v1/msg/GM4_1". */
  messagePrefix: "scripwire/v1/msg/",
} as const;

export function writeServer(w: CanonicalWriter, s: ServerType | undefined): void {
  w.str(s?.dnsName ?? "");
  w.str(s?.ipAddr ?? "");
  w.str(s?.serverName ?? "");
  w.u32(s?.port ?? 0);
}

export function writeId(w: CanonicalWriter, id: IdType | undefined): void {
  w.u32(id?.secretId ?? 0);
  w.u64(id?.serialNumber ?? 0n);
}

export function writeScripBody(w: CanonicalWriter, b: ScripBodyType | undefined): void {
  w.str(b?.currency ?? "");
  w.i64(b?.value ?? 0n);
  writeServer(w, b?.vendorId);
  writeId(w, b?.scripId);
  writeId(w, b?.customId);
  w.str(b?.ad ?? "");
  w.i64(b?.expirationDateUnix ?? 0n);
}

export function writeScrip(w: CanonicalWriter, s: ScripType | undefined): void {
  w.u32(s?.hashAlgorithm ?? 0);
  writeScripBody(w, s?.scrip);
  w.bytes(s?.certificate ?? EMPTY);
}

/** Offer fields 1..13 (everything but the mac). */
export function writeOfferFields(w: CanonicalWriter, o: Offer | undefined): void {
  writeServer(w, o?.vendor);
  w.str(o?.vendorId ?? "");
  w.str(o?.tranId ?? "");
  w.u32(o?.kind ?? 0);
  w.i64(o?.amount ?? 0n);
  w.str(o?.currency ?? "");
  w.str(o?.item ?? "");
  w.str(o?.campaignId ?? "");
  w.u32(o?.deliveryMethod ?? 0);
  writeId(w, o?.customId);
  w.i64(o?.expiresAtUnix ?? 0n);
  w.u32(o?.vendorKeyId ?? 0);
  w.u32(o?.hashAlgorithm ?? 0);
}

/** Receipt fields 1..10 (everything but the mac). */
export function writeReceiptFields(w: CanonicalWriter, r: Receipt | undefined): void {
  w.str(r?.vendorId ?? "");
  w.str(r?.tranId ?? "");
  w.str(r?.requestUrl ?? "");
  w.i64(r?.price ?? 0n);
  w.str(r?.currency ?? "");
  w.u32(r?.deliveryMethod ?? 0);
  writeId(w, r?.customId);
  w.i64(r?.paidAtUnix ?? 0n);
  w.u32(r?.vendorKeyId ?? 0);
  w.u32(r?.hashAlgorithm ?? 0);
}

const EMPTY = new Uint8Array(0);

/** canonical("scripwire/v1/certificate", ScripBodyType): input of the scrip certificate. */
export function certificateInput(body: ScripBodyType | undefined): Uint8Array {
  const w = new CanonicalWriter(256);
  w.str(TAG.certificate);
  writeScripBody(w, body);
  return w.finish();
}

export function offerInput(o: Offer | undefined): Uint8Array {
  const w = new CanonicalWriter(384);
  w.str(TAG.offer);
  writeOfferFields(w, o);
  return w.finish();
}

export function receiptInput(r: Receipt | undefined): Uint8Array {
  const w = new CanonicalWriter(256);
  w.str(TAG.receipt);
  writeReceiptFields(w, r);
  return w.finish();
}

/**
 * What a protocol message hash covers. `code` is the cmdType code (GM4_1,
 * PM5_1, RD1, ...) and selects the domain tag; `contextId` is the TranID (or
 * the request id for renew/redeem); `order` is pOder where the patent has
 * one (S4/S5), otherwise absent. `amount` and `account` are used by
 * redemption and are 0 / "" elsewhere.
 */
export interface MessageHashInput {
  code: string;
  contextId: string;
  pCount: number;
  scrip: ScripType | undefined;
  order?: Offer | undefined;
  amount?: bigint;
  account?: string;
}

/**
 * canonical(tag, contextId, pCount, ScripType, [pOder], amount, account):
 * the bytes behind the patent's H[ScripType || Custom_Secret] and
 * H[ScripType || pOder || Custom_Secret]. The offer, when present, is
 * encoded with its mac so the hash binds the exact signed pOder.
 */
export function messageInput(m: MessageHashInput): Uint8Array {
  const w = new CanonicalWriter(768);
  w.str(TAG.messagePrefix + m.code);
  w.str(m.contextId);
  w.u32(m.pCount);
  writeScrip(w, m.scrip);
  if (m.order) {
    w.u8(1);
    writeOfferFields(w, m.order);
    w.bytes(m.order.mac);
  } else {
    w.u8(0);
  }
  w.i64(m.amount ?? 0n);
  w.str(m.account ?? "");
  return w.finish();
}

export function settlementsInput(vendorId: string, afterSequence: bigint, timestampUnixMs: bigint): Uint8Array {
  const w = new CanonicalWriter(96);
  w.str(TAG.settlements);
  w.str(vendorId);
  w.u64(afterSequence);
  w.i64(timestampUnixMs);
  return w.finish();
}

export function customSecretInput(secretId: number, serialNumber: bigint): Uint8Array {
  const w = new CanonicalWriter(64);
  w.str(TAG.customSecret);
  w.u32(secretId);
  w.u64(serialNumber);
  return w.finish();
}

/** Lower-case hex; platform-neutral (no Buffer), so the browser wallet bundles this file unchanged. */
export function toHex(b: Uint8Array): string {
  return bytesToHex(b);
}
