/**
 * Structured mutation of protobuf messages through reflection: pick a field
 * anywhere in the message tree and change it the way an attacker or a broken
 * client would — flip a bit of a certificate, hash or MAC, truncate or extend
 * bytes, put boundary integers into values, amounts, serials and pCount,
 * random or hostile strings into ids, unknown numbers into enums, and drop
 * sub-messages. Every value stays inside its field's type range, so the
 * message still serializes: the server, not the client library, must refuse.
 */
import { create, ScalarType, type DescField, type DescMessage } from "@bufbuild/protobuf";
import type { Prng } from "../torture/prng.js";

const I32_MIN = -(2 ** 31);
const I32_MAX = 2 ** 31 - 1;
const U32_MAX = 2 ** 32 - 1;
const I64_MIN = -(1n << 63n);
const I64_MAX = (1n << 63n) - 1n;
const U64_MAX = (1n << 64n) - 1n;

export interface Site {
  /** Dotted path from the root, e.g. "scrip.scrip.value" or "order.mac". */
  path: string;
  holder: Record<string, unknown>;
  field: DescField;
}

export interface Mutation {
  path: string;
  op: string;
}

/** Every field of `msg` (set or not), depth first; lists of messages contribute their elements. */
export function sites(schema: DescMessage, msg: Record<string, unknown>, prefix = "", out: Site[] = [], depth = 0): Site[] {
  if (depth > 8) return out;
  for (const f of schema.fields) {
    const path = prefix + f.localName;
    out.push({ path, holder: msg, field: f });
    const v = msg[f.localName];
    if (f.fieldKind === "message" && v !== undefined && v !== null) {
      sites(f.message, v as Record<string, unknown>, `${path}.`, out, depth + 1);
    } else if (f.fieldKind === "list" && f.listKind === "message" && Array.isArray(v)) {
      v.forEach((el, i) => sites(f.message, el as Record<string, unknown>, `${path}.${i}.`, out, depth + 1));
    }
  }
  return out;
}

const HOSTILE_STRINGS = [
  "",
  " ",
  "\u0000",
  "a".repeat(129),
  "x".repeat(5000),
  "../../etc/passwd",
  "t_' OR 1=1 --",
  "%s%s%n",
  "\ud800",
  "😀",
  "KRW\u0000",
  "USD",
  "krw",
  "GM4_1",
  "<script>",
  "null",
];

function randomString(rng: Prng): string {
  const n = rng.int(0, 40);
  let s = "";
  for (let i = 0; i < n; i++) s += String.fromCharCode(rng.chance(0.8) ? rng.int(0x20, 0x7e) : rng.int(0, 0xffff));
  return s;
}

function bytesOp(rng: Prng, cur: Uint8Array): { v: Uint8Array; op: string } {
  switch (rng.int(0, 7)) {
    case 0:
    case 1:
    case 2: {
      if (cur.length === 0) return { v: rng.bytes(rng.int(1, 40)), op: "fill-empty" };
      const v = cur.slice();
      const bit = rng.int(0, v.length * 8 - 1);
      v[bit >> 3]! ^= 1 << (bit & 7);
      return { v, op: `bit-flip@${bit}` };
    }
    case 3:
      return { v: cur.slice(0, rng.int(0, Math.max(0, cur.length - 1))), op: "truncate" };
    case 4: {
      const v = new Uint8Array(cur.length + rng.int(1, 8));
      v.set(cur);
      v.set(rng.bytes(v.length - cur.length), cur.length);
      return { v, op: "extend" };
    }
    case 5:
      return { v: rng.bytes(cur.length), op: "randomize" };
    case 6:
      return { v: new Uint8Array(0), op: "empty" };
    default:
      return { v: rng.bytes(rng.chance(0.1) ? rng.int(1000, 20_000) : rng.int(0, 64)), op: "random" };
  }
}

function pickBig(rng: Prng, cands: bigint[], lo: bigint, hi: bigint): bigint {
  const v = rng.pick(cands);
  return v < lo ? lo : v > hi ? hi : v;
}

