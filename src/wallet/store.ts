/**
 * Node wallet persistence: `FileWalletStore`, the state a wallet must never
 * lose (its Custom_Secret, its one live scrip, and the journal entry of an
 * operation in flight) in a file. The interface and the in-memory store are
 * platform-neutral and live in state.ts; they are re-exported here.
 *
 * Two files: `<path>`, a JSON snapshot written atomically (temp file, fsync,
 * rename, fsync of the directory), mode 0600, whose secret can be encrypted
 * with a passphrase (scrypt -> XChaCha20-Poly1305); and `<path>.journal`,
 * the records appended since (one JSON line each, fdatasync'd before the
 * wallet acts on it). A payment appends three or four short lines instead of
 * rewriting the file each time; the snapshot is rewritten when the journal
 * compacts (on close, and every JOURNAL_RECORDS_MAX records).
 */
import { xchacha20poly1305 } from "@noble/ciphers/chacha.js";
import { scrypt } from "@noble/hashes/scrypt.js";
import { randomBytes, timingSafeEqual } from "node:crypto";
import { constants as fsConstants } from "node:fs";
import { open, readFile, rename, unlink } from "node:fs/promises";
import { dirname } from "node:path";
import { hmac } from "@noble/hashes/hmac.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { bytesToHex } from "@noble/hashes/utils.js";
import { AuthenticationError, ScripwireError, StateError } from "./errors.js";
import { applyRecord, type JournalRecord, type WalletState, type WalletStore } from "./state.js";

export { MemoryWalletStore, applyRecord } from "./state.js";
export type { DeliveryMethodName, HistoryRecord, JournalRecord, PendingOperation, PendingStep, ReceiptRecord, WalletState, WalletStore } from "./state.js";

/** File format marker; a file without it is not a wallet. */
const FORMAT = "scripwire-wallet";
/**
 * 2: the whole file is authenticated (`mac`, and a keyed check on every
 * journal line). 1: only walletId and customId were (the AEAD's associated
 * data), so the center URL, the pinned center key, the scrip and the history
 * could be edited unnoticed; version-1 files are still read, and written
 * back as version 2 on the next save.
 */
const FORMAT_VERSION = 2;
const FORMAT_VERSIONS_READ = [1, 2];
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
  /**
   * The generation of `<path>.journal` that continues this snapshot. Lines of
   * another generation (left by a crash between the snapshot's rename and
   * the journal's removal) are older than the snapshot and are ignored.
   */
  journal?: string;
  /**
   * HMAC-SHA-256 over every other field (canonical JSON), keyed from the
   * passphrase's scrypt key (encrypted files) or from Custom_Secret (plain
   * files). Version 2 files only.
   */
  mac?: string;
}

/** JSON with object keys sorted at every level: the bytes the file MAC covers, whatever order fields were written in. */
function canonicalJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(",")}]`;
  if (v && typeof v === "object") {
    return `{${Object.keys(v as object)
      .filter((k) => (v as Record<string, unknown>)[k] !== undefined)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonicalJson((v as Record<string, unknown>)[k])}`)
      .join(",")}}`;
  }
  return JSON.stringify(v);
}

const MAC_LABEL = new TextEncoder().encode("scripwire-wallet/file-mac/v2");

function fileMac(macKey: Uint8Array, file: Omit<WalletFile, "mac">): string {
  return bytesToHex(hmac(sha256, macKey, new TextEncoder().encode(canonicalJson(file))));
}

/** One line of `<path>.journal`: generation, sequence, record, and a check that tells a torn last line from a complete one. */
interface JournalLine {
  g: string;
  n: number;
  r: JournalRecord;
  c: string;
}

/**
 * The check on a journal line: with a MAC key (version 2), HMAC-SHA-256
 * truncated to 128 bits, so an edited line is refused; without (version 1),
 * a plain hash that only tells a torn line from a whole one.
 */
