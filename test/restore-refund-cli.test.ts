/**
 * `scripwire wallet show-recovery-code | restore | sync` and `scripwire
 * seller refund` / `center admin refund` against real servers, in process
 * (output captured, so serial).
 */
import test from "ava";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { main } from "../src/cli/main.js";
import { startWorld, type World } from "./helpers/world.js";

let world: World;
let dir: string;
test.before(async () => {
  world = await startWorld();
  dir = await mkdtemp(join(tmpdir(), "scripwire-restore-cli-"));
});
test.after.always(async () => {
  await world?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
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

test.serial("register shows the code once; restore from it after the file is lost; seller refund reaches the wallet by sync", async (t) => {
  const wallet = join(dir, "kim.json");
  const reg = await cli("wallet", "register", "--wallet", wallet, "--center", world.centerUrl);
  t.is(reg.code, 0, reg.stderr);
  const code = /RECOVERY CODE[^\n]*\n\s+(SW1-\S+)/.exec(reg.stdout)?.[1];
  t.truthy(code, reg.stdout);
  t.false(reg.stderr.includes(code!), "never in progress output");
  const shown = await cli("wallet", "show-recovery-code", "--wallet", wallet, "--json");
  t.is(JSON.parse(shown.stdout).recoveryCode, code);
  t.is((await cli("wallet", "earn", "--wallet", wallet, "--seller", world.sellerUrl, "--item", world.quiz.itemId, "--answer", world.quiz.answer)).code, 0);
  const buy = await cli("wallet", "buy", "--wallet", wallet, "--seller", world.sellerUrl, "--url", world.catalog.article.requestUrl, "--method", "VIEW", "--json");
  t.is(buy.code, 0, buy.stderr);
  const tranId = JSON.parse(buy.stdout).tranId as string;
  await rm(wallet);

  const restored = join(dir, "restored.json");
  const bad = await cli("wallet", "restore", "--wallet", restored, "--center", world.centerUrl, "--code", code!.replace(/-(.)/, (_m, c: string) => `-${c === "0" ? "1" : "0"}`), "--json");
  t.is(bad.code, 1);
  t.like(JSON.parse(bad.stdout), { reason: "RECOVERY_CODE_MISTYPED" });
  const r = await cli("wallet", "restore", "--wallet", restored, "--center", world.centerUrl, "--code", code!, "--json");
  t.is(r.code, 0, r.stderr);
  t.like(JSON.parse(r.stdout), { value: "20", currency: "KRW" });

  const secret = Buffer.from(world.vendorSecret).toString("hex");
  const seller = ["seller", "refund", "--center", world.centerUrl, "--vendor-id", world.vendorId, "--vendor-secret", secret, "--tran-id", tranId];
  const over = await cli(...seller, "--amount", "31", "--json");
  t.is(over.code, 3);
  t.like(JSON.parse(over.stdout), { reason: "REFUND_EXCEEDS_PAYMENT" });
  const ok = await cli(...seller, "--amount", "10", "--reason", "late");
  t.is(ok.code, 0, ok.stderr);
  t.regex(ok.stdout, /refunded 10 KRW of 30 paid/);
  const twice = await cli(...seller, "--json");
  t.is(twice.code, 3);
  t.like(JSON.parse(twice.stdout), { reason: "ALREADY_REFUNDED" });
  const admin = await cli("center", "admin", "refund", "--center", world.centerUrl, "--admin-token", world.adminToken, "--vendor-id", world.vendorId, "--tran-id", tranId, "--json");
  t.is(admin.code, 3);

  const s = await cli("wallet", "sync", "--wallet", restored);
  t.is(s.code, 0, s.stderr);
  t.regex(s.stdout, /^30 KRW/);
  t.regex(s.stdout, /refund rf_\w+ of .*: 10 KRW in the scrip/);
  const bal = await cli("wallet", "balance", "--wallet", restored, "--json");
  t.like(JSON.parse(bal.stdout), { value: "30" });
  t.true((await world.center.ledger.audit()).ok);
});
