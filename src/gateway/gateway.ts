/**
 * The HTTP 402 paywall gateway: a reverse proxy that charges scrip per route.
 *
 * Every request is normalised (path.ts), matched to a route (routes.ts) and
 * then, on a priced path, either carries a receipt the gateway verifies
 * locally with one HMAC under the vendor secret (verify.ts) and is streamed
 * to the upstream (proxy.ts), or gets `402 Payment Required` with a
 * `WWW-Authenticate: Scrip` challenge (challenge.ts). The center is never
 * called on the request path. The gateway is also the seller for its routes:
 * SellerService (S1/S2, S7) is served on the same port (seller.ts), so the
 * existing wallet flow pays it unchanged.
 *
 * Reserved paths (never forwarded): /.scripwire/health, /.scripwire/metrics,
 * /.scripwire/session (receipt -> route cookie), /.scripwire/paywall.js, and
 * the Connect/gRPC paths of SellerService, health and reflection.
 */
import { createConnection } from "node:net";
import http from "node:http";
import https from "node:https";
import type { OutgoingHttpHeaders } from "node:http";
import { create, toBinary } from "@bufbuild/protobuf";
import { sha256 } from "@noble/hashes/sha2.js";
import { constantTimeEqual } from "../crypto/mac.js";
import { RequestServiceRequestSchema, SellerService } from "../../gen/scripwire/v1/seller_pb.js";
import { CmdType, DeliveryMethod, IdTypeSchema, OfferSchema } from "../../gen/scripwire/v1/types_pb.js";
import { header as protocolHeader } from "../protocol/header.js";
import { addressKey, createRateLimiterCore, rateLimitService, remoteAddressContextValues, TokenBuckets } from "../server/limits.js";
import { createServerStack, type ServerStack, type ServerTlsOptions } from "../server/stack.js";
import type { Logger } from "../server/log.js";
import { credentialToken, formatChallenge, type ScripChallenge } from "./challenge.js";
import type { GatewayConfig, GatewayRoute } from "./config.js";
import { createGatewayMetrics, type GatewayMetrics, type RequestOutcome } from "./metrics.js";
import { isRefusal, normalizeHost, normalizeTarget } from "./path.js";
import { paywallPage } from "./paywall.js";
import { paywallScript } from "./paywall-script.js";
import { endToEndHeaders, proxy, sendError, type IncomingRequest, type OutgoingResponse } from "./proxy.js";
import { itemUrl, matchRoute, parseItemUrl, pathMatches } from "./routes.js";
import { DELIVER_BYTES_MAX, GatewaySeller, gatewaySellerService, UpstreamError } from "./seller.js";
import { methodName, verifyCredential, type CredentialRefusal } from "./verify.js";
import { useNativeHashes } from "../crypto/native-hash.js";

/** Prefix of the gateway's own endpoints; requests under it never reach the upstream. */
export const RESERVED_PREFIX = "/.scripwire";
/** Cookie carrying a route's receipt after the browser exchange: `scrip_<route id>`. */
export const COOKIE_PREFIX = "scrip_";
/** Largest body accepted at /.scripwire/session (a receipt token is ~200 characters). */
export const SESSION_BODY_BYTES_MAX = 4096;

/** What a person should read next to each refusal reason. */
const REASON_MESSAGES: Record<CredentialRefusal, string> = {
  MALFORMED_CREDENTIAL: "The credential is not a Scripwire receipt.",
  MALFORMED_RECEIPT: "The receipt is malformed.",
  WRONG_VENDOR: "The receipt was paid to another seller.",
  UNKNOWN_VENDOR_KEY: "The receipt names a vendor key this gateway does not have.",
  UNSUPPORTED_ALGORITHM: "The receipt uses a hash algorithm this gateway does not accept.",
  BAD_MAC: "The receipt was altered or was not signed by this seller's payment center.",
  WRONG_ROUTE: "The receipt was paid for another part of this site.",
  WRONG_DELIVERY_METHOD: "The receipt was paid for another delivery method.",
  PRICE_MISMATCH: "The receipt paid less than this page's current price.",
  CURRENCY_MISMATCH: "The receipt was paid in another currency.",
  EXPIRED: "Your access has expired; pay again to continue.",
  NOT_YET_VALID: "The receipt is dated in the future; check the clocks.",
};

