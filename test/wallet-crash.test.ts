/**
 * Crash safety with a real process and a real SIGKILL: a wallet process
 * (test/fixtures/wallet-crash.ts) is killed at each journalled step of an
 * issuance (M4/M5/M6) and a payment (S4/S5/S6), then a new wallet process
 * opens the same file and recovers. Afterwards:
 *   - the wallet's balance is what one earn / one payment gives,
 *   - the wallet's scrip is the customer's live scrip at the center,
 *   - the center moved value exactly once (account balances read straight
 *     from its SQLite file; one settlement for the TranID),
 *   - the center's audit passes.
 */
import test, { type ExecutionContext } from "ava";
import Database from "better-sqlite3";
import { spawn } from "node:child_process";
import { mkdir, rm } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { FileWalletStore, Wallet, type PendingStep, type WalletStep } from "../src/wallet/index.js";
import { decodeScrip } from "../src/wallet/codec.js";
import { startWorld, type World } from "./helpers/world.js";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const FIXTURE = join(ROOT, "test", "fixtures", "wallet-crash.ts");

/**
 * How to start the wallet process. `node --import=tsx fixture.ts` costs about
 * a CPU-second per start (measured: 1.0-1.2 s user, most of it the loader
 * hooks resolving ~100 modules), and this file starts ten. So the fixture is
 * bundled once with esbuild (tsx's own dependency) into node_modules/.cache,
 * where bare imports still resolve: about 0.4 s per start. Without esbuild,
 * fall back to tsx.
 */
let command: string[] = ["--import=tsx", FIXTURE];
let bundle: string | undefined;
test.before(async () => {
  try {
    const { build } = await import("esbuild");
    const dir = join(ROOT, "node_modules", ".cache", "scripwire-test");
    await mkdir(dir, { recursive: true });
    bundle = join(dir, `wallet-crash-${process.pid}-${Date.now()}.mjs`);
    await build({ entryPoints: [FIXTURE], bundle: true, platform: "node", format: "esm", target: "node20", packages: "external", outfile: bundle, logLevel: "silent" });
    command = [bundle];
  } catch {
    bundle = undefined;
  }
});
test.after.always(async () => {
  if (bundle) await rm(bundle, { force: true });
});

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

