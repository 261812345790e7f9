/**
 * `scripwire`: one command for every role. Groups: center, seller, wallet,
 * audit, demo. Every command takes --help and --json.
 */
import { ConnectError, createClient, Code } from "@connectrpc/connect";
import { readFileSync, writeFileSync } from "node:fs";
import { checkpointFromJson, checkpointSignatureValid, checkpointToJson, type Checkpoint } from "../ledger/chain.js";
import { fromCheckpointMessage } from "../center/sealing.js";
import { CenterAdminService, KeyKind } from "../../gen/scripwire/v1/admin_pb.js";
import { PaymentCenterService } from "../../gen/scripwire/v1/center_pb.js";
import { HashAlgorithm } from "../../gen/scripwire/v1/types_pb.js";
import { createTransport, type WireProtocol } from "../client/transport.js";
import { computeSettlementsMac } from "../crypto/scrip-auth.js";
import { openLedger } from "../ledger/open.js";
import { startCenterServer } from "../center/server.js";
import { describeDatabase, initLedger, isPostgresUrl } from "../center/init.js";
import { join } from "node:path";
import { loadSellerConfig } from "../seller/catalog.js";
import { startSellerServer } from "../seller/server.js";
import { checkAdminToken, WeakAdminTokenError } from "../server/admin-guard.js";
import { parseCorsOrigins } from "../server/http-extras.js";
import { EXIT, helpText, Options, parseArgs, print, UsageError, type Command, type OptionSpec } from "./options.js";

const TOP_HELP = `Usage: scripwire <command> [options]

Hash-authenticated micropayments (KR 10-0284579) over Connect and gRPC.

Commands:
  center init               create a center's ledger and keys (once, before serve)
  center serve              run a payment center (refuses a missing or empty ledger)
  center checkpoint         fetch and save the center's signed journal checkpoint
  center admin <action>     administer a center (create-vendor, rotate-vendor-secret,
                            create-campaign, fund-campaign, list-campaigns,
                            rotate-keys, payouts, audit)
  seller serve              run a seller (internet mall) from a catalog file
  seller settlements        list (or --watch) a seller's confirmed settlements
  seller refund             refund all or part of a confirmed payment (once per TranID)
  gateway serve             put a website behind scrip payments (HTTP 402)
  wallet <action>           a customer's wallet (register, earn, buy, balance,
                            history, renew, redeem, redeliver, recover,
                            catalog, info, show-recovery-code, restore, sync,
                            fetch)
  audit                     check conservation on a ledger database
  demo                      start a center and seller and walk through the protocol

Run 'scripwire <command> --help' for a command's options.`;


const centerInit: Command = {
  usage: "scripwire center init [--data-dir <dir> | --database <file|postgres://url>]",
  summary: "Create a center's ledger and the first generation of its keys. Refuses where a ledger already exists.",
  options: [
    { name: "data-dir", description: "directory for the embedded SQLite ledger", default: "data" },
    { name: "database", description: "postgres:// URL or SQLite file (overrides --data-dir)" },
  ],
  async run(o) {
    const database = o.get("database") ?? join(o.require("data-dir"), "center.sqlite");
    const where = describeDatabase(database);
    const ledger = await openLedger(database);
    try {
      const r = await initLedger(ledger, where);
      print(o.json, { database: where, keys: r.keys }, `ledger created at ${where} with keys ${r.keys.join(", ")}\nstart the center with: scripwire center serve ${isPostgresUrl(database) ? "--database <url>" : `--data-dir ${o.get("database") ? "<dir>" : o.require("data-dir")}`}`);
      return EXIT.OK;
    } finally {
      await ledger.close();
    }
  },
};

