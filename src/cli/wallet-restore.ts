/**
 * `scripwire wallet show-recovery-code | restore | sync`, `scripwire seller
 * refund` and `scripwire center admin refund` (issue 14). Kept beside the
 * other wallet commands (src/cli/wallet.ts) and merged into the wallet group.
 *
 * The recovery code is a credential: it is printed on stdout only when asked
 * for (or once at registration), never in progress lines; `--code -` reads it
 * from stdin so it stays out of shell history and process listings.
 */
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { CenterAdminService } from "../../gen/scripwire/v1/admin_pb.js";
import { PaymentCenterService } from "../../gen/scripwire/v1/center_pb.js";
import type { Refund } from "../../gen/scripwire/v1/types_pb.js";
import { createTransport, type WireProtocol } from "../client/transport.js";
import { errorReason } from "../server/errors.js";
import { sendRefund } from "../seller/refund-client.js";
import type { SyncResult } from "../wallet/restore.js";
import { EXIT, print, UsageError, type Command, type Options } from "./options.js";
import { common, withWallet } from "./wallet.js";

function codeFrom(o: Options): string {
  const v = o.require("code");
  if (v !== "-") return v;
  const text = readFileSync(0, "utf8").trim();
  if (!text) throw new UsageError("--code - expects the recovery code on stdin");
  return text;
}

function syncLines(r: SyncResult): string[] {
  return [
    ...r.finished.map((f) => `finished ${f.kind === "buy" ? "purchase" : "earning"} ${f.tranId} (${f.amount}, ${f.item}) that was in flight`),
    ...r.refunds.map((c) => `refund ${c.refundId} of ${c.tranId}: ${c.amount} ${c.currency} ${c.pending ? "pending (a payment in flight holds it back)" : "in the scrip"}`),
    ...r.initiated.map((i) => `note: ${i.tranId} (${i.kind}, ${i.amount}) was started but never executed; nothing moved`),
  ];
}

function refundLine(r: Refund): string {
  return `refunded ${r.amount} ${r.currency} of ${r.paid} paid for ${r.tranId} to customer ${r.customId?.serialNumber ?? "?"} (refund ${r.refundId}, settlement #${r.settlementSequence}); the customer's next sync credits it`;
}

/** A refusal from the center is exit 3 with its reason; anything else goes to the generic handler. */
function refused(o: Options, e: unknown): number {
  if (!(e instanceof ConnectError) || ![Code.FailedPrecondition, Code.AlreadyExists, Code.NotFound].includes(e.code)) throw e;
  const reason = errorReason(e);
  if (o.json) print(true, { error: e.rawMessage, reason, exitCode: EXIT.REFUSED }, "");
  else process.stderr.write(`error: ${e.rawMessage}${reason ? ` [${reason}]` : ""}\n`);
  return EXIT.REFUSED;
}

function amountOf(o: Options): bigint {
  const v = o.get("amount") ?? "all";
  if (v === "all") return 0n;
  if (!/^[1-9][0-9]{0,18}$/.test(v)) throw new UsageError(`--amount must be a positive integer in the currency's smallest unit, or 'all'; got ${v}`);
  return BigInt(v);
}

const refundOptions = [
  { name: "tran-id", description: "TranID of the confirmed payment" },
  { name: "amount", description: "amount to refund in smallest units, or 'all'", default: "all" },
  { name: "reason", description: "why (shown to the customer)", default: "" },
  { name: "request-id", description: "idempotency id; reuse it only to retry the same refund (default: a fresh one)" },
];