function runWallet(args: string[], crashAt?: WalletStep): Promise<Run> {
  return new Promise((resolve, reject) => {
    const env = { ...process.env, SCRIPWIRE_LOG: "silent" } as NodeJS.ProcessEnv;
    if (crashAt) env.SCRIPWIRE_CRASH_AT = crashAt;
    else delete env.SCRIPWIRE_CRASH_AT;
    const child = spawn(process.execPath, [...command, ...args], { cwd: ROOT, env, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    child.on("error", reject);
    child.on("close", (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}

/** Account balances straight from the center's database, as the audit sees them. */
function balances(world: World, customer: bigint): { customer: bigint; vendor: bigint; campaign: bigint } {
  const db = new Database(join(world.dir, "center.sqlite"), { readonly: true });
  db.defaultSafeIntegers(true);
  try {
    const get = (id: string) => (db.prepare("SELECT balance FROM accounts WHERE account_id = ?").get(id) as { balance: bigint } | undefined)?.balance ?? 0n;
    return { customer: get(`customer/${customer}/KRW`), vendor: get(`vendor/${world.vendorId}/KRW`), campaign: get(`campaign/${world.campaignId}`) };
  } finally {
    db.close();
  }
}

interface Scenario {
  kind: "earn" | "buy";
  step: WalletStep;
  /** The journal entry the killed process left: its step and whether the wallet already holds the new scrip. */
  journal: { step: PendingStep; newScripHeld: boolean };
  /** Transaction state at the center right after the kill. */
  centerState: "initiated" | "executed" | "confirmed";
}

const SCENARIOS: Scenario[] = [
  { kind: "earn", step: "before-M4", journal: { step: "M4", newScripHeld: false }, centerState: "initiated" },
  { kind: "earn", step: "after-M4-sent", journal: { step: "M4", newScripHeld: false }, centerState: "executed" },
  { kind: "earn", step: "after-M5-received", journal: { step: "M6", newScripHeld: true }, centerState: "executed" },
  { kind: "earn", step: "after-M6-sent", journal: { step: "M6", newScripHeld: true }, centerState: "confirmed" },
  { kind: "buy", step: "before-S4", journal: { step: "S4", newScripHeld: false }, centerState: "initiated" },
  { kind: "buy", step: "after-S4-sent", journal: { step: "S4", newScripHeld: false }, centerState: "executed" },
  { kind: "buy", step: "after-S5-received", journal: { step: "S6", newScripHeld: true }, centerState: "executed" },
  { kind: "buy", step: "after-S6-sent", journal: { step: "S6", newScripHeld: true }, centerState: "confirmed" },
];

async function setUp(t: ExecutionContext, kind: "earn" | "buy") {
  const world = await startWorld();
  t.teardown(() => world.close());
  const path = join(world.dir, "wallet.json");
  const w = await Wallet.open({ store: new FileWalletStore(path) });
  try {
    await w.register(world.centerUrl, { name: "Crash Test" });
    if (kind === "buy") await w.earn(world.sellerUrl, world.quiz.itemId, world.quiz.answer);
    return { world, path, customer: w.identity!.customId.serialNumber, before: w.balance() };
  } finally {
    await w.close();
  }
}

for (const s of SCENARIOS) {
  test(`SIGKILL at ${s.step}: the restarted wallet recovers with one ${s.kind} and one live scrip`, async (t) => {
    const { world, path, customer, before } = await setUp(t, s.kind);
    const args =
      s.kind === "earn"
        ? [path, "earn", world.sellerUrl, world.quiz.itemId, world.quiz.answer]
        : [path, "buy", world.sellerUrl, world.catalog.article.requestUrl, "VIEW"];

    // 1. The wallet process dies at the step.
    const killed = await runWallet(args, s.step);
    t.is(killed.signal, "SIGKILL", `the wallet was killed (stderr: ${killed.stderr})`);

    // 2. What it left: the journal entry, and the center's view of the TranID.
    const left = (await new FileWalletStore(path).load())!;
    t.truthy(left.pending, "the journal holds the operation");
    t.is(left.pending!.kind, s.kind);
    t.is(left.pending!.step, s.journal.step);
    const held = decodeScrip(left.scrip).scrip!;
    t.is(held.scripId!.serialNumber === before.serial, !s.journal.newScripHeld, "the wallet adopted the new scrip only after M5/S5 verified");
    const tx = await world.center.ledger.getTransaction(world.vendorId, left.pending!.id);
    t.is(tx?.state, s.centerState);

    // 3. A new wallet process opens the file and finishes the operation.
    const restarted = await runWallet([path, "open"]);
    t.is(restarted.code, 0, restarted.stderr);
    const out = JSON.parse(restarted.stdout) as { result: { recovery?: { outcome: string } }; balance: string; serial: string; pending: unknown };
    t.is(out.result.recovery?.outcome, "completed");
    t.is(out.pending, null);
    const balance = BigInt(out.balance);
    const serial = BigInt(out.serial);

    // 4. The right balance, one live scrip, value moved exactly once.
    const expected = s.kind === "earn" ? 50n : 20n;
    t.is(balance, expected);
    const live = await world.center.ledger.liveScrip(customer, "KRW");
    t.is(live?.serial, serial, "the wallet's scrip is the customer's live scrip");
    t.is(live?.value, expected);
    const acct = balances(world, customer);
    t.is(acct.customer, expected);
    t.is(acct.vendor, s.kind === "buy" ? 30n : 0n, "the seller was paid once");
    t.is(acct.campaign, 100_000n - 50n, "the campaign paid one reward");
    const tranId = left.pending!.id;
    t.is((await world.center.ledger.getTransaction(world.vendorId, tranId))?.state, "confirmed");
    const settled = (await world.center.ledger.listSettlements(world.vendorId, 0n, 100)).filter((x) => x.tranId === tranId);
    t.is(settled.length, 1);

    // 5. The wallet's own record, and (for a purchase) the kept receipt still delivers.
    const w = await Wallet.open({ store: new FileWalletStore(path) });
    try {
      const h = w.history().filter((e) => e.kind === (s.kind === "earn" ? "earned" : "bought"));
      t.is(h.length, 1);
      t.is(h[0]!.tranId, tranId);
      t.true(h[0]!.recovered);
      if (s.kind === "buy") {
        const d = await w.redeliver(tranId);
        t.regex(new TextDecoder().decode(d.content), /Hash cash/);
      }
    } finally {
      await w.close();
    }
    const audit = await world.center.ledger.audit();
    t.deepEqual(audit.problems, []);
    t.true(audit.ok);
  });
}
