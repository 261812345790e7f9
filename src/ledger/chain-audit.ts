/**
 * The auditor's chain checks (run inside SqlLedger.audit's read snapshot):
 *
 * 1. the chain: every sealed event's link is recomputed from the previous
 *    link, its position, its id and its fact; the first mismatch or missing
 *    position is reported (an edited, deleted, inserted or reordered event);
 * 2. checkpoints: the latest (all, when few) verifies under the ledger's
 *    checkpoint key and every stored checkpoint's head is the recomputed link
 *    at its size; a SAVED checkpoint (from GetCheckpoint, kept by a seller or
 *    an auditor) is checked the same way, and a ledger with fewer events than
 *    it proves is reported as lost history;
 * 3. the state tables against the events: replaying every fact rebuilds
 *    accounts (and balances), transfers, scrips (and their state), settlements,
 *    payouts and campaign counters; every row must equal its replay. This is
 *    what catches balanced edits that conservation alone cannot see.
 */
import { ed25519 } from "@noble/curves/ed25519.js";
import { checkpointSignatureValid, link, parseFact, ZERO_LINK, type Checkpoint, type Fact } from "./chain.js";
import { rowToCheckpoint } from "./sealer.js";
import type { Row, SqlTx } from "./sql.js";

/** Problems reported per table at most: the first is what matters, the rest is context. */
const PROBLEMS_PER_CHECK = 5;
/** Every stored checkpoint's signature is verified up to this many; beyond, the latest only (heads are always compared). */
const CHECKPOINT_SIGNATURES_MAX = 1_000;

export interface ChainAuditResult {
  problems: string[];
  eventsSealed: number;
  eventsPending: number;
  checkpointsChecked: number;
  /** The saved checkpoint, when one was given: verified and consistent with this ledger. */
  savedCheckpointOk?: boolean;
}

const s = (v: unknown): string => (v === null || v === undefined ? "" : typeof v === "bigint" ? v.toString() : String(v));
const big = (v: unknown): bigint => (typeof v === "bigint" ? v : BigInt(v as number | string));
const u8 = (v: unknown): Uint8Array => (v instanceof Uint8Array ? new Uint8Array(v) : new Uint8Array(0));
const same = (a: Uint8Array, b: Uint8Array) => Buffer.compare(Buffer.from(a), Buffer.from(b)) === 0;
const hex = (b: Uint8Array) => Buffer.from(b).toString("hex").slice(0, 16);

class Problems {
  readonly list: string[] = [];
  private counts = new Map<string, number>();
  add(check: string, what: string): void {
    const n = (this.counts.get(check) ?? 0) + 1;
    this.counts.set(check, n);
    if (n <= PROBLEMS_PER_CHECK) this.list.push(what);
    else if (n === PROBLEMS_PER_CHECK + 1) this.list.push(`(${check}: further problems not listed)`);
  }
}

