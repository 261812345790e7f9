/**
 * `scripwire demo`: starts a payment center and a seller on the embedded
 * SQLite default and walks one customer through the patent's three
 * protocols — register (R1-R2), earn by answering a quiz (M1-M7), buy an
 * article to view and a file to save (S1-S7) — printing each message as it
 * happens; then the mall refunds the article (RF1), the wallet file is lost
 * and rebuilt from its recovery code (SY1-SY2, the refund folded into a
 * fresh scrip); then the balance and the center's audit.
 */
import { createClient } from "@connectrpc/connect";
import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CenterAdminService } from "../../gen/scripwire/v1/admin_pb.js";
import { startCenterServer } from "../center/server.js";
import { createTransport, type WireProtocol } from "../client/transport.js";
import { DEMO_CAMPAIGN, DEMO_CURRENCY, DEMO_QUIZ, demoSellerConfig } from "../demo/sample-mall.js";
import { parseSellerConfig } from "../seller/catalog.js";
import { startSellerServer } from "../seller/server.js";
import { FileWalletStore, Wallet } from "../wallet/index.js";
import { PaymentCenterService } from "../../gen/scripwire/v1/center_pb.js";
import { sendRefund } from "../seller/refund-client.js";
import { EXIT, type Command } from "./options.js";

