/**
 * Wallet persistence: the state a wallet must never lose (its Custom_Secret,
 * its one live scrip, and the journal entry of an operation in flight), behind
 * a small interface so tests and embedders can bring their own storage.
 *
 * `FileWalletStore` writes a JSON file atomically (temp file, fsync, rename,
 * fsync of the directory), mode 0600, and can encrypt the secret with a
 * passphrase (scrypt -> XChaCha20-Poly1305). `MemoryWalletStore` keeps the
 * state in memory for tests.
 */
import { xchacha20poly1305 } from "@noble/ciphers/chacha.js";
import { scrypt } from "@noble/hashes/scrypt.js";
import { randomBytes } from "node:crypto";
import { constants as fsConstants } from "node:fs";
import { open, readFile, rename, unlink } from "node:fs/promises";
import { dirname } from "node:path";
import { AuthenticationError, ScripwireError, StateError } from "./errors.js";

/** The steps at which an operation is journalled; see {@link PendingOperation}. */
export type PendingStep = "M4" | "M6" | "S4" | "S6" | "RN1" | "RD1";
export type DeliveryMethodName = "VIEW" | "SAVE";

/**
 * The journal entry of an operation whose outcome the wallet does not know
 * yet. Written BEFORE the request that may move value leaves (M4, S4, renew,
 * redeem) and again, with the new scrip, before its confirmation (M6, S6);
 * cleared only after the center's completion (M7, the receipt, RN2, RD2).
 * `Wallet.recover()` finishes it by retransmitting `step` with `pCount + 1`.
 */
export interface PendingOperation {
  kind: "earn" | "buy" | "renew" | "redeem";
  step: PendingStep;
  /** TranID (earn, buy) or request id (renew, redeem). */
  id: string;
  /** pCount of the last request sent, or about to be sent, for `step`. */
  pCount: number;
  /** The scrip presented in M4/S4/RN1/RD1 (base64 of the protobuf ScripType). */
  scrip: string;
  /** The scrip received in M5/S5 and presented in M6/S6 (base64 protobuf). */
  newScrip?: string;
  /** The seller's signed offer (base64 protobuf Offer): the M2 permit or the S2 pOder. */
  offer?: string;
  sellerUrl?: string;
  /** Campaign item (earn) or request URL (buy). */
  item?: string;
  method?: DeliveryMethodName;
  /** Redeem: amount asked (decimal string, "0" = everything) and payout account. */
  amount?: string;
  account?: string;
  startedAtMs: number;
}

/** One line of the wallet's history, as stored (amounts as decimal strings). */
export interface HistoryRecord {
  kind: "registered" | "earned" | "bought" | "renewed" | "redeemed";
  atMs: number;
  /** Signed change of the balance, in the currency's smallest unit. */
  amount: string;
  /** Balance afterwards. */
  balance: string;
  currency: string;
  /** Serial of the live scrip afterwards. */
  serial: string;
  tranId?: string;
  requestId?: string;
  /** Campaign item (earned) or request URL (bought). */
  item?: string;
  method?: DeliveryMethodName;
  sellerUrl?: string;
  vendorId?: string;
  payoutId?: string;
  payoutAccount?: string;
  /** Finished by `recover()` after an interruption. */
  recovered?: boolean;
}

/** A receipt kept so the content can be delivered again (S7) without paying again. */
export interface ReceiptRecord {
  tranId: string;
  sellerUrl: string;
  requestUrl: string;
  method: DeliveryMethodName;
  /** Base64 of the protobuf Receipt, exactly as the center signed it. */
  receipt: string;
  paidAtMs: number;
}