export async function auditChain(q: SqlTx, opts: { saved?: Checkpoint; requireSealed?: boolean } = {}): Promise<ChainAuditResult> {
  const p = new Problems();
  const sealed = await q.all(`SELECT event_id, fact, chain_seq, link FROM events WHERE chain_seq IS NOT NULL ORDER BY chain_seq`);
  const pending = await q.all(`SELECT event_id, fact FROM events WHERE chain_seq IS NULL ORDER BY event_id`);

  // ---- 1. the chain
  const linkAt: Uint8Array[] = [ZERO_LINK]; // linkAt[n] = recomputed link(n), valid up to the first break
  let broken = false;
  for (let i = 0; i < sealed.length && !broken; i++) {
    const r = sealed[i]!;
    const n = BigInt(i + 1);
    if (big(r.chain_seq) !== n) {
      p.add("chain", `chain position ${n} is missing (the next sealed event, id ${r.event_id}, is at position ${r.chain_seq}): a sealed event was deleted or renumbered`);
      broken = true;
      break;
    }
    const h = link(linkAt[i]!, n, big(r.event_id), u8(r.fact));
    if (!same(h, u8(r.link))) {
      p.add("chain", `chain position ${n} (event ${r.event_id}): recomputed link ${hex(h)}… differs from the stored ${hex(u8(r.link))}…: the event's fact, id or position was changed`);
      broken = true;
      break;
    }
    linkAt.push(h);
  }
  const verifiedSize = BigInt(linkAt.length - 1);

  // ---- 2. checkpoints
  const keyRows = await q.all(`SELECT secret_id, key FROM keys WHERE kind = 'checkpoint-ed25519'`);
  const pubByGen = new Map<number, Uint8Array>();
  for (const k of keyRows) {
    const key = u8(k.key);
    // Keys wrapped at rest (not 32 raw bytes) cannot be checked here; the signature check stands.
    if (key.length === 32) pubByGen.set(Number(k.secret_id), ed25519.getPublicKey(key));
  }
  const cps = (await q.all(`SELECT * FROM checkpoints ORDER BY size`)).map((r: Row) => rowToCheckpoint(r));
  const checkHead = (c: Checkpoint, what: string) => {
    if (c.size > BigInt(sealed.length)) {
      p.add("checkpoint", `${what} proves ${c.size} sealed events but the ledger holds ${sealed.length}: sealed history was lost or truncated`);
    } else if (c.size <= verifiedSize) {
      if (!same(linkAt[Number(c.size)]!, c.head)) p.add("checkpoint", `${what} (size ${c.size}) does not match the chain: its head ${hex(c.head)}… ≠ recomputed ${hex(linkAt[Number(c.size)]!)}…: history was rewritten`);
    } // else beyond the first chain break, already reported
  };
  const checkSig = (c: Checkpoint, what: string) => {
    if (!checkpointSignatureValid(c)) p.add("checkpoint", `${what} (size ${c.size}): the Ed25519 signature does not verify: forged or altered`);
    const pub = pubByGen.get(c.keyId);
    if (pub && !same(pub, c.publicKey)) p.add("checkpoint", `${what} (size ${c.size}) is signed by a key that is not the ledger's checkpoint key generation ${c.keyId}`);
    if (!pub && keyRows.length > 0 && !keyRows.some((k) => Number(k.secret_id) === c.keyId)) p.add("checkpoint", `${what} (size ${c.size}) names checkpoint key generation ${c.keyId}, which the ledger does not have`);
  };
  cps.forEach((c, i) => {
    checkHead(c, `stored checkpoint`);
    if (cps.length <= CHECKPOINT_SIGNATURES_MAX || i === cps.length - 1) checkSig(c, "stored checkpoint");
  });
  // One generation, one key: even when the key rows are wrapped at rest (and
  // so not comparable here), a checkpoint re-signed with another key stands
  // out against the others of its generation.
  const firstKey = new Map<number, Checkpoint>();
  for (const c of cps) {
    const f = firstKey.get(c.keyId);
    if (!f) firstKey.set(c.keyId, c);
    else if (!same(f.publicKey, c.publicKey)) p.add("checkpoint", `stored checkpoint (size ${c.size}) is signed by another key than checkpoint ${f.size} of the same generation ${c.keyId}: forged`);
  }
  for (let i = 1; i < cps.length; i++) if (cps[i]!.timestampMs < cps[i - 1]!.timestampMs) p.add("checkpoint", `stored checkpoints at sizes ${cps[i - 1]!.size} and ${cps[i]!.size} go back in time`);
  if (sealed.length > 0 && cps.length === 0) p.add("checkpoint", `the chain has ${sealed.length} sealed events but no checkpoint`);

  let savedCheckpointOk: boolean | undefined;
  if (opts.saved) {
    const before = p.list.length;
    const c = opts.saved;
    if (!checkpointSignatureValid(c)) p.add("saved", `the saved checkpoint (size ${c.size}) does not verify under its own key: it is not a checkpoint this center signed`);
    else {
      const pub = pubByGen.get(c.keyId) ?? firstKey.get(c.keyId)?.publicKey;
      if (pub && !same(pub, c.publicKey)) p.add("saved", `the ledger's checkpoint key generation ${c.keyId} is not the one that signed the saved checkpoint: the ledger's keys or checkpoints were replaced`);
      const total = sealed.length + pending.length;
      if (c.size > BigInt(total)) {
        p.add("saved", `the ledger has ${total} events (${sealed.length} sealed) but the saved checkpoint proves it had at least ${c.size}: ${c.size - BigInt(sealed.length)} sealed events are missing (lost or truncated history)`);
      } else if (c.size > BigInt(sealed.length)) {
        p.add("saved", `the saved checkpoint proves ${c.size} sealed events but only ${sealed.length} are sealed here: sealed history was lost`);
      } else if (c.size <= verifiedSize && !same(linkAt[Number(c.size)]!, c.head)) {
        p.add("saved", `the ledger's chain at size ${c.size} does not match the saved checkpoint: history before it was rewritten`);
      }
    }
    savedCheckpointOk = p.list.length === before && !(opts.saved.size > verifiedSize);
  }

  if (opts.requireSealed) {
    for (const e of pending) p.add("pending", `event ${e.event_id} was never sealed (${Buffer.from(u8(e.fact)).toString("utf8").slice(0, 60)}…): written after the last seal, by the center before a crash or behind its back`);
  }

  // ---- 3. state tables against the replayed events
  const facts: { eventId: string; fact: Fact }[] = [];
  for (const r of [...sealed, ...pending]) {
    try {
      facts.push({ eventId: s(r.event_id), fact: parseFact(u8(r.fact)) });
    } catch (e) {
      p.add("events", `event ${r.event_id}: unreadable fact (${(e as Error).message})`);
    }
  }
  const want = {
    accounts: new Map<string, Record<string, string>>(),
    transfers: new Map<string, Record<string, string>>(),
    scrips: new Map<string, Record<string, string>>(),
    settlements: new Map<string, Record<string, string>>(),
    payouts: new Map<string, Record<string, string>>(),
    campaigns: new Map<string, Record<string, string>>(),
    refunds: new Map<string, Record<string, string>>(),
  };
  const balance = new Map<string, bigint>();
  for (const { eventId, fact } of facts) {
    const f = fact.f;
    switch (fact.type) {
      case "account":
        if (want.accounts.has(f.account_id!)) p.add("events", `event ${eventId} opens account ${f.account_id} a second time`);
        want.accounts.set(f.account_id!, f);
        break;
      case "transfer":
        if (want.transfers.has(f.transfer_id!)) p.add("events", `event ${eventId} repeats transfer ${f.transfer_id}`);
        want.transfers.set(f.transfer_id!, f);
        balance.set(f.debit_account!, (balance.get(f.debit_account!) ?? 0n) - BigInt(f.amount!));
        balance.set(f.credit_account!, (balance.get(f.credit_account!) ?? 0n) + BigInt(f.amount!));
        break;
      case "scrip":
        if (want.scrips.has(f.serial!)) p.add("events", `event ${eventId} issues scrip ${f.serial} a second time`);
        want.scrips.set(f.serial!, { ...f, state: "live", spent_at: "" });
        break;
      case "spend": {
        const sc = want.scrips.get(f.serial!);
        if (!sc || sc.state !== "live") p.add("events", `event ${eventId} spends scrip ${f.serial}, which was not live`);
        else want.scrips.set(f.serial!, { ...sc, state: "spent", spent_at: f.spent_at! });
        break;
      }
      case "settlement":
        want.settlements.set(f.sequence!, f);
        break;
      case "payout":
        want.payouts.set(f.payout_id!, f);
        break;
      case "campaign":
        want.campaigns.set(f.campaign_id!, f);
        break;
      case "refund":
        want.refunds.set(f.refund_id!, f);
        break;
    }
  }
  for (const [id, a] of want.accounts) a.balance = (balance.get(id) ?? 0n).toString();

  // Campaign counters must be what the journal's transfers say: funded = every
  // 'fund' into the campaign; issued = 'issue' out of it less 'cancel-issue' back.
  // (The counters are journaled too, but a counter edit made through SQL while
  // the center runs would be journaled like any other: this ties them to money.)
  const moved = new Map<string, { funded: bigint; issued: bigint }>();
  for (const t of want.transfers.values()) {
    const camp = (acct: string) => (acct.startsWith("campaign/") ? acct.slice("campaign/".length) : undefined);
    const add = (id: string | undefined, k: "funded" | "issued", d: bigint) => {
      if (!id) return;
      const m = moved.get(id) ?? { funded: 0n, issued: 0n };
      m[k] += d;
      moved.set(id, m);
    };
    if (t.kind === "fund") add(camp(t.credit_account!), "funded", BigInt(t.amount!));
    if (t.kind === "issue") add(camp(t.debit_account!), "issued", BigInt(t.amount!));
    if (t.kind === "cancel-issue") add(camp(t.credit_account!), "issued", -BigInt(t.amount!));
  }
  for (const [id, c] of want.campaigns) {
    const m = moved.get(id) ?? { funded: 0n, issued: 0n };
    if (BigInt(c.funded!) !== m.funded || BigInt(c.issued!) !== m.issued) {
      p.add("campaigns", `campaign ${id}: the journal's counters (funded ${c.funded}, issued ${c.issued}) disagree with its transfers (funded ${m.funded}, issued ${m.issued})`);
    }
  }

  const compare = async (table: keyof typeof want, key: string, cols: string[], label: (k: string) => string) => {
    const expect = want[table];
    const rows = await q.all(`SELECT ${[key, ...cols.filter((c) => c !== key)].join(", ")} FROM ${table} ORDER BY ${key}`);
    const seen = new Set<string>();
    for (const r of rows) {
      const k = s(r[key]);
      seen.add(k);
      const e = expect.get(k);
      if (!e) {
        p.add(table, `${label(k)} has no event in the journal: inserted behind the ledger's back`);
        continue;
      }
      for (const c of cols) {
        if (s(r[c]) !== (e[c] ?? "")) {
          p.add(table, `${label(k)}: ${c} is ${JSON.stringify(s(r[c]))} but the journal says ${JSON.stringify(e[c] ?? "")}`);
          break;
        }
      }
    }
    for (const k of expect.keys()) if (!seen.has(k)) p.add(table, `${label(k)} is in the journal but missing from the table: deleted`);
  };
  await compare("accounts", "account_id", ["kind", "currency", "balance"], (k) => `account ${k}`);
  await compare("transfers", "transfer_id", ["kind", "ref", "debit_account", "credit_account", "amount", "currency", "created_at"], (k) => `transfer ${k}`);
  await compare("scrips", "serial", ["customer_serial", "currency", "value", "expires_at", "created_at", "state", "spent_at"], (k) => `scrip ${k}`);
  await compare("settlements", "sequence", ["kind", "vendor_id", "tran_id", "amount", "currency", "item", "settled_at"], (k) => `settlement ${k}`);
  await compare("payouts", "payout_id", ["customer_serial", "amount", "currency", "account", "created_at"], (k) => `payout ${k}`);
  await compare("campaigns", "campaign_id", ["vendor_id", "currency", "cap", "funded", "issued"], (k) => `campaign ${k}`);
  await compare("refunds", "refund_id", ["vendor_id", "tran_id", "request_id", "customer_serial", "amount", "paid", "currency", "reason", "created_at", "settlement_sequence", "folded_serial", "folded_at"], (k) => `refund ${k}`);

  return { problems: p.list, eventsSealed: sealed.length, eventsPending: pending.length, checkpointsChecked: cps.length, savedCheckpointOk };
}