export const demoCommand: Command = {
  usage: "scripwire demo [--web] [--data-dir <dir>] [--protocol connect|grpc]",
  summary: "Start a center and a seller on the embedded SQLite ledger and walk one customer through register → earn → buy.",
  options: [
    { name: "data-dir", description: "where the ledger and wallet go (default: a fresh temporary directory, removed afterwards)" },
    { name: "protocol", description: "wire protocol for the wallet: connect or grpc", default: "connect" },
    { name: "web", boolean: true, description: "serve the web mall and the browser wallet until Ctrl-C instead of walking through in the terminal" },
  ],
  async run(o) {
    if (o.bool("web")) return webDemo(o.get("data-dir"));
    const json = o.json;
    // The walk-through is the output here; server logs would bury it (SCRIPWIRE_LOG=info brings them back).
    process.env.SCRIPWIRE_LOG ??= "error";
    const keep = o.get("data-dir") !== undefined;
    const dir = o.get("data-dir") ?? mkdtempSync(join(tmpdir(), "scripwire-demo-"));
    // Private: the ledger's files must not be readable by others (the center refuses them).
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const protocol = (o.get("protocol") ?? "connect") as WireProtocol;
    const seen: string[] = [];
    const say = (kind: string, text: string, extra: Record<string, unknown> = {}) => {
      if (json) process.stdout.write(JSON.stringify({ kind, text, ...extra }, (_k, v) => (typeof v === "bigint" ? v.toString() : v)) + "\n");
      else process.stdout.write(kind === "title" ? `\n== ${text}\n` : kind === "msg" ? `   ${text}\n` : `${text}\n`);
    };

    const servers = await startDemoServers(dir, 1000n, keep);
    const { center, seller, admin } = servers;
    let wallet: Wallet | undefined;
    try {
      say("title", "Payment center and seller");
      say("info", `center listening on ${center.url} (ledger: SQLite file ${join(dir, "center.sqlite")})`);
      say("info", `vendor ${servers.vendorId} registered; campaign ${DEMO_CAMPAIGN} funded with ${servers.budget} ${DEMO_CURRENCY}`);
      say("info", `seller (internet mall) listening on ${seller.url}`);

      wallet = await Wallet.open({
        store: new FileWalletStore(join(dir, "wallet.json")),
        protocol,
        onProgress: (p) => {
          if (!seen.includes(p.step)) seen.push(p.step);
          say("msg", p.message, { step: p.step });
        },
      });

      say("title", "Registration (R1 → R2): the only public-key operation");
      await wallet.register(center.url, { name: "Demo Customer", email: "demo@example.test" });

      say("title", `Earning scrip (M1 → M7): answering the quiz "${DEMO_QUIZ.prompt}"`);
      await wallet.earn(seller.url, DEMO_QUIZ.itemId, DEMO_QUIZ.answer);
      say("info", `balance: ${wallet.balance().value} ${DEMO_CURRENCY}`);
      say("title", "Earning more: a survey answer and an advertisement");
      await wallet.earn(seller.url, "survey-reading", "Long reads about payments");
      await wallet.earn(seller.url, "ad-spring-sale", "");
      say("info", `balance: ${wallet.balance().value} ${DEMO_CURRENCY}`);

      say("title", "Buying an article to view (S1 → S7)");
      const article = await wallet.buy(seller.url, "/articles/why-hash-cash", "VIEW");
      say("info", `shown in the browser: ${new TextDecoder().decode(article.delivery?.content ?? new Uint8Array()).replace(/<[^>]+>/g, " ").replace(/\s+/g, " ").trim()}`);

      say("title", "Buying a file to save (S1 → S7)");
      const file = await wallet.buy(seller.url, "/software/scrip-inspector.txt", "SAVE");
      const saved = join(dir, file.delivery?.fileName || "download.bin");
      writeFileSync(saved, file.delivery?.content ?? new Uint8Array());
      say("info", `saved ${file.delivery?.content.length ?? 0} bytes to ${saved}${keep ? "" : " (a temporary directory; pass --data-dir to keep it)"}`);

      say("title", "Refund after confirmation (RF1 → RF2): the mall gives back half the article's price");
      const refund = await sendRefund(createClient(PaymentCenterService, createTransport(center.url)), {
        vendorId: servers.vendorId,
        vendorSecret: servers.vendorSecret,
        vendorKeyId: servers.vendorKeyId,
        tranId: article.tranId,
        amount: article.price / 2n || 1n,
        reason: "demo: late delivery",
      });
      say("info", `refunded ${refund.amount} ${refund.currency} of ${refund.paid}; it waits at the center as a credit until the wallet syncs`);

      say("title", "The wallet file is lost: restore from the recovery code (SY1 → SY2)");
      const code = wallet.recoveryCode();
      say("info", `recovery code (shown at registration): ${code}`);
      await wallet.close();
      rmSync(join(dir, "wallet.json"), { force: true });
      rmSync(join(dir, "wallet.json.journal"), { force: true });
      wallet = await Wallet.open({ store: new FileWalletStore(join(dir, "wallet-restored.json")), protocol, onProgress: (p) => say("msg", p.message, { step: p.step }) });
      const restored = await wallet.restore(center.url, code);
      const folded = restored.refunds.filter((c) => !c.pending).reduce((a, c) => a + c.amount, 0n);
      say("info", `restored customer ${restored.customId.serialNumber}: ${restored.value} ${restored.currency}${folded ? ` (with the ${folded} ${restored.currency} refund, folded into a fresh scrip)` : ""}`);

      say("title", "Balance, history and the center's audit");
      const balance = wallet.balance();
      say("info", `balance: ${balance.value} ${balance.currency}`, { balance: balance.value });
      for (const h of wallet.history()) say("msg", `${h.kind.padEnd(9)} ${String(h.amount).padStart(5)} ${h.currency}  balance ${String(h.balance).padStart(4)}  ${h.item ?? ""}${h.method ? ` (${h.method})` : ""}`);
      const audit = await admin.audit({});
      say(
        "info",
        audit.ok
          ? `audit ok: ${audit.transfersChecked} transfers, ${audit.accountsChecked} accounts, ${audit.scripsChecked} scrips — value conserved, no serial spent twice`
          : `AUDIT FAILED: ${audit.problems.join("; ")}`,
        { auditOk: audit.ok },
      );
      const expected = ["R1", "R2", "M1", "M2", "M3", "M4", "M5", "M6", "M7", "S1", "S2", "S3", "S4", "S5", "S6", "S7"];
      const missing = expected.filter((s) => !seen.includes(s));
      say("info", missing.length ? `messages missing from the walk: ${missing.join(", ")}` : `every message was exchanged: ${expected.join(" ")}`);
      if (keep) say("info", `ledger, wallet and download kept in ${dir}`);
      return audit.ok && missing.length === 0 ? EXIT.OK : EXIT.AUDIT_FAILED;
    } finally {
      await wallet?.close();
      await servers.close();
      if (!keep) rmSync(dir, { recursive: true, force: true });
    }
  },
};