/** Everything a wallet persists. JSON-serialisable; bigints are decimal strings, bytes hex or base64. */
export interface WalletState {
  version: 1;
  /** The wallet's id at the center (R1 `wallet_id`), 32 hex characters. */
  walletId: string;
  centerUrl: string;
  /** The pinned 32-byte X25519 key of the center (KUcenter), hex. */
  centerPublicKey: string;
  /** The center's identity as it appears in every scrip's vendor_id. */
  center: { dnsName: string; ipAddr: string; serverName: string; port: number };
  currency: string;
  customId: { secretId: number; serialNumber: string };
  /** Custom_Secret, hex. Encrypted at rest when the store has a passphrase. */
  customSecret: string;
  /** The one live scrip (base64 of the protobuf ScripType). */
  scrip: string;
  pending: PendingOperation | null;
  history: HistoryRecord[];
  receipts: Record<string, ReceiptRecord>;
  createdAtMs: number;
}

/**
 * Where a wallet keeps its state. `save` must be atomic (all or nothing) and
 * durable when its promise resolves: the wallet sends a value-moving request
 * only after the journal entry for it is saved.
 */
export interface WalletStore {
  /** Human-readable location, for messages. */
  readonly description: string;
  /** The saved state, or undefined if none was ever saved. */
  load(): Promise<WalletState | undefined>;
  /** Replaces the saved state atomically and durably. */
  save(state: WalletState): Promise<void>;
  /** Takes exclusive use of the wallet for this process; throws StateError WALLET_LOCKED if another holds it. */
  lock?(): Promise<void>;
  unlock?(): Promise<void>;
}

/**
 * In-memory store for tests and short-lived embedders. Keeps a deep copy, so
 * a state object mutated after `save` does not change what was saved.
 */
export class MemoryWalletStore implements WalletStore {
  readonly description = "memory";
  private json: string | undefined;
  /** Number of saves, for tests that count journal writes. */
  saves = 0;

  constructor(initial?: WalletState) {
    if (initial) this.json = JSON.stringify(initial);
  }

  async load(): Promise<WalletState | undefined> {
    return this.json === undefined ? undefined : (JSON.parse(this.json) as WalletState);
  }

  async save(state: WalletState): Promise<void> {
    this.json = JSON.stringify(state);
    this.saves++;
  }
}

/** File format marker; a file without it is not a wallet. */
const FORMAT = "scripwire-wallet";
const FORMAT_VERSION = 1;
/**
 * scrypt cost for new encrypted files: N = 2^17, r = 8, p = 1 (OWASP's
 * recommendation; 128 MiB, about 0.8 s in pure JS on a 2020 laptop
 * (measured), paid once per open). Stored in the file, so it can change.
 */
export const SCRYPT_LOG_N_DEFAULT = 17;
const SCRYPT_R = 8;
const SCRYPT_P = 1;
const KEY_BYTES = 32;
const SALT_BYTES = 16;
const NONCE_BYTES = 24;
/** A wallet file larger than this is not ours (history and receipts are bounded well below it). */
export const WALLET_FILE_BYTES_MAX = 16 * 1024 * 1024;

type SecretBox =
  | { encoding: "plain"; customSecret: string }
  | { encoding: "scrypt-xchacha20poly1305"; logN: number; r: number; p: number; salt: string; nonce: string; ciphertext: string };

interface WalletFile {
  format: typeof FORMAT;
  version: number;
  state: Omit<WalletState, "customSecret">;
  secret: SecretBox;
}

export interface FileWalletStoreOptions {
  /**
   * Encrypts Custom_Secret at rest. Without it the secret is stored in the
   * clear (the file is still mode 0600). A plain file is encrypted on its next
   * save once a passphrase is given.
   */
  passphrase?: string;
  /** log2 of scrypt's N for newly encrypted files. Default {@link SCRYPT_LOG_N_DEFAULT}; tests use less. */
  scryptLogN?: number;
}

