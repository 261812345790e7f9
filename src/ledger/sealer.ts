/**
 * Sealing: integrating committed events into the hash chain, and signing
 * checkpoints. Runs as its own small transaction, never inside a payment's:
 * payments only append events (via triggers) and never wait for the sealer.
 *
 * One sealer at a time, elected by the database: on PostgreSQL the seal
 * transaction first takes a transaction-level advisory lock with
 * pg_try_advisory_xact_lock; a replica that does not get it skips this round
 * (another replica is sealing). On SQLite the single writer already
 * serialises it.
 *
 * Order: chain order is seal order. Events are picked by event_id among those
 * committed and not yet sealed, so on PostgreSQL an event whose transaction
 * committed late (its id was handed out earlier) is sealed in the next round,
 * after higher ids; nothing waits for a gap to close and nothing is skipped.
 */
import { link, signCheckpoint, ZERO_LINK, type Checkpoint } from "./chain.js";
import { blob, type Row, type SqlTx } from "./sql.js";
import type { Engine } from "./ledger.js";

/** "SWLEDGER" - 1: the sealer's advisory-lock key (different from the migration lock). */
export const PG_LOCK_SEAL = (0x53574c4544474552n & ((1n << 62n) - 1n)) - 1n;
/** Events sealed per transaction at most, so one round never holds the writer long. */
export const SEAL_BATCH_MAX = 2_000;

export interface SealOptions {
  now: () => number;
  batchMax?: number;
  /** Sign a checkpoint of the new head when the last one is at least this old (or `force`). */
  signer?: { keyId: number; secretKey: Uint8Array; everyMs: number; force?: boolean };
}

export interface SealResult {
  /** False when another sealer holds the lock (PostgreSQL). */
  elected: boolean;
  sealed: number;
  size: bigint;
  /** Per sealed event: sealed_ms - created_ms. */
  delaysMs: number[];
  checkpoint?: Checkpoint;
}

function big(v: unknown): bigint {
  return typeof v === "bigint" ? v : BigInt(v as number | string);
}
function u8(v: unknown): Uint8Array {
  return v instanceof Uint8Array ? new Uint8Array(v) : new Uint8Array(0);
}

export function rowToCheckpoint(r: Row): Checkpoint {
  return {
    size: big(r.size),
    head: u8(r.head),
    timestampMs: big(r.timestamp_ms),
    keyId: Number(r.key_id),
    publicKey: u8(r.public_key),
    signature: u8(r.signature),
  };
}

export async function latestCheckpoint(q: SqlTx): Promise<Checkpoint | undefined> {
  const r = await q.get(`SELECT * FROM checkpoints ORDER BY size DESC LIMIT 1`);
  return r ? rowToCheckpoint(r) : undefined;
}

export async function chainHead(q: SqlTx): Promise<{ size: bigint; head: Uint8Array }> {
  const last = await q.get(`SELECT chain_seq, link FROM events WHERE chain_seq IS NOT NULL ORDER BY chain_seq DESC LIMIT 1`);
  return last ? { size: big(last.chain_seq), head: u8(last.link) } : { size: 0n, head: ZERO_LINK };
}

export async function sealPending(q: SqlTx, engine: Engine, opts: SealOptions): Promise<SealResult> {
  if (engine === "postgres") {
    const got = await q.get(`SELECT pg_try_advisory_xact_lock(?) AS ok`, [PG_LOCK_SEAL]);
    if (!got?.ok) return { elected: false, sealed: 0, size: 0n, delaysMs: [] };
  }
  let { size, head } = await chainHead(q);
  const pending = await q.all(`SELECT event_id, fact, created_ms FROM events WHERE chain_seq IS NULL ORDER BY event_id LIMIT ?`, [opts.batchMax ?? SEAL_BATCH_MAX]);
  const nowMs = opts.now();
  const delaysMs: number[] = [];
  for (const e of pending) {
    size++;
    head = link(head, size, big(e.event_id), u8(e.fact));
    await q.run(`UPDATE events SET chain_seq = ?, link = ?, sealed_ms = ? WHERE event_id = ? AND chain_seq IS NULL`, [size, blob(head), nowMs, big(e.event_id)]);
    delaysMs.push(nowMs - Number(e.created_ms));
  }
  let checkpoint: Checkpoint | undefined;
  const s = opts.signer;
  if (s && size > 0n) {
    const last = await latestCheckpoint(q);
    const due = !last || nowMs - Number(last.timestampMs) >= s.everyMs || s.force;
    if ((!last || last.size < size) && due) {
      checkpoint = signCheckpoint({ size, head, timestampMs: BigInt(nowMs), keyId: s.keyId }, s.secretKey);
      await q.run(`INSERT INTO checkpoints (size, head, timestamp_ms, key_id, public_key, signature) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (size) DO NOTHING`, [
        checkpoint.size,
        blob(checkpoint.head),
        checkpoint.timestampMs,
        checkpoint.keyId,
        blob(checkpoint.publicKey),
        blob(checkpoint.signature),
      ]);
    }
  }
  return { elected: true, sealed: pending.length, size, delaysMs, checkpoint };
}