const centerServe: Command = {
  usage: "scripwire center serve [options]",
  summary: "Run a payment center: Connect, gRPC and gRPC-Web on one port, with reflection and health.",
  options: [
    { name: "host", description: "address to listen on", default: "127.0.0.1" },
    { name: "port", description: "port to listen on (0 = any free port)", default: "7100" },
    { name: "data-dir", description: "directory for the embedded SQLite ledger", default: "data" },
    { name: "database", description: "postgres:// URL or SQLite file (overrides --data-dir)" },
    { name: "admin-token", description: "bearer token for admin calls (at least 16 characters, not guessable: openssl rand -hex 24)" },
    { name: "currencies", description: "comma-separated currencies issued", default: "KRW" },
    { name: "dns-name", description: "the center's name in every scrip", default: "localhost" },
    { name: "server-name", description: "the center's display name", default: "Scripwire payment center" },
    { name: "scrip-lifetime", description: "lifetime of new scrip in seconds", default: String(30 * 86400) },
    { name: "redeem-threshold", description: "minimum redemption (smallest units)", default: "1000" },
    { name: "tls-cert", description: "PEM certificate file (enables TLS)" },
    { name: "tls-key", description: "PEM private key file" },
    { name: "rate-per-customer", description: "requests per second per customer (0 = unlimited)", default: "20" },
    { name: "rate-per-address", description: "requests per second per client address (0 = unlimited)", default: "1000" },
    { name: "cors-origin", description: "comma-separated origins whose browser pages may call the RPCs (or *)" },
  ],
  async run(o) {
    const currencies = o.require("currencies").split(",").map((c) => c.trim()).filter(Boolean);
    const threshold = parseAmount(o.require("redeem-threshold"), "--redeem-threshold");
    const tls = tlsFrom(o);
    const adminToken = o.get("admin-token");
    // Checked before anything touches the disk: a refused start leaves no database behind.
    try {
      checkAdminToken(adminToken);
    } catch (e) {
      if (e instanceof WeakAdminTokenError) throw new UsageError(e.message);
      throw e;
    }
    const running = await startCenterServer({
      identity: { dnsName: o.require("dns-name"), serverName: o.require("server-name"), port: o.int("port") ?? 0 },
      currencies,
      scripLifetimeSeconds: o.int("scrip-lifetime"),
      redeemThreshold: Object.fromEntries(currencies.map((c) => [c, threshold])),
      database: o.get("database"),
      dataDir: o.get("data-dir"),
      host: o.get("host"),
      port: o.int("port"),
      adminToken: adminToken!,
      tls,
      rateLimits: rateLimitsFrom(o),
      corsOrigins: corsOriginsFrom(o),
    });
    print(o.json, { url: running.url, port: running.port, engine: running.ledger.engine }, `payment center listening on ${running.url} (${running.ledger.engine} ledger)`);
    await waitForSignal(() => running.close());
    return EXIT.OK;
  },
};

function adminClient(o: Options) {
  return createClient(
    CenterAdminService,
    createTransport(o.require("center"), { headers: { authorization: `Bearer ${o.require("admin-token")}` }, protocol: (o.get("protocol") ?? "connect") as WireProtocol }),
  );
}

const adminCommon: OptionSpec[] = [
  { name: "center", description: "center URL", default: "http://127.0.0.1:7100" },
  { name: "admin-token", description: "admin bearer token" },
  { name: "protocol", description: "connect, grpc or grpc-web", default: "connect" },
];

