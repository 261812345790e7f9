/**
 * Where the center's key-encryption key (src/crypto/kek.ts) comes from, and
 * the file permissions of everything secret at rest.
 *
 * The KEK is kept OUTSIDE the database, in one of:
 * - a file (`--kek-file`, default `<data-dir>.kek`: next to the data
 *   directory, never inside it, so a copy of the data directory does not
 *   carry it): one KEK per line as 64 hex characters, the first wraps, the
 *   others only unwrap (a rotation in progress). Mode 0600; a file others can
 *   read is refused.
 * - an environment variable named by `--kek-env` (e.g. a secret injected by
 *   the orchestrator): the same list, comma-separated.
 *
 * Replicas share it by configuration: the same file content or the same
 * variable on every replica.
 *
 * Rotation without downtime ({@link rotateKekFile}): a new KEK is put first in
 * the file, the old ones stay after it, and every key in the ledger is
 * re-wrapped in one transaction. A running center that meets a key wrapped by
 * a KEK it does not know re-reads its file once (KeyEncryptionKeys' reload),
 * so it keeps serving throughout.
 */
import { randomBytes } from "node:crypto";
import { chmodSync, closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, statSync, unlinkSync, writeSync } from "node:fs";
import { basename, dirname, join, resolve } from "node:path";
import { KEK_BYTES, kekFingerprint, KeyEncryptionKeys } from "../crypto/kek.js";

export interface KekSource {
  /** Path of the KEK file. */
  file?: string;
  /** Name of the environment variable holding the KEK(s). Takes precedence over `file`. */
  env?: string;
}

/** A file or directory with secrets that others can read: the message says the fix. */
export class InsecurePermissionsError extends Error {
  readonly reason = "INSECURE_PERMISSIONS";
  readonly exitCode = 1;
  constructor(message: string) {
    super(message);
    this.name = "InsecurePermissionsError";
  }
}

export class KekConfigError extends Error {
  readonly reason = "KEK_CONFIG";
  readonly exitCode = 1;
  constructor(message: string) {
    super(message);
    this.name = "KekConfigError";
  }
}

/** Default KEK file for a data directory: `<data-dir>.kek`, beside it. */
export function defaultKekFile(dataDir: string): string {
  const abs = resolve(dataDir);
  return join(dirname(abs), `${basename(abs)}.kek`);
}

const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");

