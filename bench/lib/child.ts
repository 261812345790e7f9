/**
 * Starts bench/server.ts in a child process and talks to it over the fork
 * IPC channel (ready / stats / close). See bench/server.ts for the modes.
 */
import { fork, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import type { ServerOptions } from "../server.js";

const SERVER = fileURLToPath(new URL("../server.ts", import.meta.url));
const START_TIMEOUT_MS = 60_000;

export interface ProcStats {
  cpuUserUs: number;
  cpuSystemUs: number;
  rssBytes: number;
  heapUsedBytes: number;
  /** Linux: CPU of the event-loop thread, and time the process's threads waited for a CPU (bench/server.ts threadTimes). */
  mainThreadUs?: number;
  runqWaitUs?: number;
  /** Centers with a sealing loop: events sealed so far and the sealing delay (commit to seal). */
  sealed?: number;
  sealDelayP50Ms?: number;
  sealDelayP99Ms?: number;
  sealErrors?: number;
  /** Parent's clock when the reply arrived (ms, performance.now()). */
  at: number;
}

export interface ChildOptions {
  /** Write a V8 CPU profile of the server into this directory (node --cpu-prof). */
  cpuProfDir?: string;
  /** Extra environment for the child. */
  env?: Record<string, string>;
}

export class ServerChild {
  private seq = 0;
  private waiting = new Map<number, (s: ProcStats) => void>();
  private waitingProfile = new Map<number, () => void>();
  private waitingFail = new Map<number, (e: Error) => void>();
  private exited: Error | undefined;
  private stderr = "";

  private constructor(
    private readonly proc: ChildProcess,
    readonly url: string,
  ) {}

  static async start(opts: ServerOptions, co: ChildOptions = {}): Promise<ServerChild> {
    const execArgv = ["--import=tsx"];
    if (co.cpuProfDir) execArgv.push("--cpu-prof", `--cpu-prof-dir=${co.cpuProfDir}`);
    const proc = fork(SERVER, [JSON.stringify(opts)], {
      execArgv,
      stdio: ["ignore", "ignore", "pipe", "ipc"],
      env: { ...process.env, ...co.env },
    });
    let stderr = "";
    proc.stderr!.on("data", (c: Buffer) => {
      stderr += c.toString();
      if (stderr.length > 64_000) stderr = stderr.slice(-32_000);
    });
    const url = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`bench server (${opts.mode}) did not start in ${START_TIMEOUT_MS} ms\n${stderr}`)), START_TIMEOUT_MS);
      proc.on("message", (m: { type: string; url?: string }) => {
        if (m.type === "ready") {
          clearTimeout(timer);
          resolve(m.url!);
        }
      });
      proc.once("exit", (code) => {
        clearTimeout(timer);
        reject(new Error(`bench server (${opts.mode}) exited with ${code} before it was ready\n${stderr}`));
      });
    });
    const child = new ServerChild(proc, url);
    child.stderr = stderr;
    proc.once("exit", (code, signal) => {
      child.exited = new Error(`bench server (${opts.mode}) exited (${signal ?? code})\n${child.stderr.slice(-2000)}`);
      for (const [, cb] of child.waitingFail) cb(child.exited);
      child.waitingFail.clear();
    });
    proc.stderr!.on("data", (c: Buffer) => {
      child.stderr += c.toString();
      if (child.stderr.length > 64_000) child.stderr = child.stderr.slice(-32_000);
    });
    proc.on("message", (m: { type: string; id?: number } & Omit<ProcStats, "at">) => {
      if (m.type === "profile") {
        const cb = child.waitingProfile.get(m.id!);
        child.waitingProfile.delete(m.id!);
        cb?.();
      }
      if (m.type === "stats") {
        const cb = child.waiting.get(m.id!);
        child.waiting.delete(m.id!);
        cb?.({ ...m, type: undefined, id: undefined, at: performance.now() } as ProcStats);
      }
    });
    return child;
  }

  get pid(): number {
    return this.proc.pid!;
  }

  stats(): Promise<ProcStats> {
    if (this.exited) return Promise.reject(this.exited);
    const id = ++this.seq;
    return new Promise<ProcStats>((resolve, reject) => {
      this.waiting.set(id, (s) => {
        this.waitingFail.delete(id);
        resolve(s);
      });
      this.waitingFail.set(id, reject);
      this.proc.send({ type: "stats", id });
    });
  }

  /** Starts the V8 sampling profiler in the child (node:inspector). */
  profileStart(): Promise<void> {
    const id = ++this.seq;
    return new Promise<void>((resolve) => {
      this.waitingProfile.set(id, resolve);
      this.proc.send({ type: "profile-start", id });
    });
  }

  /** Stops the profiler and writes the .cpuprofile to `path`. */
  profileStop(path: string): Promise<void> {
    const id = ++this.seq;
    return new Promise<void>((resolve) => {
      this.waitingProfile.set(id, resolve);
      this.proc.send({ type: "profile-stop", id, path });
    });
  }

  log(): string {
    return this.stderr;
  }

  /** Asks the child to shut down cleanly (so a CPU profile gets written); kills it after 10 s. */
  async close(): Promise<void> {
    if (this.proc.exitCode !== null || this.proc.signalCode !== null || this.exited) return;
    const exited = new Promise<void>((r) => this.proc.once("exit", () => r()));
    this.proc.send({ type: "close" });
    const timer = setTimeout(() => this.proc.kill("SIGKILL"), 10_000);
    await exited;
    clearTimeout(timer);
  }
}

/** CPU microseconds (user + system) between two snapshots. */
export function cpuBetween(a: ProcStats, b: ProcStats): number {
  return b.cpuUserUs + b.cpuSystemUs - (a.cpuUserUs + a.cpuSystemUs);
}
