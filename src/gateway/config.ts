/**
 * The gateway's configuration (gateway.json): the upstream to protect, the
 * vendor identity and secrets it signs offers with, and the priced routes.
 * Checked at the boundary so a typo fails at start-up with the field's name,
 * not at the first paying customer. Format: docs/gateway.md.
 */
import { readFileSync } from "node:fs";
import { DeliveryMethod } from "../../gen/scripwire/v1/types_pb.js";
import { I64_MAX } from "../money.js";
import type { OfferSigner } from "../seller/offers.js";
import { vendorIdentity } from "../seller/catalog.js";
import { isRefusal, normalizeTarget } from "./path.js";

/** Default receipt lifetime: an hour of access per payment. */
export const RECEIPT_LIFETIME_SECONDS_DEFAULT = 3600;
/** Longest receipt lifetime a route may set (30 days): a bearer credential should not outlive a billing period. */
export const RECEIPT_LIFETIME_SECONDS_MAX = 30 * 86400;
/** Time to the upstream's response headers before the gateway answers 504. */
export const UPSTREAM_TIMEOUT_MS_DEFAULT = 30_000;
/** Upstream connections kept per gateway (keep-alive pool); bounds what a burst can open upstream. */
export const UPSTREAM_SOCKETS_MAX_DEFAULT = 256;
/** Per-route, per-address requests per second when a route names no limit. */
export const ROUTE_RATE_PER_SECOND_DEFAULT = 100;

export interface PathPattern {
  /** As written in the config. */
  source: string;
  /** Normalised, lower-case key (see path.ts) without the trailing `/*`. */
  key: string;
  /** `/x/*`: x itself and everything below it. */
  prefix: boolean;
}

export interface GatewayRoute {
  /** Names the route in receipts' checks, cookies (`scrip_<id>`) and metrics. */
  id: string;
  title: string;
  /** `*`, `example.com` or `*.example.com` (subdomains only). */
  host: string;
  path: PathPattern;
  /** Paths inside the route served without payment. */
  free: PathPattern[];
  price: bigint;
  currency: string;
  deliveryMethod: DeliveryMethod;
  receiptLifetimeSeconds: number;
  /** HTTP methods allowed on the route, all of them paid; others get 405 and never reach the upstream. */
  methods: string[];
  rateLimit: { ratePerSecond: number; burst: number } | false;
}

export interface GatewayConfig extends OfferSigner {
  upstream: URL;
  routes: GatewayRoute[];
  /** What to do with a request no route matches: forward it free ("pass", default) or answer 404 ("deny"). */
  unmatched: "pass" | "deny";
  /** Public URL of the gateway's SellerService for the challenge's `seller`; default: the request's own origin. */
  sellerUrl?: string;
  /** The payment center (browser wallet origin) named on the paywall page. */
  centerUrl?: string;
  upstreamTimeoutMs: number;
  upstreamSocketsMax: number;
  /** Origins allowed to call the gateway from a browser (CORS); `*` for any. Default none. */
  corsOrigins: string[];
  /** Bearer token required for /.scripwire/metrics; default: metrics are public. */
  metricsToken?: string;
  /** Forward the client's Host header instead of the upstream's. Default false. */
  preserveHost: boolean;
}

function fail(where: string, what: string): never {
  throw new Error(`gateway config: ${where} ${what}`);
}

function str(v: unknown, where: string): string {
  if (typeof v !== "string" || v.length === 0) fail(where, "must be a non-empty string");
  return v;
}

function posInt(v: unknown, where: string, def: number, max = Number.MAX_SAFE_INTEGER): number {
  if (v === undefined) return def;
  if (typeof v !== "number" || !Number.isSafeInteger(v) || v <= 0 || v > max) fail(where, `must be an integer between 1 and ${max}`);
  return v;
}

/** Parses `/x`, `/x/*` (x and below) or `/*` (everything). */
export function parsePathPattern(v: unknown, where: string): PathPattern {
  const source = str(v, where);
  const prefix = source === "*" || source.endsWith("/*");
  const base = source === "*" ? "/" : prefix ? source.slice(0, -2) || "/" : source;
  if (base.includes("*")) fail(where, `may only end in /* (got ${source})`);
  const n = normalizeTarget(base);
  if (isRefusal(n) || n.query) fail(where, `is not a plain path (${isRefusal(n) ? n : "has a query"})`);
  return { source, key: n.key, prefix };
}

function hostPattern(v: unknown, where: string): string {
  if (v === undefined) return "*";
  const h = str(v, where).toLowerCase().replace(/\.$/, "");
  if (h !== "*" && !/^(\*\.)?[a-z0-9-]+(\.[a-z0-9-]+)*$/.test(h) && !/^\[[0-9a-f:.]+\]$/.test(h)) fail(where, "must be *, a host name or *.domain");
  return h;
}

const METHODS: Record<string, DeliveryMethod> = { VIEW: DeliveryMethod.VIEW, SAVE: DeliveryMethod.SAVE };
const HTTP_METHOD = /^[A-Z]{3,10}$/;

function rate(v: any, where: string): GatewayRoute["rateLimit"] {
  if (v === false) return false;
  if (v === undefined) return { ratePerSecond: ROUTE_RATE_PER_SECOND_DEFAULT, burst: 2 * ROUTE_RATE_PER_SECOND_DEFAULT };
  const ratePerSecond = v.perSecond === undefined ? ROUTE_RATE_PER_SECOND_DEFAULT : Number(v.perSecond);
  if (!(ratePerSecond > 0 && ratePerSecond <= 1_000_000)) fail(`${where}.perSecond`, "must be a number above 0 (requests per second per client address)");
  return { ratePerSecond, burst: posInt(v.burst, `${where}.burst`, Math.max(1, Math.ceil(2 * ratePerSecond)), 10_000_000) };
}

