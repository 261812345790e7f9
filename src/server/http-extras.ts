/**
 * What a browser needs from a Scripwire server besides the RPCs: CORS for
 * Connect and gRPC-Web calls from other origins, and plain HTTP pages (the
 * center's wallet at /wallet/, the seller's mall at /shop/). Wraps the
 * stack's Node handler; RPC requests that are not cross-origin pass through
 * untouched.
 *
 * The CORS header lists are the ones `@connectrpc/connect` exports for its
 * protocols (`cors.allowedMethods`, `cors.allowedHeaders`,
 * `cors.exposedHeaders`), not a hand-written copy.
 */
import type http from "node:http";
import type http2 from "node:http2";
import { cors } from "@connectrpc/connect";

type Req = http.IncomingMessage | http2.Http2ServerRequest;
type Res = http.ServerResponse | http2.Http2ServerResponse;
type Handler = (req: Req, res: Res) => void;

/** Serves a page if it is one; returns false to let the RPC handler have the request. */
export type PageHandler = (req: Req, res: Res) => boolean;

/** How long a browser may cache a preflight answer, seconds. */
export const CORS_MAX_AGE_SECONDS = 7200;

export interface HttpExtrasOptions {
  /** Origins allowed to call the RPCs from a browser (`https://mall.example`), or `*` for any. Default none. */
  corsOrigins?: readonly string[];
  /** Pages served beside the RPCs. */
  pages?: PageHandler;
}

/** Checks `--cors-origin` values: `*` or an origin (scheme://host[:port], no path). */
export function parseCorsOrigins(values: readonly string[]): string[] {
  return values.map((v) => {
    if (v === "*") return v;
    let u: URL;
    try {
      u = new URL(v);
    } catch {
      throw new RangeError(`--cors-origin expected an origin such as https://mall.example, got ${JSON.stringify(v)}`);
    }
    if ((u.protocol !== "http:" && u.protocol !== "https:") || u.origin !== v.replace(/\/$/, "")) {
      throw new RangeError(`--cors-origin expected an origin (scheme://host[:port], nothing after), got ${JSON.stringify(v)}`);
    }
    return u.origin;
  });
}

export function withHttpExtras(handler: Handler, opts: HttpExtrasOptions): Handler {
  const origins = new Set(opts.corsOrigins ?? []);
  const any = origins.has("*");
  const allowMethods = cors.allowedMethods.join(", ");
  const allowHeaders = cors.allowedHeaders.join(", ");
  const exposeHeaders = cors.exposedHeaders.join(", ");
  if (origins.size === 0 && !opts.pages) return handler;
  return (req, res) => {
    if (opts.pages?.(req, res)) return;
    const origin = req.headers.origin;
    if (typeof origin === "string" && (any || origins.has(origin))) {
      res.setHeader("access-control-allow-origin", any ? "*" : origin);
      res.setHeader("vary", "Origin");
      if (req.method === "OPTIONS") {
        res.setHeader("access-control-allow-methods", allowMethods);
        res.setHeader("access-control-allow-headers", allowHeaders);
        res.setHeader("access-control-max-age", String(CORS_MAX_AGE_SECONDS));
        res.statusCode = 204;
        res.end();
        return;
      }
      res.setHeader("access-control-expose-headers", exposeHeaders);
    }
    handler(req, res);
  };
}