export const restoreCommands: Record<string, Command> = {
  "show-recovery-code": {
    usage: "scripwire wallet show-recovery-code",
    summary: "Show the wallet's recovery code again (needs the passphrase of an encrypted wallet). Anyone holding it can spend the wallet.",
    options: [...common],
    run: (o) =>
      withWallet(o, async (w) => {
        const code = w.recoveryCode();
        print(o.json, { recoveryCode: code, customId: w.identity!.customId, centerUrl: w.identity!.centerUrl }, `${code}\n(with the center ${w.identity!.centerUrl} this restores the wallet; keep it secret)`);
        return EXIT.OK;
      }, { useCenterFlag: false }),
  },

  restore: {
    usage: "scripwire wallet restore --center <url> --code <SW1-...|-> [--wallet new.json]",
    summary: "Rebuild a lost wallet from its recovery code: fetch the live scrip from the center, finish any payment that was in flight.",
    options: [
      ...common,
      { name: "center", description: "payment center URL", default: "http://127.0.0.1:7100" },
      { name: "code", description: "the recovery code, or - to read it from stdin" },
      { name: "pin", description: "the center's public key (hex), obtained out of band; refuse any other" },
      { name: "currency", description: "which currency's scrip to hold (default: the center's first)" },
      { name: "seller", description: "seller URL to keep with receipts of purchases finished during the restore (for redeliver)" },
    ],
    run: (o) =>
      withWallet(
        o,
        async (w) => {
          const r = await w.restore(o.require("center"), codeFrom(o), { pinnedPublicKey: o.get("pin"), currency: o.get("currency"), sellerUrl: o.get("seller") });
          print(
            o.json,
            { ...r, wallet: o.require("wallet") },
            [`restored customer ${r.customId.serialNumber}: ${r.value} ${r.currency} (scrip ${r.serial}) into ${o.require("wallet")}`, `center key pinned: ${r.centerPublicKey}`, ...syncLines(r)].join("\n"),
          );
          return EXIT.OK;
        },
        { useCenterFlag: false },
      ),
  },

  sync: {
    usage: "scripwire wallet sync",
    summary: "Converge with the center: finish payments in flight (also from another device), collect refunds, adopt the live scrip.",
    options: [...common, { name: "center", description: "payment center URL (default: the one the wallet registered with)" }, { name: "seller", description: "seller URL to keep with receipts of purchases finished here" }],
    run: (o) =>
      withWallet(o, async (w) => {
        const r = await w.sync({ sellerUrl: o.get("seller") });
        print(o.json, r, [`${r.value} ${r.currency} (scrip ${r.serial})${r.changed ? ": adopted the center's live scrip" : ": already in step"}`, ...syncLines(r)].join("\n"));
        return EXIT.OK;
      }),
  },
};

export const sellerRefund: Command = {
  usage: "scripwire seller refund --vendor-id <id> --vendor-secret <hex> --tran-id <T> [--amount <n|all>] [--reason text]",
  summary: "Refund all or part of a confirmed payment; a TranID is refunded at most once, never more than was paid.",
  options: [
    { name: "center", description: "center URL", default: "http://127.0.0.1:7100" },
    { name: "protocol", description: "connect, grpc or grpc-web", default: "connect" },
    { name: "vendor-id", description: "vendor account id" },
    { name: "vendor-secret", description: "vendor secret (hex)" },
    { name: "vendor-key-id", description: "generation of the vendor secret", default: "1" },
    ...refundOptions,
  ],
  async run(o) {
    const secretHex = o.require("vendor-secret");
    if (!/^([0-9a-fA-F]{2}){16,64}$/.test(secretHex)) throw new UsageError("--vendor-secret must be the hex secret the center issued");
    const center = createClient(PaymentCenterService, createTransport(o.require("center"), { protocol: (o.get("protocol") ?? "connect") as WireProtocol }));
    try {
      const r = await sendRefund(center, {
        vendorId: o.require("vendor-id"),
        vendorSecret: new Uint8Array(Buffer.from(secretHex, "hex")),
        vendorKeyId: o.int("vendor-key-id") ?? 1,
        tranId: o.require("tran-id"),
        amount: amountOf(o),
        requestId: o.get("request-id"),
        reason: o.get("reason") ?? "",
      });
      print(o.json, r, refundLine(r));
      return EXIT.OK;
    } catch (e) {
      return refused(o, e);
    }
  },
};

export const adminRefund: Command = {
  usage: "scripwire center admin refund --vendor-id <id> --tran-id <T> [--amount <n|all>] [--reason text]",
  summary: "Refund a confirmed payment on a seller's behalf (same rules as 'seller refund').",
  options: [
    { name: "center", description: "center URL", default: "http://127.0.0.1:7100" },
    { name: "admin-token", description: "admin bearer token" },
    { name: "protocol", description: "connect, grpc or grpc-web", default: "connect" },
    { name: "vendor-id", description: "vendor account id" },
    ...refundOptions,
  ],
  async run(o) {
    const admin = createClient(
      CenterAdminService,
      createTransport(o.require("center"), { headers: { authorization: `Bearer ${o.require("admin-token")}` }, protocol: (o.get("protocol") ?? "connect") as WireProtocol }),
    );
    try {
      const { refund } = await admin.refundPayment({
        vendorId: o.require("vendor-id"),
        tranId: o.require("tran-id"),
        amount: amountOf(o),
        requestId: o.get("request-id") ?? `admin-${randomBytes(12).toString("hex")}`,
        reason: o.get("reason") ?? "",
      });
      print(o.json, refund, refundLine(refund!));
      return EXIT.OK;
    } catch (e) {
      return refused(o, e);
    }
  },
};