function lineCheck(g: string, n: number, r: JournalRecord, macKey?: Uint8Array): string {
  const input = new TextEncoder().encode(`${g}\0${n}\0${JSON.stringify(r)}`);
  return macKey ? bytesToHex(hmac(sha256, macKey, input)).slice(0, 32) : bytesToHex(sha256(input)).slice(0, 16);
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

/**
 * Associated data of the encrypted secret. It names the file's version, so a
 * version-2 file relabelled as version 1 (to skip its MAC) no longer decrypts.
 */
function aad(state: Omit<WalletState, "customSecret">, version = FORMAT_VERSION): Uint8Array {
  return new TextEncoder().encode(`${FORMAT}/${version}\0${state.walletId}\0${state.customId.secretId}:${state.customId.serialNumber}`);
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
  /** Key of the file MAC and the journal lines' checks (version 2), set by load and save. */
  private macKey: Uint8Array | undefined;

  /**
   * The MAC key: from the passphrase's scrypt key when the file is encrypted
   * (only the passphrase holder can re-sign an edit), else from Custom_Secret
   * (then anyone who can read the file can re-sign it: a plain file is
   * protected against corruption and careless edits, not against its reader).
   */
  private macKeyFor(box: SecretBox, customSecretHex: string): Uint8Array {
    const base = box.encoding === "plain" ? new Uint8Array(Buffer.from(customSecretHex, "hex")) : this.deriveKey(new Uint8Array(Buffer.from(box.salt, "hex")), box.logN);
    return hmac(sha256, base, MAC_LABEL);
  }
  private locked = false;
  /** Generation of the journal continuing the snapshot last loaded or saved, and the records in it. */
  private generation: string | undefined;
  private records = 0;
  /** Byte length of the journal without a torn last line found by `replay`; the next append cuts the file there first. */
  private truncateTo: number | undefined;

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

  /** The append-only record log continuing the snapshot. */
  get journalPath(): string {
    return `${this.path}.journal`;
  }

  get recordCount(): number {
    return this.records;
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
    if (file?.format !== FORMAT || !FORMAT_VERSIONS_READ.includes(file.version) || !file.state || !file.secret) {
      throw new StateError("BAD_WALLET_FILE", `${this.path} is not a scripwire wallet (format ${FORMAT} version ${FORMAT_VERSIONS_READ.join(" or ")})`);
    }
    const state = { ...file.state, customSecret: this.openSecret(file) } as WalletState;
    this.macKey = file.version >= 2 ? this.macKeyFor(file.secret, state.customSecret) : undefined;
    if (this.macKey) {
      const { mac, ...rest } = file;
      if (typeof mac !== "string" || !constantTimeEqualHex(mac, fileMac(this.macKey, rest))) {
        throw new AuthenticationError("WALLET_FILE_ALTERED", `${this.path} was altered: its content does not match its MAC`, {
          hint: "restore the wallet file from a backup, or restore the wallet from its recovery code",
        });
      }
    }
    this.generation = file.journal;
    this.records = 0;
    if (file.journal) this.records = await this.replay(state, file.journal);
    return state;
  }

  /**
   * Applies the journal's lines of generation `g` to `state`. A last line
   * that is torn (no newline, bad JSON or a failing check) was being written
   * when the process died: its request never left (the wallet sends only
   * after the append is durable), so it is dropped. A bad line anywhere
   * else is damage, not a crash.
   */
  private async replay(state: WalletState, g: string): Promise<number> {
    let text: string;
    try {
      text = await readFile(this.journalPath, "utf8");
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT") return 0;
      throw new StateError("BAD_WALLET_FILE", `cannot read ${this.journalPath}: ${(e as Error).message}`, { cause: e });
    }
    const lines = text.split("\n");
    let last = lines.length - 1;
    while (last >= 0 && lines[last] === "") last--;
    let n = 0;
    this.truncateTo = undefined;
    for (let i = 0; i < lines.length; i++) {
      const raw = lines[i]!;
      if (raw === "") continue;
      let line: JournalLine | undefined;
      try {
        line = JSON.parse(raw) as JournalLine;
      } catch {
        line = undefined;
      }
      const ok = line && typeof line.n === "number" && typeof line.c === "string" && constantTimeEqualHex(line.c, lineCheck(line.g, line.n, line.r, this.macKey));
      if (!ok) {
        if (i === last) {
          // Cut it off before the next append, or it would end up in the middle.
          this.truncateTo = Buffer.byteLength(lines.slice(0, i).map((l) => `${l}\n`).join(""));
          break;
        }
        throw new StateError("BAD_WALLET_FILE", `${this.journalPath} line ${i + 1} is damaged`, { hint: "restore the wallet from a backup" });
      }
      if (line!.g !== g) continue;
      if (line!.n !== n) throw new StateError("BAD_WALLET_FILE", `${this.journalPath} line ${i + 1} is out of sequence`);
      applyRecord(state, line!.r);
      n++;
    }
    return n;
  }

  /** Appends one record and fdatasyncs it (and, for a new journal file, its directory entry). */
  async append(record: JournalRecord): Promise<void> {
    if (!this.generation) throw new StateError("BAD_WALLET_FILE", `${this.path} was not loaded or saved before appending`);
    const n = this.records;
    const data = JSON.stringify({ g: this.generation, n, r: record, c: lineCheck(this.generation, n, record, this.macKey) } satisfies JournalLine) + "\n";
    const fh = await open(this.journalPath, fsConstants.O_CREAT | fsConstants.O_APPEND | fsConstants.O_WRONLY, 0o600);
    let created = false;
    try {
      if (this.truncateTo !== undefined) {
        await fh.truncate(this.truncateTo);
        this.truncateTo = undefined;
      }
      created = (await fh.stat()).size === 0;
      if (created) await fh.chmod(0o600);
      await fh.writeFile(data);
      await fh.datasync();
    } finally {
      await fh.close();
    }
    if (created) await this.syncDir();
    this.records = n + 1;
  }

  private async syncDir(): Promise<void> {
    const dir = await open(dirname(this.path), "r");
    try {
      await dir.sync();
    } finally {
      await dir.close();
    }
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
      const plain = xchacha20poly1305(key, new Uint8Array(Buffer.from(box.nonce, "hex")), aad(file.state, file.version)).decrypt(new Uint8Array(Buffer.from(box.ciphertext, "hex")));
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

  /**
   * Writes a temp file (0600), fsyncs it, renames it over the wallet and
   * fsyncs the directory; then removes the journal, whose records the
   * snapshot now holds (the new generation disowns them even if the removal
   * is lost in a crash).
   */
  async save(state: WalletState): Promise<void> {
    const { customSecret: _secret, ...rest } = state;
    const generation = randomBytes(8).toString("hex");
    const unsigned: Omit<WalletFile, "mac"> = { format: FORMAT, version: FORMAT_VERSION, state: rest, secret: this.sealSecret(state), journal: generation };
    const macKey = this.macKeyFor(unsigned.secret, state.customSecret);
    const file: WalletFile = { ...unsigned, mac: fileMac(macKey, unsigned) };
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
    await this.syncDir();
    this.macKey = macKey;
    this.generation = generation;
    this.records = 0;
    await unlink(this.journalPath).catch(() => {});
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

/** Compares two hex strings in constant time (lengths may differ: then false). */
function constantTimeEqualHex(a: string, b: string): boolean {
  const x = Buffer.from(a, "utf8");
  const y = Buffer.from(b, "utf8");
  return x.length === y.length && timingSafeEqual(x, y);
}
