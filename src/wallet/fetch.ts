/**
 * `wallet.fetch(url, { maxPrice })`: an HTTP client that pays Scripwire 402
 * gateways (docs/gateway.md) by itself.
 *
 * 1. Send the request, with a stored receipt for that URL when the wallet has
 *    one still inside its lifetime.
 * 2. On `402` with a `WWW-Authenticate: Scrip` challenge, try a receipt the
 *    wallet already holds for the same gateway route; a route is paid once
 *    per lifetime, not once per URL.
 * 3. Otherwise pay with the ordinary flow (S1 at the challenge's seller,
 *    S3..S6 at the center) if the price is within `maxPrice`, and retry with
 *    `Authorization: Scrip <receipt>`.
 *
 * The answer is the gateway's `Response` whatever its status: after a 502 or
 * 504 (the site behind the gateway failed) calling `fetch` again reuses the
 * receipt, so the retry is free.
 */
import { toBinary } from "@bufbuild/protobuf";
import { ReceiptSchema, type Receipt } from "../../gen/scripwire/v1/types_pb.js";
import { formatCredential, parseChallenge, type ScripChallenge } from "../gateway/challenge.js";
import { IntegrityError, RefusedError } from "./errors.js";
import type { WalletCore as Wallet } from "./core.js";

/** Stored receipts tried for one route before paying: each try is a round trip, so keep it small. */
export const ROUTE_RECEIPT_TRIES_MAX = 2;
/** Receipts remembered per wallet for route reuse in this process; oldest dropped first. */
export const ROUTE_CACHE_ENTRIES_MAX = 1000;

export interface ScripFetchOptions {
  /** The most this call may pay, in the currency's smallest unit. Required: a fetch never pays an amount nobody agreed to. */
  maxPrice: bigint;
  /** HTTP method. Default "GET". */
  method?: string;
  headers?: Record<string, string> | Headers;
  /** Request body; it may be sent twice (before and after paying), so it must be replayable. */
  body?: string | Uint8Array | ArrayBuffer | URLSearchParams;
  signal?: AbortSignal;
  /** The fetch to use. Default: the global fetch. */
  fetch?: typeof globalThis.fetch;
}

/** What the wallet did for this response. */
export interface ScripFetchPayment {
  /** True when this call paid (S1..S6). */
  paid: boolean;
  /** True when a receipt the wallet already held opened the URL. */
  reused: boolean;
  /** The receipt presented in the last request, if any. */
  receipt?: Receipt;
  /** The challenge of the 402 seen, if any. */
  challenge?: ScripChallenge;
  /** What this call paid (0 when nothing). */
  price: bigint;
}

export type ScripResponse = Response & { readonly scrip: ScripFetchPayment };

interface CachedReceipt {
  receipt: Receipt;
  expiresAtMs: number;
}

// Route reuse needs the route id and lifetime, which only the challenge tells;
// kept per wallet object, in memory.
const routeCache = new WeakMap<Wallet, Map<string, CachedReceipt>>();

function cacheFor(w: Wallet): Map<string, CachedReceipt> {
  let m = routeCache.get(w);
  if (!m) routeCache.set(w, (m = new Map()));
  return m;
}

function routeKey(c: ScripChallenge): string {
  return `${new URL(c.item).origin}|${c.vendor}|${c.route}`;
}

/** The item URL a gateway would name for `u` when `u` is already in canonical form (no query, no fragment). */
function itemOf(u: URL): string {
  return `${u.protocol}//${u.host}${u.pathname}`;
}

