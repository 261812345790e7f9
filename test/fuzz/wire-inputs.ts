/**
 * Wire-level inputs: what a broken or hostile peer can put on an HTTP/2
 * stream to an RPC path. Payloads are random bytes, byte-mutated valid
 * requests, hand-made protobuf garbage (illegal wire types, endless varints,
 * lengths past the end, deep group nesting, field number 0) and, rarely,
 * messages above the server's 1 MiB limit; framings are Connect unary or
 * streaming, gRPC and gRPC-Web, with honest or lying length prefixes.
 */
import { DEFAULT_MAX_MESSAGE_BYTES } from "../../src/server/stack.js";
import type { DescMethod } from "@bufbuild/protobuf";
import type { Prng } from "../torture/prng.js";
import { envelope, type Framing } from "./wire.js";

/** The stack's readMaxBytes (src/server/stack.ts DEFAULT_MAX_MESSAGE_BYTES). */
export const MAX_MESSAGE_BYTES = DEFAULT_MAX_MESSAGE_BYTES;

export interface WireInput {
  path: string;
  framing: Framing;
  body: Uint8Array;
  headers: Record<string, string>;
  kind: string;
  /** The only acceptable answer, when the input pins it down. */
  expect?: string;
}

function varint(n: number): number[] {
  const out: number[] = [];
  while (n > 0x7f) {
    out.push((n & 0x7f) | 0x80);
    n = Math.floor(n / 128);
  }
  out.push(n);
  return out;
}

/** Protobuf that no parser should accept, or that tests a parser's limits. */
function protoGarbage(rng: Prng): { bytes: Uint8Array; kind: string } {
  switch (rng.int(0, 8)) {
    case 0:
      return { bytes: new Uint8Array([(rng.int(1, 15) << 3) | rng.pick([6, 7]), 1, 2, 3]), kind: "illegal-wire-type" };
    case 1:
      return { bytes: new Uint8Array([0x08, ...Array(rng.int(10, 20)).fill(0xff), 0x01]), kind: "endless-varint" };
    case 2:
      return { bytes: new Uint8Array([0x12, ...varint(rng.int(50, 1_000_000)), 1, 2, 3]), kind: "length-past-end" };
    case 3: {
      const depth = rng.int(100, 20_000);
      return { bytes: new Uint8Array(depth).fill(0x0b), kind: `open-groups-${depth}` };
    }
    case 4: {
      // Nested length-delimited field 2 (header / scrip), deeper than any schema.
      let b = new Uint8Array(0);
      const depth = rng.int(50, 3000);
      for (let i = 0; i < depth; i++) b = new Uint8Array([0x12, ...varint(b.length), ...b]);
      return { bytes: b, kind: `nested-${depth}` };
    }
    case 5:
      return { bytes: new Uint8Array([0x00, 0x01]), kind: "field-zero" };
    case 6:
      return { bytes: new Uint8Array([...varint(((2 ** 29 - 1) * 8) | 0), 0x01, 0x0c]), kind: "max-field-number+end-group" };
    case 7:
      return { bytes: new Uint8Array([0x0c]), kind: "stray-end-group" };
    default: {
      // A string field with invalid UTF-8.
      const junk = [0xc3, 0x28, 0xff, 0xfe, 0xed, 0xa0, 0x80];
      return { bytes: new Uint8Array([0x12, 0x04, 0x12, 0x02, ...junk.slice(0, 2)]), kind: "invalid-utf8" };
    }
  }
}

function byteMutate(rng: Prng, base: Uint8Array): { bytes: Uint8Array; kind: string } {
  const b = Array.from(base);
  const n = rng.int(1, 4);
  const ops: string[] = [];
  for (let i = 0; i < n; i++) {
    const op = rng.int(0, 4);
    if (op === 0 && b.length) {
      const bit = rng.int(0, b.length * 8 - 1);
      b[bit >> 3]! ^= 1 << (bit & 7);
      ops.push("flip");
    } else if (op === 1 && b.length) {
      b.length = rng.int(0, b.length - 1);
      ops.push("truncate");
    } else if (op === 2) {
      b.splice(rng.int(0, b.length), 0, ...rng.bytes(rng.int(1, 8)));
      ops.push("insert");
    } else if (op === 3 && b.length > 2) {
      const s = rng.int(0, b.length - 2);
      const e = rng.int(s + 1, b.length);
      b.splice(rng.int(0, b.length), 0, ...b.slice(s, e));
      ops.push("dup-chunk");
    } else {
      if (b.length) b[rng.int(0, b.length - 1)] = rng.int(0, 255);
      ops.push("byte");
    }
  }
  return { bytes: new Uint8Array(b), kind: `mutated(${ops.join(",")})` };
}

