/**
 * Malformed request bytes are the caller's fault: INVALID_ARGUMENT, not
 * INTERNAL (finding F1 in docs/reliability.md).
 *
 * connect-es reports a protobuf parse failure (`parse binary: invalid
 * varint`) and a body that does not decompress (`decompression failed`) as
 * Code.Internal, and it does so inside its protocol handlers, before any
 * interceptor runs. So the Node handler here is connect-node's adapter
 * rebuilt around the same router, with every universal handler wrapped:
 * a response that carries exactly those errors is rewritten to
 * INVALID_ARGUMENT in whatever framing it is in (Connect unary: HTTP 400 and
 * the JSON code; Connect streaming: the end-stream message; gRPC: the
 * `grpc-status` trailer; gRPC-Web: the trailer frame). Nothing else changes.
 */
import type http from "node:http";
import type http2 from "node:http2";
import { Code, ConnectError, createConnectRouter, type ConnectRouter } from "@connectrpc/connect";
import { compressionBrotli, compressionGzip, universalRequestFromNodeRequest, universalResponseToNodeResponse } from "@connectrpc/connect-node";
import type { ConnectNodeAdapterOptions } from "@connectrpc/connect-node";
import type { UniversalHandler, UniversalServerResponse } from "@connectrpc/connect/protocol";

/** The INTERNAL messages connect-es gives to bytes it cannot decode. */
const MALFORMED = /^(parse binary|decompression failed)/;

type NodeHandler = (req: http.IncomingMessage | http2.Http2ServerRequest, res: http.ServerResponse | http2.Http2ServerResponse) => void;

/** Like `connectNodeAdapter`, but malformed bytes answer INVALID_ARGUMENT. */
export function createNodeHandler(options: ConnectNodeAdapterOptions & { routes: (router: ConnectRouter) => void }): NodeHandler {
  const router = createConnectRouter({ ...options, acceptCompression: options.acceptCompression ?? [compressionGzip, compressionBrotli] });
  options.routes(router);
  const paths = new Map<string, UniversalHandler>();
  for (const h of router.handlers) paths.set((options.requestPathPrefix ?? "") + h.requestPath, h);
  return (req, res) => {
    const uHandler = paths.get(req.url?.split("?", 2)[0] ?? "");
    if (uHandler === undefined) {
      if (options.fallback) options.fallback(req, res);
      else {
        res.writeHead(404);
        res.end();
      }
      return;
    }
    const ct = String(req.headers["content-type"] ?? "");
    const uReq = universalRequestFromNodeRequest(req, res, undefined, options.contextValues?.(req));
    uHandler(uReq)
      .then(async (uRes) => universalResponseToNodeResponse(await reclassify(uRes, ct), res))
      .catch((reason: unknown) => {
        if (ConnectError.from(reason).code === Code.Aborted) return;
        console.error(`handler for rpc ${uHandler.method.name} of ${uHandler.service.typeName} failed`, reason);
      });
  };
}

function isMalformed(code: unknown, message: unknown): boolean {
  return (code === "internal" || code === "13") && typeof message === "string" && MALFORMED.test(message);
}

/** Rewrites a malformed-input INTERNAL to INVALID_ARGUMENT in the response's own framing. */
export async function reclassify(uRes: UniversalServerResponse, contentType: string): Promise<UniversalServerResponse> {
  const ct = contentType.toLowerCase();
  if (ct.startsWith("application/grpc-web")) return { ...uRes, body: mapFrames(uRes.body, 0x80, grpcWebTrailer) };
  if (ct.startsWith("application/grpc")) return grpc(uRes);
  if (ct.startsWith("application/connect+")) return { ...uRes, body: mapFrames(uRes.body, 0x02, connectEndStream) };
  if (uRes.status === 500) return connectUnary(uRes);
  return uRes;
}

async function connectUnary(uRes: UniversalServerResponse): Promise<UniversalServerResponse> {
  if (uRes.body === undefined) return uRes;
  // The error body is small JSON; read it first, since the status goes out before it.
  const chunks: Uint8Array[] = [];
  for await (const c of uRes.body) chunks.push(c);
  const bytes = Buffer.concat(chunks);
  let status = uRes.status;
  let out: Uint8Array = new Uint8Array(bytes);
  try {
    const j = JSON.parse(bytes.toString("utf8")) as { code?: string; message?: string };
    if (isMalformed(j.code, j.message)) {
      j.code = "invalid_argument";
      status = 400;
      out = new Uint8Array(Buffer.from(JSON.stringify(j)));
      if (uRes.header?.has("content-length")) uRes.header.set("content-length", String(out.byteLength));
    }
  } catch {
    // not a Connect error body: leave it as it is
  }
  return { ...uRes, status, body: (async function* () { yield out; })() };
}

function grpc(uRes: UniversalServerResponse): UniversalServerResponse {
  const fix = (h: Headers | undefined) => {
    if (h && isMalformed(h.get("grpc-status"), decodeURIComponentSafe(h.get("grpc-message") ?? ""))) h.set("grpc-status", String(Code.InvalidArgument));
  };
  fix(uRes.header);
  if (uRes.body === undefined) {
    fix(uRes.trailer);
    return uRes;
  }
  const body = uRes.body;
  return {
    ...uRes,
    // Trailers are written after the body; fix them once it has ended.
    body: (async function* () {
      for await (const c of body) yield c;
      fix(uRes.trailer);
    })(),
  };
}

function decodeURIComponentSafe(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

/** Applies `fix` to each whole envelope whose flags include `flag`; connect writes each envelope as one chunk. */
function mapFrames(body: AsyncIterable<Uint8Array> | undefined, flag: number, fix: (payload: Uint8Array) => Uint8Array): AsyncIterable<Uint8Array> | undefined {
  if (body === undefined) return undefined;
  return (async function* () {
    for await (const c of body) {
      if (c.length >= 5 && (c[0]! & flag) === flag) {
        const len = Buffer.from(c.buffer, c.byteOffset, c.byteLength).readUInt32BE(1);
        if (c.length === 5 + len) {
          const payload = fix(c.subarray(5));
          const out = Buffer.alloc(5 + payload.length);
          out[0] = c[0]!;
          out.writeUInt32BE(payload.length, 1);
          out.set(payload, 5);
          yield new Uint8Array(out);
          continue;
        }
      }
      yield c;
    }
  })();
}

function grpcWebTrailer(payload: Uint8Array): Uint8Array {
  const text = Buffer.from(payload).toString("utf8");
  const status = /^grpc-status:\s*(\d+)\s*$/im.exec(text)?.[1];
  const message = decodeURIComponentSafe(/^grpc-message:\s*(.*?)\s*$/im.exec(text)?.[1] ?? "");
  if (!isMalformed(status, message)) return payload;
  return new Uint8Array(Buffer.from(text.replace(/^grpc-status:\s*\d+/im, `grpc-status: ${Code.InvalidArgument}`)));
}

function connectEndStream(payload: Uint8Array): Uint8Array {
  try {
    const j = JSON.parse(Buffer.from(payload).toString("utf8")) as { error?: { code?: string; message?: string } };
    if (j.error && isMalformed(j.error.code, j.error.message)) {
      j.error.code = "invalid_argument";
      return new Uint8Array(Buffer.from(JSON.stringify(j)));
    }
  } catch {
    // leave it
  }
  return payload;
}
