/**
 * Torture harness: a Jepsen-style bank test (and a poor man's VOPR) for the
 * payment center. `npm run torture` (full, ~10 min), `npm run torture -- --quick`
 * (CI, < 4 min on 2 cores), `--seed N` to replay a schedule.
 *
 * A real `scripwire center serve` child process on a SQLite file is SIGKILLed
 * and restarted at random moments while many simulated wallets earn, pay and
 * restore themselves from their recovery code (SY1/SY2, sometimes replaying
 * the recorded request, which must be refused) over a network that drops,
 * duplicates and delays, while the seller refunds confirmed payments (partial,
 * full, too much, twice, two at once); wallets themselves crash and recover
 * from their journals. Then the faults stop, every wallet
 * finishes its pending request, and the ledger is checked against a model
 * built only from what the wallets were told:
 *   - `scripwire audit` passes (double entry, balances, live scrip = account);
 *   - each wallet's scrip is the ledger's live scrip for that customer, and
 *     holds what the model says;
 *   - funding - remaining budget = customers + vendor + payouts + pending
 *     refund credits, and each of those equals the model's figure; every
 *     refund the seller was told about appears once as a negative settlement
 *     and reached its customer's scrip by the last sync;
 *   - every receipt a wallet got is a confirmed settlement at the center (and
 *     delivers at the seller); every settlement was acknowledged to a wallet;
 *   - no serial was ever handed out twice, no dead scrip was accepted, no two
 *     copies of one request got different answers.
 *
 * Determinism: the seed fixes every decision (workload, fault schedule,
 * amounts); thread timing and the OS scheduler are not under our control, so
 * a replay re-runs the same schedule, not the same interleaving.
 */
import { create } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import Database from "better-sqlite3";
import { execFile } from "node:child_process";
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { checkpointFromJson, checkpointToJson, type CheckpointJson } from "../../src/ledger/chain.js";
import { fromCheckpointMessage } from "../../src/center/sealing.js";
import { UNSAFE_SYNCHRONOUS_ENV } from "../../src/ledger/sqlite.js";
import { openLedger } from "../../src/ledger/open.js";
import { findLazyFs, LazyFs } from "./lazyfs.js";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { CenterAdminService } from "../../gen/scripwire/v1/admin_pb.js";
import { PaymentCenterService, SettlementKind } from "../../gen/scripwire/v1/center_pb.js";
import { SellerService } from "../../gen/scripwire/v1/seller_pb.js";
import { CmdType, DeliveryMethod, HashAlgorithm, HeaderTypeSchema } from "../../gen/scripwire/v1/types_pb.js";
import { createTransport } from "../../src/client/transport.js";
import { computeSettlementsMac } from "../../src/crypto/scrip-auth.js";
import { openSqliteLedger } from "../../src/ledger/sqlite.js";
import { parseSellerConfig } from "../../src/seller/catalog.js";
import { startSellerServer } from "../../src/seller/server.js";
import { CenterProcess, CLI, freePort, REPO_ROOT } from "./center-process.js";
import { Faults, NO_FAULTS, type FaultRates } from "./faults.js";
import { Model, refundedTotal, Stats } from "./model.js";
import { refundRequest } from "../../src/seller/refund-client.js";
import { Code, ConnectError } from "@connectrpc/connect";
import { errorReason } from "../../src/server/errors.js";
import { ReplyLost } from "./faults.js";
import { deriveSeed, freshSeed, Prng } from "./prng.js";
import { SimWallet, type CatalogEntry, type Op, type WalletEnv } from "./wallet.js";

const run = promisify(execFile);
/** The environment of CLI children, without SCRIPWIRE_* settings that could point them elsewhere. */
const childEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("SCRIPWIRE_")));
// The in-process seller and the child center log errors only; the report is the output.
process.env.SCRIPWIRE_LOG ??= "error";
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

interface ModeConfig {
  wallets: number;
  /** How long faults are injected. */
  faultPhaseMs: number;
  /** Keep injecting until at least this many center crashes, within `faultPhaseMsMax`. */
  crashesMin: number;
  faultPhaseMsMax: number;
  /** Center uptime between two SIGKILLs: uniform in [min, max]. */
  uptimeMs: [number, number];
  /** Time between two wallet crashes (any wallet). */
  walletCrashEveryMs: [number, number];
  rates: FaultRates;
  campaigns: number;
  itemsPerCampaign: number;
}

