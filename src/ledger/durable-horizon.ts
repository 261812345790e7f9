/**
 * How far the ledger's commits are on disk, shared between the writer thread
 * and readers on other threads (a SharedArrayBuffer: no message, no wait on
 * a port).
 *
 * Why it exists: the writer thread commits with synchronous=NORMAL and
 * fdatasyncs the WAL on the thread pool afterwards (wal-sync.ts), so a commit
 * becomes visible to other connections BEFORE it is durable. A reader on the
 * event loop (registration, restore, balance, the settlement stream) must
 * therefore not hand out what it read until every commit it could have seen
 * is on disk. The writer stores the sequence number of a commit before it
 * runs COMMIT ("begun"), and the highest sequence known durable after each
 * fdatasync; a reader loads "begun" after its snapshot was taken (so it is at
 * least every commit the snapshot contains) and waits until "durable"
 * reaches it.
 */
import { LedgerError } from "./ledger.js";

/** Atomics.waitAsync (V8, Node >= 16), typed here: the project's TypeScript lib predates it. */
const waitAsync = (Atomics as unknown as {
  waitAsync(a: BigInt64Array, index: number, value: bigint): { async: false; value: string } | { async: true; value: Promise<string> };
}).waitAsync;

const BEGUN = 0;
const DURABLE = 1;
const FAILED = 2;
/** Values of the FAILED cell. */
const FSYNC_FAILED = 1n;
const WRITER_GONE = 2n;

export class DurableHorizon {
  private readonly cells: BigInt64Array;

  constructor(readonly buffer: SharedArrayBuffer = new SharedArrayBuffer(3 * 8)) {
    this.cells = new BigInt64Array(buffer);
  }

  // ---- writer side

  /** Call right before COMMIT: from now on a reader may see this commit. */
  begin(seq: number): void {
    Atomics.store(this.cells, BEGUN, BigInt(seq));
  }

  /** Every commit up to `seq` is on disk. */
  durable(seq: number): void {
    Atomics.store(this.cells, DURABLE, BigInt(seq));
    Atomics.notify(this.cells, DURABLE);
  }

  /** The WAL could not be synced: readers stop handing out anything. */
  fail(): void {
    this.stop(FSYNC_FAILED);
  }

  // ---- either side

  /** The writer thread is gone (it failed or exited): nothing will become durable any more, so waiting readers fail. */
  writerGone(): void {
    this.stop(WRITER_GONE);
  }

  private stop(why: bigint): void {
    Atomics.compareExchange(this.cells, FAILED, 0n, why);
    Atomics.notify(this.cells, DURABLE);
  }

  // ---- reader side

  /**
   * Resolves once every commit that a snapshot taken before this call could
   * contain is durable; rejects if the writer's fdatasync failed.
   */
  async visibleIsDurable(): Promise<void> {
    const need = Atomics.load(this.cells, BEGUN);
    for (;;) {
      const failed = Atomics.load(this.cells, FAILED);
      if (failed === FSYNC_FAILED) throw horizonFailed();
      if (failed === WRITER_GONE) throw new LedgerError("WRITER_FAILED", "the ledger's writer thread stopped before this read's data was on disk");
      const now = Atomics.load(this.cells, DURABLE);
      if (now >= need) return;
      const w = waitAsync(this.cells, DURABLE, now);
      if (w.async) await w.value;
    }
  }
}

export function horizonFailed(): LedgerError {
  return new LedgerError("FSYNC_FAILED", "the ledger's writer could not fsync its WAL and stopped; restart the center (the last commits may not be on disk)");
}