export interface GatewayOptions {
  config: GatewayConfig;
  /** Default "127.0.0.1". */
  host?: string;
  /** Default 0 (any free port). */
  port?: number;
  tls?: ServerTlsOptions;
  /** Milliseconds clock for receipt ages and offers (tests). Default Date.now. */
  clock?: () => number;
  logger?: Logger;
  /** Export Node process metrics (CPU, memory, event loop) too. Default false (tests run several gateways in one process). */
  processMetrics?: boolean;
}

export interface RunningGateway {
  url: string;
  port: number;
  config: GatewayConfig;
  metrics: GatewayMetrics;
  stack: ServerStack;
  close(graceMs?: number): Promise<void>;
}

type Req = IncomingRequest;
type Res = OutgoingResponse;

function header1(req: Req, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

/** Cookies named `scrip_<id>` in a Cookie header, and the header without them. */
function splitCookies(cookie: string | undefined): { scrip: Map<string, string>; rest: string } {
  const scrip = new Map<string, string>();
  if (!cookie) return { scrip, rest: "" };
  const rest: string[] = [];
  for (const part of cookie.split(";")) {
    const p = part.trim();
    if (!p) continue;
    const eq = p.indexOf("=");
    const name = eq < 0 ? p : p.slice(0, eq);
    if (name.startsWith(COOKIE_PREFIX)) scrip.set(name.slice(COOKIE_PREFIX.length), eq < 0 ? "" : p.slice(eq + 1));
    else rest.push(p);
  }
  return { scrip, rest: rest.join("; ") };
}

/** The cookie Path of a route: its prefix as written, so the cookie goes only with that route's requests. */
export function cookiePath(route: GatewayRoute): string {
  const s = route.path.source;
  if (s === "*" || s === "/*") return "/";
  return route.path.prefix ? s.slice(0, -2) || "/" : s;
}

export async function startGateway(opts: GatewayOptions): Promise<RunningGateway> {
  useNativeHashes();
  const config = opts.config;
  const clock = opts.clock ?? Date.now;
  const scheme: "http" | "https" = opts.tls ? "https" : "http";
  const metrics = createGatewayMetrics({ processMetrics: opts.processMetrics });
  const agentOpts = { keepAlive: true, maxSockets: config.upstreamSocketsMax, maxFreeSockets: 64 };
  const agent = config.upstream.protocol === "https:" ? new https.Agent(agentOpts) : new http.Agent(agentOpts);
  const buckets = new Map<string, TokenBuckets>();
  // Buckets run on a monotonic clock: a wall-clock step back must not drain them.
  for (const r of config.routes) if (r.rateLimit) buckets.set(r.id, new TokenBuckets(r.rateLimit, () => performance.now()));
  let stack: ServerStack;
  // The metrics token is a secret: compared in constant time, both sides hashed so its length does not leak either.
  const metricsTokenHash = config.metricsToken ? sha256(new TextEncoder().encode(`Bearer ${config.metricsToken}`)) : undefined;
  const upstreamHost = config.upstream.host;

  // ------------------------------------------------------------ S7 content
  const fetchItem = (path: string, paid: { tranId: string; routeId: string }) =>
    new Promise<{ contentType: string; content: Uint8Array }>((resolve, reject) => {
      const mod = config.upstream.protocol === "https:" ? https : http;
      const base = config.upstream.pathname.replace(/\/+$/, "");
      const r = mod.request(
        { protocol: config.upstream.protocol, hostname: config.upstream.hostname.replace(/^\[|\]$/g, ""), port: config.upstream.port || undefined, path: base + path, method: "GET", agent, headers: { host: upstreamHost, accept: "*/*", "scripwire-route": paid.routeId, "scripwire-tran-id": paid.tranId } },
        (res) => {
          if ((res.statusCode ?? 500) >= 300) {
            res.resume();
            reject(new UpstreamError(`upstream answered ${res.statusCode}`));
            return;
          }
          const chunks: Buffer[] = [];
          let n = 0;
          res.on("data", (c: Buffer) => {
            n += c.length;
            if (n > DELIVER_BYTES_MAX) {
              res.destroy();
              reject(new UpstreamError("content too large", true));
              return;
            }
            chunks.push(c);
          });
          res.on("end", () => resolve({ contentType: String(res.headers["content-type"] ?? "application/octet-stream"), content: new Uint8Array(Buffer.concat(chunks)) }));
          res.on("error", reject);
        },
      );
      r.setTimeout(config.upstreamTimeoutMs, () => r.destroy(new UpstreamError("upstream timeout")));
      r.on("error", reject);
      r.end();
    });
  const seller = new GatewaySeller(config, clock, fetchItem);
  const limiter = createRateLimiterCore({ perCustomer: false });
  const sellerImpl = rateLimitService(SellerService, gatewaySellerService(seller), limiter);

  // ------------------------------------------------------------ HTTP side
  const corsHeaders = (req: Req): Record<string, string> => {
    const origin = header1(req, "origin");
    if (!origin || config.corsOrigins.length === 0) return {};
    if (!config.corsOrigins.includes("*") && !config.corsOrigins.includes(origin)) return {};
    return { "access-control-allow-origin": origin, vary: "Origin" };
  };

  // One debug line per request (SCRIPWIRE_LOG=debug): route and outcome, never a credential.
  const count = (route: string, outcome: RequestOutcome, detail?: Record<string, string | number>) => {
    metrics.requests.inc({ route, outcome });
    if (stack.logger.enabled("debug")) stack.logger.debug("gateway request", { route, outcome, ...detail });
  };

  const challenge = (req: Req, res: Res, route: GatewayRoute, authority: string, path: string, reason?: CredentialRefusal, clearCookie = false) => {
    const origin = `${scheme}://${authority}`;
    const c: ScripChallenge = {
      realm: config.identity.serverName,
      vendor: config.vendorId,
      seller: config.sellerUrl ?? origin,
      item: itemUrl(scheme, authority, path),
      price: route.price,
      currency: route.currency,
      method: methodName(route.deliveryMethod),
      route: route.id,
      lifetime: route.receiptLifetimeSeconds,
      reason,
      center: config.centerUrl,
    };
    const html = /\btext\/html\b/.test(header1(req, "accept") ?? "");
    const body = html
      ? paywallPage(c, route.title, reason ? REASON_MESSAGES[reason] : undefined)
      : JSON.stringify({
          error: reason ? REASON_MESSAGES[reason] : `payment required: ${route.price} ${route.currency} for ${route.title}`,
          reason: reason ?? "PAYMENT_REQUIRED",
          challenge: { ...c, price: c.price.toString() },
        }) + "\n";
    const headers: OutgoingHttpHeaders = {
      "www-authenticate": formatChallenge(c),
      "cache-control": "no-store",
      "content-type": html ? "text/html; charset=utf-8" : "application/json; charset=utf-8",
      "content-length": String(Buffer.byteLength(body)),
      "access-control-expose-headers": "WWW-Authenticate, Scripwire-Error-Reason",
      "scripwire-error-reason": reason ?? "PAYMENT_REQUIRED",
      ...corsHeaders(req),
    };
    headers.vary = headers.vary ? "Accept, Authorization, Cookie, Origin" : "Accept, Authorization, Cookie";
    if (clearCookie) headers["set-cookie"] = `${COOKIE_PREFIX}${route.id}=; Path=${cookiePath(route)}; Max-Age=0; HttpOnly; SameSite=Lax${scheme === "https" ? "; Secure" : ""}`;
    if (reason) {
      count(route.id, "refused", { reason });
      metrics.refusals.inc({ route: route.id, reason });
    } else count(route.id, "challenged");
    res.writeHead(402, headers);
    if (req.method === "HEAD") res.end();
    else res.end(body);
  };

  const forward = (req: Req, res: Res, routeId: string, outcome: RequestOutcome, path: string, query: string, authority: string, paid?: { tranId: string; routeId: string; save: boolean }) => {
    const h = endToEndHeaders(req.headers);
    for (const k of Object.keys(h)) if (k.startsWith("scripwire-")) delete h[k];
    if (credentialToken(header1(req, "authorization")) !== undefined) delete h["authorization"];
    const { rest } = splitCookies(typeof h["cookie"] === "string" ? h["cookie"] : Array.isArray(h["cookie"]) ? h["cookie"].join("; ") : undefined);
    if (rest) h["cookie"] = rest;
    else delete h["cookie"];
    h["host"] = config.preserveHost ? authority : upstreamHost;
    const remote = req.socket?.remoteAddress ?? "";
    const xff = header1(req, "x-forwarded-for");
    h["x-forwarded-for"] = xff ? `${xff}, ${remote}` : remote;
    h["x-forwarded-host"] = authority;
    h["x-forwarded-proto"] = scheme;
    if (paid) {
      h["scripwire-route"] = paid.routeId;
      h["scripwire-tran-id"] = paid.tranId;
    }
    const cors = corsHeaders(req);
    metrics.inFlight.inc();
    proxy(req, res, {
      upstream: config.upstream,
      agent,
      timeoutMs: config.upstreamTimeoutMs,
      method: req.method ?? "GET",
      pathAndQuery: path + query,
      headers: h,
      responseHeaders: (rh) => {
        // The upstream's own address must not leak: a redirect to it would let clients skip the gateway.
        const loc = rh["location"];
        if (typeof loc === "string") {
          try {
            const u = new URL(loc, config.upstream);
            if (u.host === upstreamHost && u.protocol === config.upstream.protocol) rh["location"] = u.pathname + u.search + u.hash;
          } catch {
            /* leave an unparsable Location alone */
          }
        }
        if (paid?.save && rh["content-disposition"] === undefined) {
          // SAVE is the patent's "as a file": tell browsers to download it.
          const name = (path.split("/").filter(Boolean).pop() ?? "content").replace(/[^A-Za-z0-9._-]/g, "_") || "content";
          rh["content-disposition"] = `attachment; filename="${name}"`;
        }
        if (paid) {
          // Paid content must not be served from a shared cache to someone who did not pay.
          const cc = String(rh["cache-control"] ?? "");
          if (!/\b(private|no-store)\b/i.test(cc)) {
            const kept = cc.split(",").map((s) => s.trim()).filter((s) => s && !/^(public|s-maxage=.*)$/i.test(s));
            rh["cache-control"] = ["private", ...kept].join(", ");
          }
        }
        Object.assign(rh, cors);
      },
      done: (o) => {
        metrics.inFlight.dec();
        if (o.kind === "ok") {
          metrics.upstreamSeconds.observe({ route: routeId }, o.upstreamMs / 1000);
          count(routeId, outcome, { status: o.status, upstream_ms: Math.round(o.upstreamMs) });
        } else if (o.kind === "upstream_error") {
          count(routeId, "upstream_error", { status: o.status });
          stack.logger.info("upstream failed", { route: routeId, status: o.status, detail: o.detail });
        } else count(routeId, "aborted");
      },
    });
  };

  const health = async (res: Res) => {
    const reachable = await new Promise<boolean>((resolve) => {
      const s = createConnection({ host: config.upstream.hostname.replace(/^\[|\]$/g, ""), port: Number(config.upstream.port || (config.upstream.protocol === "https:" ? 443 : 80)) });
      const done = (ok: boolean) => {
        s.destroy();
        resolve(ok);
      };
      s.setTimeout(2000, () => done(false));
      s.once("connect", () => done(true));
      s.once("error", () => done(false));
    });
    const serving = !stack.closing && reachable;
    const body = JSON.stringify({ status: serving ? "SERVING" : "NOT_SERVING", upstream: reachable ? "reachable" : "unreachable" }) + "\n";
    res.writeHead(serving ? 200 : 503, { "content-type": "application/json", "cache-control": "no-store" });
    res.end(body);
  };

  const session = (req: Req, res: Res, authority: string) => {
    if (!sameSite(req, res, authority)) return;
    smallBody(req, (text) => {
      if (text === undefined) return sendError(res, 413, "BODY_TOO_LARGE", `the body must be a receipt token of at most ${SESSION_BODY_BYTES_MAX} bytes`);
      let token = text.trim();
      if (token.startsWith("{")) {
        try {
          token = String(JSON.parse(token).receipt ?? "");
        } catch {
          token = "";
        }
      }
      const v = verifyCredential(config, token, undefined, clock());
      if (!v.ok) return sendError(res, 400, v.reason, REASON_MESSAGES[v.reason]);
      // verifyCredential found the receipt's route, so its item URL parses and matches.
      const item = parseItemUrl(v.receipt.requestUrl)!;
      const route = matchRoute(config.routes, item.host, item.key)!.route;
      const maxAge = Math.max(1, v.expiresAtUnix - Math.floor(clock() / 1000));
      metrics.sessions.inc({ route: route.id });
      const body = JSON.stringify({ route: route.id, expiresAtUnix: v.expiresAtUnix, path: cookiePath(route) }) + "\n";
      res.writeHead(200, {
        "content-type": "application/json",
        "cache-control": "no-store",
        "set-cookie": `${COOKIE_PREFIX}${route.id}=${token}; Path=${cookiePath(route)}; Max-Age=${maxAge}; HttpOnly; SameSite=Lax${scheme === "https" ? "; Secure" : ""}`,
      });
      res.end(body);
    });
  };

  /** Reads a small request body (the browser endpoints); undefined when it is too large. */
  const smallBody = (req: Req, done: (body: string | undefined) => void) => {
    const chunks: Buffer[] = [];
    let n = 0;
    req.on("data", (c: Buffer) => {
      n += c.length;
      if (n <= SESSION_BODY_BYTES_MAX) chunks.push(c);
    });
    req.on("end", () => done(n > SESSION_BODY_BYTES_MAX ? undefined : Buffer.concat(chunks).toString("utf8")));
    req.on("error", () => req.destroy());
  };

  const sameSite = (req: Req, res: Res, authority: string): boolean => {
    const origin = header1(req, "origin");
    if (origin && origin !== `${scheme}://${authority}` && !config.corsOrigins.includes(origin)) {
      sendError(res, 403, "FOREIGN_ORIGIN", "this endpoint serves this site's own pages only");
      return false;
    }
    return true;
  };

  /** S1 -> S2 for the paywall page: the pOder for the buyer the wallet popup named, as base64 protobuf. */
  const order = (req: Req, res: Res, authority: string) => {
    if (!sameSite(req, res, authority)) return;
    smallBody(req, (text) => {
      if (text === undefined) return sendError(res, 413, "BODY_TOO_LARGE", `at most ${SESSION_BODY_BYTES_MAX} bytes`);
      let body: { item?: unknown; method?: unknown; customId?: { secretId?: unknown; serialNumber?: unknown } };
      try {
        body = JSON.parse(text);
      } catch {
        return sendError(res, 400, "BAD_JSON", 'expected {"item", "method", "customId": {"secretId", "serialNumber"}}');
      }
      const id = body.customId;
      const method = body.method === "SAVE" ? DeliveryMethod.SAVE : body.method === "VIEW" ? DeliveryMethod.VIEW : undefined;
      if (typeof body.item !== "string" || method === undefined || !id || !Number.isInteger(id.secretId) || !/^[0-9]{1,20}$/.test(String(id.serialNumber))) {
        return sendError(res, 400, "BAD_ORDER_REQUEST", 'expected {"item": string, "method": "VIEW"|"SAVE", "customId": {"secretId": number, "serialNumber": "decimal"}}');
      }
      let r;
      try {
        r = seller.requestService(
          create(RequestServiceRequestSchema, {
            header: protocolHeader(CmdType.PM1_1, clock()),
            requestUrl: body.item,
            pMethod: method,
            customId: create(IdTypeSchema, { secretId: Number(id.secretId), serialNumber: BigInt(String(id.serialNumber)) }),
          }),
        );
      } catch (e) {
        return sendError(res, 400, "BAD_ORDER_REQUEST", (e as Error).message);
      }
      if (!r.order) return sendError(res, 409, r.header?.errorReason || "NOT_FOR_SALE", r.header?.errorMessage || "not for sale");
      const out = JSON.stringify({ order: Buffer.from(toBinary(OfferSchema, r.order)).toString("base64") }) + "\n";
      res.writeHead(200, { "content-type": "application/json", "cache-control": "no-store" });
      res.end(out);
    });
  };

  const internal = (req: Req, res: Res, key: string, authority: string) => {
    const method = req.method ?? "GET";
    if (key === `${RESERVED_PREFIX}/health` && (method === "GET" || method === "HEAD")) return void health(res);
    if (key === `${RESERVED_PREFIX}/metrics` && method === "GET") {
      if (metricsTokenHash && !constantTimeEqual(metricsTokenHash, sha256(new TextEncoder().encode(header1(req, "authorization") ?? "")))) return sendError(res, 401, "UNAUTHENTICATED", "metrics need the bearer token from the gateway config");
      void metrics.registry.metrics().then((text) => {
        res.writeHead(200, { "content-type": metrics.registry.contentType, "cache-control": "no-store" });
        res.end(text);
      });
      return;
    }
    if (method === "POST" && limiter.addresses) {
      // The session and order endpoints each cost an HMAC: the seller's per-address limit applies.
      const wait = limiter.addresses.take(addressKey(req.socket?.remoteAddress ?? "unknown"));
      if (wait > 0) return sendError(res, 429, "RATE_LIMITED", `too many requests; retry in ${(wait / 1000).toFixed(2)} s`, { "retry-after": String(Math.max(1, Math.ceil(wait / 1000))) });
    }
    if (key === `${RESERVED_PREFIX}/session` && method === "POST") return session(req, res, authority);
    if (key === `${RESERVED_PREFIX}/order` && method === "POST") return order(req, res, authority);
    if (key === `${RESERVED_PREFIX}/paywall.js` && (method === "GET" || method === "HEAD")) {
      const js = paywallScript();
      res.writeHead(200, { "content-type": "text/javascript; charset=utf-8", "cache-control": "no-cache", "content-length": String(Buffer.byteLength(js)) });
      if (method === "HEAD") res.end();
      else res.end(js);
      return;
    }
    sendError(res, 404, "NOT_FOUND", `${RESERVED_PREFIX}/ is the gateway's own namespace; nothing is served at this path`);
  };

  const handle = (req: Req, res: Res) => {
    const method = req.method ?? "GET";
    let target = req.url ?? "/";
    let authority = header1(req, ":authority") ?? header1(req, "host");
    // Absolute-form (a client talking to us as to a forward proxy): its authority wins, as in RFC 9112 §3.2.2.
    const abs = /^https?:\/\/([^/?#]*)(.*)$/i.exec(target);
    if (abs) {
      authority = abs[1];
      target = abs[2] || "/";
    }
    const n = normalizeTarget(target);
    if (isRefusal(n)) {
      count("-", "bad_request");
      return sendError(res, n === "TARGET_TOO_LONG" ? 414 : 400, n, "the request path is not in a form this gateway forwards (see docs/gateway.md, path normalisation)");
    }
    const h = normalizeHost(authority);
    if (!h) {
      count("-", "bad_request");
      return sendError(res, 400, "BAD_HOST", "the Host header is missing or not a host name");
    }
    if (n.key === RESERVED_PREFIX || n.key.startsWith(RESERVED_PREFIX + "/")) return internal(req, res, n.key, h.authority);
    const m = matchRoute(config.routes, h.host, n.key);
    if (!m) {
      // A path a route prices under another host name is never forwarded free:
      // the upstream gets one Host for all of them (unless preserveHost), so it
      // could not tell this request from the priced one. A path meant to be
      // free on some host needs its own route there (with `free`).
      if (config.routes.some((r) => pathMatches(r.path, n.key) && !r.free.some((f) => pathMatches(f, n.key)))) {
        count("-", "denied");
        return sendError(res, 404, "NOT_ROUTED", "this path is sold under another host name; nothing is served at it here");
      }
      if (config.unmatched === "deny") {
        count("-", "denied");
        return sendError(res, 404, "NOT_ROUTED", "nothing is served at this path");
      }
      return forward(req, res, "-", "unmatched", n.path, n.query, h.authority);
    }
    const route = m.route;
    const b = buckets.get(route.id);
    if (b) {
      const wait = b.take(addressKey(req.socket?.remoteAddress ?? "unknown"));
      if (wait > 0) {
        count(route.id, "rate_limited");
        return sendError(res, 429, "RATE_LIMITED", `too many requests to ${route.title}; retry in ${(wait / 1000).toFixed(2)} s`, { "retry-after": String(Math.max(1, Math.ceil(wait / 1000))) });
      }
    }
    if (!route.methods.includes(method)) {
      if (method === "OPTIONS" && header1(req, "access-control-request-method")) {
        // CORS preflight, answered here: it never reaches the upstream.
        res.writeHead(204, {
          ...corsHeaders(req),
          "access-control-allow-methods": route.methods.join(", "),
          "access-control-allow-headers": "Authorization, Content-Type, Range",
          "access-control-max-age": "600",
        });
        res.end();
        return;
      }
      count(route.id, "method_not_allowed");
      return sendError(res, 405, "METHOD_NOT_ALLOWED", `${method} is not allowed here`, { allow: route.methods.join(", ") });
    }
    if (m.free) return forward(req, res, route.id, "free", n.path, n.query, h.authority);
    let token = credentialToken(header1(req, "authorization"));
    let fromCookie = false;
    if (token === undefined) {
      const c = splitCookies(header1(req, "cookie")).scrip.get(route.id);
      if (c !== undefined) {
        token = c;
        fromCookie = true;
      }
    }
    if (token === undefined) return challenge(req, res, route, h.authority, n.path);
    const v = token === "MALFORMED" ? ({ ok: false, reason: "MALFORMED_CREDENTIAL" } as const) : verifyCredential(config, token, route, clock());
    if (!v.ok) return challenge(req, res, route, h.authority, n.path, v.reason, fromCookie);
    forward(req, res, route.id, "paid", n.path, n.query, h.authority, { tranId: v.receipt.tranId, routeId: route.id, save: route.deliveryMethod === DeliveryMethod.SAVE });
  };

  stack = createServerStack({
    services: [SellerService],
    routes: (router) => router.service(SellerService, sellerImpl),
    adapter: { contextValues: remoteAddressContextValues, fallback: handle as never },
    host: opts.host ?? "127.0.0.1",
    port: opts.port ?? 0,
    tls: opts.tls,
    logger: opts.logger,
  });
  const { url, port } = await stack.listen();
  return {
    url,
    port,
    config,
    metrics,
    stack,
    close: async (graceMs = 5_000) => {
      await stack.close(graceMs);
      agent.destroy();
    },
  };
}