const MODES: Record<"quick" | "full" | "long" | "power" | "failover", ModeConfig> = {
  quick: {
    wallets: 16,
    faultPhaseMs: 100_000,
    crashesMin: 20,
    faultPhaseMsMax: 170_000,
    uptimeMs: [1_500, 4_000],
    walletCrashEveryMs: [150, 900],
    rates: { drop: 0.04, duplicate: 0.05, delay: 0.05, delayMsMax: 250 },
    campaigns: 4,
    itemsPerCampaign: 400,
  },
  full: {
    wallets: 32,
    faultPhaseMs: 480_000,
    crashesMin: 60,
    faultPhaseMsMax: 540_000,
    uptimeMs: [1_500, 7_000],
    walletCrashEveryMs: [100, 700],
    rates: { drop: 0.05, duplicate: 0.05, delay: 0.06, delayMsMax: 400 },
    campaigns: 6,
    itemsPerCampaign: 1_200,
  },
  // Scale: >= 1,000 center SIGKILLs under concurrent load (hours on 2 shared cores).
  long: {
    wallets: 24,
    faultPhaseMs: 600_000,
    crashesMin: 1_000,
    faultPhaseMsMax: 6 * 3_600_000,
    uptimeMs: [300, 1_500],
    walletCrashEveryMs: [150, 900],
    rates: { drop: 0.04, duplicate: 0.05, delay: 0.05, delayMsMax: 250 },
    campaigns: 6,
    itemsPerCampaign: 4_000,
  },
  // PostgreSQL failover: the primary is SIGKILLed, the standby promoted, a new standby rebuilt (~15 s a round).
  failover: {
    wallets: 16,
    faultPhaseMs: 40_000,
    crashesMin: 3,
    faultPhaseMsMax: 240_000,
    uptimeMs: [3_000, 6_000],
    walletCrashEveryMs: [300, 1_500],
    rates: { drop: 0.04, duplicate: 0.05, delay: 0.05, delayMsMax: 250 },
    campaigns: 4,
    itemsPerCampaign: 400,
  },
  // Power loss on LazyFS: each "crash" freezes the center, drops every unsynced write, kills it and remounts.
  power: {
    wallets: 16,
    faultPhaseMs: 30_000,
    crashesMin: 3,
    faultPhaseMsMax: 90_000,
    uptimeMs: [4_000, 7_000],
    walletCrashEveryMs: [300, 1_500],
    rates: { drop: 0.04, duplicate: 0.05, delay: 0.05, delayMsMax: 250 },
    campaigns: 4,
    itemsPerCampaign: 400,
  },
};

/** Crash-time copies of the ledger audited at the end (with the checkpoint fetched just before the crash): untampered ledgers, so 0 alarms is the bar. */
const SNAPSHOTS_MAX = 25;

/** The workload: mostly earning and paying, some redemption, renewal, restores from the recovery code, and cheating. */
const MIX: Record<Op, number> = { earn: 44, pay: 37, redeem: 3, renew: 3, race: 4, replay: 3, restore: 3, idle: 3 };
/** The seller refunds a random confirmed payment this often (ms between refunds: uniform in the range). */
const REFUND_EVERY_MS: [number, number] = [100, 600];

/** Campaign budget of the last campaign: small on purpose, so BUDGET_EXHAUSTED happens under load. */
const SMALL_BUDGET = 3_000n;
const REDEEM_THRESHOLD = 200n;
/** How long the wallets get to finish their pending requests once faults stop. */
const DRAIN_TIMEOUT_MS = 120_000;
const ADMIN_TOKEN = "torture-admin-token-0123456789";
const VENDOR_ID = "torture-mall";

function parseArgs(argv: string[]) {
  const out: { quick: boolean; long: boolean; failover: boolean; powerLoss: boolean; expectLoss: boolean; unsafeSync?: string; seed?: number; keep: boolean; wallets?: number; seconds?: number; crashes?: number } = {
    quick: false,
    long: false,
    failover: false,
    powerLoss: false,
    expectLoss: false,
    keep: false,
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === "--quick") out.quick = true;
    else if (a === "--keep") out.keep = true;
    else if (a === "--long") out.long = true;
    else if (a === "--power-loss") out.powerLoss = true;
    else if (a === "--failover") out.failover = true;
    else if (a === "--expect-loss") out.expectLoss = true;
    else if (a === "--unsafe-synchronous") out.unsafeSync = argv[++i];
    else if (a === "--crashes") out.crashes = Number(argv[++i]);
    else if (a === "--seed") out.seed = Number(argv[++i]) >>> 0;
    else if (a.startsWith("--seed=")) out.seed = Number(a.slice(7)) >>> 0;
    else if (a === "--wallets") out.wallets = Number(argv[++i]);
    else if (a === "--seconds") out.seconds = Number(argv[++i]);
    else if (a === "--help" || a === "-h") {
      process.stdout.write(
        "usage: npm run torture -- [--quick | --long] [--power-loss [--unsafe-synchronous NORMAL|OFF --expect-loss]] [--crashes N] [--seed N] [--wallets N] [--seconds S] [--keep]\n" +
          "  --failover      PostgreSQL primary + sync standby; the primary is SIGKILLed and the standby promoted under load (needs root)\n" +
          "  --long          run until >= 1,000 center SIGKILLs under load (hours)\n" +
          "  --power-loss    center data directory on LazyFS; each crash drops unsynced writes (needs root, /dev/fuse, LazyFS built)\n" +
          "  --unsafe-synchronous NORMAL|OFF  TEST ONLY: weaken the center's SQLite durability\n" +
          "  --expect-loss   succeed only if the harness reports a violation (shows it catches a loss)\n",
      );
      process.exit(0);
    } else throw new Error(`unknown argument ${a}`);
  }
  return out;
}

const fmt = (ms: number) => `${(ms / 1000).toFixed(1)}s`;

