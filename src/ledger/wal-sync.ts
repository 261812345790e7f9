/**
 * The WAL's fsync, off the thread that runs the ledger's transactions.
 *
 * Why: the center's hot calls run on the ledger's writer thread
 * (src/center/hot-calls.ts). With synchronous=FULL every COMMIT blocked that
 * thread for one fdatasync of the WAL (3-6 ms on the disk issue 13 measured,
 * 0.2-0.3 ms on a quiet one), so no payment was
 * hashed, checked or written meanwhile: the thread that checks hashes waited
 * for the disk, which is what issue 13 set out to end. Here the writer
 * commits with synchronous=NORMAL (the WAL frames reach the OS, not the disk)
 * and this module runs fdatasync(WAL) on libuv's thread pool. The writer
 * thread goes on with the next group of calls while the disk works.
 *
 * Why this is as durable as synchronous=FULL: in WAL mode FULL means "sync
 * the WAL after appending a commit's frames", which is exactly this
 * fdatasync, done later; under NORMAL, checkpoints still sync the WAL before
 * copying it into the database and the database after (SQLite, PRAGMA
 * synchronous). fdatasync flushes the inode whichever descriptor wrote it;
 * the WAL's inode is checked on every sync in case the file was replaced,
 * and when it is new the directory is fsynced too (SQLite does that itself
 * under FULL, on the WAL's first sync). The WAL's checksums chain every frame
 * to the ones before it, so a later commit can never survive a power loss
 * that an earlier one did not.
 *
 * What it costs in rules: a commit is visible to readers before it is
 * durable. So nothing derived from the database may leave before the sync
 * that covers every commit it could have seen: the engine delivers each
 * job's outcome only after `durable(seq)` and returns a read only after
 * `settled()`, and readers on other threads wait on the shared
 * {@link DurableHorizon}. A failed fdatasync is not retried
 * (after a failed fsync the kernel may have dropped the dirty pages): every
 * waiter is rejected and the ledger stops.
 *
 * The power-loss torture on LazyFS (test/torture --power-loss, run by CI)
 * checks the claim end to end: it drops everything not synced and then
 * demands every acknowledged payment back.
 */
import { closeSync, fdatasync, fstatSync, fsync, openSync, statSync } from "node:fs";
import { dirname } from "node:path";
import { DurableHorizon, horizonFailed } from "./durable-horizon.js";

type SyncFn = (fd: number, cb: (err: NodeJS.ErrnoException | null) => void) => void;

export interface WalSyncOptions {
  /** Shared with readers on other threads; updated on every begin and sync. */
  horizon?: DurableHorizon;
  /** TEST ONLY: replaces fs.fdatasync (a test holds or fails the sync). */
  fdatasync?: SyncFn;
}

export class WalSync {
  private readonly horizon: DurableHorizon | undefined;
  private readonly syncFn: SyncFn;
  private walFd: number | undefined;
  private walIno = -1;
  /** Sequence of the last commit begun, of the last one finished (COMMIT returned or failed), and the highest durable. */
  private begun = 0;
  private finished = 0;
  private synced = 0;
  private syncing = false;
  private failure: Error | undefined;
  private waiters: Array<{ seq: number; resolve: () => void; reject: (e: Error) => void }> = [];
  private syncEnded: Array<() => void> = [];

  constructor(
    private readonly dbPath: string,
    opts: WalSyncOptions = {},
  ) {
    this.horizon = opts.horizon;
    this.syncFn = opts.fdatasync ?? fdatasync;
  }

  get failed(): Error | undefined {
    return this.failure;
  }

  /** Right before COMMIT; returns the commit's sequence number. */
  begin(): number {
    const seq = ++this.begun;
    this.horizon?.begin(seq);
    return seq;
  }

  /** Right after COMMIT returned (or failed: its number is then simply covered by the next sync). */
  end(seq: number): void {
    this.finished = seq;
    if (this.synced < seq) this.startSync();
  }

  /** Resolves once every commit up to `seq` is on disk. */
  durable(seq: number): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    if (this.synced >= seq) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      this.waiters.push({ seq, resolve, reject });
      this.startSync();
    });
  }

  /** Resolves once every commit finished so far (all a reader could have seen) is on disk. */
  settled(): Promise<void> {
    return this.durable(this.finished);
  }

  /**
   * Resolves when no fdatasync is running (at once if none is). The engine
   * commits its next group only then: one commit per sync keeps groups as
   * large as when COMMIT itself synced (each commit rewrites the shared
   * pages: account rows, sequence and index roots), while the calls of the
   * next group do their hashing and reads during the sync.
   */
  notSyncing(): Promise<void> {
    if (!this.syncing) return Promise.resolve();
    return new Promise((resolve) => this.syncEnded.push(resolve));
  }

  /** No sync running or owed. */
  get idle(): boolean {
    return !this.syncing && this.waiters.length === 0 && this.synced >= this.finished;
  }

  private startSync(): void {
    if (this.syncing || this.failure || this.synced >= this.finished) return;
    this.syncing = true;
    // Only commits that have returned are on the OS's side of write(): those
    // are what this fdatasync makes durable.
    const target = this.finished;
    let fd: number;
    let fresh: boolean;
    try {
      ({ fd, fresh } = this.walDescriptor());
    } catch (e) {
      this.fail(e);
      return;
    }
    const done = (err: unknown) => (err ? this.fail(err) : this.afterSync(target));
    this.syncFn(fd, (err) => {
      if (err || !fresh) return done(err);
      // A new WAL file: its directory entry must be durable too.
      try {
        const dir = openSync(dirname(this.dbPath), "r");
        fsync(dir, (derr) => {
          closeSync(dir);
          done(derr);
        });
      } catch (e) {
        done(e);
      }
    });
  }

  private afterSync(target: number): void {
    this.synced = target;
    this.syncing = false;
    for (const r of this.syncEnded.splice(0)) r();
    this.horizon?.durable(this.synced);
    // Waiters arrive in sequence order: durable(seq) follows end(seq), and settled() asks for the latest end.
    let i = 0;
    while (i < this.waiters.length && this.waiters[i]!.seq <= this.synced) i++;
    for (const w of this.waiters.splice(0, i)) w.resolve();
    if (this.synced < this.finished) this.startSync();
  }

  private walDescriptor(): { fd: number; fresh: boolean } {
    const wal = `${this.dbPath}-wal`;
    const ino = statSync(wal).ino;
    if (this.walFd !== undefined && ino === this.walIno) return { fd: this.walFd, fresh: false };
    if (this.walFd !== undefined) closeSync(this.walFd);
    this.walFd = openSync(wal, "r");
    this.walIno = fstatSync(this.walFd).ino;
    return { fd: this.walFd, fresh: true };
  }

  private fail(e: unknown): void {
    this.syncing = false;
    for (const r of this.syncEnded.splice(0)) r();
    const cause = e instanceof Error ? e.message : String(e);
    const err = horizonFailed();
    err.message += ` (${cause})`;
    this.failure = err;
    this.horizon?.fail();
    for (const w of this.waiters) w.reject(err);
    this.waiters = [];
  }

  close(): void {
    if (this.walFd !== undefined) closeSync(this.walFd);
    this.walFd = undefined;
  }
}
