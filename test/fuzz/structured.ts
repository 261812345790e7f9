/**
 * The structured fuzz loop shared by the in-process and real-socket runs:
 * take a template, mutate one (sometimes two) fields, re-sign it as a
 * cheating customer would, send it, and judge the answer.
 */
import { clone, equals, toBinary, type DescMessage, type Message } from "@bufbuild/protobuf";
import { Code, type Transport } from "@connectrpc/connect";
import Database from "better-sqlite3";
import { CmdType } from "../../gen/scripwire/v1/types_pb.js";
import type { Ledger } from "../../src/ledger/ledger.js";
import { Prng } from "../torture/prng.js";
import { mutate, type Mutation } from "./mutate.js";
import { call, grants, HASH_FIELD, offerSound, resign, type FuzzWorld, type Outcome, type Template } from "./world.js";

/**
 * Answers that are bugs we have reported but that belong to code outside the
 * fuzz suite's reach; they are counted (and pinned by `test.failing` tests)
 * instead of failing every run. Anything else that is INTERNAL fails.
 */
export const KNOWN_FINDINGS: { id: string; pattern: RegExp; method: string; what: string }[] = [
  {
    id: "F3",
    pattern: /u32 out of range/,
    method: "deliver",
    what: "the seller's Deliver lets a RangeError from the canonical encoder (a negative enum in the receipt) escape as INTERNAL",
  },
];

export interface FuzzStats {
  inputs: number;
  unsendable: number;
  refusals: Map<string, number>;
  known: Map<string, number>;
  failures: string[];
}

export function newStats(): FuzzStats {
  return { inputs: 0, unsendable: 0, refusals: new Map(), known: new Map(), failures: [] };
}

function bump(m: Map<string, number>, k: string): void {
  m.set(k, (m.get(k) ?? 0) + 1);
}

/**
 * Binary encoding of the protected parts of a request, to tell a real
 * alteration from a no-op. The request hash is left out: re-signing changes
 * it whenever pCount or another signed field changes, and a hash that was
 * itself mutated is caught separately.
 */
function protectedBytes(t: Template, req: Record<string, any>): string {
  const hashField = HASH_FIELD[t.method.localName];
  return t.protect
    .filter((p) => p !== hashField)
    .map((p) => {
      const f = (t.method.input as DescMessage).fields.find((x) => x.localName === p);
      const v = req[p];
      if (!f) return "";
      if (f.fieldKind === "message") return v ? Buffer.from(toBinary(f.message, v)).toString("hex") : "-";
      if (v instanceof Uint8Array) return Buffer.from(v).toString("hex");
      return String(v);
    })
    .join("|");
}

/** Exact refusal expected for the mutations whose outcome the protocol pins down. */
function expected(t: Template, m: Mutation, resigned: boolean): { cmd?: CmdType; code?: Code; reason: string } | undefined {
  const name = t.method.localName;
  const bitFlip = m.op.startsWith("bit-flip");
  if (!bitFlip) return undefined;
  if (!resigned && m.path === HASH_FIELD[name]) return { code: Code.Unauthenticated, reason: "BAD_HASH" };
  const cert = m.path === "scrip.certificate" || m.path === "newScrip.certificate";
  if (cert && resigned) {
    if (name === "issue") return { cmd: CmdType.GM5_2, reason: "BAD_CERTIFICATE" };
    if (name === "pay") return { cmd: CmdType.PM5_2, reason: "BAD_CERTIFICATE" };
    if (name === "renew" || name === "redeem" || name === "confirmIssue" || name === "confirmPayment") return { code: Code.FailedPrecondition, reason: "BAD_CERTIFICATE" };
  }
  if (m.path === "permit.mac" || (m.path === "order.mac" && name === "initPayment")) return { code: Code.Unauthenticated, reason: "BAD_OFFER_MAC" };
  if (m.path === "order.mac" && name === "pay" && resigned) return { cmd: CmdType.PM5_2, reason: "BAD_OFFER_MAC" };
  if (m.path === "receipt.mac") return { code: Code.Unauthenticated, reason: "BAD_RECEIPT" };
  if (m.path === "mac" && name === "listSettlements") return { code: Code.Unauthenticated, reason: "BAD_VENDOR_MAC" };
  return undefined;
}

export interface RunOptions {
  world: FuzzWorld;
  transports: Array<{ center: Transport; seller: Transport }>;
  /** Path of the SQLite ledger, read directly to see whether any transfer appeared. */
  dbPath: string;
  ledger: Ledger;
  /** Per-item rewards and catalog prices, to check the seller's offers. */
  amounts: Map<string, bigint>;
  seeds: number[];
  concurrency: number;
  stats: FuzzStats;
  label: string;
}