function parseKeks(text: string, where: string): Uint8Array[] {
  const keks = text
    .split("\n")
    .flatMap((line) => line.replace(/#.*/, "").split(","))
    .map((l) => l.trim())
    .filter(Boolean)
    .map((l) => {
      if (!/^[0-9a-fA-F]{64}$/.test(l)) throw new KekConfigError(`${where}: each key-encryption key must be ${KEK_BYTES * 2} hex characters (generate one with: openssl rand -hex 32)`);
      return new Uint8Array(Buffer.from(l, "hex"));
    });
  if (keks.length === 0) throw new KekConfigError(`${where} holds no key-encryption key`);
  return keks;
}

/** Throws InsecurePermissionsError when `path` can be read or written by group or others. */
export function assertPrivate(path: string, what: string): void {
  if (process.platform === "win32" || !existsSync(path)) return;
  const st = statSync(path);
  const mode = st.mode & 0o777;
  if ((mode & 0o077) !== 0) {
    const fix = st.isDirectory() ? `chmod 700 ${path}` : `chmod 600 ${path}`;
    throw new InsecurePermissionsError(`${what} ${path} is readable by other users (mode ${mode.toString(8).padStart(4, "0")}); refusing to start. Fix: ${fix}`);
  }
}

/**
 * The data directory (0700) and every ledger file (0600: the database, its
 * -wal and -shm) must be private to this user, whatever the umask was when
 * they were made.
 */
export function assertPrivateLedgerFiles(database: string): void {
  assertPrivate(dirname(resolve(database)), "the data directory");
  for (const suffix of ["", "-wal", "-shm", "-journal"]) {
    const f = database + suffix;
    // An empty file holds nothing yet (and an empty ledger is refused on its own grounds).
    if (existsSync(f) && statSync(f).size > 0) assertPrivate(f, "the ledger file");
  }
}

/** Writes `text` to `path` atomically with mode 0600 (temp file, fsync, rename, fsync of the directory). */
function writePrivate(path: string, text: string): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const tmp = `${path}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`;
  const fd = openSync(tmp, "wx", 0o600);
  try {
    chmodSync(tmp, 0o600); // the mode argument is filtered by the umask
    writeSync(fd, text);
    fsyncSync(fd);
  } catch (e) {
    closeSync(fd);
    unlinkSync(tmp);
    throw e;
  }
  closeSync(fd);
  renameSync(tmp, path);
  const dfd = openSync(dirname(path), "r");
  try {
    fsyncSync(dfd);
  } finally {
    closeSync(dfd);
  }
}

function fileText(keks: readonly Uint8Array[]): string {
  return (
    "# scripwire key-encryption keys: the first wraps the ledger's keys, the others only unwrap.\n" +
    "# Keep this file out of database backups; every replica needs the same content.\n" +
    keks.map((k) => `${hex(k)}  # ${hex(kekFingerprint(k))}`).join("\n") +
    "\n"
  );
}

function readKekFile(file: string): Uint8Array[] {
  assertPrivate(file, "the key-encryption key file");
  return parseKeks(readFileSync(file, "utf8"), file);
}

export interface LoadedKek {
  keks: KeyEncryptionKeys;
  /** Set when the KEK was generated now: where it went, for the start-up message. */
  created?: string;
  /** Where the KEK came from, for messages ("file x" / "environment variable Y"). */
  source: string;
}

/**
 * Loads the KEK(s). With `create`, a missing KEK file is generated (32
 * random bytes, mode 0600) and `created` says where it went; a missing
 * environment variable is never invented.
 */
export function loadKek(src: KekSource, opts: { create: boolean }): LoadedKek {
  if (src.env) {
    const v = process.env[src.env];
    if (!v) throw new KekConfigError(`--kek-env names ${src.env}, but that environment variable is empty or not set (put a key there: openssl rand -hex 32)`);
    return { keks: new KeyEncryptionKeys(parseKeks(v, `environment variable ${src.env}`)), source: `environment variable ${src.env}` };
  }
  if (!src.file) throw new KekConfigError("no key-encryption key configured: give --kek-file or --kek-env");
  const file = src.file;
  let created: string | undefined;
  if (!existsSync(file)) {
    if (!opts.create) {
      throw new KekConfigError(
        `the key-encryption key file ${file} does not exist, and this ledger's keys need it. Restore it from where you keep it (every replica uses the same one), or point --kek-file / --kek-env at it`,
      );
    }
    writePrivate(file, fileText([new Uint8Array(randomBytes(KEK_BYTES))]));
    created = file;
  }
  return { keks: new KeyEncryptionKeys(readKekFile(file), () => readKekFile(file)), created, source: `file ${file}` };
}

/**
 * Puts a new KEK first in the file, keeping the old ones after it for
 * unwrapping. The caller then re-wraps the ledger (`ledger.protectKeys`).
 * Returns the new KEK set.
 */
export function rotateKekFile(file: string): { keks: KeyEncryptionKeys; previous: string[]; current: string } {
  const old = readKekFile(file);
  const next = [new Uint8Array(randomBytes(KEK_BYTES)), ...old];
  writePrivate(file, fileText(next));
  const keks = new KeyEncryptionKeys(next, () => readKekFile(file));
  return { keks, previous: old.map((k) => hex(kekFingerprint(k))), current: keks.currentFingerprint };
}

/**
 * After a rotation has re-wrapped every key (on every ledger that used the
 * file), the older KEKs can go: keeps only the first.
 */
export function retireOldKeks(file: string): string[] {
  const keks = readKekFile(file);
  writePrivate(file, fileText(keks.slice(0, 1)));
  return keks.slice(1).map((k) => hex(kekFingerprint(k)));
}
