/**
 * The payment center as a real child process (`scripwire center serve`), so a
 * crash is a real SIGKILL: no finally blocks, no flushed buffers, whatever the
 * SQLite file holds is all that survives. The harness restarts it on the same
 * port and data directory.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { createWriteStream, type WriteStream } from "node:fs";
import { createServer } from "node:net";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

export const REPO_ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
export const CLI = join(REPO_ROOT, "bin", "scripwire.js");

/** A start that takes longer than this is a failure, not a slow machine. */
export const CENTER_START_TIMEOUT_MS = 30_000;

export interface CenterProcessOptions {
  port: number;
  dataDir: string;
  adminToken: string;
  currencies: string[];
  redeemThreshold: bigint;
  /** Child stderr/stdout are appended here, for the post-mortem. */
  logPath: string;
  /** A database URL instead of the data directory's SQLite file (PostgreSQL failover mode). */
  database?: string;
  /** Extra environment for the child (the harness strips SCRIPWIRE_* otherwise). */
  env?: Record<string, string>;
}

/** A free TCP port on loopback (bound once, then released for the child). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const a = s.address();
      const port = typeof a === "object" && a ? a.port : 0;
      s.close(() => resolve(port));
    });
  });
}

export class CenterProcess {
  private child: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();
  private log: WriteStream;
  private upWaiters: Array<() => void> = [];
  /** True between "listening" and the moment the harness decides to kill it. */
  up = false;
  starts = 0;
  readonly url: string;

  constructor(readonly opts: CenterProcessOptions) {
    this.url = `http://127.0.0.1:${opts.port}`;
    this.log = createWriteStream(opts.logPath, { flags: "a" });
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** `scripwire center init` on the data directory: serve refuses a ledger that was never created. */
  async init(): Promise<void> {
    const o = this.opts;
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("SCRIPWIRE_")));
    const child = spawn(process.execPath, [CLI, "center", "init", "--json", ...(o.database ? ["--database", o.database, "--data-dir", o.dataDir] : ["--data-dir", o.dataDir])], { cwd: REPO_ROOT, env: { ...env, SCRIPWIRE_LOG: "error" }, stdio: ["ignore", "pipe", "pipe"] });
    child.stdout!.pipe(this.log, { end: false });
    child.stderr!.pipe(this.log, { end: false });
    const code = await new Promise<number | null>((resolve) => child.once("exit", (c) => resolve(c)));
    if (code !== 0) throw new Error(`scripwire center init exited ${code}; log: ${o.logPath}`);
  }

  /** Spawns the CLI and resolves once it prints its listening line. */
  async start(): Promise<void> {
    if (this.child) throw new Error("center already running");
    const o = this.opts;
    const args = [
      CLI, "center", "serve", "--json",
      "--port", String(o.port),
      ...(o.database ? ["--database", o.database, "--data-dir", o.dataDir] : ["--data-dir", o.dataDir]),
      "--admin-token", o.adminToken,
      "--currencies", o.currencies.join(","),
      "--redeem-threshold", String(o.redeemThreshold),
    ];
    this.starts++;
    this.log.write(`\n--- start #${this.starts} at ${new Date().toISOString()}\n`);
    // The CLI reads SCRIPWIRE_<FLAG> from the environment (and a config file
    // from SCRIPWIRE_CONFIG): a developer's SCRIPWIRE_DATABASE must never
    // point the torture center at a real ledger. Only the log level passes.
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("SCRIPWIRE_")));
    const child = spawn(process.execPath, args, {
      cwd: REPO_ROOT,
      env: { ...env, SCRIPWIRE_LOG: process.env.SCRIPWIRE_LOG ?? "error", ...o.env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    this.child = child;
    this.exited = new Promise((resolve) => child.once("exit", () => resolve()));
    child.stderr!.pipe(this.log, { end: false });
    await new Promise<void>((resolve, reject) => {
      let buf = "";
      const timer = setTimeout(() => fail(new Error(`center did not start within ${CENTER_START_TIMEOUT_MS} ms (log: ${o.logPath})`)), CENTER_START_TIMEOUT_MS);
      const onExit = (code: number | null, sig: string | null) => fail(new Error(`center exited during start-up (code ${code}, signal ${sig}); log: ${o.logPath}`));
      const fail = (e: Error) => {
        clearTimeout(timer);
        child.off("exit", onExit);
        reject(e);
      };
      child.once("exit", onExit);
      child.stdout!.on("data", (d: Buffer) => {
        this.log.write(d);
        buf += d.toString();
        if (/listening|"url"/.test(buf)) {
          clearTimeout(timer);
          child.off("exit", onExit);
          buf = "";
          resolve();
        }
      });
    });
    this.up = true;
    for (const w of this.upWaiters.splice(0)) w();
  }

  /** SIGKILL: the crash. Marks the center down first so wallets stop burning retransmissions. */
  async kill(): Promise<void> {
    const c = this.child;
    this.up = false;
    if (!c) return;
    this.log.write(`--- SIGKILL at ${new Date().toISOString()}\n`);
    c.kill("SIGKILL");
    await this.exited;
    this.child = undefined;
  }

  /**
   * A power cut: SIGSTOP freezes the center so nothing commits after the cut,
   * `cut` drops the file system's unsynced data (LazyFS), then SIGKILL.
   */
  async powerCut(cut: () => Promise<void>): Promise<void> {
    const c = this.child;
    this.up = false;
    if (!c) return;
    this.log.write(`--- SIGSTOP + power cut + SIGKILL at ${new Date().toISOString()}\n`);
    c.kill("SIGSTOP");
    try {
      await cut();
    } finally {
      c.kill("SIGKILL");
      await this.exited;
      this.child = undefined;
    }
  }

  /** SIGTERM: graceful stop (drains in-flight calls, closes the ledger). */
  async stop(): Promise<void> {
    const c = this.child;
    this.up = false;
    if (!c) return;
    c.kill("SIGTERM");
    const t = setTimeout(() => c.kill("SIGKILL"), 10_000);
    await this.exited;
    clearTimeout(t);
    this.child = undefined;
  }

  /** Resolves when the center is (back) up. */
  waitUp(): Promise<void> {
    if (this.up) return Promise.resolve();
    return new Promise((resolve) => this.upWaiters.push(resolve));
  }

  close(): void {
    this.log.end();
  }
}
