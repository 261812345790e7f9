/**
 * Section 7: the same payment loop (S3+S4+S6 over HTTP/2) against the
 * PostgreSQL ledger, with one center process and with two center processes
 * sharing one database (the replica path), measured in interleaved rounds.
 *
 * PostgreSQL comes from SCRIPWIRE_TEST_PG_URL (a role with CREATEDB). Without
 * it, a Debian PostgreSQL installation (/usr/lib/postgresql/N/bin) is started
 * as a private throwaway cluster on a free port, unless this runs as root
 * (initdb refuses root); otherwise the section prints why it was skipped.
 *
 * The world (vendor, campaign, 64 funded wallets) is built once on SQLite by
 * world.ts; its rows are copied into a fresh PostgreSQL database, and the
 * two-center run gets its own copy (CREATE DATABASE ... TEMPLATE).
 */
import Database from "better-sqlite3";
import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { openPostgresLedger } from "../src/ledger/postgres.js";
import { ServerChild, type ProcStats } from "./lib/child.js";
import { H2Client } from "./lib/h2client.js";
import { closedLoop, type LoadResult, type Recorder } from "./lib/load.js";
import { perWallet, type Bench, type LoadWallet } from "./throughput.js";
import type { World } from "./world.js";

/** Tables the ledger's hot path reads and writes; the chain tables (events, checkpoints) start empty and fill as the run writes. */
const COPY_TABLES = ["keys", "vendors", "vendor_keys", "accounts", "campaigns", "customers", "scrips", "transactions", "rewards", "requests", "payouts", "transfers", "settlements"];
/** Identity columns PostgreSQL assigns itself (copying them would leave its sequences behind). */
const SKIP_COLUMNS: Record<string, string[]> = { transfers: ["transfer_id"], settlements: ["sequence"] };

export interface PgReport {
  skipped?: string;
  server?: string;
  oneCenter?: PgRow;
  twoCenters?: PgRow;
}

export interface PgRow {
  label: string;
  paymentsPerSec: number;
  callsPerSec: number;
  serverCpuUsPerCall: number;
  serverCores: number;
  p50Us: number;
  p99Us: number;
  errors: number;
  firstError?: string;
}

interface Cluster {
  url: string;
  describe: string;
  stop(): void;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.listen(0, "127.0.0.1", () => {
      const a = s.address();
      s.close(() => (typeof a === "object" && a ? resolve(a.port) : reject(new Error("no port"))));
    });
  });
}