async function main(): Promise<number> {
  const args = parseArgs(process.argv.slice(2));
  const mode = args.failover ? "failover" : args.powerLoss ? "power" : args.long ? "long" : args.quick ? "quick" : "full";
  if (args.failover) {
    const why = process.getuid?.() !== 0 ? "needs root (creates PostgreSQL clusters)" : !existsSync("/usr/bin/pg_createcluster") ? "PostgreSQL (postgresql-common) is not installed" : undefined;
    if (why) {
      process.stdout.write(`torture --failover SKIPPED: ${why}\n`);
      return 0;
    }
    process.stdout.write("torture: setting up a PostgreSQL primary + synchronous standby (.ci/postgres-replica.sh setup)\n");
    await replica("setup");
  }
  const cfg = { ...MODES[mode] };
  if (args.wallets) cfg.wallets = args.wallets;
  if (args.crashes) cfg.crashesMin = args.crashes;
  if (args.unsafeSync && !/^(NORMAL|OFF)$/.test(args.unsafeSync)) throw new Error("--unsafe-synchronous must be NORMAL or OFF");
  let lazy: LazyFs | undefined;
  if (args.powerLoss) {
    const found = findLazyFs();
    if ("skip" in found) {
      process.stdout.write(`torture --power-loss SKIPPED: ${found.skip}\n`);
      return 0;
    }
    // An underscore before mkdtemp's random suffix: LazyFS refuses a config path with "-o" in it (lazyfs.ts).
    lazy = new LazyFs(found.bin, mkdtempSync(join(tmpdir(), "scripwire_lazyfs_")));
    await lazy.mount();
  }
  if (args.seconds) {
    cfg.faultPhaseMs = args.seconds * 1000;
    cfg.faultPhaseMsMax = Math.max(cfg.faultPhaseMsMax, cfg.faultPhaseMs * 1.5);
  }
  const seed = args.seed ?? freshSeed();
  const replay = `npm run torture -- ${process.argv.slice(2).filter((a, i, all) => a !== "--seed" && all[i - 1] !== "--seed" && !a.startsWith("--seed=")).join(" ")} --seed ${seed}`.replace(/ +/g, " ");
  process.stdout.write(`torture: mode=${mode} seed=${seed} wallets=${cfg.wallets} (replay: ${replay})\n`);
  const t0 = Date.now();
  const rng = new Prng(seed);

  const dir = mkdtempSync(join(tmpdir(), "scripwire-torture-"));
  const dataDir = lazy ? join(lazy.mnt, "data") : join(dir, "data");
  const dbPath = join(dataDir, "center.sqlite");
  // --failover: a PostgreSQL primary + synchronous standby (.ci/postgres-replica.sh); the center gets both URLs.
  const database = args.failover ? HA_DATABASE : dbPath;
  const centerLog = join(dir, "center.log");
  const model = new Model();
  const stats = new Stats();
  const faults = new Faults(NO_FAULTS);
  const center = new CenterProcess({
    port: await freePort(),
    dataDir,
    adminToken: ADMIN_TOKEN,
    currencies: ["KRW"],
    redeemThreshold: REDEEM_THRESHOLD,
    logPath: centerLog,
    database: args.failover ? database : undefined,
    env: args.unsafeSync ? { [UNSAFE_SYNCHRONOUS_ENV]: args.unsafeSync } : undefined,
  });
  const snapshots: { path: string; checkpoint?: CheckpointJson }[] = [];
  let ledgerLost: string | undefined;
  let seller: Awaited<ReturnType<typeof startSellerServer>> | undefined;
  let keepDir = args.keep;
  const restartMs: number[] = [];

  try {
    await center.init();
    await center.start();
    const adminTransport = createTransport(center.url, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
    const admin = createClient(CenterAdminService, adminTransport);
    const centerClient = createClient(PaymentCenterService, createTransport(center.url));

    // ---- world: a vendor, campaigns with many items (one reward per customer per item), a catalog.
    const vendor = await admin.createVendor({ vendorId: VENDOR_ID, vendor: { dnsName: "mall.torture", serverName: "Torture Mall", port: 443 } });
    const campaigns: { campaignId: string; currency: string; items: { itemId: string; kind: string; prompt: string; reward: string }[] }[] = [];
    const itemRewards = new Map<string, bigint>();
    for (let c = 0; c < cfg.campaigns; c++) {
      const campaignId = `camp-${c}`;
      const small = c === cfg.campaigns - 1;
      const budget = small ? SMALL_BUDGET : 50_000_000n;
      await admin.createCampaign({ campaignId, vendorId: VENDOR_ID, currency: "KRW", cap: budget * 2n });
      // Funded in two tranches, the second retried with the same request id: it must count once.
      const half = budget / 2n;
      await admin.fundCampaign({ campaignId, amount: half, requestId: `fund-${campaignId}-a` });
      await admin.fundCampaign({ campaignId, amount: budget - half, requestId: `fund-${campaignId}-b` });
      await admin.fundCampaign({ campaignId, amount: budget - half, requestId: `fund-${campaignId}-b` });
      model.funded.set(campaignId, budget);
      const items = [];
      for (let i = 0; i < cfg.itemsPerCampaign; i++) {
        const itemId = `${campaignId}-ad-${i}`;
        const reward = BigInt(rng.int(1, 60));
        itemRewards.set(itemId, reward);
        items.push({ itemId, kind: "AD", prompt: `Ad ${i} of ${campaignId}`, reward: String(reward) });
      }
      campaigns.push({ campaignId, currency: "KRW", items });
    }
    const catalog: CatalogEntry[] = [];
    const catalogJson = [];
    for (let i = 0; i < 10; i++) {
      const price = BigInt(rng.int(1, 150));
      const method = i % 3 === 0 ? DeliveryMethod.SAVE : DeliveryMethod.VIEW;
      const url = `/content/${i}`;
      catalog.push({ url, price, method });
      catalogJson.push({ requestUrl: url, title: `Item ${i}`, price: String(price), currency: "KRW", methods: [method === DeliveryMethod.SAVE ? "SAVE" : "VIEW"], content: `content ${i}` });
    }
    const sellerConfig = parseSellerConfig({
      vendorId: VENDOR_ID,
      identity: { dnsName: "mall.torture", serverName: "Torture Mall", port: 443 },
      vendorKeys: { [String(vendor.vendorKeyId)]: Buffer.from(vendor.vendorSecret).toString("hex") },
      offerLifetimeSeconds: 3_600,
      catalog: catalogJson,
      campaigns,
    });
    seller = await startSellerServer({ config: sellerConfig });
    const info = await createClient(PaymentCenterService, createTransport(center.url)).getCenterInfo({});

    // ---- wallets: half speak Connect, half gRPC (both over HTTP/2).
    const transports = { connect: createTransport(center.url, { protocol: "connect" }), grpc: createTransport(center.url, { protocol: "grpc" }) };
    const sellerTransport = createTransport(seller.url);
    const env: WalletEnv = {
      sellerTransport,
      center,
      faults,
      centerPublicKey: info.publicKey,
      vendorId: VENDOR_ID,
      itemRewards,
      items: [...itemRewards.keys()],
      catalog,
      redeemThreshold: REDEEM_THRESHOLD,
      model,
      stats,
      draining: false,
      mix: MIX,
    };
    const wallets = Array.from({ length: cfg.wallets }, (_, i) => new SimWallet(i, new Prng(deriveSeed(seed, `wallet-${i}`)), env, i % 2 ? transports.grpc : transports.connect));

    faults.rates = cfg.rates;
    for (const w of wallets) w.start();
    const faultStart = Date.now();
    let faulting = true;
    const faultPhaseOver = () => {
      const el = Date.now() - faultStart;
      return el >= cfg.faultPhaseMsMax || (el >= cfg.faultPhaseMs && stats.centerCrashes >= cfg.crashesMin);
    };

    // ---- chaos: the center is SIGKILLed and restarted.
    const chaosRng = new Prng(deriveSeed(seed, "chaos"));
    const centerChaos = (async () => {
      while (!faultPhaseOver()) {
        await sleep(chaosRng.int(cfg.uptimeMs[0], cfg.uptimeMs[1]));
        if (faultPhaseOver()) break;
        // The checkpoint a seller would hold at this moment: the ledger after the crash must still extend it.
        const held = await centerClient.getCheckpoint({}, { timeoutMs: 2_000 }).then((r) => r.checkpoint, () => undefined);
        if (args.failover) {
          // The database dies, not the center: it must find the promoted standby by itself.
          await replica("kill-primary");
          stats.centerCrashes++;
          await replica("promote");
          await replica("rebuild");
          continue;
        }
        if (lazy) {
          await center.powerCut(() => lazy!.clearCache());
          await lazy.remount();
        } else await center.kill();
        stats.centerCrashes++;
        if (snapshots.length < SNAPSHOTS_MAX && !args.failover) {
          const path = join(dir, `crash-${stats.centerCrashes}.sqlite`);
          for (const ext of ["", "-wal"]) if (existsSync(dbPath + ext)) copyFileSync(dbPath + ext, path + ext);
          snapshots.push({ path, checkpoint: held ? checkpointToJson(fromCheckpointMessage(held)) : undefined });
        }
        await sleep(chaosRng.int(0, 300));
        const r0 = Date.now();
        try {
          await center.start();
        } catch (e) {
          // After a power cut that took the ledger with it, `serve` refuses to start: that IS the loss.
          ledgerLost = `the center does not start after crash ${stats.centerCrashes}: ${e instanceof Error ? e.message : String(e)}; ${readTail(centerLog)}`;
          model.violation("center", ledgerLost);
          return;
        }
        restartMs.push(Date.now() - r0);
      }
    })();

    // ---- chaos: wallets crash (in-memory state gone, journal kept) and recover.
    const walletRng = new Prng(deriveSeed(seed, "wallet-chaos"));
    const walletChaos = (async () => {
      const restarts: Promise<void>[] = [];
      while (!faultPhaseOver()) {
        await sleep(walletRng.int(cfg.walletCrashEveryMs[0], cfg.walletCrashEveryMs[1]));
        const w = walletRng.pick(wallets);
        w.crash();
        const down = walletRng.int(0, 400);
        restarts.push(sleep(down).then(() => w.restart()));
      }
      await Promise.all(restarts);
    })();

    // ---- the seller refunds confirmed payments: partial, full, too much, twice, and two at once.
    const refundRng = new Prng(deriveSeed(seed, "refunds"));
    const refundClient = createClient(PaymentCenterService, transports.connect);
    /** One refund request until it gets a definite answer (same request id on every retransmission). */
    const sendRefund = async (tranId: string, amount: bigint, requestId: string) => {
      for (let attempt = 0; attempt < 400; attempt++) {
        if (!center.up) await center.waitUp();
        try {
          const rq = refundRequest({ vendorId: VENDOR_ID, vendorSecret: vendor.vendorSecret, vendorKeyId: vendor.vendorKeyId, tranId, amount, requestId, reason: "torture" });
          return { ok: true as const, refund: (await faults.call(refundRng, (o) => refundClient.refundPayment(rq, o))).refund! };
        } catch (e) {
          if (e instanceof ReplyLost) continue;
          const ce = ConnectError.from(e);
          if ([Code.Unavailable, Code.DeadlineExceeded, Code.Canceled, Code.Aborted, Code.Unknown, Code.Internal].includes(ce.code)) {
            await sleep(refundRng.int(5, 60));
            continue;
          }
          if (ce.code === Code.ResourceExhausted) {
            await sleep(200);
            continue;
          }
          return { ok: false as const, reason: errorReason(ce) ?? Code[ce.code] };
        }
      }
      model.violation("refunder", `refund of ${tranId} never got an answer`);
      return { ok: false as const, reason: "STUCK" };
    };
    const recordRefund = (tranId: string, customerSerial: bigint, r: Awaited<ReturnType<typeof sendRefund>>, expectAmount: bigint) => {
      if (!r.ok) return;
      if (r.refund.amount !== expectAmount || r.refund.tranId !== tranId) model.violation("refunder", `RF2 for ${tranId}: refunded ${r.refund.amount}, expected ${expectAmount}`);
      if (model.refunds.has(r.refund.refundId)) return; // a retransmission's replayed answer
      model.refunds.set(r.refund.refundId, { tranId, amount: r.refund.amount, customerSerial });
      model.refundsByTran.set(tranId, r.refund.amount);
      model.vendorNet -= r.refund.amount;
      stats.op("refund");
    };
    const refunder = (async () => {
      while (!faultPhaseOver()) {
        await sleep(refundRng.int(REFUND_EVERY_MS[0], REFUND_EVERY_MS[1]));
        const paidNow = [...model.receipts.values()];
        if (paidNow.length === 0) continue;
        const receipt = refundRng.pick(paidNow);
        const { tranId, price } = receipt;
        const customerSerial = receipt.customId!.serialNumber;
        const already = model.refundsByTran.has(tranId);
        const roll = refundRng.int(0, 99);
        if (roll < 15 && !already) {
          // Two different refunds of one TranID at once: exactly one may win.
          const a = BigInt(refundRng.int(1, Number(price)));
          const [ra, rb] = await Promise.all([sendRefund(tranId, a, `rf-${refundRng.hex(8)}`), sendRefund(tranId, 0n, `rf-${refundRng.hex(8)}`)]);
          const wins = [ra, rb].filter((x) => x.ok).length;
          if (wins !== 1) model.violation("refunder", `concurrent refunds of ${tranId}: ${wins} succeeded`);
          for (const [r, amt] of [[ra, a], [rb, price]] as const) {
            if (r.ok) recordRefund(tranId, customerSerial, r, amt);
            else if (r.reason !== "ALREADY_REFUNDED") model.violation("refunder", `concurrent refund of ${tranId} refused with ${r.reason}`);
            else stats.refusal("ALREADY_REFUNDED");
          }
          continue;
        }
        const over = roll < 25;
        const amount = over ? price + BigInt(refundRng.int(1, 50)) : roll < 45 ? 0n : BigInt(refundRng.int(1, Number(price)));
        const r = await sendRefund(tranId, amount, `rf-${refundRng.hex(8)}`);
        const expect = already ? "ALREADY_REFUNDED" : over ? "REFUND_EXCEEDS_PAYMENT" : "ok";
        if (r.ok && expect === "ok") recordRefund(tranId, customerSerial, r, amount === 0n ? price : amount);
        else if (r.ok) model.violation("refunder", `refund of ${tranId} (${amount} of ${price}${already ? ", already refunded" : ""}) succeeded; expected ${expect}`);
        else if (r.reason !== expect) model.violation("refunder", `refund of ${tranId} (${amount} of ${price}) refused with ${r.reason}; expected ${expect}`);
        else stats.refusal(r.reason);
      }
    })();

    const progress = setInterval(() => {
      const el = Date.now() - faultStart;
      process.stdout.write(
        `  ${fmt(el)}${faulting ? "" : " (draining)"}: ops=${stats.opsTotal} rpcs=${faults.counters.calls} center-crashes=${stats.centerCrashes} wallet-crashes=${stats.walletCrashes} ` +
          `dropped=${faults.counters.dropped} dup=${faults.counters.duplicated} delayed=${faults.counters.delayed} retx=${stats.retransmissions} violations=${model.violations.length}\n`,
      );
    }, 10_000);

    await centerChaos;
    if (ledgerLost) throw new LedgerLost(ledgerLost);
    await walletChaos;
    await refunder;
    faulting = false;
    faults.rates = NO_FAULTS;
    if (!center.up) await center.start();
    const faultPhaseMs = Date.now() - faultStart;
    process.stdout.write(`torture: faults stopped after ${fmt(faultPhaseMs)}; draining ${wallets.length} wallets\n`);

    // ---- drain: every wallet finishes its pending request.
    env.draining = true;
    const drained = await Promise.race([Promise.all(wallets.map((w) => w.finished())).then(() => true), sleep(DRAIN_TIMEOUT_MS).then(() => false)]);
    clearInterval(progress);
    if (!drained) model.violation("harness", `wallets did not finish within ${DRAIN_TIMEOUT_MS} ms: ${wallets.filter((w) => w.pending).map((w) => `${w.name}:${w.pending}`).join(", ")}`);
    for (const w of wallets) if (w.pending) model.violation(w.name, `still has a pending ${w.pending} after draining`);

    // ---- checks against the live center.
    const checks: string[] = [];
    const pass = (what: string) => checks.push(`ok  ${what}`);
    const fail = (what: string) => {
      checks.push(`BAD ${what}`);
      model.violation("check", what);
    };

    const liveAudit = await run(process.execPath, [CLI, "audit", "--json", "--database", database], { cwd: REPO_ROOT, env: childEnv }).then(
      (r) => ({ code: 0, out: r.stdout }),
      (e: { code?: number; stdout?: string; stderr?: string }) => ({ code: e.code ?? -1, out: `${e.stdout ?? ""}${e.stderr ?? ""}` }),
    );
    if (liveAudit.code === 0) pass("scripwire audit on the live database: exit 0");
    else fail(`scripwire audit on the live database: exit ${liveAudit.code}: ${liveAudit.out.trim()}`);

    // Settlements: every receipt is a confirmed PAYMENT settlement, every M7 an ISSUE one, and nothing else exists.
    const client = createClient(PaymentCenterService, createTransport(center.url));
    const settlements: { kind: SettlementKind; tranId: string; amount: bigint }[] = [];
    for (let after = 0n; ; ) {
      const ts = BigInt(Date.now());
      const mac = computeSettlementsMac(HashAlgorithm.HMAC_SHA256, vendor.vendorSecret, VENDOR_ID, after, ts);
      const page = await client.listSettlements({ vendorId: VENDOR_ID, afterSequence: after, limit: 1000, timestampUnixMs: ts, vendorKeyId: vendor.vendorKeyId, mac });
      settlements.push(...page.settlements);
      if (page.settlements.length < 1000) break;
      after = page.nextSequence;
    }
    const paid = new Map(settlements.filter((s) => s.kind === SettlementKind.PAYMENT).map((s) => [s.tranId, s.amount]));
    const refundSettled = new Map(settlements.filter((s) => s.kind === SettlementKind.REFUND).map((s) => [s.tranId, -s.amount]));
    const refundMismatch =
      [...model.refundsByTran].filter(([t, a]) => refundSettled.get(t) !== a).length + [...refundSettled.keys()].filter((t) => !model.refundsByTran.has(t)).length;
    if (refundMismatch === 0 && settlements.filter((s) => s.kind === SettlementKind.REFUND).length === refundSettled.size) {
      pass(`all ${refundSettled.size} refunds appear once each as negative settlements, as the refunder was told`);
    } else fail(`${refundMismatch} refund settlements and RF2 answers disagree (or a TranID was refunded twice)`);
    const unproven = [...model.foldsAwaitingRf2].filter(([id, f]) => {
      const r = model.refunds.get(id);
      return !r || r.customerSerial !== f.customerSerial || r.amount !== f.amount;
    });
    if (unproven.length === 0) pass(`all ${model.foldsAwaitingRf2.size} refunds folded before their RF2 answer arrived were then answered, for that customer and amount`);
    else fail(`${unproven.length} refunds folded into a wallet were never answered to the refunder for that customer and amount: ${unproven.map(([id]) => id).slice(0, 5).join(", ")}`);
    const issued = new Map(settlements.filter((s) => s.kind === SettlementKind.ISSUE).map((s) => [s.tranId, s.amount]));
    const dupSettlements = settlements.length - paid.size - issued.size - settlements.filter((s) => s.kind === SettlementKind.REFUND).length;
    if (dupSettlements !== 0) fail(`${dupSettlements} TranIDs were settled more than once`);
    const missingReceipts = [...model.receipts].filter(([t, r]) => paid.get(t) !== r.price);
    if (missingReceipts.length === 0) pass(`all ${model.receipts.size} receipts are confirmed payment settlements`);
    else fail(`${missingReceipts.length} acknowledged payments are not settled at the center, e.g. ${missingReceipts.slice(0, 5).map(([t]) => t).join(", ")}`);
    const unacked = [...paid.keys()].filter((t) => !model.receipts.has(t));
    if (unacked.length === 0) pass(`all ${paid.size} payment settlements were acknowledged to a wallet`);
    else fail(`${unacked.length} payment settlements no wallet holds a receipt for, e.g. ${unacked.slice(0, 5).join(", ")}`);
    const issueMismatch = [...model.confirmedIssues].filter(([t, a]) => issued.get(t) !== a).length + [...issued.keys()].filter((t) => !model.confirmedIssues.has(t)).length;
    if (issueMismatch === 0) pass(`all ${issued.size} issuance settlements match the M7 confirmations`);
    else fail(`${issueMismatch} issuance settlements and M7 confirmations disagree`);

    // S7: every receipt still delivers at the seller.
    const sellerClient = createClient(SellerService, sellerTransport);
    let undelivered = 0;
    const receipts = [...model.receipts.values()];
    for (let i = 0; i < receipts.length; i += 64) {
      const batch = await Promise.allSettled(receipts.slice(i, i + 64).map((receipt) => sellerClient.deliver({ header: create(HeaderTypeSchema, { cmdType: CmdType.PM8_1, protocolVersion: "scripwire/1" }), receipt })));
      undelivered += batch.filter((b) => b.status !== "fulfilled" || b.value.header?.cmdType !== CmdType.PM8_1).length;
    }
    if (undelivered === 0) pass(`all ${receipts.length} receipts deliver at the seller (S7)`);
    else fail(`${undelivered} receipts did not deliver at the seller`);

    const campaignsNow = (await admin.listCampaigns({})).campaigns;

    // ---- checks against the stopped database.
    // Crash-time copies, each against the checkpoint a seller held just before that crash: no false alarm, nothing lost.
    let snapshotAlarms = 0;
    for (const snap of snapshots) {
      const l = openSqliteLedger(snap.path);
      try {
        const r = await l.audit({ checkpoint: snap.checkpoint ? checkpointFromJson(snap.checkpoint) : undefined });
        if (!r.ok || (snap.checkpoint && !r.savedCheckpointOk)) {
          snapshotAlarms++;
          fail(`audit of the ledger as a crash left it (${snap.path}): ${r.problems.slice(0, 3).join("; ")}`);
        }
      } finally {
        await l.close();
      }
    }
    if (snapshotAlarms === 0 && snapshots.length > 0) pass(`${snapshots.length} ledgers as crashes left them: the audit passes on every one (chain, checkpoint held before the crash, rows, conservation), 0 alarms`);

    // The checkpoint a seller keeps, then the graceful stop (which seals everything and signs a last checkpoint).
    const savedCheckpoint = join(dir, "checkpoint.json");
    await run(process.execPath, [CLI, "center", "checkpoint", "--center", center.url, "--out", savedCheckpoint], { cwd: REPO_ROOT, env: childEnv });
    await center.stop();
    const finalAudit = await run(process.execPath, [CLI, "audit", "--json", "--require-sealed", "--checkpoint", savedCheckpoint, "--database", database], { cwd: REPO_ROOT, env: childEnv }).then(
      (r) => ({ code: 0, out: r.stdout }),
      (e: { code?: number; stdout?: string; stderr?: string }) => ({ code: e.code ?? -1, out: `${e.stdout ?? ""}${e.stderr ?? ""}` }),
    );
    const auditJson = (() => {
      try {
        return JSON.parse(finalAudit.out) as { transfersChecked?: number; accountsChecked?: number; scripsChecked?: number };
      } catch {
        return {};
      }
    })();
    if (finalAudit.code === 0) pass(`scripwire audit --require-sealed --checkpoint <held> after shutdown: exit 0 (${auditJson.transfersChecked} transfers, ${auditJson.accountsChecked} accounts, ${auditJson.scripsChecked} scrips)`);
    else fail(`scripwire audit after shutdown: exit ${finalAudit.code}: ${finalAudit.out.trim()}`);

    const ledger = await openLedger(database);
    let scripMismatch = 0;
    let walletsValue = 0n;
    for (const w of wallets) {
      const s = w.scrip;
      if (!s) {
        fail(`${w.name} never registered`);
        continue;
      }
      walletsValue += s.scrip!.value;
      const live = await ledger.liveScrip(s.scrip!.customId!.serialNumber, "KRW");
      if (!live || live.serial !== s.scrip!.scripId!.serialNumber || live.value !== s.scrip!.value || s.scrip!.value !== w.modelValue) {
        scripMismatch++;
        fail(`${w.name}: wallet holds serial ${s.scrip!.scripId!.serialNumber} = ${s.scrip!.value} (model ${w.modelValue}); ledger live serial ${live?.serial} = ${live?.value}`);
      }
    }
    if (scripMismatch === 0) pass(`all ${wallets.length} wallets hold exactly the ledger's live scrip, of the model's value (total ${walletsValue})`);
    await ledger.close();

    const db = await openCheckDb(database);
    const one = db.one;
    const vendorBalance = await one(`SELECT balance AS v FROM accounts WHERE account_id = ?`, `vendor/${VENDOR_ID}/KRW`);
    const customersBalance = await one(`SELECT SUM(balance) AS v FROM accounts WHERE kind = 'customer'`);
    const payoutsTotal = await one(`SELECT SUM(amount) AS v FROM payouts`);
    const creditsPending = await one(`SELECT SUM(balance) AS v FROM accounts WHERE kind = 'credit'`);
    const liveTotal = await one(`SELECT SUM(value) AS v FROM scrips WHERE state = 'live'`);
    const liveDupes = await one(`SELECT COUNT(*) AS v FROM (SELECT customer_serial FROM scrips WHERE state = 'live' GROUP BY customer_serial, currency HAVING COUNT(*) > 1) d`);
    const spentSerials = await one(`SELECT COUNT(*) AS v FROM scrips WHERE state = 'spent'`);
    const inSerialReuse = await one(`SELECT COUNT(*) AS v FROM (SELECT in_serial FROM transactions WHERE state IN ('executed','confirmed') AND in_serial <> 0 GROUP BY in_serial HAVING COUNT(*) > 1) d`);
    await db.close();
    const budgetLeft = campaignsNow.reduce((s, c) => s + c.budget, 0n);
    const fundedLedger = campaignsNow.reduce((s, c) => s + c.funded, 0n);
    const issuedLedger = campaignsNow.reduce((s, c) => s + c.issued, 0n);
    const eq = (what: string, a: bigint, b: bigint) => (a === b ? pass(`${what}: ${a}`) : fail(`${what}: ${a} != ${b}`));
    eq("funded (ledger) = funded (admin calls, second tranche retried once)", fundedLedger, model.fundedTotal);
    eq("funded - remaining budget = issued (ledger)", fundedLedger - budgetLeft, issuedLedger);
    eq("issued (ledger) = rewards the wallets adopted, less undone (model)", issuedLedger, model.issuedNet);
    eq("customer accounts (ledger) = sum of wallets' scrip", customersBalance, walletsValue);
    eq("live scrip (ledger) = sum of wallets' scrip", liveTotal, walletsValue);
    eq("vendor account (ledger) = prices the wallets paid, less undone and refunded (model)", vendorBalance, model.vendorNet);
    eq("payouts (ledger) = redemptions the wallets were told about (model)", payoutsTotal, model.payouts);
    eq("refunds (RF2 answers) = refund credits folded into wallets' scrip (SY2)", refundedTotal(model), model.folded);
    eq("refund credits still pending after every wallet's last sync (ledger)", creditsPending, 0n);
    eq("conservation: funded - budget = customers + vendor + payouts + pending credits", fundedLedger - budgetLeft, customersBalance + vendorBalance + payoutsTotal + creditsPending);
    eq("customers with more than one live scrip", liveDupes, 0n);
    eq("serials spent by two executed transactions", inSerialReuse, 0n);

    // ---- report.
    const durationMs = Date.now() - t0;
    const opLine = [...stats.ops].sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k}=${v}`).join(" ");
    const refusalLine = [...stats.refusals].sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k}=${v}`).join(" ");
    const restartAvg = restartMs.length ? restartMs.reduce((a, b) => a + b, 0) / restartMs.length : 0;
    process.stdout.write(
      [
        ``,
        `torture ${mode} seed=${seed}`,
        ...checks.map((c) => `  ${c}`),
        `  operations:   ${stats.opsTotal} completed (${opLine})`,
        `  refusals:     ${refusalLine || "none"}`,
        `  rpcs:         ${faults.counters.calls} sent, ${stats.retransmissions} retransmissions, ${stats.transportErrors} transport errors/timeouts ` +
          `(${[...stats.transport].map(([k, v]) => `${k}=${v.n}/${(v.ms / Math.max(1, v.n)).toFixed(0)}ms`).join(" ")})`,
        `  faults:       ${args.failover ? `${stats.centerCrashes} PostgreSQL primaries SIGKILLed, standby promoted (the center kept running)` : `${stats.centerCrashes} center ${lazy ? "power cuts" : "SIGKILLs"} (restart avg ${restartAvg.toFixed(0)} ms)`}, ${stats.walletCrashes} wallet crashes, ` +
          `${faults.counters.dropped} replies dropped, ${faults.counters.duplicated} requests duplicated, ${faults.counters.delayed} delays`,
        `  replays:      ${stats.earlierPCount} stored replies carried the hash of an earlier attempt's pCount`,
        `  ledger:       ${spentSerials} serials spent, ${model.adoptedSerials.size} adopted by wallets, ${settlements.length} settlements`,
        `  duration:     ${fmt(durationMs)} (fault phase ${fmt(faultPhaseMs)})`,
        `  violations:   ${model.violations.length}`,
        ``,
      ].join("\n"),
    );
    if (args.expectLoss) return expectLossVerdict(model.violations.length, seed);
    if (model.violations.length > 0) {
      for (const v of model.violations.slice(0, 40)) process.stdout.write(`  [${fmt(v.at)}] ${v.who}: ${v.what}\n`);
      process.stdout.write(`\nFAILED: seed=${seed}; replay with: ${replay}\ncenter log and database kept in ${dir}\n`);
      keepDir = true;
      return 1;
    }
    process.stdout.write(`PASSED: seed=${seed}\n`);
    return 0;
  } catch (e) {
    if (e instanceof LedgerLost) {
      process.stdout.write(`\nLEDGER LOST: ${e.message}\n`);
      if (args.expectLoss) return expectLossVerdict(1, seed);
      process.stdout.write(`FAILED: seed=${seed}; replay with: ${replay}\ncenter log and database kept in ${dir}\n`);
      keepDir = true;
      return 1;
    }
    process.stdout.write(`\nHARNESS ERROR: ${e instanceof Error ? e.stack : String(e)}\nseed=${seed}; replay with: ${replay}\ncenter log and database kept in ${dir}\n`);
    keepDir = true;
    return 2;
  } finally {
    await seller?.close(500).catch(() => {});
    await center.stop().catch(() => {});
    center.close();
    if (args.failover) await replica("teardown").catch(() => {});
    if (lazy) {
      process.stdout.write(`  power cuts:   ${lazy.cuts} (LazyFS clear-cache with the center frozen)\n`);
      await lazy.unmount().catch(() => {});
      lazy.close();
    }
    if (!keepDir) rmSync(dir, { recursive: true, force: true });
  }
}

