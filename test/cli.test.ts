/**
 * The `scripwire` command as a user runs it: real child processes, real
 * ports, real SQLite files.
 */
import test from "ava";
import Database from "better-sqlite3";
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync, chmodSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";

const BIN = join(process.cwd(), "bin", "scripwire.js");
const TOKEN = "cli-test-admin-token-0123456789";

function run(args: string[], env: Record<string, string> = {}) {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: "utf8", env: { ...process.env, SCRIPWIRE_LOG: "silent", ...env }, timeout: 60_000 });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

async function serveCenter(dataDir: string): Promise<{ url: string; stop: () => Promise<void> }> {
  const init = run(["center", "init", "--data-dir", dataDir, "--json"]);
  if (init.code !== 0) throw new Error(`center init failed: ${init.err}`);
  const child = spawn(process.execPath, [BIN, "center", "serve", "--port", "0", "--data-dir", dataDir, "--json"], {
    env: { ...process.env, SCRIPWIRE_LOG: "silent", SCRIPWIRE_ADMIN_TOKEN: TOKEN },
    stdio: ["ignore", "pipe", "inherit"],
  });
  const line = await new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stdout! }).once("line", resolve);
    child.once("exit", (c) => reject(new Error(`center exited ${c}`)));
  });
  const { url } = JSON.parse(line) as { url: string };
  return {
    url,
    stop: () =>
      new Promise<void>((resolve) => {
        child.once("exit", () => resolve());
        child.kill("SIGTERM");
      }),
  };
}

test("every command answers --help with exit 0", (t) => {
  const commands = [
    [],
    ["center", "serve"],
    ["center", "init"],
    ["center", "admin", "create-vendor"],
    ["seller", "settlements"],
    ["audit"],
    ["wallet", "buy"],
  ];
  for (const c of commands) {
    const r = run([...c, "--help"]);
    t.is(r.code, 0, `${c.join(" ")} --help: ${r.err}`);
    t.regex(r.out, /Usage: scripwire/);
  }
});

test("usage errors exit 2 and say what is wrong", (t) => {
  const unknown = run(["center", "serve", "--no-such-flag", "x"]);
  t.is(unknown.code, 2);
  t.regex(unknown.err, /unknown option --no-such-flag/);
  t.is(run(["frobnicate"]).code, 2);
  const audit = run(["audit", "--database", join(tmpdir(), "does-not-exist.sqlite")]);
  t.is(audit.code, 2);
  t.regex(audit.err, /no ledger database/);
});

test("center serve refuses a missing or empty ledger; center init creates it once", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "scripwire-cli-init-"));
  t.teardown(() => {
    rmSync(dir, { recursive: true, force: true });
    rmSync(`${dir}.kek`, { force: true }); // the KEK is kept beside the data directory
  });
  const serve = () => run(["center", "serve", "--port", "0", "--data-dir", dir], { SCRIPWIRE_ADMIN_TOKEN: TOKEN });
  const missing = serve();
  t.is(missing.code, 1);
  t.regex(missing.err, /no ledger database file/);
  t.regex(missing.err, /scripwire center init/);
  t.false(existsSync(join(dir, "center.sqlite")), "serve must not create the file it refused");
  // An empty file (what a power cut with synchronous=OFF can leave) is refused too.
  writeFileSync(join(dir, "center.sqlite"), "");
  t.regex(serve().err, /file is empty/);
  rmSync(join(dir, "center.sqlite"));
  // A SQLite file with a schema but no keys: never initialised.
  const empty = new Database(join(dir, "center.sqlite"));
  empty.exec("CREATE TABLE keys (kind TEXT, secret_id INTEGER, key BLOB, created_at INTEGER)");
  empty.close();
  chmodSync(join(dir, "center.sqlite"), 0o600); // else it is refused first for being readable by others
  const noKeys = serve();
  t.is(noKeys.code, 1);
  t.regex(noKeys.err, /holds no center keys/);
  rmSync(join(dir, "center.sqlite"));
  const init = run(["center", "init", "--data-dir", dir, "--json"]);
  t.is(init.code, 0, init.err);
  t.true(JSON.parse(init.out).keys.includes("certificate#1"));
  const again = run(["center", "init", "--data-dir", dir]);
  t.is(again.code, 1);
  t.regex(again.err, /already exists/);
});

