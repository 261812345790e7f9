/**
 * `scripwire wallet fetch URL --max-price N [-o file]`: fetch a URL behind a
 * Scripwire 402 gateway, paying its price (up to --max-price) with the
 * wallet, reusing a receipt still inside its lifetime (src/wallet/fetch.ts).
 */
import { createWriteStream } from "node:fs";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { ReadableStream as WebReadableStream } from "node:stream/web";
import { EXIT, print, UsageError, type Command, type OptionSpec, type Options } from "./options.js";
import type { Wallet } from "../wallet/wallet.js";

/** Largest body --json puts inline (as text) when there is no --out. */
export const JSON_BODY_BYTES_MAX = 1024 * 1024;

/** The URL (first word, or --url). */
function target(o: Options): { url: string; out?: string } {
  const url = o.get("url") ?? o.positionals[0];
  if (!url) throw new UsageError("the URL to fetch is required: scripwire wallet fetch <url> --max-price <n>");
  if (o.get("url") !== undefined && o.positionals.length > 0) throw new UsageError("give the URL once: as the first word or with --url");
  if (!/^https?:\/\//i.test(url)) throw new UsageError(`the URL must start with http:// or https://, got ${url}`);
  return { url, out: o.get("out") };
}

export function walletFetchCommand(common: OptionSpec[], withWallet: (o: Options, fn: (w: Wallet) => Promise<number>) => Promise<number>): Command {
  return {
    usage: "scripwire wallet fetch <url> --max-price <n> [-o <file>]",
    summary:
      "Fetch a URL; if a Scripwire gateway answers 402, pay its price (at most --max-price) and fetch again. A receipt still valid for the route is reused, so running it again costs nothing. The body goes to stdout or the -o file.",
    positionals: 1,
    options: [
      ...common,
      { name: "max-price", description: "the most to pay, in the currency's smallest unit (0 = never pay)" },
      { name: "out", short: "o", description: "file to write the body to (default: stdout)" },
      { name: "url", description: "URL to fetch (or give it as the first argument)" },
      { name: "header", description: "extra request header, 'Name: value'" },
    ],
    run: async (o) => {
      const { url, out } = target(o);
      const maxRaw = o.require("max-price");
      if (!/^[0-9]{1,19}$/.test(maxRaw)) throw new UsageError(`--max-price must be a non-negative integer in the currency's smallest unit, got ${maxRaw}`);
      const headers: Record<string, string> = {};
      const h = o.get("header");
      if (h) {
        const m = /^([^:\s]+):\s*(.*)$/.exec(h);
        if (!m) throw new UsageError(`--header must look like 'Name: value', got ${h}`);
        headers[m[1]!] = m[2]!;
      }
      return withWallet(o, async (w) => {
        const res = await w.fetch(url, { maxPrice: BigInt(maxRaw), headers });
        const p = res.scrip;
        const summary = {
          url,
          status: res.status,
          paid: p.paid,
          reused: p.reused,
          price: p.price,
          currency: p.challenge?.currency,
          tranId: p.receipt?.tranId,
          balance: w.balance().value,
          contentType: res.headers.get("content-type") ?? undefined,
        };
        let savedTo: string | undefined;
        let bytes = 0;
        let text: string | undefined;
        if (res.body) {
          const counted = Readable.fromWeb(res.body as unknown as WebReadableStream).on("data", (c: Buffer) => (bytes += c.length));
          if (out) {
            await pipeline(counted, createWriteStream(out, { mode: 0o644 }));
            savedTo = out;
          } else if (o.json) {
            const chunks: Buffer[] = [];
            for await (const c of counted) {
              if (bytes > JSON_BODY_BYTES_MAX) throw new UsageError(`the body is larger than ${JSON_BODY_BYTES_MAX} bytes; use -o <file> with --json`);
              chunks.push(c as Buffer);
            }
            text = Buffer.concat(chunks).toString("utf8");
          } else {
            await pipeline(counted, process.stdout, { end: false });
          }
        }
        const what = p.paid ? `paid ${p.price} ${p.challenge?.currency ?? ""} (TranID ${p.receipt?.tranId})` : p.reused ? `reused the receipt ${p.receipt?.tranId}` : "nothing paid";
        if (o.json) print(true, { ...summary, bytes, savedTo, body: text }, "");
        else process.stderr.write(`HTTP ${res.status}: ${what}${savedTo ? `; ${bytes} bytes saved to ${savedTo}` : ""}; balance ${summary.balance}\n`);
        if (res.status === 502 || res.status === 504) {
          if (!o.json) process.stderr.write(`hint: the site behind the gateway failed; run the same command again: the receipt is reused, you will not pay twice\n`);
          return EXIT.UNAVAILABLE;
        }
        if (res.status === 402) {
          if (!o.json) process.stderr.write(`error: still 402 (${res.headers.get("scripwire-error-reason") ?? "no reason given"})\n`);
          return EXIT.REFUSED;
        }
        return res.ok || (res.status >= 300 && res.status < 400) ? EXIT.OK : EXIT.FAILURE;
      });
    },
  };
}