function payload(rng: Prng, bases: Uint8Array[]): { bytes: Uint8Array; kind: string } {
  const r = rng.float();
  if (r < 0.35 && bases.length) return byteMutate(rng, rng.pick(bases));
  if (r < 0.4 && bases.length) return { bytes: rng.pick(bases), kind: "valid" };
  if (r < 0.65) return protoGarbage(rng);
  if (r < 0.7) return { bytes: new Uint8Array(0), kind: "empty" };
  return { bytes: rng.bytes(rng.chance(0.9) ? rng.int(1, 300) : rng.int(300, 60_000)), kind: "random" };
}

/** One wire input for `method` at `path`. */
export function wireInput(rng: Prng, method: DescMethod, path: string, bases: Uint8Array[]): WireInput {
  const streaming = method.methodKind !== "unary";
  const oversize = rng.chance(0.004);
  const p = oversize ? { bytes: new Uint8Array(MAX_MESSAGE_BYTES + rng.int(1, 4096)), kind: "oversize" } : payload(rng, bases);
  const framings: Framing[] = streaming ? ["connect-stream", "grpc", "grpc-web"] : ["connect", "grpc", "grpc-web", "connect", "grpc"];
  const framing = rng.pick(framings);
  const headers: Record<string, string> = {};
  if (framing === "connect") {
    if (!oversize && rng.chance(0.05)) {
      headers["content-type"] = rng.pick(["application/json", "text/plain", "application/x-protobuf"]);
      return { path, framing, body: p.bytes, headers, kind: `${p.kind}/content-type=${headers["content-type"]}` };
    }
    if (!oversize && rng.chance(0.04)) {
      headers["content-encoding"] = rng.pick(["gzip", "br", "identity", "zstd"]);
      return { path, framing, body: p.bytes, headers, kind: `${p.kind}/encoding=${headers["content-encoding"]}` };
    }
    return { path, framing, body: p.bytes, headers, kind: p.kind, expect: oversize ? "resource_exhausted" : undefined };
  }
  if (oversize) return { path, framing, body: envelope(p.bytes), headers, kind: "oversize", expect: "resource_exhausted" };
  // Enveloped framings: the length prefix may lie.
  const len = p.bytes.length;
  switch (rng.int(0, 11)) {
    case 0:
      return { path, framing, body: envelope(p.bytes, { length: len + rng.int(1, 100) }), headers, kind: `${p.kind}/prefix-too-long` };
    case 1:
      return { path, framing, body: envelope(p.bytes, { length: Math.max(0, len - rng.int(1, 10)) }), headers, kind: `${p.kind}/prefix-too-short` };
    case 2:
      return { path, framing, body: envelope(p.bytes, { length: rng.pick([MAX_MESSAGE_BYTES + 1, 0x7fffffff, 0xffffffff]) }), headers, kind: `${p.kind}/prefix-huge`, expect: "resource_exhausted" };
    case 3:
      return { path, framing, body: envelope(p.bytes, { flags: rng.pick([0x02, 0x04, 0x80, 0xff]) }), headers, kind: `${p.kind}/odd-flags` };
    case 4:
      return { path, framing, body: envelope(p.bytes).slice(0, rng.int(0, 4)), headers, kind: "partial-prefix" };
    case 5: {
      const a = envelope(p.bytes);
      const b = envelope(rng.bytes(rng.int(0, 20)));
      const both = new Uint8Array(a.length + b.length);
      both.set(a);
      both.set(b, a.length);
      return { path, framing, body: both, headers, kind: `${p.kind}/two-envelopes` };
    }
    case 6: {
      const enc = rng.pick(["gzip", "snappy", "identity", ""]);
      if (enc) headers["grpc-encoding"] = enc;
      return { path, framing, body: envelope(p.bytes, { flags: 1 }), headers, kind: `${p.kind}/compressed=${enc || "(no grpc-encoding)"}` };
    }
    default:
      return { path, framing, body: envelope(p.bytes), headers, kind: p.kind };
  }
}