test("center serve, admin commands, and audit on a live and on a corrupted ledger", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "scripwire-cli-"));
  t.teardown(() => {
    rmSync(dir, { recursive: true, force: true });
    rmSync(`${dir}.kek`, { force: true }); // the KEK is kept beside the data directory
  });
  const center = await serveCenter(dir);
  try {
    const admin = (args: string[]) => run(["center", "admin", ...args, "--center", center.url, "--json"], { SCRIPWIRE_ADMIN_TOKEN: TOKEN });
    const vendor = admin(["create-vendor", "--vendor-id", "mall-cli"]);
    t.is(vendor.code, 0, vendor.err);
    t.regex(JSON.parse(vendor.out).vendorSecret, /^[0-9a-f]{64}$/);
    t.is(admin(["create-campaign", "--campaign-id", "c1", "--vendor-id", "mall-cli", "--cap", "500"]).code, 0);
    const funded = admin(["fund-campaign", "--campaign-id", "c1", "--amount", "300", "--request-id", "f1"]);
    t.is(JSON.parse(funded.out).budget, "300");
    const again = admin(["fund-campaign", "--campaign-id", "c1", "--amount", "300", "--request-id", "f1"]);
    t.is(JSON.parse(again.out).budget, "300", "the same request id funds once");
    const over = admin(["fund-campaign", "--campaign-id", "c1", "--amount", "300", "--request-id", "f2"]);
    t.is(over.code, 1, "beyond the cap is refused");
    t.regex(over.out, /CAP_EXCEEDED/);
    const wrong = run(["center", "admin", "list-campaigns", "--center", center.url, "--admin-token", "not-the-right-token-at-all"]);
    t.not(wrong.code, 0);
    t.regex(wrong.err, /ADMIN_TOKEN_WRONG/);
    const live = admin(["audit"]);
    t.is(live.code, 0, live.out);
    t.true(JSON.parse(live.out).ok);
    // A signed journal checkpoint, fetched with no credentials and kept in a file.
    let cp = run(["center", "checkpoint", "--center", center.url, "--out", join(dir, "cp.json"), "--json"]);
    for (let i = 0; i < 50 && cp.code !== 0; i++) {
      await new Promise((r) => setTimeout(r, 200));
      cp = run(["center", "checkpoint", "--center", center.url, "--out", join(dir, "cp.json"), "--json"]);
    }
    t.is(cp.code, 0, cp.err);
    t.regex(JSON.parse(cp.out).signature, /^[0-9a-f]{128}$/);
  } finally {
    await center.stop();
  }
  const offline = run(["audit", "--data-dir", dir, "--checkpoint", join(dir, "cp.json"), "--require-sealed"]);
  t.is(offline.code, 0, offline.err + offline.out);
  t.regex(offline.out, /audit ok/);
  t.regex(offline.out, /saved checkpoint of size \d+ verified and extended/);

  // Mint money behind the ledger's back: the audit must notice.
  const db = new Database(join(dir, "center.sqlite"));
  db.prepare("UPDATE accounts SET balance = balance + 1 WHERE account_id = 'campaign/c1'").run();
  db.close();
  const corrupt = run(["audit", "--data-dir", dir, "--json"]);
  t.is(corrupt.code, 5);
  const report = JSON.parse(corrupt.out);
  t.false(report.ok);
  t.true(report.problems.some((p: string) => p.includes("campaign/c1")), report.problems.join("\n"));
});

test("the demo walks every message and ends with a passing audit", (t) => {
  const r = run(["demo"]);
  t.is(r.code, 0, r.err);
  for (const m of ["R1 →", "R2 ←", "M1 →", "M2 ←", "M3 →", "M4 →", "M5 ←", "M6 →", "M7 ←", "S1 →", "S2 ←", "S3 →", "S4 →", "S5 ←", "S6 →", "S7 ←"]) {
    t.true(r.out.includes(m), `demo output shows ${m}`);
  }
  t.regex(r.out, /refunded 15 KRW of 30/);
  t.regex(r.out, /recovery code \(shown at registration\): SW1-/);
  t.regex(r.out, /restored customer \d+: 25 KRW \(with the 15 KRW refund, folded into a fresh scrip\)/);
  t.regex(r.out, /balance: 25 KRW/, "10 after buying, + 15 refunded");
  t.regex(r.out, /audit ok/);
  t.regex(r.out, /every message was exchanged/);
});
