/**
 * PROTOTYPE (bench only): a unary fast path in front of connectNodeAdapter.
 *
 * Profiles of the center show most of its CPU going to connect-node's
 * per-call machinery (universal request/response objects, async iterables,
 * three AbortControllers with EventTarget listeners and DOMException
 * reasons, Headers objects, URL parsing), not to the payment itself. This
 * serves the hot unary methods (binary Connect unary and gRPC unary, no
 * compression, no timeout header) straight from the Node request, and hands
 * every other request (JSON, gRPC-Web, HTTP/1.1, streams, compressed,
 * with deadlines, other methods) to the normal Connect handler unchanged.
 *
 * Wire behaviour it must match, for the calls it takes:
 *   Connect unary: 200 + `application/proto` body; error = HTTP status for
 *     the code + JSON `{code, message, details}`, metadata as headers.
 *   gRPC: 200 + `application/grpc+proto`, one length-prefixed message,
 *     `grpc-status`/`grpc-message`/details in trailers, metadata in trailers.
 * This is how the numbers in docs/performance.md for "fast path" were made;
 * it is not used by the project's servers.
 */
import { fromBinary, toBinary, type DescMessage, type DescService } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { codeToHttpStatus, errorToJsonBytes } from "@connectrpc/connect/protocol-connect";
import { setTrailerStatus } from "@connectrpc/connect/protocol-grpc";
import type http2 from "node:http2";

type Impl = (req: never, ctx: never) => unknown;

interface Route {
  input: DescMessage;
  output: DescMessage;
  fn: Impl;
}

export interface FastPathOptions {
  /** Largest request message accepted (matches the stack's readMaxBytes). */
  readMaxBytes: number;
  /** Called with (path, code, ms) after every call, like the stack's logging interceptor. */
  onCall?: (path: string, code: Code | 0, ms: number) => void;
}

const JSON_HEAD = { "content-type": "application/json" };
const PROTO_HEAD = { "content-type": "application/proto" };
const GRPC_HEAD = { "content-type": "application/grpc+proto" };
const GRPC_OK = { "grpc-status": "0" };

/** Returns a function that serves the request and returns true, or returns false to let the caller route it. */
export function createUnaryFastPath(
  services: Array<{ service: DescService; impl: Record<string, Impl>; methods?: string[] }>,
  opts: FastPathOptions,
): (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => boolean {
  const routes = new Map<string, Route>();
  for (const { service, impl, methods } of services) {
    for (const m of service.methods) {
      if (m.methodKind !== "unary" || (methods && !methods.includes(m.localName))) continue;
      const fn = impl[m.localName];
      if (fn) routes.set(`/${service.typeName}/${m.name}`, { input: m.input, output: m.output, fn: fn.bind(impl) as Impl });
    }
  }
  return (req, res) => {
    if (req.method !== "POST") return false;
    const route = routes.get(req.url);
    if (!route) return false;
    const h = req.headers;
    const ct = h["content-type"];
    let grpc: boolean;
    if (ct === "application/proto") grpc = false;
    else if (ct === "application/grpc" || ct === "application/grpc+proto") grpc = true;
    else return false;
    if (h["content-encoding"] !== undefined || (h["grpc-encoding"] !== undefined && h["grpc-encoding"] !== "identity")) return false;
    if (h["connect-timeout-ms"] !== undefined || h["grpc-timeout"] !== undefined) return false;
    const started = performance.now();
    const chunks: Buffer[] = [];
    let size = 0;
    let tooBig = false;
    req.on("data", (c: Buffer) => {
      size += c.length;
      if (size > opts.readMaxBytes + 5) tooBig = true;
      else chunks.push(c);
    });
    req.on("end", () => {
      void (async () => {
        try {
          if (tooBig) throw new ConnectError(`message size is larger than configured readMaxBytes ${opts.readMaxBytes}`, Code.ResourceExhausted);
          let body = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
          if (grpc) {
            if (body.length < 5 || body[0] !== 0 || body.readUInt32BE(1) !== body.length - 5) {
              throw new ConnectError("protocol error: expected exactly one uncompressed gRPC message", Code.InvalidArgument);
            }
            body = body.subarray(5);
          }
          let msg: unknown;
          try {
            msg = fromBinary(route.input, body);
          } catch (e) {
            throw new ConnectError(`parse binary: ${e instanceof Error ? e.message : String(e)}`, Code.InvalidArgument);
          }
          const out = toBinary(route.output, (await route.fn(msg as never, undefined as never)) as never);
          if (grpc) {
            const frame = Buffer.allocUnsafe(5 + out.length);
            frame[0] = 0;
            frame.writeUInt32BE(out.length, 1);
            frame.set(out, 5);
            res.writeHead(200, GRPC_HEAD);
            res.addTrailers(GRPC_OK);
            res.end(frame);
          } else {
            res.writeHead(200, PROTO_HEAD);
            res.end(out);
          }
          opts.onCall?.(req.url, 0, performance.now() - started);
        } catch (e) {
          const err = ConnectError.from(e);
          if (grpc) {
            const t = new Headers();
            setTrailerStatus(t, err); // status, message, details and the error's metadata
            const trailers: Record<string, string> = {};
            t.forEach((v, k) => void (trailers[k] = v));
            res.writeHead(200, GRPC_HEAD);
            res.addTrailers(trailers);
            res.end();
          } else {
            const meta: Record<string, string> = {};
            err.metadata.forEach((v, k) => void (meta[k] = v));
            res.writeHead(codeToHttpStatus(err.code), { ...meta, ...JSON_HEAD });
            res.end(errorToJsonBytes(err, {}));
          }
          opts.onCall?.(req.url, err.code, performance.now() - started);
        }
      })();
    });
    return true;
  };
}
