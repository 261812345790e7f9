/**
 * A raw HTTP/2 client for wire-level fuzzing: it sends exactly the bytes it
 * is given (Connect unary, Connect streaming, gRPC or gRPC-Web framing, with
 * honest or lying length prefixes) and reports the status the server
 * answered with, decoded from whichever place the protocol puts it.
 */
import http2 from "node:http2";

export type Framing = "connect" | "connect-stream" | "grpc" | "grpc-web";

export interface WireAnswer {
  /** HTTP status (0 if the stream died without headers). */
  http: number;
  /** Connect/gRPC code name, lower snake ("invalid_argument"), "ok", or "none" when the server gave no status at all. */
  code: string;
  message: string;
  /** The stream was reset or the session failed before a status arrived. */
  reset?: string;
}

/** gRPC status numbers to Connect code names. */
const GRPC_CODES = [
  "ok", "canceled", "unknown", "invalid_argument", "deadline_exceeded", "not_found", "already_exists",
  "permission_denied", "resource_exhausted", "failed_precondition", "aborted", "out_of_range",
  "unimplemented", "internal", "unavailable", "data_loss", "unauthenticated",
];

/** HTTP status -> Connect code, for Connect unary errors whose body is not JSON. */
function codeFromHttp(status: number): string {
  switch (status) {
    case 200: return "ok";
    case 400: return "invalid_argument";
    case 401: return "unauthenticated";
    case 403: return "permission_denied";
    case 404: return "unimplemented";
    case 408: return "deadline_exceeded";
    case 409: return "aborted";
    case 412: return "failed_precondition";
    case 413: return "resource_exhausted";
    case 415: return "internal";
    case 429: return "unavailable";
    case 431: return "resource_exhausted";
    case 501: return "unimplemented";
    case 502: case 503: case 504: return "unavailable";
    default: return "unknown";
  }
}

/** A length-prefixed envelope: flags (1 byte), length (4 bytes, big-endian, may lie), payload. */
export function envelope(payload: Uint8Array, opts: { flags?: number; length?: number } = {}): Uint8Array {
  const out = new Uint8Array(5 + payload.length);
  out[0] = opts.flags ?? 0;
  new DataView(out.buffer).setUint32(1, (opts.length ?? payload.length) >>> 0);
  out.set(payload, 5);
  return out;
}

function contentType(f: Framing): string {
  switch (f) {
    case "connect": return "application/proto";
    case "connect-stream": return "application/connect+proto";
    case "grpc": return "application/grpc";
    case "grpc-web": return "application/grpc-web+proto";
  }
}

export class RawH2 {
  private session: http2.ClientHttp2Session | undefined;
  /** Answers after which the server had not closed the stream (the request side was still open). */
  halfOpen = 0;

  constructor(readonly baseUrl: string) {}

  private connect(): http2.ClientHttp2Session {
    if (!this.session || this.session.closed || this.session.destroyed) {
      const s = http2.connect(this.baseUrl);
      s.on("error", () => {});
      s.unref();
      this.session = s;
    }
    return this.session;
  }

  close(): void {
    this.session?.close();
    this.session = undefined;
  }

