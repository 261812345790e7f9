/**
 * The center's keys, by generation: scrip-certificate keys (ScripId.secretId),
 * Custom_Secret master keys (CustomId.secretId) and the X25519 registration
 * key. Keys live in the ledger so every replica sees the same generations;
 * the newest generation signs, older ones verify until retired.
 */
import { hmacSha256 } from "../crypto/hash.js";
import { randomBytes } from "node:crypto";
import { customSecretInput } from "../crypto/canonical.js";
import { centerPublicKey, type CenterKeyPair } from "../crypto/registration.js";
import { ed25519, x25519 } from "@noble/curves/ed25519.js";
import type { KeyKind, KeyRecord, Ledger } from "../ledger/ledger.js";
import { ReloadGate } from "./reload-gate.js";

/** Custom_Secret cache bound: derivation is one HMAC, the cache only saves it on hot customers. */
const CUSTOM_SECRET_CACHE_MAX = 10_000;

export class KeyRing {
  private keys = new Map<KeyKind, Map<number, Uint8Array>>();
  private customCache = new Map<string, Uint8Array>();
  private center: CenterKeyPair | undefined;

  private reloading = new Map<KeyKind, Promise<void>>();
  /** Exposed for metrics and tests: how many misses were answered without a reload. */
  readonly gate: ReloadGate;

  constructor(
    private readonly ledger: Ledger,
    clock: () => number = Date.now,
  ) {
    this.gate = new ReloadGate(clock);
  }

  /** Loads keys, creating generation 1 of each family on a fresh ledger. */
  async load(): Promise<void> {
    let all = await this.ledger.listKeys();
    const now = Date.now();
    const missing: KeyRecord[] = [];
    // checkpoint-ed25519 signs the journal's checkpoints (src/ledger/chain.ts): a
    // family of its own, so publishing checkpoints never involves a scrip key.
    for (const kind of ["certificate", "custom", "center-x25519", "checkpoint-ed25519"] as const) {
      if (!all.some((k) => k.kind === kind)) {
        const key = kind === "center-x25519" ? x25519.utils.randomSecretKey() : kind === "checkpoint-ed25519" ? ed25519.utils.randomSecretKey() : new Uint8Array(randomBytes(32));
        missing.push({ kind, secretId: 1, key, createdAt: now });
      }
    }
    // Two replicas starting at once both try; the ledger keeps the first.
    for (const k of missing) await this.ledger.addKey(k);
    if (missing.length) all = await this.ledger.listKeys();
    this.install(all);
  }

  private install(all: KeyRecord[]): void {
    const next = new Map<KeyKind, Map<number, Uint8Array>>();
    for (const k of all) {
      if (!next.has(k.kind)) next.set(k.kind, new Map());
      next.get(k.kind)!.set(k.secretId, k.key);
    }
    this.keys = next;
    const x = this.keys.get("center-x25519")!;
    const sk = x.get(Math.max(...x.keys()))!;
    this.center = { secretKey: sk, publicKey: centerPublicKey(sk) };
  }

  current(kind: KeyKind): { secretId: number; key: Uint8Array } {
    const m = this.keys.get(kind);
    if (!m || m.size === 0) throw new Error(`no ${kind} key loaded`);
    const secretId = Math.max(...m.keys());
    return { secretId, key: m.get(secretId)! };
  }

  get(kind: KeyKind, secretId: number): Uint8Array | undefined {
    return this.keys.get(kind)?.get(secretId);
  }

  /**
   * Looks a generation up. A generation newer than any this replica holds may
   * have been made by another replica's RotateKeys: reload, through the gate
   * (reload-gate.ts) so invented generations cannot make every call read the
   * database. Generations are numbered 1, 2, ... and all are loaded, so an id
   * at or below the newest known one is unknown without asking.
   */
  async find(kind: KeyKind, secretId: number): Promise<Uint8Array | undefined> {
    const k = this.get(kind, secretId);
    if (k) return k;
    const known = this.keys.get(kind);
    if (known && known.size > 0 && secretId <= Math.max(...known.keys())) return undefined;
    if (!Number.isSafeInteger(secretId) || secretId < 1) return undefined;
    await this.reload(kind);
    const found = this.get(kind, secretId);
    if (!found) this.gate.missed(`key/${kind}`);
    return found;
  }

  /** One reload at a time per family; concurrent misses wait for it instead of starting their own. */
  private async reload(kind: KeyKind): Promise<void> {
    const running = this.reloading.get(kind);
    if (running) return running;
    if (!this.gate.allow(`key/${kind}`)) return;
    const p = this.ledger
      .listKeys()
      .then((all) => this.install(all))
      .finally(() => this.reloading.delete(kind));
    this.reloading.set(kind, p);
    return p;
  }

  /** The Custom_Secret of a customer, reloading (gated) when its generation is newer than this replica knows. */
  async findCustomSecret(secretId: number, serial: bigint): Promise<Uint8Array | undefined> {
    if (!(await this.find("custom", secretId))) return undefined;
    return this.customSecret(secretId, serial);
  }

  centerKeyPair(): CenterKeyPair {
    return this.center!;
  }

  /**
   * Called after a rotation here, before RotateKeys answers: the center's
   * hot calls on the writer thread (hot-calls.ts) hold a key ring of their
   * own, which must sign with the new generation from the next call on, not
   * from its next miss.
   */
  afterRotate: ((kind: KeyKind) => Promise<void>) | undefined;

  /** Load every generation again (another key ring in this process rotated). */
  async reloadAll(): Promise<void> {
    this.install(await this.ledger.listKeys());
  }

  async rotate(kind: KeyKind): Promise<number> {
    for (;;) {
      this.install(await this.ledger.listKeys());
      const next = this.current(kind).secretId + 1;
      const key = kind === "center-x25519" ? x25519.utils.randomSecretKey() : kind === "checkpoint-ed25519" ? ed25519.utils.randomSecretKey() : new Uint8Array(randomBytes(32));
      if (await this.ledger.addKey({ kind, secretId: next, key, createdAt: Date.now() })) {
        this.install(await this.ledger.listKeys());
        await this.afterRotate?.(kind);
        return next;
      }
    }
  }

  /** Custom_Secret = HMAC-SHA-256(master[secretId], canonical(custom-secret, secretId, serial)); no table of secrets to leak. */
  customSecret(secretId: number, serial: bigint): Uint8Array | undefined {
    const cacheKey = `${secretId}/${serial}`;
    const hit = this.customCache.get(cacheKey);
    if (hit) return hit;
    const master = this.get("custom", secretId);
    if (!master) return undefined;
    const cs = hmacSha256(master, customSecretInput(secretId, serial));
    if (this.customCache.size >= CUSTOM_SECRET_CACHE_MAX) this.customCache.delete(this.customCache.keys().next().value!);
    this.customCache.set(cacheKey, cs);
    return cs;
  }
}
