/**
 * The streaming half of the gateway: forward one request to the upstream and
 * its answer back, bodies piped with backpressure so memory per request is a
 * few stream buffers (16 KiB high-water marks), whatever the body size.
 * Either side going away destroys the other (res 'close' before the end
 * destroys the upstream request, which ends its response too).
 *
 * Upstream trouble never looks like "pay again": a refused connection, a
 * reset or a 5xx is a 502, a timeout a 504, and an upstream 402 is a 502 too
 * (only the gateway may ask for payment).
 */
import http from "node:http";
import type http2 from "node:http2";
import https from "node:https";

export type IncomingRequest = http.IncomingMessage | http2.Http2ServerRequest;
export type OutgoingResponse = http.ServerResponse | http2.Http2ServerResponse;

/** Hop-by-hop headers (RFC 9110 §7.6.1) and ones HTTP/2 forbids: never forwarded in either direction. */
const HOP_BY_HOP = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "proxy-authenticate",
  "proxy-authorization",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
  "http2-settings",
  "host",
  // Answered by this hop (Node sends the 100 Continue itself); the upstream gets the body either way.
  "expect",
]);

/** Removes hop-by-hop headers, pseudo-headers and whatever `Connection` names. */
export function endToEndHeaders(headers: http.IncomingHttpHeaders | http2.IncomingHttpHeaders): Record<string, string | string[]> {
  const named = new Set(
    String(headers["connection"] ?? "")
      .split(",")
      .map((s) => s.trim().toLowerCase())
      .filter(Boolean),
  );
  const out: Record<string, string | string[]> = {};
  for (const [k, v] of Object.entries(headers)) {
    if (v === undefined || k.startsWith(":") || HOP_BY_HOP.has(k) || named.has(k)) continue;
    out[k] = v as string | string[];
  }
  return out;
}

export interface ProxyOptions {
  upstream: URL;
  agent: http.Agent;
  timeoutMs: number;
  /** Method, canonical path and raw query to send. */
  method: string;
  pathAndQuery: string;
  /** Request headers to send (already stripped of credentials and hop-by-hop headers). */
  headers: Record<string, string | string[]>;
  /** Adjust the upstream's response headers before they go out (Location rewriting, caching). */
  responseHeaders?: (h: Record<string, string | string[]>, status: number) => void;
  /** Called once with the outcome, for metrics and logs. */
  done?: (outcome: ProxyOutcome) => void;
}

export type ProxyOutcome =
  | { kind: "ok"; status: number; upstreamMs: number }
  | { kind: "upstream_error"; status: 502 | 504; detail: string; upstreamStatus?: number }
  | { kind: "aborted"; detail: string };

/** Writes a small gateway-made error answer (JSON), unless headers already went out. */
export function sendError(res: OutgoingResponse, status: number, reason: string, message: string, extra: Record<string, string> = {}): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = JSON.stringify({ error: message, reason }) + "\n";
  res.writeHead(status, {
    "content-type": "application/json; charset=utf-8",
    "content-length": String(Buffer.byteLength(body)),
    "cache-control": "no-store",
    "scripwire-error-reason": reason,
    ...extra,
  });
  res.end(body);
}

/** Forwards `req` to the upstream and streams the answer into `res`. */
export function proxy(req: IncomingRequest, res: OutgoingResponse, o: ProxyOptions): void {
  const started = performance.now();
  let finished = false;
  const finish = (out: ProxyOutcome) => {
    if (finished) return;
    finished = true;
    o.done?.(out);
  };
  const mod = o.upstream.protocol === "https:" ? https : http;
  const base = o.upstream.pathname.replace(/\/+$/, "");
  const upReq = mod.request({
    protocol: o.upstream.protocol,
    hostname: o.upstream.hostname.replace(/^\[|\]$/g, ""),
    port: o.upstream.port || undefined,
    method: o.method,
    path: base + o.pathAndQuery,
    headers: o.headers,
    agent: o.agent,
  });
  const upstreamFailed = (status: 502 | 504, detail: string, upstreamStatus?: number) => {
    finish({ kind: "upstream_error", status, detail, upstreamStatus });
    sendError(
      res,
      status,
      status === 504 ? "UPSTREAM_TIMEOUT" : "UPSTREAM_FAILED",
      `the site behind this gateway ${status === 504 ? "did not answer in time" : "failed"}${upstreamStatus ? ` (HTTP ${upstreamStatus})` : ""}; retry: a receipt you presented stays valid and is not charged again`,
      { "retry-after": "1" },
    );
  };
  upReq.setTimeout(o.timeoutMs, () => {
    upReq.destroy(new Error("upstream timeout"));
  });
  upReq.on("error", (e) => {
    if (res.headersSent) {
      finish({ kind: "aborted", detail: e.message });
      res.destroy();
      return;
    }
    upstreamFailed(/timeout/.test(e.message) ? 504 : 502, e.message);
  });
  upReq.on("response", (upRes) => {
    upReq.setTimeout(0);
    const status = upRes.statusCode ?? 502;
    if (status >= 500 || status === 402) {
      upRes.resume(); // drain and discard: the page of a failing upstream is not what was paid for
      upstreamFailed(status === 504 ? 504 : 502, `upstream answered ${status}`, status);
      return;
    }
    const headers = endToEndHeaders(upRes.headers);
    o.responseHeaders?.(headers, status);
    res.writeHead(status, headers);
    finish({ kind: "ok", status, upstreamMs: performance.now() - started });
    // pipe(), not pipeline(): the same backpressure, without the AbortController
    // and DOMException pipeline() makes per call (~10% of the gateway's CPU, measured).
    upRes.pipe(res as NodeJS.WritableStream);
    upRes.on("error", () => res.destroy());
    upRes.on("aborted", () => res.destroy());
  });
  // A client that goes away mid-request takes the upstream request with it.
  res.on("close", () => {
    if (!res.writableFinished) {
      upReq.destroy();
      finish({ kind: "aborted", detail: "client closed" });
    }
  });
  req.pipe(upReq);
  req.on("error", (err) => upReq.destroy(err));
}
