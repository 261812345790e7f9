/**
 * The wallet's write-ahead journal: the in-memory state and the only way it
 * changes. Every change is one {@link JournalRecord}, made durable BEFORE the
 * in-memory state moves (and so before any request that depends on it
 * leaves):
 *   - before M4/S4/RN1/RD1: `{ pending }` with the request's inputs;
 *   - when M5/S5 verifies: `{ scrip: new, pending: { step: M6/S6 } }` in one
 *     record, so the new scrip and the step that confirms it cannot part;
 *   - on completion (M7, the receipt, RN2, RD2):
 *     `{ pending: null, history, receipt? }` in one record.
 * A store that can append (FileWalletStore, IndexedDbWalletStore,
 * MemoryWalletStore) writes a few hundred bytes per change instead of the
 * whole history; the journal folds the records into a snapshot when there
 * are {@link JOURNAL_RECORDS_MAX} of them, and on close.
 */
import { StateError } from "./errors.js";
import { applyRecord, cloneState, type JournalRecord, type PendingOperation, type WalletState, type WalletStore } from "./state.js";

/** Records appended before the journal writes a fresh snapshot: bounds replay time and the log's size. */
export const JOURNAL_RECORDS_MAX = 256;

export class Journal {
  private current: WalletState | undefined;
  private records = 0;

  private constructor(private readonly store: WalletStore) {}

  /** Loads the store (snapshot plus records). */
  static async open(store: WalletStore): Promise<Journal> {
    const j = new Journal(store);
    j.current = await store.load();
    if (j.current && j.current.version !== 1) throw new StateError("BAD_WALLET_FILE", `wallet state version ${String(j.current.version)} is not supported`);
    j.records = store.recordCount ?? 0;
    return j;
  }

  get state(): WalletState | undefined {
    return this.current;
  }

  /** The state, or NOT_REGISTERED. */
  get st(): WalletState {
    if (!this.current) {
      throw new StateError("NOT_REGISTERED", "this wallet is not registered with a payment center", {
        hint: "run 'scripwire wallet register --center <url>' first",
      });
    }
    return this.current;
  }

  get pending(): PendingOperation | null {
    return this.current?.pending ?? null;
  }

  /** The first state of a wallet (R2): a snapshot. */
  async create(state: WalletState): Promise<void> {
    await this.store.save(state);
    this.current = state;
    this.records = 0;
  }

  /** Makes `r` durable, then applies it in memory. */
  async commit(r: JournalRecord): Promise<void> {
    const next = applyRecord(cloneState(this.st), r);
    if (this.store.append && this.records < JOURNAL_RECORDS_MAX) {
      await this.store.append(r);
      this.records++;
    } else {
      await this.store.save(next);
      this.records = 0;
    }
    this.current = next;
  }

  setPending(p: PendingOperation | null): Promise<void> {
    return this.commit({ pending: p });
  }

  /** Records the pCount about to be sent for the journalled step (only if it changed). */
  async setPCount(pCount: number): Promise<void> {
    const p = this.st.pending;
    if (p && p.pCount !== pCount) await this.commit({ pending: { ...p, pCount } });
  }

  /** Folds appended records into one snapshot (on close, unless the store says not to). */
  async compact(): Promise<void> {
    if (this.store.compactOnClose === false) return;
    if (this.current && this.records > 0) {
      await this.store.save(this.current);
      this.records = 0;
    }
  }
}
