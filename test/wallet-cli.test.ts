/**
 * `scripwire wallet ...` against real servers. Most cases run the CLI's
 * `main()` in this process (stdout/stderr captured, so the tests are serial);
 * two run `bin/scripwire.js` as a real process to prove the exit codes reach
 * the shell.
 */
import test from "ava";
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { main } from "../src/cli/main.js";
import { startWorld, type World } from "./helpers/world.js";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
let world: World;
let dir: string;

test.before(async () => {
  world = await startWorld();
  dir = await mkdtemp(join(tmpdir(), "scripwire-cli-"));
});
test.after.always(async () => {
  await world?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

interface Out {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `scripwire <args>` in process, capturing its output. */
async function cli(...args: string[]): Promise<Out> {
  const out = { stdout: "", stderr: "" };
  const ow = process.stdout.write.bind(process.stdout);
  const ew = process.stderr.write.bind(process.stderr);
  process.stdout.write = ((c: string | Uint8Array) => ((out.stdout += String(c)), true)) as typeof process.stdout.write;
  process.stderr.write = ((c: string | Uint8Array) => ((out.stderr += String(c)), true)) as typeof process.stderr.write;
  try {
    return { code: await main(args), ...out };
  } finally {
    process.stdout.write = ow;
    process.stderr.write = ew;
  }
}

function spawnCli(args: string[]): Promise<Out> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(ROOT, "bin", "scripwire.js"), ...args], { cwd: dir, env: { ...process.env, SCRIPWIRE_LOG: "silent" }, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

test.serial("an unregistered wallet exits 1 with a hint", async (t) => {
  const r = await cli("wallet", "balance", "--wallet", join(dir, "nobody.json"));
  t.is(r.code, 1);
  t.regex(r.stderr, /not registered/);
  t.regex(r.stderr, /hint: .*scripwire wallet register/);
  const j = await cli("wallet", "history", "--wallet", join(dir, "nobody.json"), "--json");
  t.is(j.code, 1);
  t.like(JSON.parse(j.stdout), { reason: "NOT_REGISTERED", exitCode: 1 });
});

test.serial("register, earn, buy VIEW and SAVE, balance, history, redeliver, renew, redeem", async (t) => {
  const wallet = join(dir, "kim.json");
  const common = ["--wallet", wallet, "--seller", world.sellerUrl];

  const reg = await cli("wallet", "register", "--wallet", wallet, "--center", world.centerUrl, "--name", "Kim", "--json");
  t.is(reg.code, 0, reg.stderr);
  const r = JSON.parse(reg.stdout);
  t.regex(r.centerPublicKey, /^[0-9a-f]{64}$/);

  const earn = await cli("wallet", "earn", ...common, "--item", world.quiz.itemId, "--answer", world.quiz.answer);
  t.is(earn.code, 0, earn.stderr);
  t.regex(earn.stdout, /earned 50 KRW for quiz-1; balance 50 KRW/);
  t.regex(earn.stderr, /M1 → seller: answering quiz-1/);
  t.regex(earn.stderr, /M5 ← center: new scrip 50 KRW/);
  t.regex(earn.stderr, /M7 ← center: issuance confirmed/);
  t.is((await cli("wallet", "earn", ...common, "--item", world.survey.itemId, "--answer", "more")).code, 0);

  const view = await cli("wallet", "buy", ...common, "--url", world.catalog.article.requestUrl);
  t.is(view.code, 0, view.stderr);
  t.regex(view.stdout, /<h1>Hash cash<\/h1>/);
  t.regex(view.stderr, /paid 30 KRW .* balance 40 KRW/);

  const out = join(dir, "article.html");
  const save = await cli("wallet", "buy", ...common, "--url", world.catalog.article.requestUrl, "--method", "SAVE", "--out", out, "--json");
  t.is(save.code, 0, save.stderr);
  const s = JSON.parse(save.stdout);
  t.like(s, { method: "SAVE", price: "30", balance: "10", delivered: true, savedTo: out });
  t.regex(await readFile(out, "utf8"), /Hash cash/);

  const bal = await cli("wallet", "balance", "--wallet", wallet, "--json");
  t.is(bal.code, 0);
  t.like(JSON.parse(bal.stdout), { value: "10", currency: "KRW", pending: null });

  const hist = await cli("wallet", "history", "--wallet", wallet, "--json");
  t.deepEqual(
    JSON.parse(hist.stdout).map((h: { kind: string; amount: string }) => `${h.kind} ${h.amount}`),
    ["registered 0", "earned 50", "earned 20", "bought -30", "bought -30"],
  );
  const human = await cli("wallet", "history", "--wallet", wallet, "--limit", "1");
  t.regex(human.stdout, /bought +-30 KRW/);
  t.is(human.stdout.trim().split("\n").length, 1);

  const again = await cli("wallet", "redeliver", "--wallet", wallet, "--tran-id", s.tranId, "--out", join(dir, "again.html"));
  t.is(again.code, 0, again.stderr);
  t.is(await readFile(join(dir, "again.html"), "utf8"), await readFile(out, "utf8"));

  const renew = await cli("wallet", "renew", "--wallet", wallet, "--json");
  t.is(renew.code, 0, renew.stderr);
  t.like(JSON.parse(renew.stdout), { value: "10" });

  // 10 KRW left, threshold 50: refused with exit 3.
  const redeem = await cli("wallet", "redeem", "--wallet", wallet, "--amount", "all", "--account", "KB 1", "--json");
  t.is(redeem.code, 3);
  t.like(JSON.parse(redeem.stdout), { reason: "BELOW_THRESHOLD", cmdType: "RD1", exitCode: 3 });

  const info = await cli("wallet", "info", "--wallet", wallet);
  t.is(info.code, 0, info.stderr);
  t.regex(info.stdout, new RegExp(`public key ${r.centerPublicKey} \\(matches the wallet's pin\\)`));
  t.regex(info.stdout, /redemption threshold 50 KRW/);

  const audit = await world.center.ledger.audit();
  t.true(audit.ok, audit.problems.join("\n"));
});

test.serial("refusals exit 3 with the reason; an unreachable server exits 4; bad flags exit 2", async (t) => {
  const wallet = join(dir, "lee.json");
  t.is((await cli("wallet", "register", "--wallet", wallet, "--center", world.centerUrl)).code, 0);
  const wrong = await cli("wallet", "earn", "--wallet", wallet, "--seller", world.sellerUrl, "--item", world.quiz.itemId, "--answer", "rsa");
  t.is(wrong.code, 3);
  t.regex(wrong.stderr, /\[ISSUE_REFUSED\]/);
  t.regex(wrong.stderr, /hint: /);
  const poor = await cli("wallet", "buy", "--wallet", wallet, "--seller", world.sellerUrl, "--url", world.catalog.file.requestUrl, "--method", "SAVE", "--json");
  t.is(poor.code, 3);
  t.like(JSON.parse(poor.stdout), { reason: "INSUFFICIENT_VALUE", cmdType: "PM5_2" });
  const nfs = await cli("wallet", "buy", "--wallet", wallet, "--seller", world.sellerUrl, "--url", world.catalog.viewOnly.requestUrl, "--method", "SAVE");
  t.is(nfs.code, 3);
  t.regex(nfs.stderr, /NOT_FOR_SALE/);
  const down = await cli("wallet", "info", "--center", "http://127.0.0.1:1", "--wallet", join(dir, "nobody.json"));
  t.is(down.code, 4);
  t.is((await cli("wallet", "earn", "--wallet", wallet, "--bogus", "1")).code, 2);
  t.is((await cli("wallet", "buy", "--wallet", wallet, "--url", "/x", "--method", "PRINT")).code, 2);
});

test.serial("catalog lists what is sold and what pays", async (t) => {
  const r = await cli("wallet", "catalog", "--seller", world.sellerUrl);
  t.is(r.code, 0, r.stderr);
  t.regex(r.stdout, /\/articles\/hash-cash\t30 KRW\tVIEW\/SAVE/);
  t.regex(r.stdout, /quiz-1\tQUIZ\t\+50 KRW/);
  t.false(r.stdout.includes(world.quiz.answer + "\t"), "the quiz answer is not shown");
  const j = await cli("wallet", "catalog", "--seller", world.sellerUrl, "--protocol", "grpc", "--json");
  t.is(JSON.parse(j.stdout).entries.length, 3);
});

test.serial("the real binary: exit codes reach the shell", async (t) => {
  const wallet = join(dir, "real.json");
  t.is((await cli("wallet", "register", "--wallet", wallet, "--center", world.centerUrl)).code, 0);
  const [unregistered, refused] = await Promise.all([
    spawnCli(["wallet", "balance", "--wallet", join(dir, "nobody.json")]),
    spawnCli(["wallet", "earn", "--wallet", wallet, "--seller", world.sellerUrl, "--item", world.quiz.itemId, "--answer", "wrong", "--json"]),
  ]);
  t.is(unregistered.code, 1);
  t.regex(unregistered.stderr, /hint:/);
  t.is(refused.code, 3, refused.stderr);
  t.like(JSON.parse(refused.stdout), { reason: "ISSUE_REFUSED" });
  t.false(existsSync(`${wallet}.lock`), "the wallet lock is released on exit");
});
