/**
 * The browser wallet's store: IndexedDB at the payment center's origin.
 *
 *   meta/key       a non-extractable AES-GCM-256 CryptoKey (WebCrypto). Script
 *                  on this origin can USE it but never read its bytes, so a
 *                  copy of the database files (a disk image, a sync of the
 *                  profile) does not reveal Custom_Secret or the scrip.
 *   meta/snapshot  {g, iv, ct}: the whole WalletState, encrypted, with the
 *                  generation `g` of the records that continue it.
 *   records/*      {g, iv, ct}: one JournalRecord each (autoIncrement keys
 *                  keep their order), encrypted; those of another
 *                  generation are ignored and removed at the next save.
 *
 * Every write is one readwrite transaction with `durability: "strict"`, so
 * it is on disk (all of it or none of it) when its promise resolves; the
 * wallet sends a value-moving request only after that. Exclusive use across
 * tabs and the payment popup is a Web Lock held from open to close.
 */
import { StateError } from "../errors.js";
import { applyRecord, type JournalRecord, type WalletState, type WalletStore } from "../state.js";
import { randomId } from "../bytes.js";

const DB_VERSION = 1;
const IV_BYTES = 12;

interface Sealed {
  g: string;
  iv: Uint8Array<ArrayBuffer>;
  ct: ArrayBuffer;
}

function req<T>(r: IDBRequest<T>): Promise<T> {
  return new Promise((resolve, reject) => {
    r.onsuccess = () => resolve(r.result);
    r.onerror = () => reject(r.error);
  });
}

function done(tx: IDBTransaction): Promise<void> {
  return new Promise((resolve, reject) => {
    tx.oncomplete = () => resolve();
    tx.onerror = () => reject(tx.error);
    tx.onabort = () => reject(tx.error ?? new Error("IndexedDB transaction aborted"));
  });
}

export class IndexedDbWalletStore implements WalletStore {
  readonly description: string;
  /** Each open/close of the browser wallet is one operation; folding the records on every close would rewrite everything per payment. */
  readonly compactOnClose = false;
  private db: IDBDatabase | undefined;
  private key: CryptoKey | undefined;
  private generation: string | undefined;
  private records = 0;
  private release: (() => void) | undefined;

  constructor(readonly name = "scripwire-wallet") {
    this.description = `IndexedDB ${name} at ${globalThis.location?.origin ?? "?"}`;
  }

  get recordCount(): number {
    return this.records;
  }

  private async open(): Promise<IDBDatabase> {
    if (this.db) return this.db;
    const r = indexedDB.open(this.name, DB_VERSION);
    r.onupgradeneeded = () => {
      r.result.createObjectStore("meta");
      r.result.createObjectStore("records", { autoIncrement: true });
    };
    this.db = await req(r);
    return this.db;
  }

  /** The wallet's key, created (non-extractable) on first use. */
  private async cryptoKey(create: boolean): Promise<CryptoKey | undefined> {
    if (this.key) return this.key;
    const db = await this.open();
    const found = (await req(db.transaction("meta").objectStore("meta").get("key"))) as CryptoKey | undefined;
    if (found) return (this.key = found);
    if (!create) return undefined;
    const key = await crypto.subtle.generateKey({ name: "AES-GCM", length: 256 }, false, ["encrypt", "decrypt"]);
    const tx = db.transaction("meta", "readwrite", { durability: "strict" });
    tx.objectStore("meta").put(key, "key");
    await done(tx);
    return (this.key = key);
  }

  private aad(g: string, what: string): Uint8Array<ArrayBuffer> {
    return new TextEncoder().encode(`scripwire-wallet/1\0${this.name}\0${g}\0${what}`) as Uint8Array<ArrayBuffer>;
  }

  private async seal(g: string, what: string, value: unknown): Promise<Sealed> {
    const key = (await this.cryptoKey(true))!;
    const iv = crypto.getRandomValues(new Uint8Array(IV_BYTES));
    const ct = await crypto.subtle.encrypt({ name: "AES-GCM", iv, additionalData: this.aad(g, what) }, key, new TextEncoder().encode(JSON.stringify(value)));
    return { g, iv, ct };
  }

  private async unseal<T>(s: Sealed, what: string): Promise<T> {
    const key = await this.cryptoKey(false);
    if (!key) throw new StateError("BAD_WALLET_FILE", `${this.description}: the wallet's key is missing (site data partly cleared?)`, { hint: "restore the wallet from its backup file" });
    try {
      const plain = await crypto.subtle.decrypt({ name: "AES-GCM", iv: s.iv, additionalData: this.aad(s.g, what) }, key, s.ct);
      return JSON.parse(new TextDecoder().decode(plain)) as T;
    } catch (e) {
      throw new StateError("BAD_WALLET_FILE", `${this.description}: a stored ${what} does not decrypt (altered, or from another key)`, { cause: e, hint: "restore the wallet from its backup file" });
    }
  }

  async load(): Promise<WalletState | undefined> {
    const db = await this.open();
    const tx = db.transaction(["meta", "records"]);
    const snap = (await req(tx.objectStore("meta").get("snapshot"))) as Sealed | undefined;
    const recs = (await req(tx.objectStore("records").getAll())) as Sealed[];
    this.records = 0;
    if (!snap) return undefined;
    const state = await this.unseal<WalletState>(snap, "snapshot");
    this.generation = snap.g;
    for (const r of recs) {
      if (r.g !== snap.g) continue;
      applyRecord(state, await this.unseal<JournalRecord>(r, `record ${this.records}`));
      this.records++;
    }
    return state;
  }

  async save(state: WalletState): Promise<void> {
    const g = randomId();
    const sealed = await this.seal(g, "snapshot", state);
    const db = await this.open();
    const tx = db.transaction(["meta", "records"], "readwrite", { durability: "strict" });
    tx.objectStore("meta").put(sealed, "snapshot");
    tx.objectStore("records").clear();
    await done(tx);
    this.generation = g;
    this.records = 0;
  }

  async append(record: JournalRecord): Promise<void> {
    if (!this.generation) throw new StateError("BAD_WALLET_FILE", `${this.description} was not loaded or saved before appending`);
    const sealed = await this.seal(this.generation, `record ${this.records}`, record);
    const db = await this.open();
    const tx = db.transaction("records", "readwrite", { durability: "strict" });
    tx.objectStore("records").add(sealed);
    await done(tx);
    this.records++;
  }

  /** Waits for the Web Lock that every tab and popup of this wallet takes, so one operation runs at a time. */
  async lock(): Promise<void> {
    if (this.release || !navigator.locks) return;
    await new Promise<void>((granted) => {
      void navigator.locks.request(`${this.name}/lock`, () => {
        granted();
        return new Promise<void>((r) => (this.release = r));
      });
    });
  }

  async unlock(): Promise<void> {
    this.release?.();
    this.release = undefined;
    this.db?.close();
    this.db = undefined;
  }

  /** Removes everything (tests, "forget this wallet"). */
  async destroy(): Promise<void> {
    await this.unlock();
    await req(indexedDB.deleteDatabase(this.name));
  }
}
