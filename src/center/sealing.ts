/**
 * The center's sealing loop: every `intervalMs` it integrates committed
 * journal events into the hash chain (Ledger.seal, its own transaction) and
 * signs a checkpoint of the head every `checkpointEveryMs`. Every replica runs
 * one; on PostgreSQL the database elects which one seals each round
 * (sealer.ts), so several replicas writing to one database never contend on
 * a lock in the payment path.
 *
 * A failed round (database down during a failover, say) is retried on the
 * next tick: events wait in the table, committed, until a sealer takes them.
 */
import { create } from "@bufbuild/protobuf";
import { CheckpointSchema, type Checkpoint as CheckpointMsg } from "../../gen/scripwire/v1/center_pb.js";
import type { Checkpoint } from "../ledger/chain.js";
import type { Ledger } from "../ledger/ledger.js";
import { SEAL_BATCH_MAX } from "../ledger/sealer.js";
import type { KeyRing } from "./keyring.js";

export interface SealingOptions {
  /** How often pending events are sealed (default 100 ms): the bound on the sealing delay, plus one round's work. */
  intervalMs?: number;
  /** How often the head is signed when it moved (default 1000 ms). */
  checkpointEveryMs?: number;
  clock?: () => number;
  onError?: (e: unknown) => void;
}

/** Sealing-delay samples kept for the p99 (a ring). */
const DELAY_SAMPLES_MAX = 100_000;

export class SealingLoop {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stopped = false;
  readonly delaysMs: number[] = [];
  private delayNext = 0;
  sealedTotal = 0;
  rounds = 0;
  errors = 0;

  constructor(
    private readonly ledger: Ledger,
    private readonly keys: KeyRing,
    private readonly opts: SealingOptions = {},
  ) {}

  private startedAt = Date.now();

  start(): void {
    this.startedAt = Date.now();
    this.stopped = false;
    this.schedule();
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.running = this.round(false)
        .then(() => {})
        .catch((e) => {
          this.errors++;
          this.opts.onError?.(e);
        })
        .finally(() => {
          this.running = undefined;
          this.schedule();
        });
    }, this.opts.intervalMs ?? 100);
    this.timer.unref?.();
  }

  /** Seals everything pending (several batches if need be); `force` signs a checkpoint of the head now. */
  async round(force: boolean): Promise<Checkpoint | undefined> {
    const k = this.keys.current("checkpoint-ed25519");
    let cp: Checkpoint | undefined;
    for (;;) {
      const r = await this.ledger.seal({
        now: this.opts.clock ?? Date.now,
        signer: { keyId: k.secretId, secretKey: k.key, everyMs: this.opts.checkpointEveryMs ?? 1_000, force },
      });
      this.rounds++;
      this.sealedTotal += r.sealed;
      // Events committed before this loop started (a restart after a crash, a
      // copied database) waited for a sealer to exist, not for the sealer: they
      // would only measure the downtime.
      const since = Date.now() - this.startedAt;
      for (const d of r.delaysMs) {
        if (d > since) continue;
        if (this.delaysMs.length < DELAY_SAMPLES_MAX) this.delaysMs.push(d);
        else this.delaysMs[this.delayNext++ % DELAY_SAMPLES_MAX] = d;
      }
      cp = r.checkpoint ?? cp;
      if (!r.elected || r.sealed < SEAL_BATCH_MAX) return cp;
    }
  }

  /** Stops the loop and seals what is left, with a final checkpoint (graceful shutdown). */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.running;
    await this.round(true).catch((e) => this.opts.onError?.(e));
  }
}

export function delayPercentile(samples: number[], p: number): number {
  if (samples.length === 0) return 0;
  const sorted = [...samples].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

export function toCheckpointMessage(c: Checkpoint | undefined): CheckpointMsg | undefined {
  if (!c) return undefined;
  return create(CheckpointSchema, { size: c.size, head: c.head, timestampUnixMs: c.timestampMs, keyId: c.keyId, publicKey: c.publicKey, signature: c.signature });
}

export function fromCheckpointMessage(m: CheckpointMsg): Checkpoint {
  return { size: m.size, head: m.head, timestampMs: m.timestampUnixMs, keyId: m.keyId, publicKey: m.publicKey, signature: m.signature };
}
