/**
 * Where the ledger's time goes: every SQL statement one payment (S3+S4+S6)
 * runs against SQLite, how often, and what it costs, measured by wrapping
 * better-sqlite3's prepare/exec while the in-process payment loop runs.
 * COMMIT includes the fsync (wall time the event loop is blocked, not CPU).
 *
 *   node --import=tsx bench/ledger-sql.ts [seconds]
 */
import Database from "better-sqlite3";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

interface Stat {
  n: number;
  ns: bigint;
}
const stats = new Map<string, Stat>();
const note = (sql: string, t0: bigint) => {
  const k = sql.replace(/\s+/g, " ").trim().slice(0, 100);
  const s = stats.get(k) ?? { n: 0, ns: 0n };
  s.n++;
  s.ns += process.hrtime.bigint() - t0;
  stats.set(k, s);
};
type Proto = { prepare: (sql: string) => Record<string, (...a: unknown[]) => unknown>; exec: (sql: string) => unknown };
const proto = (Database as unknown as { prototype: Proto }).prototype;
const prepare = proto.prepare;
proto.prepare = function (this: unknown, sql: string) {
  const st = prepare.call(this, sql);
  for (const m of ["run", "get", "all"]) {
    const f = st[m]!.bind(st);
    st[m] = (...a: unknown[]) => {
      const t0 = process.hrtime.bigint();
      try {
        return f(...a);
      } finally {
        note(sql, t0);
      }
    };
  }
  return st;
};
const exec = proto.exec;
proto.exec = function (this: unknown, sql: string) {
  const t0 = process.hrtime.bigint();
  try {
    return exec.call(this, sql);
  } finally {
    note(sql, t0);
  }
};

const { buildWorld } = await import("./world.js");
const { Bench, inprocPayments } = await import("./throughput.js");
const seconds = Number(process.argv[2] ?? 4);
const dir = mkdtempSync(join(tmpdir(), "scripwire-ledger-sql-"));
try {
  const w = await buildWorld({ dir, wallets: 64, adItems: 2 });
  const b = new Bench(w, { warmupMs: 0, durationMs: seconds * 1000, concurrency: 64, connections: 1 }, () => {});
  stats.clear();
  // Inline writer: the statements must run on this thread to be counted here.
  const r = await inprocPayments(b, join(dir, "run"), 0, seconds * 1000, "inline");
  const pays = [...stats.entries()].find(([k]) => k.startsWith("INSERT INTO settlements"))?.[1].n ?? 1;
  const rows = [...stats.entries()].filter(([, s]) => s.n / pays >= 0.01).sort((a, b) => Number(b[1].ns - a[1].ns));
  let total = 0;
  process.stdout.write(`${pays} payments in process; process CPU ${Math.round(r.cpuUsPerPayment)} µs per payment\n\n`);
  process.stdout.write(`${"µs/payment".padStart(10)} ${"per pay".padStart(7)} ${"µs each".padStart(8)}  statement\n`);
  for (const [k, s] of rows) {
    const per = Number(s.ns) / 1000 / pays;
    total += per;
    process.stdout.write(`${per.toFixed(1).padStart(10)} ${(s.n / pays).toFixed(2).padStart(7)} ${(Number(s.ns) / 1000 / s.n).toFixed(1).padStart(8)}  ${k}\n`);
  }
  process.stdout.write(`${total.toFixed(0).padStart(10)}  total wall time in SQLite per payment (COMMIT includes the fsync)\n`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