function aad(state: Omit<WalletState, "customSecret">): Uint8Array {
  return new TextEncoder().encode(`${FORMAT}/${FORMAT_VERSION}\0${state.walletId}\0${state.customId.secretId}:${state.customId.serialNumber}`);
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

/**
 * A wallet in one JSON file.
 *
 * @example
 * ```ts
 * const store = new FileWalletStore("wallet.json", { passphrase: process.env.SCRIPWIRE_PASSPHRASE });
 * const wallet = await Wallet.open({ store });
 * ```
 */
export class FileWalletStore implements WalletStore {
  readonly description: string;
  private key: { salt: Uint8Array; logN: number; key: Uint8Array } | undefined;
  private locked = false;

  constructor(
    readonly path: string,
    private readonly opts: FileWalletStoreOptions = {},
  ) {
    if (!path) throw new RangeError('"path" expected a file name');
    if (opts.scryptLogN !== undefined && (!Number.isInteger(opts.scryptLogN) || opts.scryptLogN < 10 || opts.scryptLogN > 22)) {
      throw new RangeError('"scryptLogN" expected an integer in 10..22');
    }
    this.description = path;
  }

  private get lockPath(): string {
    return `${this.path}.lock`;
  }

  /**
   * Creates `<path>.lock` holding our pid. A lock left by a process that no
   * longer runs (a crash, a SIGKILL) is taken over.
   */
  async lock(): Promise<void> {
    if (this.locked) return;
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        const fh = await open(this.lockPath, fsConstants.O_CREAT | fsConstants.O_EXCL | fsConstants.O_WRONLY, 0o600);
        try {
          await fh.writeFile(String(process.pid));
        } finally {
          await fh.close();
        }
        this.locked = true;
        return;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
        const pid = Number((await readFile(this.lockPath, "utf8").catch(() => "")).trim());
        if (Number.isInteger(pid) && pid > 0 && isAlive(pid)) {
          throw new StateError("WALLET_LOCKED", `the wallet ${this.path} is in use by process ${pid}`, {
            hint: `wait for that process to finish; if it is not a scripwire wallet, remove ${this.lockPath}`,
          });
        }
        await unlink(this.lockPath).catch(() => {});
      }
    }
    throw new StateError("WALLET_LOCKED", `could not lock ${this.path}`, { hint: `remove ${this.lockPath} if no wallet is running` });
  }

  async unlock(): Promise<void> {
    if (!this.locked) return;
    this.locked = false;
    await unlink(this.lockPath).catch(() => {});
  }

  async load(): Promise<WalletState | undefined> {
    let text: string;
    try {
      const fh = await open(this.path, "r");
      try {
        const { size } = await fh.stat();
        if (size > WALLET_FILE_BYTES_MAX) throw new StateError("BAD_WALLET_FILE", `${this.path} is ${size} bytes; a wallet file is at most ${WALLET_FILE_BYTES_MAX}`);
        text = await fh.readFile("utf8");
      } finally {
        await fh.close();
      }
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT") return undefined;
      if (e instanceof ScripwireError) throw e;
      throw new StateError("BAD_WALLET_FILE", `cannot read ${this.path}: ${(e as Error).message}`, { cause: e });
    }
    let file: WalletFile;
    try {
      file = JSON.parse(text) as WalletFile;
    } catch (e) {
      throw new StateError("BAD_WALLET_FILE", `${this.path} is not valid JSON`, { cause: e, hint: "restore the wallet file from a backup" });
    }
    if (file?.format !== FORMAT || file.version !== FORMAT_VERSION || !file.state || !file.secret) {
      throw new StateError("BAD_WALLET_FILE", `${this.path} is not a scripwire wallet (format ${FORMAT} version ${FORMAT_VERSION})`);
    }
    return { ...file.state, customSecret: this.openSecret(file) } as WalletState;
  }

  private openSecret(file: WalletFile): string {
    const box = file.secret;
    if (box.encoding === "plain") return box.customSecret;
    if (box.encoding !== "scrypt-xchacha20poly1305") throw new StateError("BAD_WALLET_FILE", `unknown secret encoding in ${this.path}`);
    if (this.opts.passphrase === undefined) {
      throw new StateError("PASSPHRASE_REQUIRED", `${this.path} is encrypted`, { hint: "pass --passphrase or set SCRIPWIRE_PASSPHRASE" });
    }
    if (box.r !== SCRYPT_R || box.p !== SCRYPT_P || !Number.isInteger(box.logN) || box.logN < 10 || box.logN > 22) {
      throw new StateError("BAD_WALLET_FILE", `unsupported scrypt parameters in ${this.path}`);
    }
    const salt = new Uint8Array(Buffer.from(box.salt, "hex"));
    const key = this.deriveKey(salt, box.logN);
    try {
      const plain = xchacha20poly1305(key, new Uint8Array(Buffer.from(box.nonce, "hex")), aad(file.state)).decrypt(new Uint8Array(Buffer.from(box.ciphertext, "hex")));
      return (JSON.parse(new TextDecoder().decode(plain)) as { customSecret: string }).customSecret;
    } catch (e) {
      throw new AuthenticationError("BAD_PASSPHRASE", `cannot decrypt ${this.path}: wrong passphrase, or the file was altered`, {
        cause: e,
        hint: "check the passphrase (--passphrase or SCRIPWIRE_PASSPHRASE)",
      });
    }
  }

  private deriveKey(salt: Uint8Array, logN: number): Uint8Array {
    const hit = this.key;
    if (hit && hit.logN === logN && Buffer.from(hit.salt).equals(Buffer.from(salt))) return hit.key;
    const key = scrypt(this.opts.passphrase!, salt, { N: 2 ** logN, r: SCRYPT_R, p: SCRYPT_P, dkLen: KEY_BYTES });
    this.key = { salt, logN, key };
    return key;
  }

  private sealSecret(state: WalletState): SecretBox {
    if (this.opts.passphrase === undefined) return { encoding: "plain", customSecret: state.customSecret };
    const logN = this.key?.logN ?? this.opts.scryptLogN ?? SCRYPT_LOG_N_DEFAULT;
    const salt = this.key?.salt ?? new Uint8Array(randomBytes(SALT_BYTES));
    const key = this.deriveKey(salt, logN);
    const nonce = new Uint8Array(randomBytes(NONCE_BYTES));
    const { customSecret, ...rest } = state;
    const ct = xchacha20poly1305(key, nonce, aad(rest)).encrypt(new TextEncoder().encode(JSON.stringify({ customSecret })));
    return {
      encoding: "scrypt-xchacha20poly1305",
      logN,
      r: SCRYPT_R,
      p: SCRYPT_P,
      salt: Buffer.from(salt).toString("hex"),
      nonce: Buffer.from(nonce).toString("hex"),
      ciphertext: Buffer.from(ct).toString("hex"),
    };
  }

  /** Writes a temp file (0600), fsyncs it, renames it over the wallet and fsyncs the directory. */
  async save(state: WalletState): Promise<void> {
    const { customSecret: _secret, ...rest } = state;
    const file: WalletFile = { format: FORMAT, version: FORMAT_VERSION, state: rest, secret: this.sealSecret(state) };
    const data = JSON.stringify(file, null, 2) + "\n";
    const tmp = `${this.path}.${process.pid}.${randomBytes(6).toString("hex")}.tmp`;
    const fh = await open(tmp, fsConstants.O_CREAT | fsConstants.O_EXCL | fsConstants.O_WRONLY, 0o600);
    try {
      // The mode argument is filtered by the umask; make 0600 explicit either way.
      await fh.chmod(0o600);
      await fh.writeFile(data);
      await fh.sync();
    } catch (e) {
      await fh.close();
      await unlink(tmp).catch(() => {});
      throw e;
    }
    await fh.close();
    try {
      await rename(tmp, this.path);
    } catch (e) {
      await unlink(tmp).catch(() => {});
      throw e;
    }
    const dir = await open(dirname(this.path), "r");
    try {
      await dir.sync();
    } finally {
      await dir.close();
    }
  }
}

/** For tests: a file's permission bits. */
export async function fileMode(path: string): Promise<number> {
  const fh = await open(path, "r");
  try {
    return (await fh.stat()).mode & 0o777;
  } finally {
    await fh.close();
  }
}