export async function scripFetch(wallet: Wallet, input: string | URL, opts: ScripFetchOptions): Promise<ScripResponse> {
  if (typeof opts?.maxPrice !== "bigint" || opts.maxPrice < 0n) throw new TypeError('"maxPrice" expected a non-negative bigint: the most this fetch may pay');
  const url = new URL(input);
  if (url.protocol !== "http:" && url.protocol !== "https:") throw new TypeError(`"url" expected an http(s) URL, got ${url.protocol}`);
  const body = opts.body;
  if (body !== undefined && !(typeof body === "string" || body instanceof Uint8Array || body instanceof ArrayBuffer || body instanceof URLSearchParams)) {
    throw new TypeError('"body" must be a string, Uint8Array, ArrayBuffer or URLSearchParams: it may have to be sent again after paying');
  }
  const doFetch = opts.fetch ?? globalThis.fetch;
  const clock = Date.now;
  const send = (receipt: Receipt | undefined) => {
    const headers = new Headers(opts.headers);
    if (receipt) headers.set("authorization", formatCredential(toBinary(ReceiptSchema, receipt)));
    return doFetch(url, { method: opts.method ?? "GET", headers, body: body as BodyInit | undefined, signal: opts.signal, redirect: "follow" });
  };
  const done = (res: Response, p: Partial<ScripFetchPayment>): ScripResponse =>
    Object.assign(res, { scrip: { paid: false, reused: false, price: 0n, ...p } }) as ScripResponse;
  const cache = cacheFor(wallet);
  const tried = new Set<string>();

  // 1. A receipt for exactly this URL, from this process or the wallet's store.
  const item = itemOf(url);
  let first: Receipt | undefined;
  for (const c of cache.values()) if (c.receipt.requestUrl === item && c.expiresAtMs > clock()) first = c.receipt;
  first ??= wallet.receipts().find((r) => r.receipt.requestUrl === item)?.receipt;
  if (first) tried.add(first.tranId);
  let res = await send(first);
  if (res.status !== 402) return done(res, { reused: !!first, receipt: first });
  let challenge = parseChallenge(res.headers.get("www-authenticate"));
  if (!challenge) return done(res, {}); // a 402 that is not ours to pay
  if (new URL(challenge.item).origin !== url.origin) {
    await res.body?.cancel();
    throw new IntegrityError("UNEXPECTED_CHALLENGE", `the 402 from ${url.origin} asks to pay for ${challenge.item}, on another site; not paying`);
  }

  // 2. A receipt the wallet holds for the same route (same gateway, vendor, route), newest first.
  const candidates: Receipt[] = [];
  const cached = cache.get(routeKey(challenge));
  if (cached && cached.expiresAtMs > clock()) candidates.push(cached.receipt);
  const nowSec = clock() / 1000;
  for (const r of wallet.receipts()) {
    const rc = r.receipt;
    if (rc.vendorId !== challenge.vendor || rc.currency !== challenge.currency || Number(rc.paidAtUnix) + challenge.lifetime <= nowSec) continue;
    try {
      if (new URL(rc.requestUrl).origin !== url.origin) continue;
    } catch {
      continue;
    }
    candidates.push(rc);
  }
  let tries = 0;
  for (const rc of candidates) {
    if (tried.has(rc.tranId) || tries >= ROUTE_RECEIPT_TRIES_MAX) continue;
    tried.add(rc.tranId);
    tries++;
    await res.body?.cancel();
    res = await send(rc);
    if (res.status !== 402) {
      remember(cache, challenge, rc);
      return done(res, { reused: true, receipt: rc, challenge });
    }
    challenge = parseChallenge(res.headers.get("www-authenticate")) ?? challenge;
  }
  await res.body?.cancel();

  // 3. Pay (checks first: nothing is signed or sent for a payment that cannot happen).
  const held = wallet.registered ? wallet.balance().currency : undefined;
  if (held !== undefined && challenge.currency !== held) {
    throw new RefusedError("PM2_1", "WRONG_CURRENCY", `${url.href} is paid in ${challenge.currency}; this wallet holds ${held}`);
  }
  if (challenge.price > opts.maxPrice) {
    throw new RefusedError("PM2_1", "PRICE_TOO_HIGH", `${url.href} costs ${challenge.price} ${challenge.currency}, above your limit of ${opts.maxPrice}`);
  }
  // deliver: false: the content comes over HTTP next, not through S7.
  const bought = await wallet.buy(challenge.seller, challenge.item, challenge.method, { maxPrice: opts.maxPrice, deliver: false });
  if (bought.receipt.vendorId !== challenge.vendor) {
    throw new IntegrityError("UNEXPECTED_RECEIPT", `paid ${bought.vendorId}, but the gateway's challenge named ${challenge.vendor}; the receipt is kept (scripwire wallet history)`);
  }
  remember(cache, challenge, bought.receipt);
  res = await send(bought.receipt);
  return done(res, { paid: true, receipt: bought.receipt, challenge, price: bought.price });
}

function remember(cache: Map<string, CachedReceipt>, c: ScripChallenge, receipt: Receipt): void {
  const key = routeKey(c);
  cache.delete(key);
  cache.set(key, { receipt, expiresAtMs: (Number(receipt.paidAtUnix) + c.lifetime) * 1000 });
  if (cache.size > ROUTE_CACHE_ENTRIES_MAX) cache.delete(cache.keys().next().value!);
}