function scalarOp(rng: Prng, f: DescField & { fieldKind: "scalar" }, cur: unknown): { v: unknown; op: string } {
  switch (f.scalar) {
    case ScalarType.BYTES:
      return bytesOp(rng, (cur as Uint8Array | undefined) ?? new Uint8Array(0));
    case ScalarType.STRING: {
      const c = (cur as string | undefined) ?? "";
      const r = rng.int(0, 4);
      if (r === 0) return { v: rng.pick(HOSTILE_STRINGS), op: "hostile" };
      if (r === 1) return { v: c + String.fromCharCode(rng.int(0x20, 0x7e)), op: "append" };
      if (r === 2 && c.length > 0) {
        const i = rng.int(0, c.length - 1);
        return { v: c.slice(0, i) + String.fromCharCode(c.charCodeAt(i) ^ (1 << rng.int(0, 6))) + c.slice(i + 1), op: "char-flip" };
      }
      return { v: randomString(rng), op: "random" };
    }
    case ScalarType.BOOL:
      return { v: !cur, op: "flip" };
    case ScalarType.INT32:
    case ScalarType.SINT32:
    case ScalarType.SFIXED32: {
      const c = Number(cur ?? 0);
      const v = rng.pick([0, 1, -1, I32_MAX, I32_MIN, c + 1, c - 1, rng.int(-1000, 1000)]);
      return { v: Math.max(I32_MIN, Math.min(I32_MAX, v)), op: `int32=${v}` };
    }
    case ScalarType.UINT32:
    case ScalarType.FIXED32: {
      const c = Number(cur ?? 0);
      const v = rng.pick([0, 1, 63, 64, 65, U32_MAX, 2 ** 31, c + 1, Math.max(0, c - 1), rng.int(0, 100_000)]);
      return { v: Math.max(0, Math.min(U32_MAX, v)), op: `uint32=${v}` };
    }
    case ScalarType.INT64:
    case ScalarType.SINT64:
    case ScalarType.SFIXED64: {
      const c = BigInt((cur as bigint | undefined) ?? 0n);
      const v = pickBig(rng, [0n, 1n, -1n, I64_MAX, I64_MIN, c + 1n, c - 1n, -c, c * 1000n, BigInt(rng.int(-1_000_000, 1_000_000))], I64_MIN, I64_MAX);
      return { v, op: `int64=${v}` };
    }
    case ScalarType.UINT64:
    case ScalarType.FIXED64: {
      const c = BigInt((cur as bigint | undefined) ?? 0n);
      const v = pickBig(rng, [0n, 1n, U64_MAX, 1n << 63n, I64_MAX, c + 1n, c > 0n ? c - 1n : 0n, c ^ 1n, BigInt(rng.u32()) * BigInt(rng.u32())], 0n, U64_MAX);
      return { v, op: `uint64=${v}` };
    }
    default: {
      const v = rng.pick([0, -1, 1e300, Number.NaN]);
      return { v, op: `float=${v}` };
    }
  }
}

/**
 * Mutates `msg` in place (callers pass a clone). With `only`, the field is
 * chosen among paths starting with one of those prefixes. Returns undefined
 * when there is no field to mutate.
 */
export function mutate(schema: DescMessage, msg: Record<string, unknown>, rng: Prng, only?: readonly string[]): Mutation | undefined {
  let all = sites(schema, msg);
  if (only) all = all.filter((s) => only.some((p) => s.path === p || s.path.startsWith(`${p}.`)));
  if (all.length === 0) return undefined;
  const s = rng.pick(all);
  const f = s.field;
  const name = f.localName;
  const cur = s.holder[name];
  switch (f.fieldKind) {
    case "scalar": {
      const { v, op } = scalarOp(rng, f, cur);
      s.holder[name] = v;
      return { path: s.path, op };
    }
    case "enum": {
      const v = rng.pick([0, 1, 2, 3, 14, 15, 16, 45, 46, 99, -1, I32_MAX]);
      s.holder[name] = v;
      return { path: s.path, op: `enum=${v}` };
    }
    case "message":
      if (cur === undefined || rng.chance(0.7)) {
        s.holder[name] = undefined;
        return { path: s.path, op: "drop" };
      }
      s.holder[name] = create(f.message);
      return { path: s.path, op: "empty" };
    case "list": {
      const arr = (cur as unknown[] | undefined) ?? [];
      if (arr.length > 0 && rng.chance(0.5)) {
        s.holder[name] = [...arr, arr[rng.int(0, arr.length - 1)]];
        return { path: s.path, op: "duplicate-element" };
      }
      s.holder[name] = [];
      return { path: s.path, op: "clear" };
    }
    case "map":
      s.holder[name] = {};
      return { path: s.path, op: "clear" };
  }
}
