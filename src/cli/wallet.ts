/**
 * `scripwire wallet <action>`: a customer's wallet on the command line, over
 * the wallet library (src/wallet). Every action takes --wallet (the wallet
 * file, SCRIPWIRE_WALLET), --passphrase (SCRIPWIRE_PASSPHRASE), --protocol and
 * --json; protocol steps are shown as progress lines on stderr; typed wallet
 * errors become exit codes (1 failure, 3 refused, 4 unavailable) with a hint.
 */
import { existsSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import { basename, extname } from "node:path";
import type { WireProtocol } from "../wallet/client.js";
import { SellerClient } from "../wallet/connect-node.js";
import { ScripwireError, RefusedError } from "../wallet/errors.js";
import { FileWalletStore } from "../wallet/store.js";
import { Wallet, type Delivery } from "../wallet/wallet.js";
import { walletFetchCommand } from "./wallet-fetch.js";
import { EXIT, Options, print, progress, progressDone, UsageError, type Command, type OptionSpec } from "./options.js";

const walletOpt: OptionSpec = { name: "wallet", description: "wallet file", default: "wallet.json" };
const passphraseOpt: OptionSpec = { name: "passphrase", description: "passphrase that encrypts the wallet's secret (scrypt + XChaCha20-Poly1305)" };
const protocolOpt: OptionSpec = { name: "protocol", description: "wire protocol: connect or grpc", default: "connect" };
const centerOpt: OptionSpec = { name: "center", description: "payment center URL (default: the one the wallet registered with)" };
const sellerOpt: OptionSpec = { name: "seller", description: "seller URL", default: "http://127.0.0.1:7200" };
export const common = [walletOpt, passphraseOpt, protocolOpt];

export function protocolOf(o: Options): WireProtocol {
  const p = o.get("protocol") ?? "connect";
  if (p !== "connect" && p !== "grpc" && p !== "grpc-web") throw new UsageError(`--protocol must be connect, grpc or grpc-web, got ${p}`);
  return p;
}

function amountOf(o: Options, name: string): bigint {
  const v = o.require(name);
  if (v === "all") return 0n;
  if (!/^[0-9]{1,19}$/.test(v)) throw new UsageError(`--${name} must be a non-negative integer in the currency's smallest unit, got ${v}`);
  return BigInt(v);
}

/** Prints a typed wallet error with its hint and returns its exit code. */
export function report(o: Options, e: ScripwireError): number {
  if (o.json) {
    print(true, { error: e.message, code: e.code, reason: e.reason, hint: e.hint || undefined, cmdType: e instanceof RefusedError ? e.cmdType : undefined, exitCode: e.exitCode }, "");
  } else {
    process.stderr.write(`error: ${e.message} [${e.reason}]\n${e.hint ? `hint: ${e.hint}\n` : ""}`);
  }
  return e.exitCode;
}

/** Opens the wallet file, runs `fn`, closes; typed errors become exit codes. */
export async function withWallet(o: Options, fn: (w: Wallet) => Promise<number>, opts: { useCenterFlag?: boolean } = {}): Promise<number> {
  const store = new FileWalletStore(o.require("wallet"), { passphrase: o.get("passphrase") });
  let wallet: Wallet | undefined;
  try {
    wallet = await Wallet.open({
      store,
      protocol: protocolOf(o),
      centerUrl: opts.useCenterFlag === false ? undefined : o.get("center"),
      onProgress: (p) => progress(o.json, p.message),
    });
    const r = wallet.recovery;
    if (r && !o.json) {
      process.stderr.write(
        r.outcome === "completed"
          ? `note: finished the interrupted ${r.kind} ${r.id}\n`
          : `note: the center refused to finish the interrupted ${r.kind} ${r.id} (${r.error?.reason}); the wallet keeps its live scrip\n`,
      );
    }
    return await fn(wallet);
  } catch (e) {
    if (e instanceof ScripwireError) return report(o, e);
    throw e;
  } finally {
    progressDone(o.json);
    await wallet?.close();
  }
}

/** A file name for SAVE content: the seller's name without any directory, never overwriting an existing file. */
function saveName(suggested: string): string {
  const base = basename(suggested.replace(/\\/g, "/")).replace(/^\.+/, "") || "content";
  if (!existsSync(base)) return base;
  const ext = extname(base);
  const stem = base.slice(0, base.length - ext.length);
  for (let i = 1; i < 1000; i++) {
    const n = `${stem}.${i}${ext}`;
    if (!existsSync(n)) return n;
  }
  throw new UsageError(`too many files named ${base}; pass --out`);
}

/** Shows VIEW content on stdout or writes SAVE content to a file; returns what to report. */
async function emit(o: Options, d: Delivery): Promise<{ savedTo?: string; content?: string }> {
  const out = o.get("out");
  if (d.method === "SAVE" || out) {
    const path = out ?? saveName(d.fileName || "content");
    await writeFile(path, d.content, { mode: 0o644 });
    return { savedTo: path };
  }
  return { content: new TextDecoder().decode(d.content) };
}

export const walletCommands: Record<string, Command> = {
  register: {
    usage: "scripwire wallet register --center <url> [--name n] [--email e] [--pin <hex key>]",
    summary: "Register with a payment center (R1 -> R2): pin its public key and receive a zero-value scrip.",
    options: [
      ...common,
      { name: "center", description: "payment center URL", default: "http://127.0.0.1:7100" },
      { name: "name", description: "your name (optional)" },
      { name: "email", description: "your e-mail (optional)" },
      { name: "address", description: "your address (optional)" },
      { name: "etc", description: "anything else the center should know (optional)" },
      { name: "currency", description: "currency of the wallet (default: the center's first)" },
      { name: "pin", description: "the center's public key (hex), obtained out of band; refuse any other" },
    ],
    run: (o) =>
      withWallet(
        o,
        async (w) => {
          const r = await w.register(
            o.require("center"),
            { name: o.get("name"), email: o.get("email"), address: o.get("address"), etc: o.get("etc") },
            { currency: o.get("currency"), pinnedPublicKey: o.get("pin") },
          );
          // The recovery code is shown here once, on stdout only (never in
          // progress lines or logs); `wallet show-recovery-code` shows it again.
          const recoveryCode = w.recoveryCode();
          print(
            o.json,
            { walletId: r.walletId, customId: r.customId, currency: r.currency, centerPublicKey: r.centerPublicKey, serial: r.serial, wallet: o.require("wallet"), recoveryCode },
            `registered: customer ${r.customId.serialNumber} (${r.currency}), wallet ${o.require("wallet")}\ncenter key pinned: ${r.centerPublicKey}\n\n` +
              `RECOVERY CODE (write it down; with the center's address it restores this wallet, so keep it secret):\n  ${recoveryCode}\n` +
              `restore with: scripwire wallet restore --center ${o.require("center")} --code <code>`,
          );
          return EXIT.OK;
        },
        { useCenterFlag: false },
      ),
  },

  info: {
    usage: "scripwire wallet info [--center <url>]",
    summary: "Show the payment center's public facts (key, currencies, redemption threshold) and whether its key matches the wallet's pin.",
    options: [...common, centerOpt],
    run: (o) =>
      withWallet(
        o,
        async (w) => {
          const url = o.get("center");
          if (!url && !w.registered) throw new UsageError("--center is required for an unregistered wallet");
          const i = await w.centerInfo(url);
          const pin = i.pinned === undefined ? "not registered" : i.pinned ? "matches the wallet's pin" : "DOES NOT MATCH the wallet's pin";
          print(
            o.json,
            { ...i, identity: w.identity },
            [
              `center ${i.center.serverName} (${i.center.dnsName}:${i.center.port}) at ${i.url}`,
              `public key ${i.publicKey} (${pin})`,
              `currencies ${i.currencies.join(", ")}; hash algorithms ${i.acceptedHashAlgorithms.join(", ")}`,
              `redemption threshold ${Object.entries(i.redeemThreshold).map(([c, v]) => `${v} ${c}`).join(", ")}; scrip lifetime ${i.scripLifetimeSeconds}s`,
              ...(w.identity ? [`this wallet: customer ${w.identity.customId.serialNumber}, wallet id ${w.identity.walletId}`] : []),
            ].join("\n"),
          );
          return EXIT.OK;
        },
        { useCenterFlag: false },
      ),
  },

  catalog: {
    usage: "scripwire wallet catalog [--seller <url>]",
    summary: "List what a seller sells and which quizzes, surveys and ads pay scrip.",
    options: [sellerOpt, protocolOpt],
    async run(o) {
      const seller = new SellerClient(o.require("seller"), { protocol: protocolOf(o) });
      try {
        const c = await seller.getCatalog();
        const methods = (ms: number[]) => ms.map((m) => (m === 1 ? "VIEW" : m === 2 ? "SAVE" : String(m))).join("/");
        const kinds = ["?", "AD", "SURVEY", "QUIZ"];
        print(
          o.json,
          c,
          [
            `${c.vendor?.serverName ?? c.vendorId} (${c.vendorId})`,
            "for sale:",
            ...c.entries.map((e) => `  ${e.requestUrl}\t${e.price} ${e.currency}\t${methods(e.deliveryMethods)}\t${e.title}`),
            "pays scrip for:",
            ...c.campaignItems.map((i) => `  ${i.itemId}\t${kinds[i.kind] ?? i.kind}\t+${i.reward} ${i.currency}\t${i.prompt}${i.choices.length ? ` [${i.choices.join(" | ")}]` : ""}`),
          ].join("\n"),
        );
        return EXIT.OK;
      } catch (e) {
        if (e instanceof ScripwireError) return report(o, e);
        throw e;
      } finally {
        seller.close();
      }
    },
  },

  earn: {
    usage: "scripwire wallet earn --item <id> [--answer <text>] [--seller <url>]",
    summary: "Earn scrip by answering a seller's quiz or survey or reading its ad (M1 -> M7).",
    options: [...common, centerOpt, sellerOpt, { name: "item", description: "campaign item id (see 'scripwire wallet catalog')" }, { name: "answer", description: "your answer", default: "" }],
    run: (o) =>
      withWallet(o, async (w) => {
        const r = await w.earn(o.require("seller"), o.require("item"), o.get("answer") ?? "");
        print(o.json, r, `earned ${r.amount} ${r.currency} for ${r.item}; balance ${r.balance} ${r.currency} (TranID ${r.tranId})`);
        return EXIT.OK;
      }),
  },

  buy: {
    usage: "scripwire wallet buy --url <request-url> [--method VIEW|SAVE] [--out <file>] [--seller <url>]",
    summary: "Buy content (S1 -> S7): VIEW prints it, SAVE writes it to a file (--out, or the seller's file name).",
    options: [
      ...common,
      centerOpt,
      sellerOpt,
      { name: "url", description: "request URL of the content (see 'scripwire wallet catalog')" },
      { name: "method", description: "VIEW or SAVE", default: "VIEW" },
      { name: "out", description: "file to write the content to" },
      { name: "max-price", description: "refuse to pay more than this" },
    ],
    run: (o) =>
      withWallet(o, async (w) => {
        const method = (o.get("method") ?? "VIEW").toUpperCase();
        if (method !== "VIEW" && method !== "SAVE") throw new UsageError(`--method must be VIEW or SAVE, got ${method}`);
        const max = o.get("max-price");
        const r = await w.buy(o.require("seller"), o.require("url"), method, { maxPrice: max === undefined ? undefined : amountOf(o, "max-price") });
        const summary = { tranId: r.tranId, requestUrl: r.requestUrl, method: r.method, price: r.price, currency: r.currency, balance: r.balance };
        if (!r.delivery) {
          const e = r.deliveryError!;
          print(o.json, { ...summary, delivered: false, error: e.message, reason: e.reason }, `paid ${r.price} ${r.currency} for ${r.requestUrl} (TranID ${r.tranId}); balance ${r.balance} ${r.currency}`);
          process.stderr.write(`error: delivery failed: ${e.message}\nhint: run 'scripwire wallet redeliver --tran-id ${r.tranId}' (you will not pay again)\n`);
          return e.exitCode;
        }
        const shown = await emit(o, r.delivery);
        if (o.json) print(true, { ...summary, delivered: true, contentType: r.delivery.contentType, ...shown }, "");
        else {
          if (shown.content !== undefined) process.stdout.write(shown.content.endsWith("\n") ? shown.content : shown.content + "\n");
          process.stderr.write(`paid ${r.price} ${r.currency} for ${r.requestUrl}${shown.savedTo ? `, saved to ${shown.savedTo}` : ""}; balance ${r.balance} ${r.currency} (TranID ${r.tranId})\n`);
        }
        return EXIT.OK;
      }),
  },

  redeliver: {
    usage: "scripwire wallet redeliver --tran-id <TranID> [--out <file>]",
    summary: "Deliver purchased content again on the kept receipt (S7), without paying again.",
    options: [...common, centerOpt, { name: "tran-id", description: "TranID of the purchase (see 'scripwire wallet history')" }, { name: "out", description: "file to write the content to" }],
    run: (o) =>
      withWallet(o, async (w) => {
        const d = await w.redeliver(o.require("tran-id"));
        const shown = await emit(o, d);
        if (o.json) print(true, { tranId: o.require("tran-id"), method: d.method, contentType: d.contentType, ...shown }, "");
        else if (shown.content !== undefined) process.stdout.write(shown.content.endsWith("\n") ? shown.content : shown.content + "\n");
        else process.stderr.write(`saved to ${shown.savedTo}\n`);
        return EXIT.OK;
      }),
  },

  balance: {
    usage: "scripwire wallet balance",
    summary: "Show the value of the wallet's live scrip (read locally; no network unless an interrupted operation must be finished).",
    options: [...common, centerOpt],
    run: (o) =>
      withWallet(o, async (w) => {
        const b = w.balance();
        print(
          o.json,
          b,
          `${b.value} ${b.currency} (scrip ${b.serial}, ${b.expired ? "EXPIRED: run 'scripwire wallet renew'" : `valid until ${b.expiresAt.toISOString()}`})` +
            (b.pending ? `\nunfinished ${b.pending.kind} ${b.pending.id} at ${b.pending.step}: it resumes when the center is reachable` : ""),
        );
        return EXIT.OK;
      }),
  },

  history: {
    usage: "scripwire wallet history [--limit n]",
    summary: "List what the wallet did: registration, earnings, purchases, renewals, redemptions.",
    options: [...common, centerOpt, { name: "limit", description: "show only the newest n entries" }],
    run: (o) =>
      withWallet(o, async (w) => {
        const limit = o.int("limit");
        const all = w.history();
        const h = limit === undefined ? all : all.slice(Math.max(0, all.length - limit));
        const sign = (v: bigint) => (v > 0n ? `+${v}` : `${v}`);
        print(
          o.json,
          h,
          h
            .map((e) =>
              [e.at.toISOString(), e.kind.padEnd(10), `${sign(e.amount)} ${e.currency}`.padEnd(12), `balance ${e.balance}`.padEnd(14), e.item ?? e.payoutAccount ?? "", e.method ?? "", e.tranId ?? e.requestId ?? "", e.recovered ? "(recovered)" : ""]
                .filter(Boolean)
                .join("  "),
            )
            .join("\n") || "(no history)",
        );
        return EXIT.OK;
      }),
  },

  renew: {
    usage: "scripwire wallet renew",
    summary: "Replace the scrip (expired or not) by one with the same value, a fresh serial and a fresh expiry.",
    options: [...common, centerOpt],
    run: (o) =>
      withWallet(o, async (w) => {
        const r = await w.renew();
        print(o.json, r, `renewed ${r.value} ${r.currency}: scrip ${r.previousSerial} -> ${r.serial}, valid until ${r.expiresAt.toISOString()}`);
        return EXIT.OK;
      }),
  },

  redeem: {
    usage: "scripwire wallet redeem --amount <n|all> --account <payout account>",
    summary: "Exchange scrip for real money above the center's threshold; the center records a payout to --account.",
    options: [...common, centerOpt, { name: "amount", description: "amount in smallest units, or 'all'" }, { name: "account", description: "where the money goes (bank account, payment handle)" }],
    run: (o) =>
      withWallet(o, async (w) => {
        const amount = amountOf(o, "amount");
        const r = await w.redeem(amount, o.require("account"));
        print(o.json, r, `redeemed ${r.amount} ${r.currency} to ${r.payoutAccount} (payout ${r.payoutId}); balance ${r.balance} ${r.currency}`);
        return EXIT.OK;
      }),
  },

  recover: {
    usage: "scripwire wallet recover",
    summary: "Finish an operation that was interrupted (every wallet command also does this first).",
    options: [...common, centerOpt],
    run: (o) =>
      withWallet(o, async (w) => {
        // open() already tried; if it could not finish, this tries again and reports why.
        const r = w.recovery ?? (await w.recover());
        print(o.json, r ?? { outcome: "nothing to recover" }, r ? `${r.kind} ${r.id}: ${r.outcome}` : "nothing to recover");
        return EXIT.OK;
      }),
  },
};

walletCommands.fetch = walletFetchCommand([...common, centerOpt], withWallet);