/**
 * `scripwire demo --web`: a center (with its browser wallet at /wallet/) and
 * the sample mall (pages at /shop/) on loopback, served until Ctrl-C.
 */
async function webDemo(dataDir: string | undefined): Promise<number> {
  process.env.SCRIPWIRE_LOG ??= "error";
  const dir = dataDir ?? mkdtempSync(join(tmpdir(), "scripwire-demo-web-"));
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const { center, seller, close } = await startDemoServers(dir, 100n, dataDir !== undefined);
  try {
    process.stdout.write(
      `Scripwire web demo\n` +
        `  1. open your wallet and register:  ${center.url}/wallet/\n` +
        `  2. then shop, earn and pay at:     ${seller.url}/shop/\n` +
        `  data: ${dir}${dataDir ? "" : " (temporary)"}\n` +
        `Serving until Ctrl-C.\n`,
    );
    await new Promise<void>((resolve) => {
      process.once("SIGINT", resolve);
      process.once("SIGTERM", resolve);
    });
    process.stdout.write("stopping\n");
    return EXIT.OK;
  } finally {
    await close();
    if (!dataDir) rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * A center (new SQLite ledger in `dir`) and the sample mall: vendor, funded
 * campaign, seller with its web pages pointing at the center.
 */
async function startDemoServers(dir: string, redeemThreshold: bigint, keep: boolean) {
  const adminToken = randomBytes(24).toString("hex");
  const center = await startCenterServer({
    identity: { dnsName: "localhost", serverName: "Scripwire demo center", port: 0 },
    currencies: [DEMO_CURRENCY],
    redeemThreshold: { [DEMO_CURRENCY]: redeemThreshold },
    dataDir: dir,
    adminToken,
    // The demo's ledger is new by design: created here rather than by `center init`.
    createLedger: true,
    // A throwaway demo keeps its KEK in its temporary directory, removed with it;
    // with --data-dir the default (<data-dir>.kek, beside it) applies.
    kek: keep ? undefined : { file: join(dir, "center.kek") },
  });
  try {
    const admin = createClient(CenterAdminService, createTransport(center.url, { headers: { authorization: `Bearer ${adminToken}` } }));
    const vendor = await admin.createVendor({ vendorId: "demo-mall", vendor: { dnsName: "localhost", serverName: "Scripwire Demo Mall" } });
    await admin.createCampaign({ campaignId: DEMO_CAMPAIGN, vendorId: vendor.vendorId, currency: DEMO_CURRENCY, cap: 1_000_000n });
    const funded = await admin.fundCampaign({ campaignId: DEMO_CAMPAIGN, amount: 100_000n, requestId: "demo-initial-funding" });
    const config = parseSellerConfig(demoSellerConfig(vendor.vendorId, Buffer.from(vendor.vendorSecret).toString("hex"), 0));
    const seller = await startSellerServer({ config, centerUrl: center.url });
    return {
      center,
      seller,
      admin,
      vendorId: vendor.vendorId,
      vendorSecret: vendor.vendorSecret,
      vendorKeyId: vendor.vendorKeyId,
      budget: funded.campaign?.budget,
      close: async () => {
        await seller.close(1000);
        await center.close(1000);
      },
    };
  } catch (e) {
    await center.close(1000);
    throw e;
  }
}