  /**
   * POSTs `body` (already framed as the caller wants it) to `/<service>/<method>`.
   * `headers` override the defaults (content type of the framing, te, protocol version).
   */
  post(path: string, framing: Framing, body: Uint8Array, headers: Record<string, string> = {}, timeoutMs = 10_000): Promise<WireAnswer> {
    return new Promise((resolve) => {
      let settled = false;
      const done = (a: WireAnswer) => {
        if (!settled) {
          settled = true;
          clearTimeout(timer);
          resolve(a);
        }
      };
      let req: http2.ClientHttp2Stream;
      try {
        req = this.connect().request({
          ":method": "POST",
          ":path": path,
          "content-type": contentType(framing),
          ...(framing === "grpc" ? { te: "trailers" } : {}),
          ...(framing === "connect" ? { "connect-protocol-version": "1" } : {}),
          ...headers,
        });
      } catch (e) {
        this.session = undefined;
        resolve({ http: 0, code: "none", message: String(e), reset: "request() threw" });
        return;
      }
      const timer = setTimeout(() => {
        req.close(http2.constants.NGHTTP2_CANCEL);
        done({ http: 0, code: "none", message: "no answer", reset: "timeout" });
      }, timeoutMs);
      let status = 0;
      let head: http2.IncomingHttpHeaders = {};
      const chunks: Buffer[] = [];
      // Once the status is known the answer is complete: a server that answered an
      // oversized request early may leave the request half-open (it stops reading), so
      // the client cancels its side instead of waiting on flow control.
      const finish = () => {
        const a = decodeAnswer(framing, status, head, Buffer.concat(chunks));
        done(a);
        setTimeout(() => {
          if (!req.closed) {
            this.halfOpen++;
            req.close(http2.constants.NGHTTP2_CANCEL);
          }
        }, 250).unref();
      };
      req.on("response", (h) => {
        head = h;
        status = Number(h[":status"] ?? 0);
        if (h["grpc-status"] !== undefined) setImmediate(finish);
      });
      req.on("data", (c: Buffer) => chunks.push(c));
      // The server ended its side (gRPC-Web and Connect streaming carry the status in the body).
      req.on("end", () => {
        if (status !== 0) setImmediate(finish);
      });
      req.on("trailers", (t) => {
        head = { ...head, ...t };
        setImmediate(finish);
      });
      req.on("error", (e) => done({ http: status, code: "none", message: String(e), reset: "stream error" }));
      req.on("close", () => {
        const body = Buffer.concat(chunks);
        if (status === 0) {
          done({ http: 0, code: "none", message: "", reset: `closed without headers (rst ${req.rstCode})` });
          return;
        }
        done(decodeAnswer(framing, status, head, body));
      });
      // Write in one go; large bodies are flow-controlled by the stream.
      req.end(Buffer.from(body.buffer, body.byteOffset, body.byteLength));
    });
  }
}

/** grpc-message is percent-encoded; a server that sent it malformed is reported as such, not a harness crash. */
export function percentDecoded(m: string): string {
  try {
    return decodeURIComponent(m);
  } catch {
    return `(grpc-message not percent-decodable) ${m}`;
  }
}

export function decodeAnswer(framing: Framing, status: number, head: http2.IncomingHttpHeaders, body: Buffer): WireAnswer {
  if (framing === "grpc" || framing === "grpc-web") {
    let grpcStatus = head["grpc-status"];
    let message = String(head["grpc-message"] ?? "");
    if (grpcStatus === undefined && framing === "grpc-web") {
      // gRPC-Web carries trailers in a final envelope with flag 0x80.
      let off = 0;
      while (off + 5 <= body.length) {
        const flags = body[off]!;
        const len = body.readUInt32BE(off + 1);
        const payload = body.subarray(off + 5, off + 5 + len);
        if (flags & 0x80) {
          for (const line of payload.toString().split("\r\n")) {
            const [k, ...v] = line.split(":");
            if (k?.trim().toLowerCase() === "grpc-status") grpcStatus = v.join(":").trim();
            // Decoded once, below, like the HTTP/2 trailer (decoding here too
            // broke on any message holding a "%": the long run, 2026-11-30).
            if (k?.trim().toLowerCase() === "grpc-message") message = v.join(":").trim();
          }
        }
        off += 5 + len;
      }
    }
    if (grpcStatus === undefined) return { http: status, code: "none", message: `HTTP ${status} without grpc-status` };
    return { http: status, code: GRPC_CODES[Number(grpcStatus)] ?? "unknown", message: percentDecoded(message) };
  }
  if (framing === "connect-stream") {
    // End-of-stream envelope (flag 0x02) carries {"error": {...}} or {}.
    let off = 0;
    let last: WireAnswer = { http: status, code: status === 200 ? "none" : codeFromHttp(status), message: "no end-of-stream message" };
    while (off + 5 <= body.length) {
      const flags = body[off]!;
      const len = body.readUInt32BE(off + 1);
      const payload = body.subarray(off + 5, off + 5 + len);
      if (flags & 0x02) {
        try {
          const j = JSON.parse(payload.toString()) as { error?: { code?: string; message?: string } };
          last = j.error ? { http: status, code: j.error.code ?? "unknown", message: j.error.message ?? "" } : { http: status, code: "ok", message: "" };
        } catch {
          last = { http: status, code: "none", message: "end-of-stream is not JSON" };
        }
      }
      off += 5 + len;
    }
    return last;
  }
  if (status === 200) return { http: 200, code: "ok", message: "" };
  // A content type the endpoint does not serve: the RPC never started, there is no Connect code.
  if (status === 415) return { http: 415, code: "unsupported_media_type", message: "" };
  try {
    const j = JSON.parse(body.toString()) as { code?: string; message?: string };
    return { http: status, code: j.code ?? codeFromHttp(status), message: j.message ?? "" };
  } catch {
    return { http: status, code: codeFromHttp(status), message: body.toString().slice(0, 200) };
  }
}