/** Runs one input per seed; returns nothing, records failures in `stats`. */
export async function runStructured(o: RunOptions): Promise<void> {
  const db = new Database(o.dbPath, { readonly: true });
  db.defaultSafeIntegers(true);
  const maxTransfer = db.prepare(`SELECT COALESCE(MAX(transfer_id), 0) AS v FROM transfers`);
  const transfers = () => (maxTransfer.get() as { v: bigint }).v;
  const start = transfers();
  const fail = (seed: number, what: string) => {
    if (o.stats.failures.length < 50) o.stats.failures.push(`[${o.label} input seed ${seed}] ${what}`);
  };
  let next = 0;
  let stopped = false;
  const worker = async () => {
    while (next < o.seeds.length && !stopped) {
      const seed = o.seeds[next++]!;
      const rng = new Prng(seed);
      const t = rng.pick(o.world.templates);
      t.refresh?.();
      // One base per input: a concurrent worker may re-sign the template meanwhile.
      const base = t.request;
      const schema = t.method.input as DescMessage;
      const req = clone(schema, base as never) as Record<string, any>;
      const muts: Mutation[] = [];
      const n = rng.chance(0.15) ? 2 : 1;
      for (let i = 0; i < n; i++) {
        const m = mutate(schema, req, rng, t.live ? t.protect : undefined);
        if (m) muts.push(m);
      }
      if (muts.length === 0) continue;
      const hashField = HASH_FIELD[t.method.localName];
      const hashTouched = muts.some((m) => m.path === hashField);
      const resigned = !!t.customer && !hashTouched && rng.chance(0.85);
      if (resigned) resign(t, req);
      const hashAltered = hashTouched && Buffer.compare(Buffer.from(req[hashField!] ?? []), Buffer.from((base as Record<string, any>)[hashField!] ?? [])) !== 0;
      const altered = hashAltered || protectedBytes(t, req) !== protectedBytes(t, base as Record<string, any>);
      if (t.live && !altered) continue; // a no-op mutation of a live template would just execute it
      if (equals(schema, req as never, base as never) && !t.live) {
        // Unchanged replay: still a useful input (it must replay), nothing to judge beyond "not bad".
      }
      const tr = o.transports[seed % o.transports.length]!;
      const out: Outcome = await call(tr, t, req as Message);
      const desc = `${t.name} ${muts.map((m) => `${m.path}:${m.op}`).join(" + ")}${resigned ? " (re-signed)" : ""}`;
      if (out.kind === "unsendable") {
        o.stats.unsendable++;
        continue;
      }
      o.stats.inputs++;
      if (out.kind === "bad") {
        const known = KNOWN_FINDINGS.find((k) => k.method === t.method.localName && k.pattern.test(out.detail));
        if (known) bump(o.stats.known, known.id);
        else fail(seed, `${desc} -> ${out.detail}`);
      } else if (out.kind === "error") {
        bump(o.stats.refusals, `${Code[out.code]}:${out.reason ?? "-"}`);
      } else {
        const h = out.res.header;
        if (h?.errorReason) bump(o.stats.refusals, `${CmdType[h.cmdType]}:${h.errorReason}`);
        if (altered && grants(t, req, out.res)) {
          fail(seed, `FORGERY ACCEPTED: ${desc} -> ${h ? CmdType[h.cmdType] : "ok"} ${h?.errorReason ?? ""}`);
        }
        if (t.method.localName === "requestIssue" && out.res.permit) {
          const bad = offerSound(out.res.permit, o.world.vendorSecret, o.amounts.get(out.res.permit.item));
          if (bad) fail(seed, `${desc} -> seller permit: ${bad}`);
        }
        if (t.method.localName === "requestService" && out.res.order) {
          const bad = offerSound(out.res.order, o.world.vendorSecret, o.amounts.get(out.res.order.item));
          if (bad) fail(seed, `${desc} -> seller order: ${bad}`);
        }
      }
      if (muts.length === 1) {
        const e = expected(t, muts[0]!, resigned);
        if (e) {
          const got =
            out.kind === "error" ? `${Code[out.code]}/${out.reason}` : out.kind === "ok" ? `${CmdType[out.res.header?.cmdType ?? 0]}/${out.res.header?.errorReason}` : out.kind;
          const ok =
            (e.code !== undefined && out.kind === "error" && out.code === e.code && out.reason === e.reason) ||
            (e.cmd !== undefined && out.kind === "ok" && out.res.header?.cmdType === e.cmd && out.res.header?.errorReason === e.reason);
          if (!ok) fail(seed, `${desc}: expected ${e.code !== undefined ? Code[e.code] : CmdType[e.cmd!]}/${e.reason}, got ${got}`);
        }
      }
      const now = transfers();
      if (now !== start && !stopped) {
        // Later inputs would be judged against a changed world: stop here, this one is the culprit
        // (or one of the `concurrency` inputs in flight with it).
        fail(seed, `VALUE MOVED: ${desc} (or an input in flight with it): the transfer journal grew from ${start} to ${now}`);
        stopped = true;
      }
    }
  };
  try {
    await Promise.all(Array.from({ length: o.concurrency }, worker));
    // Nothing the fuzzer could reach may have changed: live scrips still live, live TranIDs in their state.
    for (const l of o.world.live) {
      const s = await o.ledger.liveScrip(l.customerSerial, "KRW");
      if (s?.serial !== l.serial) o.stats.failures.push(`[${o.label}] customer ${l.customerSerial}'s live scrip changed from ${l.serial} to ${s?.serial}`);
    }
    for (const x of o.world.liveTx) {
      const tx = await o.ledger.getTransaction(x.vendorId, x.tranId);
      if (tx?.state !== x.state) o.stats.failures.push(`[${o.label}] TranID ${x.tranId} changed state from ${x.state} to ${tx?.state}`);
    }
  } finally {
    if (db.open) db.close();
  }
}