class LedgerLost extends Error {}

const HA_DATABASE = "postgres://scripwire:scripwire@127.0.0.1:5441/scripwire_ha,postgres://scripwire:scripwire@127.0.0.1:5442/scripwire_ha";

async function replica(cmd: "setup" | "kill-primary" | "promote" | "rebuild" | "teardown"): Promise<void> {
  await run("bash", [join(REPO_ROOT, ".ci", "postgres-replica.sh"), cmd], { cwd: REPO_ROOT, env: childEnv, timeout: 120_000 });
}

/** Aggregate queries for the final checks, on either engine. */
async function openCheckDb(database: string): Promise<{ one: (sql: string, ...p: unknown[]) => Promise<bigint>; close: () => Promise<void> }> {
  if (/^postgres/.test(database)) {
    const pg = (await import("pg")).default;
    // The promoted node: the first URL that is not in recovery.
    for (const url of database.split(/,(?=postgres)/)) {
      const c = new pg.Client({ connectionString: url });
      c.on("error", () => {});
      try {
        await c.connect();
        if ((await c.query("SELECT pg_is_in_recovery() AS r")).rows[0].r === false) {
          return {
            one: async (sql, ...p) => {
              let i = 0;
              const v = (await c.query(sql.replace(/\?/g, () => `$${++i}`), p)).rows[0]?.v;
              return v === null || v === undefined ? 0n : BigInt(v);
            },
            close: () => c.end(),
          };
        }
      } catch {
        /* try the next node */
      }
      await c.end().catch(() => {});
    }
    throw new Error("no primary to check");
  }
  const db = new Database(database, { readonly: true });
  db.defaultSafeIntegers(true);
  return {
    one: async (sql, ...p) => (db.prepare(sql).get(...p) as { v: bigint | null } | undefined)?.v ?? 0n,
    close: async () => void db.close(),
  };
}

/** --expect-loss: the run exists to show the harness catches a durability bug; success = it reported one. */
function expectLossVerdict(violations: number, seed: number): number {
  if (violations > 0) {
    process.stdout.write(`EXPECTED LOSS CAUGHT: the harness reported ${violations} violation(s) with weakened durability (seed=${seed})\n`);
    return 0;
  }
  process.stdout.write(`NOT CAUGHT: no violation with weakened durability (seed=${seed}); the harness missed the loss or no cut hit unsynced data\n`);
  return 1;
}

function readTail(path: string): string {
  try {
    return readFileSync(path, "utf8").trim().split("\n").slice(-3).join(" | ");
  } catch {
    return "";
  }
}

main().then(
  (code) => process.exit(code),
  (e) => {
    process.stderr.write(`${e instanceof Error ? e.stack : String(e)}\n`);
    process.exit(2);
  },
);