function amount(v: unknown, where: string): bigint {
  if ((typeof v !== "string" && typeof v !== "number") || !/^[0-9]+$/.test(String(v))) fail(where, "must be a positive integer in the currency's smallest unit (as a string)");
  const b = BigInt(v as string);
  if (b <= 0n || b > I64_MAX) fail(where, `must be between 1 and ${I64_MAX}`);
  return b;
}

/** Parses a gateway config object (as read from JSON). */
export function parseGatewayConfig(raw: any): GatewayConfig {
  if (!raw || typeof raw !== "object") fail("", "must be a JSON object");
  let upstream: URL;
  try {
    upstream = new URL(str(raw.upstream, "upstream"));
  } catch {
    fail("upstream", "must be an absolute http:// or https:// URL");
  }
  if (upstream.protocol !== "http:" && upstream.protocol !== "https:") fail("upstream", "must be an http:// or https:// URL");
  if (upstream.search || upstream.hash) fail("upstream", "must not have a query or fragment");
  const vendorId = str(raw.vendorId, "vendorId");
  const vendorKeys = new Map<number, Uint8Array>();
  for (const [id, hex] of Object.entries(raw.vendorKeys ?? {})) {
    if (!/^[0-9]+$/.test(id)) fail(`vendorKeys.${id}`, "must be keyed by the vendor key generation number");
    if (!/^[0-9a-f]{64}$/i.test(String(hex))) fail(`vendorKeys.${id}`, "must be 64 hex characters (the secret from 'scripwire center admin create-vendor')");
    vendorKeys.set(Number(id), new Uint8Array(Buffer.from(String(hex), "hex")));
  }
  if (vendorKeys.size === 0) fail("vendorKeys", "needs at least one vendor secret");
  if (!Array.isArray(raw.routes) || raw.routes.length === 0) fail("routes", "must list at least one route");
  const seen = new Set<string>();
  const routes: GatewayRoute[] = raw.routes.map((r: any, i: number): GatewayRoute => {
    const w = `routes[${i}]`;
    const id = r.id === undefined ? `route-${i}` : str(r.id, `${w}.id`);
    if (!/^[A-Za-z0-9_-]{1,64}$/.test(id)) fail(`${w}.id`, "must be 1-64 of A-Z a-z 0-9 _ -");
    if (seen.has(id)) fail(`${w}.id`, `"${id}" is used twice`);
    seen.add(id);
    const method = METHODS[r.method ?? "VIEW"];
    if (method === undefined) fail(`${w}.method`, "must be VIEW or SAVE");
    const methods = (r.methods ?? ["GET", "HEAD"]).map((m: unknown, j: number) => {
      if (typeof m !== "string" || !HTTP_METHOD.test(m)) fail(`${w}.methods[${j}]`, "must be an upper-case HTTP method");
      return m;
    });
    if (!Array.isArray(r.free ?? [])) fail(`${w}.free`, "must be a list of paths");
    return {
      id,
      title: r.title === undefined ? id : str(r.title, `${w}.title`),
      host: hostPattern(r.host, `${w}.host`),
      path: parsePathPattern(r.path, `${w}.path`),
      free: (r.free ?? []).map((f: unknown, j: number) => parsePathPattern(f, `${w}.free[${j}]`)),
      price: amount(r.price, `${w}.price`),
      currency: str(r.currency, `${w}.currency`),
      deliveryMethod: method,
      receiptLifetimeSeconds: posInt(r.receiptLifetimeSeconds, `${w}.receiptLifetimeSeconds`, RECEIPT_LIFETIME_SECONDS_DEFAULT, RECEIPT_LIFETIME_SECONDS_MAX),
      methods,
      rateLimit: rate(r.rateLimit, `${w}.rateLimit`),
    };
  });
  const unmatched = raw.unmatched ?? "pass";
  if (unmatched !== "pass" && unmatched !== "deny") fail("unmatched", 'must be "pass" or "deny"');
  const corsOrigins = raw.cors ?? [];
  if (!Array.isArray(corsOrigins) || corsOrigins.some((o) => typeof o !== "string")) fail("cors", "must be a list of origins");
  if (raw.metricsToken !== undefined && (typeof raw.metricsToken !== "string" || raw.metricsToken.length < 16)) fail("metricsToken", "must be at least 16 characters");
  return {
    upstream,
    vendorId,
    identity: vendorIdentity(raw.identity, vendorId),
    vendorKeys,
    offerLifetimeSeconds: posInt(raw.offerLifetimeSeconds, "offerLifetimeSeconds", 600),
    routes,
    unmatched,
    sellerUrl: raw.sellerUrl === undefined ? undefined : str(raw.sellerUrl, "sellerUrl").replace(/\/+$/, ""),
    centerUrl: raw.centerUrl === undefined ? undefined : str(raw.centerUrl, "centerUrl").replace(/\/+$/, ""),
    upstreamTimeoutMs: posInt(raw.upstreamTimeoutMs, "upstreamTimeoutMs", UPSTREAM_TIMEOUT_MS_DEFAULT),
    upstreamSocketsMax: posInt(raw.upstreamSocketsMax, "upstreamSocketsMax", UPSTREAM_SOCKETS_MAX_DEFAULT, 65_536),
    corsOrigins,
    metricsToken: raw.metricsToken,
    preserveHost: raw.preserveHost === true,
  };
}

export function loadGatewayConfig(path: string): GatewayConfig {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, "utf8"));
  } catch (e) {
    throw new Error(`gateway config: cannot read ${path}: ${(e as Error).message}`);
  }
  return parseGatewayConfig(raw);
}