const adminActions: Record<string, Command> = {
  "create-vendor": {
    usage: "scripwire center admin create-vendor --vendor-id <id> [--dns-name d] [--server-name n]",
    summary: "Register a seller and print its first vendor secret (shown once).",
    options: [...adminCommon, { name: "vendor-id", description: "vendor account id" }, { name: "dns-name", description: "seller domain", default: "localhost" }, { name: "server-name", description: "seller display name" }],
    async run(o) {
      const r = await adminClient(o).createVendor({ vendorId: o.require("vendor-id"), vendor: { dnsName: o.require("dns-name"), serverName: o.get("server-name") ?? o.require("vendor-id") } });
      const secret = Buffer.from(r.vendorSecret).toString("hex");
      print(o.json, { vendorId: r.vendorId, vendorKeyId: r.vendorKeyId, vendorSecret: secret }, `vendor ${r.vendorId} created\nvendor key ${r.vendorKeyId}: ${secret}\n(give this secret to the seller only; it is not shown again)`);
      return EXIT.OK;
    },
  },
  "rotate-vendor-secret": {
    usage: "scripwire center admin rotate-vendor-secret --vendor-id <id>",
    summary: "Issue a new vendor secret generation; older ones keep verifying.",
    options: [...adminCommon, { name: "vendor-id", description: "vendor account id" }],
    async run(o) {
      const r = await adminClient(o).rotateVendorSecret({ vendorId: o.require("vendor-id") });
      const secret = Buffer.from(r.vendorSecret).toString("hex");
      print(o.json, { vendorKeyId: r.vendorKeyId, vendorSecret: secret }, `vendor key ${r.vendorKeyId}: ${secret}`);
      return EXIT.OK;
    },
  },
  "create-campaign": {
    usage: "scripwire center admin create-campaign --campaign-id <id> --vendor-id <id> --currency KRW --cap <amount>",
    summary: "Create a campaign whose budget pays a vendor's rewards, with a cap on total funding.",
    options: [...adminCommon, { name: "campaign-id", description: "campaign id" }, { name: "vendor-id", description: "vendor running it" }, { name: "currency", description: "currency", default: "KRW" }, { name: "cap", description: "maximum total funding" }],
    async run(o) {
      const r = await adminClient(o).createCampaign({ campaignId: o.require("campaign-id"), vendorId: o.require("vendor-id"), currency: o.require("currency"), cap: parseAmount(o.require("cap")) });
      print(o.json, r.campaign, `campaign ${r.campaign?.campaignId} created (cap ${r.campaign?.cap} ${r.campaign?.currency})`);
      return EXIT.OK;
    },
  },
  "fund-campaign": {
    usage: "scripwire center admin fund-campaign --campaign-id <id> --amount <n> [--request-id <id>]",
    summary: "Add real money to a campaign's budget. Retrying with the same --request-id funds once.",
    options: [...adminCommon, { name: "campaign-id", description: "campaign id" }, { name: "amount", description: "amount in smallest units" }, { name: "request-id", description: "idempotency key (default: random)" }],
    async run(o) {
      const r = await adminClient(o).fundCampaign({ campaignId: o.require("campaign-id"), amount: parseAmount(o.require("amount")), requestId: o.get("request-id") ?? `fund-${Date.now()}-${Math.random().toString(36).slice(2)}` });
      print(o.json, r.campaign, `campaign ${r.campaign?.campaignId}: budget ${r.campaign?.budget} of cap ${r.campaign?.cap}`);
      return EXIT.OK;
    },
  },
  "list-campaigns": {
    usage: "scripwire center admin list-campaigns",
    summary: "Show every campaign with its budget, funding and issued totals.",
    options: adminCommon,
    async run(o) {
      const r = await adminClient(o).listCampaigns({});
      print(o.json, r.campaigns, r.campaigns.map((c) => `${c.campaignId}\tvendor=${c.vendorId}\tbudget=${c.budget} ${c.currency}\tfunded=${c.funded}/${c.cap}\tissued=${c.issued}`).join("\n") || "(no campaigns)");
      return EXIT.OK;
    },
  },
  checkpoint: {
    usage: "scripwire center checkpoint [--center url] [--out file.json]",
    summary: "Fetch the center's latest signed journal checkpoint (GetCheckpoint, no credentials) and print or save it, for a later `scripwire audit --checkpoint`.",
    options: [
      { name: "center", description: "center URL", default: "http://127.0.0.1:7100" },
      { name: "protocol", description: "connect, grpc or grpc-web", default: "connect" },
      { name: "out", description: "write the checkpoint JSON to this file" },
    ],
    async run(o) {
      const client = createClient(PaymentCenterService, createTransport(o.require("center"), { protocol: (o.get("protocol") ?? "connect") as WireProtocol }));
      const r = await client.getCheckpoint({});
      if (!r.checkpoint) throw Object.assign(new Error("the center has not signed a checkpoint yet (its journal is empty)"), { exitCode: EXIT.FAILURE });
      const cp = fromCheckpointMessage(r.checkpoint);
      if (!checkpointSignatureValid(cp)) throw Object.assign(new Error("the center's checkpoint does not verify under its own key"), { exitCode: EXIT.FAILURE, reason: "CHECKPOINT_INVALID" });
      const json = checkpointToJson(cp);
      const out = o.get("out");
      if (out) writeFileSync(out, JSON.stringify(json, null, 2) + "\n");
      print(o.json, json, `checkpoint: ${json.size} events, head ${json.head}, key generation ${json.keyId}${out ? ` (saved to ${out})` : ""}`);
      return EXIT.OK;
    },
  },
  "rotate-keys": {
    usage: "scripwire center admin rotate-keys --kind certificate|custom",
    summary: "Start a new generation of the scrip-certificate key or the Custom_Secret master key.",
    options: [...adminCommon, { name: "kind", description: "certificate or custom" }],
    async run(o) {
      const kind = o.require("kind");
      const k = kind === "certificate" ? KeyKind.CERTIFICATE : kind === "custom" ? KeyKind.CUSTOM_SECRET : undefined;
      if (k === undefined) throw new UsageError("--kind must be certificate or custom");
      const r = await adminClient(o).rotateKeys({ kind: k });
      print(o.json, { kind, secretId: r.secretId }, `${kind} key generation ${r.secretId} is now current`);
      return EXIT.OK;
    },
  },
  payouts: {
    usage: "scripwire center admin payouts [--limit n]",
    summary: "List recent payouts (redemptions for real money).",
    options: [...adminCommon, { name: "limit", description: "how many", default: "100" }],
    async run(o) {
      const r = await adminClient(o).listPayouts({ limit: o.int("limit") ?? 100 });
      print(o.json, r.payouts, r.payouts.map((p) => `${p.payoutId}\t${p.amount} ${p.currency}\tto ${p.payoutAccount}`).join("\n") || "(no payouts)");
      return EXIT.OK;
    },
  },
  audit: {
    usage: "scripwire center admin audit",
    summary: "Run the ledger audit on a live center.",
    options: adminCommon,
    async run(o) {
      const r = await adminClient(o).audit({});
      print(o.json, r, r.ok ? `audit ok: ${r.transfersChecked} transfers, ${r.accountsChecked} accounts, ${r.scripsChecked} scrips` : `AUDIT FAILED:\n${r.problems.join("\n")}`);
      return r.ok ? EXIT.OK : EXIT.AUDIT_FAILED;
    },
  },
};