/** A private cluster from Debian's packages, or the reason there is none. */
async function startDebianCluster(): Promise<Cluster | string> {
  const base = "/usr/lib/postgresql";
  if (!existsSync(base)) return "SCRIPWIRE_TEST_PG_URL not set and PostgreSQL is not installed (/usr/lib/postgresql missing)";
  const version = readdirSync(base).sort().pop();
  const bin = version ? join(base, version, "bin") : "";
  if (!bin || !existsSync(join(bin, "initdb"))) return "SCRIPWIRE_TEST_PG_URL not set and no initdb under /usr/lib/postgresql";
  if (process.getuid?.() === 0) return "SCRIPWIRE_TEST_PG_URL not set; Debian PostgreSQL is installed but initdb refuses to run as root";
  const dir = mkdtempSync(join(tmpdir(), "scripwire-bench-pg-"));
  const init = spawnSync(join(bin, "initdb"), ["-D", join(dir, "data"), "-U", "bench", "--auth=trust", "-E", "UTF8"], { encoding: "utf8" });
  if (init.status !== 0) {
    rmSync(dir, { recursive: true, force: true });
    return `initdb failed: ${init.stderr.trim().split("\n").pop()}`;
  }
  const port = await freePort();
  const start = spawnSync(join(bin, "pg_ctl"), ["-D", join(dir, "data"), "-l", join(dir, "log"), "-w", "-o", `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=on`, "start"], {
    encoding: "utf8",
  });
  if (start.status !== 0) {
    rmSync(dir, { recursive: true, force: true });
    return `pg_ctl start failed: ${start.stderr.trim().split("\n").pop()}`;
  }
  return {
    url: `postgres://bench@127.0.0.1:${port}/postgres`,
    describe: `private cluster (PostgreSQL ${version}) on port ${port}`,
    stop() {
      spawnSync(join(bin, "pg_ctl"), ["-D", join(dir, "data"), "-m", "fast", "stop"]);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function admin(url: string, sql: string): Promise<void> {
  const c = new pg.Client({ connectionString: url, connectionTimeoutMillis: 10_000 });
  await c.connect();
  try {
    await c.query(sql);
  } finally {
    await c.end();
  }
}

function dbUrl(base: string, name: string): string {
  const u = new URL(base);
  u.pathname = `/${name}`;
  return u.toString();
}

/** Creates the schema with the ledger's own migrate(), then copies the template's rows in. */
async function seed(world: World, url: string): Promise<void> {
  const ledger = openPostgresLedger(url);
  await ledger.migrate();
  await ledger.close();
  const src = new Database(world.templateDb, { readonly: true });
  src.defaultSafeIntegers(true);
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    await c.query("BEGIN");
    for (const table of COPY_TABLES) {
      const rows = src.prepare(`SELECT * FROM ${table}`).all() as Record<string, unknown>[];
      if (rows.length === 0) continue;
      const cols = Object.keys(rows[0]!).filter((k) => !(SKIP_COLUMNS[table] ?? []).includes(k));
      const CHUNK = 500;
      for (let i = 0; i < rows.length; i += CHUNK) {
        const part = rows.slice(i, i + CHUNK);
        const params: unknown[] = [];
        const values = part.map((r) => `(${cols.map((k) => (params.push(typeof r[k] === "bigint" ? String(r[k]) : r[k]), `$${params.length}`)).join(", ")})`);
        await c.query(`INSERT INTO ${table} (${cols.join(", ")}) VALUES ${values.join(", ")} ON CONFLICT DO NOTHING`, params);
      }
    }
    await c.query("COMMIT");
  } finally {
    src.close();
    await c.end();
  }
}

export async function runPostgres(bench: Bench, world: World, o: { rounds: number; connections: number; concurrency: number; prewarmMs: number }, status: (m: string) => void): Promise<PgReport> {
  let cluster: Cluster | undefined;
  let base = process.env.SCRIPWIRE_TEST_PG_URL?.trim();
  let server = "SCRIPWIRE_TEST_PG_URL";
  if (!base) {
    const c = await startDebianCluster();
    if (typeof c === "string") return { skipped: c };
    cluster = c;
    base = c.url;
    server = c.describe;
  }
  const tag = randomBytes(4).toString("hex");
  const one = `scripwire_bench_${tag}_1`;
  const two = `scripwire_bench_${tag}_2`;
  const children: ServerChild[] = [];
  const clients: H2Client[] = [];
  try {
    status(`PostgreSQL (${server}): seeding the bench world`);
    await admin(base, `CREATE DATABASE ${one}`);
    await seed(world, dbUrl(base, one));
    await admin(base, `CREATE DATABASE ${two} TEMPLATE ${one}`);
    const start = async (db: string) => {
      const child = await ServerChild.start({ mode: "stack-center", dbPath: dbUrl(base!, db) });
      const client = new H2Client(child.url, o.connections);
      await client.connect();
      children.push(child);
      clients.push(client);
      return { child, client };
    };
    const a = await start(one);
    const b1 = await start(two);
    const b2 = await start(two);
    const setups = [
      { key: "oneCenter" as const, label: "PostgreSQL, one center process", parts: [{ ...a, wallets: bench.wallets() }] },
      {
        key: "twoCenters" as const,
        label: "PostgreSQL, two center processes on one database",
        // Each wallet always talks to the same center (half the wallets each), as behind a sticky load balancer.
        parts: (() => {
          const ws = bench.wallets();
          const half = Math.ceil(ws.length / 2);
          return [
            { ...b1, wallets: ws.slice(0, half) },
            { ...b2, wallets: ws.slice(half) },
          ];
        })(),
      },
    ];
    let guess = 200;
    const run = async (s: (typeof setups)[number], warmupMs: number, durationMs: number): Promise<LoadResult> => {
      const workers: Array<{ lw: LoadWallet; op: (lw: LoadWallet, rec: Recorder) => Promise<void> }> = [];
      for (const p of s.parts) {
        bench.refillOffers(p.wallets, perWallet(guess, warmupMs + durationMs, o.concurrency));
        const op = bench.paymentOp(p.client, "connect");
        for (const lw of p.wallets) workers.push({ lw, op });
      }
      const snapshot = async (): Promise<ProcStats> => {
        const all = await Promise.all(s.parts.map((p) => p.child.stats()));
        return {
          cpuUserUs: all.reduce((x, y) => x + y.cpuUserUs, 0),
          cpuSystemUs: all.reduce((x, y) => x + y.cpuSystemUs, 0),
          rssBytes: Math.max(...all.map((y) => y.rssBytes)),
          heapUsedBytes: all.reduce((x, y) => x + y.heapUsedBytes, 0),
          at: Math.max(...all.map((y) => y.at)),
        };
      };
      return closedLoop({ workers, warmupMs, durationMs, op: (w, rec) => w.op(w.lw, rec), snapshot });
    };
    status("PostgreSQL: warming up");
    for (const s of setups) await run(s, 0, o.prewarmMs / 2);
    const results: Record<string, LoadResult[]> = { oneCenter: [], twoCenters: [] };
    for (let round = 1; round <= o.rounds; round++) {
      for (const s of setups) {
        status(`PostgreSQL round ${round}/${o.rounds}: ${s.label}`);
        const r = await run(s, bench.timing.warmupMs, bench.timing.durationMs);
        guess = Math.max(guess, r.opsPerSec);
        results[s.key]!.push(r);
      }
    }
    const report: PgReport = { server };
    for (const s of setups) {
      const rs = results[s.key]!;
      const secs = rs.reduce((x, r) => x + r.seconds, 0);
      const calls = rs.reduce((x, r) => x + r.calls, 0);
      const ops = rs.reduce((x, r) => x + r.ops, 0);
      const cpu = rs.reduce((x, r) => x + r.serverCpuUsPerCall * r.calls, 0);
      const sorted = (f: (r: LoadResult) => number) => rs.map(f).sort((x, y) => x - y)[Math.floor(rs.length / 2)]!;
      report[s.key] = {
        label: s.label,
        paymentsPerSec: ops / secs,
        callsPerSec: calls / secs,
        serverCpuUsPerCall: cpu / Math.max(1, calls),
        serverCores: cpu / 1e6 / secs,
        p50Us: sorted((r) => r.callLatency.p50Us),
        p99Us: sorted((r) => r.callLatency.p99Us),
        errors: rs.reduce((x, r) => x + r.errors, 0),
        firstError: rs.find((r) => r.firstError)?.firstError,
      };
    }
    return report;
  } finally {
    for (const c of clients) c.close();
    for (const c of children) await c.close().catch(() => {});
    for (const db of [two, one]) await admin(base, `DROP DATABASE IF EXISTS ${db} WITH (FORCE)`).catch(() => {});
    cluster?.stop();
  }
}
