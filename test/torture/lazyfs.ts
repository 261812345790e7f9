/**
 * LazyFS (../shared/tools/lazyfs, dsrhaslab/lazyfs): a FUSE file system with
 * its own page cache that drops every unsynced write on command, i.e. a power
 * cut. A SIGKILL keeps the kernel's page cache, so it cannot test fsync; this
 * can. The "disk" is `root`; the center's data directory is `mnt`.
 *
 * Needs root (FUSE with allow_other), /dev/fuse and the built binary: the
 * harness looks at $SCRIPWIRE_LAZYFS_BIN, then the CI build location.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { createReadStream, createWriteStream, existsSync, mkdirSync, readFileSync, writeFileSync, type WriteStream } from "node:fs";
import { join } from "node:path";

/** Where .ci/run builds it (bash ../shared/tools/lazyfs/build.sh "$dir"). */
export const LAZYFS_CI_BIN = "/tmp/scripwire-lazyfs/src/lazyfs/build/lazyfs";
/** LazyFS pre-allocates its cache at mount: 256 MiB mounts in ~1 s and holds far more than a torture ledger. */
const CACHE_SIZE = "256mb";
const MOUNT_TIMEOUT_MS = 30_000;
const CLEAR_TIMEOUT_MS = 30_000;
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** The binary's path, or why LazyFS cannot run here. */
export function findLazyFs(): { bin: string } | { skip: string } {
  if (process.getuid?.() !== 0) return { skip: "LazyFS needs root (FUSE allow_other); not root" };
  if (!existsSync("/dev/fuse")) return { skip: "no /dev/fuse on this machine" };
  for (const bin of [process.env.SCRIPWIRE_LAZYFS_BIN, LAZYFS_CI_BIN]) if (bin && existsSync(bin)) return { bin };
  return { skip: `LazyFS is not built (set SCRIPWIRE_LAZYFS_BIN, or run: bash ../shared/tools/lazyfs/build.sh /tmp/scripwire-lazyfs)` };
}

function mounted(mnt: string): boolean {
  return readFileSync("/proc/mounts", "utf8").split("\n").some((l) => l.split(" ")[1] === mnt);
}

export class LazyFs {
  private proc: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();
  readonly root: string;
  readonly mnt: string;
  private readonly faults: string;
  private readonly done: string;
  private readonly config: string;
  private readonly logPath: string;
  private log: WriteStream;
  cuts = 0;

  constructor(
    private readonly bin: string,
    dir: string,
  ) {
    this.root = join(dir, "disk");
    this.mnt = join(dir, "mnt");
    this.faults = join(dir, "lazyfs-faults.fifo");
    this.done = join(dir, "lazyfs-done.fifo");
    this.config = join(dir, "lazyfs.toml");
    // LazyFS's own argument loop drops a --config-path that contains "-o",
    // in any case (it takes it for a FUSE option), and then aborts reading
    // config/default.toml: a temporary directory named "…-Ou7Gsp" failed
    // one run in about thirty.
    if (/-o/i.test(this.config)) throw new Error(`LazyFS cannot take a config path containing "-o" (any case): ${this.config}; choose another directory`);
    mkdirSync(this.root, { recursive: true });
    mkdirSync(this.mnt, { recursive: true });
    this.logPath = join(dir, "lazyfs.log");
    this.log = createWriteStream(this.logPath, { flags: "a" });
    writeFileSync(
      this.config,
      `[faults]\nfifo_path="${this.faults}"\nfifo_path_completed="${this.done}"\n\n[cache]\napply_eviction=false\n\n[cache.simple]\ncustom_size="${CACHE_SIZE}"\nblocks_per_page=1\n\n[filesystem]\nlog_all_operations=false\nlogfile="${join(dir, "lazyfs-fs.log")}"\n`,
    );
  }

  async mount(): Promise<void> {
    const p = spawn(this.bin, [this.mnt, "--config-path", this.config, "-o", "allow_other", "-o", "modules=subdir", "-o", `subdir=${this.root}`, "-f"], { stdio: ["ignore", "pipe", "pipe"] });
    this.proc = p;
    p.stdout!.pipe(this.log, { end: false });
    p.stderr!.pipe(this.log, { end: false });
    this.exited = new Promise((r) => p.once("exit", () => r()));
    const t0 = Date.now();
    // "mounted" appears before the fifo reader is ready; the log line "running LazyFS" marks both.
    while (!mounted(this.mnt) || !existsSync(this.faults)) {
      // An abort (LazyFS's C++ terminate) ends it by a signal, with no exit code.
      if (p.exitCode !== null || p.signalCode !== null) throw new Error(`lazyfs exited (${p.exitCode ?? p.signalCode}) while mounting (see ${this.logPath})`);
      if (Date.now() - t0 > MOUNT_TIMEOUT_MS) throw new Error("lazyfs did not mount in time");
      await sleep(50);
    }
  }

  /** The power cut: every write not yet fsynced is dropped. Freeze the writer first. */
  async clearCache(): Promise<void> {
    const answer = new Promise<string>((resolve, reject) => {
      let buf = "";
      const rs = createReadStream(this.done, { encoding: "utf8" });
      const timer = setTimeout(() => {
        rs.destroy();
        reject(new Error("lazyfs did not confirm clear-cache"));
      }, CLEAR_TIMEOUT_MS);
      rs.on("data", (d) => {
        buf += d;
        if (buf.includes("finished::clear-cache")) {
          clearTimeout(timer);
          rs.destroy();
          resolve(buf);
        }
      });
      rs.on("error", (e) => {
        clearTimeout(timer);
        reject(e);
      });
    });
    writeFileSync(this.faults, "lazyfs::clear-cache\n");
    await answer;
    this.cuts++;
  }

  async unmount(): Promise<void> {
    if (!this.proc) return;
    for (let i = 0; i < 100 && mounted(this.mnt); i++) {
      const r = spawnSync("fusermount3", ["-u", this.mnt], { encoding: "utf8" });
      if (r.status === 0) break;
      await sleep(100);
    }
    await Promise.race([this.exited, sleep(10_000)]);
    this.proc.kill("SIGKILL");
    this.proc = undefined;
  }

  async remount(): Promise<void> {
    await this.unmount();
    await this.mount();
  }

  close(): void {
    this.log.end();
  }
}