/** `--cors-origin a,b`: checked origins (http-extras.ts), or none. */
function corsOriginsFrom(o: Options): string[] | undefined {
  const v = o.get("cors-origin");
  if (!v) return undefined;
  try {
    return parseCorsOrigins(v.split(",").map((x) => x.trim()).filter(Boolean));
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
}

const sellerServe: Command = {
  usage: "scripwire seller serve --catalog <seller.json> [options]",
  summary: "Run a seller (internet mall): campaigns that pay scrip, priced content, and delivery on receipts.",
  options: [
    { name: "catalog", description: "seller config JSON (vendor id, vendorKeys, catalog, campaigns)" },
    { name: "host", description: "address to listen on", default: "127.0.0.1" },
    { name: "port", description: "port (0 = any free port)", default: "7200" },
    { name: "rate-per-address", description: "requests per second per client address (0 = unlimited)", default: "1000" },
    { name: "tls-cert", description: "PEM certificate file (enables TLS)" },
    { name: "tls-key", description: "PEM private key file" },
    { name: "center", description: "payment center whose browser wallet pays on the mall's pages", default: "http://127.0.0.1:7100" },
    { name: "cors-origin", description: "comma-separated origins whose browser pages may call the RPCs (or *)" },
  ],
  async run(o) {
    const tls = tlsFrom(o);
    const running = await startSellerServer({
      centerUrl: o.require("center"),
      corsOrigins: corsOriginsFrom(o),
      config: loadSellerConfig(o.require("catalog")),
      host: o.get("host"),
      port: o.int("port"),
      tls,
      rateLimits: rateLimitsFrom(o),
    });
    print(o.json, { url: running.url, port: running.port }, `seller listening on ${running.url}`);
    await waitForSignal(() => running.close());
    return EXIT.OK;
  },
};

const sellerSettlements: Command = {
  usage: "scripwire seller settlements --vendor-id <id> --vendor-secret <hex> [--after n] [--watch]",
  summary: "List a seller's confirmed settlements at the center; --watch keeps streaming new ones.",
  options: [
    { name: "center", description: "center URL", default: "http://127.0.0.1:7100" },
    { name: "vendor-id", description: "vendor account id" },
    { name: "vendor-secret", description: "vendor secret (hex)" },
    { name: "vendor-key-id", description: "generation of the vendor secret", default: "1" },
    { name: "after", description: "only settlements after this sequence", default: "0" },
    { name: "watch", description: "stream new settlements until interrupted", boolean: true },
  ],
  async run(o) {
    const client = createClient(PaymentCenterService, createTransport(o.require("center")));
    const vendorId = o.require("vendor-id");
    const secretHex = o.require("vendor-secret");
    if (!/^([0-9a-fA-F]{2}){16,64}$/.test(secretHex)) throw new UsageError("--vendor-secret must be the hex secret printed by create-vendor or rotate-vendor-secret");
    const secret = new Uint8Array(Buffer.from(secretHex, "hex"));
    const after = parseAmount(o.require("after"), "--after");
    const ts = BigInt(Date.now());
    const mac = computeSettlementsMac(HashAlgorithm.HMAC_SHA256, secret, vendorId, after, ts);
    const keyId = o.int("vendor-key-id") ?? 1;
    const line = (s: { sequence: bigint; tranId: string; amount: bigint; currency: string; item: string; kind: number }) =>
      `#${s.sequence}\t${s.kind === 1 ? "payment" : "issue"}\t${s.amount} ${s.currency}\t${s.item}\t${s.tranId}`;
    if (o.bool("watch")) {
      const ac = new AbortController();
      process.once("SIGINT", () => ac.abort());
      process.once("SIGTERM", () => ac.abort());
      try {
        for await (const m of client.watchSettlements({ vendorId, afterSequence: after, timestampUnixMs: ts, vendorKeyId: keyId, mac }, { signal: ac.signal })) {
          print(o.json, m.settlement, line(m.settlement!));
        }
      } catch (e) {
        if (!ac.signal.aborted) throw e;
      }
      return EXIT.OK;
    }
    const r = await client.listSettlements({ vendorId, afterSequence: after, timestampUnixMs: ts, vendorKeyId: keyId, mac });
    print(o.json, { settlements: r.settlements, nextSequence: r.nextSequence }, r.settlements.map(line).join("\n") || "(no settlements)");
    return EXIT.OK;
  },
};

const audit: Command = {
  usage: "scripwire audit [--database <file|postgres://url>] [--checkpoint saved.json]",
  summary:
    "Check a ledger database with no center running: the journal's hash chain and signed checkpoints, every row against the journal, and conservation. " +
    "With --checkpoint, also that the ledger still holds and extends a checkpoint saved earlier (scripwire center checkpoint). Exit 5 on any violation; the first problem listed is the first bad row.",
  options: [
    { name: "data-dir", description: "directory of the embedded SQLite ledger", default: "data" },
    { name: "database", description: "postgres:// URL or SQLite file (overrides --data-dir)" },
    { name: "checkpoint", description: "a checkpoint JSON file saved earlier (scripwire center checkpoint --out)" },
    { name: "require-sealed", description: "report events not yet sealed (right after a graceful stop, which seals everything)", boolean: true },
  ],
  async run(o) {
    const cpFile = o.get("checkpoint");
    let saved: Checkpoint | undefined;
    if (cpFile) {
      try {
        saved = checkpointFromJson(JSON.parse(readFileSync(cpFile, "utf8")));
      } catch (e) {
        throw new UsageError(`cannot read the checkpoint ${cpFile}: ${(e as Error).message}`);
      }
    }
    const db = o.get("database") ?? `${o.require("data-dir")}/center.sqlite`;
    if (!/^postgres/.test(db)) {
      const { existsSync } = await import("node:fs");
      if (!existsSync(db)) throw new UsageError(`no ledger database at ${db}`);
    }
    const ledger = await openLedger(db);
    try {
      const r = await ledger.audit({ checkpoint: saved, requireSealed: o.bool("require-sealed") });
      const journal = `journal: ${r.eventsSealed} events sealed, ${r.eventsPending} pending, ${r.checkpointsChecked} checkpoints${saved ? `; saved checkpoint of size ${saved.size} ${r.savedCheckpointOk ? "verified and extended" : "NOT consistent"}` : ""}`;
      print(o.json, r, r.ok ? `audit ok: ${r.transfersChecked} transfers, ${r.accountsChecked} accounts, ${r.scripsChecked} scrips checked; ${journal}` : `AUDIT FAILED (${r.problems.length} problems; the first is the first bad row):\n${r.problems.join("\n")}\n${journal}`);
      return r.ok ? EXIT.OK : EXIT.AUDIT_FAILED;
    } finally {
      await ledger.close();
    }
  },
};

/** Token buckets with a burst of twice the rate; 0 turns a limit off. */
function rateLimitsFrom(o: Options) {
  const bucket = (name: string) => {
    if (!o.has(name)) return false as const;
    const rate = o.int(name) ?? 0;
    return rate === 0 ? (false as const) : { ratePerSecond: rate, burst: rate * 2 };
  };
  return { perCustomer: bucket("rate-per-customer"), perAddress: bucket("rate-per-address") };
}

/** Amounts and sequence numbers: digits only, and within the ledger's 64-bit integers. */
function parseAmount(s: string, what = "amount"): bigint {
  if (!/^[0-9]{1,19}$/.test(s) || BigInt(s) > 9_223_372_036_854_775_807n) {
    throw new UsageError(`${what} must be a non-negative integer (in the currency's smallest unit, at most 2^63-1), got '${s}'`);
  }
  return BigInt(s);
}

/**
 * TLS needs both files. One without the other is a configuration mistake
 * (often a missing environment variable); serving plaintext instead would
 * hide it, so it is a usage error.
 */
function tlsFrom(o: Options): { cert: Buffer; key: Buffer } | undefined {
  const cert = o.get("tls-cert");
  const key = o.get("tls-key");
  if (!cert && !key) return undefined;
  if (!cert || !key) {
    throw new UsageError(`${cert ? "--tls-cert" : "--tls-key"} is set but ${cert ? "--tls-key (SCRIPWIRE_TLS_KEY)" : "--tls-cert (SCRIPWIRE_TLS_CERT)"} is not: give both to serve TLS, or neither for plaintext`);
  }
  const read = (path: string, what: string) => {
    try {
      return readFileSync(path);
    } catch (e) {
      throw new UsageError(`cannot read ${what} ${path}: ${(e as Error).message}`);
    }
  };
  return { cert: read(cert, "--tls-cert"), key: read(key, "--tls-key") };
}

async function waitForSignal(close: () => Promise<void>): Promise<void> {
  await new Promise<void>((resolve) => {
    const stop = () => {
      process.off("SIGINT", stop);
      process.off("SIGTERM", stop);
      resolve();
    };
    process.on("SIGINT", stop);
    process.on("SIGTERM", stop);
  });
  await close();
}

async function loadGroup(name: string): Promise<Record<string, Command> | undefined> {
  switch (name) {
    case "wallet":
      return { ...(await import("./wallet.js")).walletCommands, ...(await import("./wallet-restore.js")).restoreCommands };
    case "gateway":
      return (await import("./gateway.js")).gatewayCommands;
    default:
      return undefined;
  }
}

async function resolve(argv: string[]): Promise<{ cmd: Command; rest: string[] } | undefined> {
  const [a, b, c] = argv;
  if (a === "center" && b === "serve") return { cmd: centerServe, rest: argv.slice(2) };
  if (a === "center" && b === "init") return { cmd: centerInit, rest: argv.slice(2) };
  if (a === "center" && b === "admin" && c === "refund") return { cmd: (await import("./wallet-restore.js")).adminRefund, rest: argv.slice(3) };
  if (a === "center" && b === "checkpoint") return { cmd: adminActions.checkpoint!, rest: argv.slice(2) };
  if (a === "center" && b === "admin" && c && adminActions[c]) return { cmd: adminActions[c]!, rest: argv.slice(3) };
  if (a === "seller" && b === "serve") return { cmd: sellerServe, rest: argv.slice(2) };
  if (a === "seller" && b === "settlements") return { cmd: sellerSettlements, rest: argv.slice(2) };
  if (a === "seller" && b === "refund") return { cmd: (await import("./wallet-restore.js")).sellerRefund, rest: argv.slice(2) };
  if (a === "audit") return { cmd: audit, rest: argv.slice(1) };
  if (a === "demo") return { cmd: (await import("./demo.js")).demoCommand, rest: argv.slice(1) };
  if (a && b) {
    const group = await loadGroup(a);
    if (group?.[b]) return { cmd: group[b]!, rest: argv.slice(2) };
  }
  return undefined;
}

function groupHelp(argv: string[]): string | undefined {
  if (argv[0] === "center" && argv[1] === "admin") {
    return `Usage: scripwire center admin <action> [options]\n\nActions: ${[...Object.keys(adminActions), "refund"].join(", ")}\nRun 'scripwire center admin <action> --help' for details.`;
  }
  return undefined;
}

export async function main(argv: string[]): Promise<number> {
  if (argv.length === 0 || argv[0] === "--help" || argv[0] === "-h" || argv[0] === "help") {
    process.stdout.write(TOP_HELP + "\n");
    return argv.length === 0 ? EXIT.USAGE : EXIT.OK;
  }
  const found = await resolve(argv);
  if (!found) {
    const gh = groupHelp(argv);
    if (argv[0] === "wallet") {
      const g = await loadGroup("wallet");
      process.stderr.write(`Usage: scripwire wallet <action> [options]\n\nActions: ${Object.keys(g ?? {}).join(", ")}\n`);
      return argv.includes("--help") ? EXIT.OK : EXIT.USAGE;
    }
    process.stderr.write((gh ?? `unknown command: ${argv.join(" ")}\n\n${TOP_HELP}`) + "\n");
    return argv.includes("--help") ? EXIT.OK : EXIT.USAGE;
  }
  let o: Options;
  try {
    o = new Options(parseArgs(found.rest, found.cmd.options, found.cmd.positionals ?? 0), found.cmd.options);
  } catch (e) {
    if (e instanceof UsageError) {
      process.stderr.write(`error: ${e.message}\n`);
      return EXIT.USAGE;
    }
    throw e;
  }
  if (o.help) {
    process.stdout.write(helpText(found.cmd.usage, found.cmd.summary, found.cmd.options) + "\n");
    return EXIT.OK;
  }
  try {
    return await found.cmd.run(o);
  } catch (e) {
    return reportError(e, o.json);
  }
}

export function reportError(e: unknown, json: boolean): number {
  let code: number = EXIT.FAILURE;
  let message = e instanceof Error ? e.message : String(e);
  let reason: string | undefined;
  if (e instanceof UsageError) code = EXIT.USAGE;
  else if (e instanceof ConnectError) {
    reason = e.metadata.get("scripwire-error-reason") ?? undefined;
    message = `${Code[e.code]}: ${e.rawMessage}`;
    code = e.code === Code.Unavailable || e.code === Code.DeadlineExceeded ? EXIT.UNAVAILABLE : EXIT.FAILURE;
  } else if (e && typeof e === "object" && "exitCode" in e && typeof (e as { exitCode: unknown }).exitCode === "number") {
    code = (e as { exitCode: number }).exitCode;
    reason = (e as { reason?: string }).reason;
  }
  if (json) process.stdout.write(JSON.stringify({ error: message, reason, exitCode: code }) + "\n");
  else process.stderr.write(`error: ${message}${reason ? ` [${reason}]` : ""}\n`);
  return code;
}

const isEntry = process.argv[1] && /(?:main\.ts|scripwire(?:\.js)?)$/.test(process.argv[1]);
if (isEntry) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (e) => {
      process.exitCode = reportError(e, process.argv.includes("--json"));
    },
  );
}
