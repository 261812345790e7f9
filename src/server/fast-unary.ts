/**
 * A unary fast path in front of the stack's Connect handler.
 *
 * Why: profiles of the payment center (docs/performance.md §4) show that most
 * of its CPU per call goes to connect-node's per-call machinery — a universal
 * request/response object, async iterables for a one-message body, `new
 * URL()`, several `Headers` objects and three linked `AbortController`s whose
 * abort builds `DOMException`s — not to the payment itself. For the handful
 * of hot unary methods a server names, this module serves the call straight
 * from Node's HTTP/2 compatibility request: read the body, decode, call the
 * handler, encode, write. It roughly halves the center's CPU per protocol
 * call (see docs/performance.md §2 and §5).
 *
 * What it takes (everything else returns `false` and goes, untouched, to the
 * normal Connect handler):
 * - HTTP/2 only (the stack only consults it for HTTP/2 requests, TLS or not);
 * - `POST` to exactly `/<service>/<Method>` of a configured unary method;
 * - Connect unary with `content-type: application/proto`, or gRPC with
 *   `application/grpc` / `application/grpc+proto`;
 * - no compression (`content-encoding`, or a `grpc-encoding` other than
 *   `identity`) and no deadline (`connect-timeout-ms`, `grpc-timeout`).
 * JSON, gRPC-Web, HTTP/1.1, GET, streams, compressed or deadline-carrying
 * calls and all other methods keep the full Connect path.
 *
 * What it keeps identical to the normal path, for the calls it takes:
 * - success: status 200, `application/proto` + `content-length` (Connect) or
 *   `application/grpc+proto`, one envelope and `grpc-status: 0` (gRPC);
 * - errors: Connect — HTTP status from `codeToHttpStatus`, JSON body from
 *   `errorToJsonBytes`, error metadata (e.g. `scripwire-error-reason`) as
 *   response headers; gRPC — `setTrailerStatus` (status, message, details,
 *   metadata) in trailers;
 * - a non-ConnectError thrown by a handler becomes INTERNAL "internal error"
 *   on the wire (its message is not leaked), exactly as connect-node does;
 * - the message size limit (`readMaxBytes`): RESOURCE_EXHAUSTED with
 *   connect's own message text, before the handler runs;
 * - the per-call log line of `createLoggingInterceptor` (src/server/log.ts):
 *   `rpc` with method, code and duration, at debug / info / error;
 * - shutdown: calls arriving after the stack's shutdown signal fired get its
 *   reason (UNAVAILABLE), like aborted Connect calls; calls still running
 *   when it fires are answered with that reason. In-flight calls are HTTP/2
 *   streams, so the stack's `close()` (which waits for every session to
 *   drain) waits for them; {@link FastUnary.inFlight} counts them too.
 *
 * Limits (by design; named so nobody is surprised):
 * - Interceptors and the adapter's `requestGate` / `contextValues` do not
 *   run here. The stack therefore disables the fast path when any of those
 *   are configured (logging is reproduced here, see above).
 * - Handlers get a minimal {@link HandlerContext}: `signal` is the stack's
 *   shutdown signal (it does not fire when the client goes away), `timeoutMs()`
 *   is always undefined (calls with deadlines never come here),
 *   `requestHeader` is built on first access, `responseHeader` and
 *   `responseTrailer` are honoured, `values` is an empty context-values map.
 * - The request body is buffered (at most `readMaxBytes` + 5 bytes), as
 *   Connect does for unary calls anyway.
 */
import type http2 from "node:http2";
import { brotliCompressSync, gzipSync } from "node:zlib";
import type { DescMessage, DescMethodUnary, DescService } from "@bufbuild/protobuf";
import { fromBinary, toBinary } from "@bufbuild/protobuf";
import type { JsonWriteOptions } from "@bufbuild/protobuf";
import { Code, ConnectError, createContextValues } from "@connectrpc/connect";
import type { HandlerContext } from "@connectrpc/connect";
import { codeToHttpStatus, codeToString, errorToJsonBytes } from "@connectrpc/connect/protocol-connect";
import { setTrailerStatus } from "@connectrpc/connect/protocol-grpc";
import { toConnectError } from "./errors.js";
import { encodingOf, rememberEncoding } from "./encoded.js";
import type { Logger } from "./log.js";

/** One service's hot methods, served by the fast path. */
export interface FastUnaryService {
  service: DescService;
  /**
   * The same implementation object registered on the router (at least the
   * listed methods). Methods are called with `this` bound to it.
   */
  impl: object;
  /** `localName`s of unary methods to serve fast, e.g. `["pay"]`. */
  methods: readonly string[];
  /**
   * Methods (of `methods`) served from wire bytes to wire bytes: the request
   * is not decoded here and the answer not encoded, because the handler only
   * passes them to another thread that decodes them itself (the center's hot
   * calls, src/center/hot-calls.ts). Such a handler must refuse a malformed
   * request exactly as this module does: {@link malformedRequest}.
   */
  raw?: Readonly<Record<string, RawUnaryFn>>;
}

/**
 * The refusal for request bytes that do not parse: INVALID_ARGUMENT, as the
 * Connect path answers them (finding F1, src/server/malformed-input.ts).
 * A bytes-to-bytes handler decodes elsewhere and must answer with this too.
 */
export function malformedRequest(e: unknown): ConnectError {
  return new ConnectError(`parse binary: ${e instanceof Error ? e.message : String(e)}`, Code.InvalidArgument);
}

/** A unary handler over wire bytes: the request message's bytes in, the answer's bytes out. */
export type RawUnaryFn = (request: Uint8Array, ctx: HandlerContext) => Promise<Uint8Array>;

export interface FastUnaryOptions {
  /** Largest request message in bytes; must equal the Connect handler's `readMaxBytes`. */
  readMaxBytes: number;
  /** Aborted by the stack's graceful shutdown; its reason is sent to calls it interrupts. */
  shutdownSignal: AbortSignal;
  /** Logger for the per-call `rpc` line; undefined or silent = no lines. */
  logger?: Logger;
  /** JSON options for error bodies (the adapter's `jsonOptions`). */
  jsonOptions?: Partial<JsonWriteOptions>;
  /** The adapter's `contextValues`, so handlers see the same values (e.g. the remote address) on both paths. */
  contextValues?: (req: http2.Http2ServerRequest) => ReturnType<typeof createContextValues>;
}

export interface FastUnary {
  /**
   * Serve `req` if it is a fast-path call and return true; otherwise touch
   * nothing and return false (the caller routes it normally).
   */
  handle(req: http2.Http2ServerRequest, res: http2.Http2ServerResponse): boolean;
  /** Fast-path calls started and not yet answered. */
  readonly inFlight: number;
  /** Calls this fast path took (answered or not): lets a test prove it was really used. */
  readonly served: number;
  /** Of those, calls served bytes to bytes (FastUnaryService.raw). */
  readonly rawServed: number;
}

type UnaryFn = (req: unknown, ctx: HandlerContext) => unknown;

interface Route {
  method: DescMethodUnary;
  input: DescMessage;
  output: DescMessage;
  fn: UnaryFn;
  /** Set when the method is served bytes to bytes (FastUnaryService.raw). */
  raw: RawUnaryFn | undefined;
  /** `pkg.Service/Method`, as the logging interceptor prints it. */
  logName: string;
}

// Header names connect never copies from error metadata
// (@connectrpc/connect protocol/protocol-headers.js, not exported).
// test/fast-unary-center.test.ts checks this copy against the installed connect.
export const FAST_PATH_PROTOCOL_HEADERS: ReadonlySet<string> = new Set([
  "content-type", "content-length", "content-encoding", "host", "user-agent", "trailer", "date",
  "accept-encoding", "trailer-", "connect-content-encoding", "connect-accept-encoding",
  "connect-timeout-ms", "connect-protocol-version",
  "grpc-encoding", "grpc-accept-encoding", "grpc-timeout", "grpc-status", "grpc-message",
  "grpc-status-details-bin",
]);

/**
 * Response compression as connect-node negotiates it (protocol/compression.js
 * compressionNegotiate; connectNodeAdapter's default acceptCompression is
 * gzip and br; compressMinBytes defaults to 1 KiB): the first codec in the
 * client's accept list that the server has. gRPC names it in `grpc-encoding`
 * on every answer, errors included; a message is compressed only from
 * COMPRESS_MIN_BYTES on. Found by test/fast-unary-center.test.ts.
 */
const SERVER_CODECS = ["gzip", "br"] as const;
type Codec = (typeof SERVER_CODECS)[number];
const COMPRESS_MIN_BYTES = 1024;

function negotiate(accepted: string | string[] | undefined): Codec | undefined {
  if (accepted === undefined) return undefined;
  for (const name of String(accepted).split(",")) {
    const n = name.trim();
    if ((SERVER_CODECS as readonly string[]).includes(n)) return n as Codec;
  }
  return undefined;
}

function compress(codec: Codec, bytes: Uint8Array): Buffer {
  return codec === "gzip" ? gzipSync(bytes) : brotliCompressSync(bytes);
}

const CT_CONNECT_PROTO = "application/proto";
const CT_CONNECT_JSON = "application/json";
const CT_GRPC_PROTO = "application/grpc+proto";

/** A handler's call that failed (and was answered with the error). */
const FAILED = Symbol("failed");

/** Codes the logging interceptor logs at "error" (server faults); see src/server/log.ts. */
const serverFaultCodes: ReadonlySet<Code> = new Set([Code.Unknown, Code.Internal, Code.DataLoss, Code.Unimplemented]);

/**
 * Build the fast path for `services`.
 *
 * @throws Error if a listed method does not exist, is not unary, or has no
 *   implementation (a typo would otherwise silently disable the fast path).
 */
export function createFastUnary(services: readonly FastUnaryService[], options: FastUnaryOptions): FastUnary {
  const contextValuesOf = options.contextValues;
  const routes = new Map<string, Route>();
  for (const { service, impl, methods, raw } of services) {
    for (const name of methods) {
      const method = service.methods.find((m) => m.localName === name);
      if (method === undefined) {
        throw new Error(`fast path: ${service.typeName} has no method "${name}"`);
      }
      if (method.methodKind !== "unary") {
        throw new Error(`fast path: ${service.typeName}.${name} is ${method.methodKind}, only unary methods can be served fast`);
      }
      const fn = (impl as Record<string, unknown>)[name];
      if (typeof fn !== "function") {
        throw new Error(`fast path: no implementation of ${service.typeName}.${name}`);
      }
      routes.set(`/${service.typeName}/${method.name}`, {
        method: method as DescMethodUnary,
        input: method.input,
        output: method.output,
        fn: (fn as UnaryFn).bind(impl),
        raw: raw?.[name],
        logName: `${service.typeName}/${method.name}`,
      });
    }
  }

  const { readMaxBytes, shutdownSignal, jsonOptions } = options;
  const logger = options.logger !== undefined && options.logger.enabled("error") ? options.logger : undefined;
  const logDebug = logger?.enabled("debug") ?? false;
  // In-flight calls; one shutdown listener for all of them (an
  // addEventListener per call is part of the cost this module avoids).
  const running = new Set<FastCall>();
  shutdownSignal.addEventListener(
    "abort",
    () => {
      for (const call of running) {
        call.fail(shutdownSignal.reason);
      }
    },
    { once: true },
  );

  /** Same line, level and fields as createLoggingInterceptor. */
  const logCall = (route: Route, start: number, err: unknown) => {
    if (logger === undefined || (err === undefined && !logDebug)) {
      return;
    }
    const duration_ms = Math.round((performance.now() - start) * 1000) / 1000;
    if (err === undefined) {
      logger.debug("rpc", { method: route.logName, code: "ok", duration_ms });
      return;
    }
    const ce = ConnectError.from(err);
    const fields = { method: route.logName, code: codeToString(ce.code), duration_ms };
    if (serverFaultCodes.has(ce.code)) {
      logger.error("rpc", { ...fields, error: ce.rawMessage });
    } else {
      logger.info("rpc", fields);
    }
  };

  let served = 0;
  let rawServed = 0;
  const handle = (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse): boolean => {
    if (req.method !== "POST") {
      return false;
    }
    const route = routes.get(req.url);
    if (route === undefined) {
      return false;
    }
    const h = req.headers;
    const ct = h["content-type"];
    let grpc: boolean;
    if (ct === CT_CONNECT_PROTO) {
      grpc = false;
    } else if (ct === "application/grpc" || ct === CT_GRPC_PROTO) {
      grpc = true;
    } else {
      return false;
    }
    if (
      h["content-encoding"] !== undefined ||
      (h["grpc-encoding"] !== undefined && h["grpc-encoding"] !== "identity") ||
      h["connect-timeout-ms"] !== undefined ||
      h["grpc-timeout"] !== undefined
    ) {
      return false;
    }
    served++;
    new FastCall(route, grpc, req, res).start();
    return true;
  };

  /** One call; a class keeps the per-call state in one small object. */
  class FastCall {
    private readonly chunks: Buffer[] = [];
    private size = 0;
    private headerChecked = false;
    private done = false;
    private responseHeader: Headers | undefined;
    private responseTrailer: Headers | undefined;
    private readonly codec: Codec | undefined;

    constructor(
      private readonly route: Route,
      private readonly grpc: boolean,
      private readonly req: http2.Http2ServerRequest,
      private readonly res: http2.Http2ServerResponse,
    ) {
      this.codec = negotiate(grpc ? req.headers["grpc-accept-encoding"] : req.headers["accept-encoding"]);
    }

    start(): void {
      running.add(this);
      const { req } = this;
      if (shutdownSignal.aborted) {
        this.fail(shutdownSignal.reason);
        return;
      }
      // Connect rejects a declared length over the limit before reading.
      const declared = this.grpc ? undefined : req.headers["content-length"];
      if (declared !== undefined) {
        const n = Number(declared);
        if (Number.isSafeInteger(n) && n > readMaxBytes) {
          this.fail(tooBig(n, true, readMaxBytes));
          return;
        }
      }
      req.on("data", this.onData);
      req.on("end", this.onEnd);
      req.on("error", this.onAbort);
      this.res.on("close", this.onAbort);
    }

    private readonly onData = (chunk: Buffer) => {
      if (this.done) {
        return;
      }
      this.size += chunk.length;
      this.chunks.push(chunk);
      if (this.grpc) {
        // gRPC: the envelope header declares the message size; refuse as
        // soon as it is known (connect's envelope decoder does the same).
        if (!this.headerChecked && this.size >= 5) {
          this.headerChecked = true;
          const head = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks);
          const length = head.readUInt32BE(1);
          if (length > readMaxBytes) {
            this.fail(tooBig(length, true, readMaxBytes));
          }
        } else if (this.size > 2 * (readMaxBytes + 5)) {
          // More than one legal envelope's worth: stop buffering.
          this.fail(new ConnectError("protocol error: received extra input message for unary method", Code.Unimplemented));
        }
      } else if (this.size > readMaxBytes) {
        this.fail(tooBig(this.size, false, readMaxBytes));
      }
    };

    private readonly onEnd = () => {
      if (!this.done) {
        void this.run();
      }
    };

    /** Client reset the stream or the response closed early: nothing to answer. */
    private readonly onAbort = () => {
      this.finish();
    };

    private async run(): Promise<void> {
      const { route } = this;
      let body: Uint8Array;
      try {
        body = this.body();
      } catch (e) {
        this.fail(e);
        return;
      }
      const raw = route.raw;
      if (raw) {
        // Bytes to bytes: no decode here, no encode; the same errors, log line and framing.
        rawServed++;
        const bytes = await this.invoke(() => raw(body, this.context()));
        if (bytes !== FAILED) this.succeed(bytes);
        return;
      }
      let input: unknown;
      try {
        input = fromBinary(route.input, body);
        rememberEncoding(input as object, body);
      } catch (e) {
        this.fail(malformedRequest(e));
        return;
      }
      const output = await this.invoke(() => route.fn(input, this.context()));
      if (output === FAILED) return;
      let bytes: Uint8Array;
      try {
        bytes = encodingOf(output as object) ?? toBinary(route.output, output as never);
      } catch (e) {
        this.fail(new ConnectError(`serialize binary: ${e instanceof Error ? e.message : String(e)}`, Code.Internal));
        return;
      }
      this.succeed(bytes);
    }

    /** Run the handler with the per-call log line; a failure is answered here and returns FAILED. */
    private async invoke<T>(call: () => T | Promise<T>): Promise<T | typeof FAILED> {
      const started = performance.now();
      try {
        const value = await call();
        logCall(this.route, started, undefined);
        return value;
      } catch (e) {
        logCall(this.route, started, e);
        this.fail(e);
        return FAILED;
      }
    }

    /** The request message bytes, unwrapped from its gRPC envelope. */
    private body(): Uint8Array {
      const all = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks);
      this.chunks.length = 0;
      if (!this.grpc) {
        return all;
      }
      // Same checks and messages as connect's envelope decoder and unary
      // invoker, for exactly-one-message unary gRPC.
      if (all.length === 0) {
        throw new ConnectError("protocol error: missing input message for unary method", Code.Unimplemented);
      }
      if (all.length < 5) {
        throw new ConnectError("protocol error: incomplete envelope", Code.InvalidArgument);
      }
      const length = all.readUInt32BE(1);
      if (all.length < 5 + length) {
        throw new ConnectError("protocol error: incomplete envelope", Code.InvalidArgument);
      }
      if (all.length > 5 + length) {
        throw new ConnectError("protocol error: received extra input message for unary method", Code.Unimplemented);
      }
      if ((all[0]! & 0b1) === 0b1) {
        throw new ConnectError("received compressed envelope, but do not know how to decompress", Code.Internal);
      }
      return all.subarray(5);
    }

    private context(): HandlerContext {
      // eslint-disable-next-line @typescript-eslint/no-this-alias
      const call = this;
      let requestHeader: Headers | undefined;
      let values: HandlerContext["values"] | undefined;
      return {
        method: this.route.method,
        service: this.route.method.parent,
        requestMethod: "POST",
        protocolName: this.grpc ? "grpc" : "connect",
        url: this.req.url,
        signal: shutdownSignal,
        timeoutMs: () => undefined,
        get requestHeader() {
          return (requestHeader ??= nodeHeadersToWeb(call.req.headers));
        },
        get responseHeader() {
          return (call.responseHeader ??= new Headers());
        },
        get responseTrailer() {
          return (call.responseTrailer ??= new Headers());
        },
        get values() {
          return (values ??= contextValuesOf ? contextValuesOf(call.req) : createContextValues());
        },
      } as HandlerContext;
    }

    private succeed(bytes: Uint8Array): void {
      if (!this.finish()) {
        return;
      }
      const { res } = this;
      const squeeze = this.codec !== undefined && bytes.length >= COMPRESS_MIN_BYTES;
      if (squeeze) bytes = compress(this.codec!, bytes);
      if (this.grpc) {
        const frame = Buffer.allocUnsafe(5 + bytes.length);
        frame[0] = squeeze ? 1 : 0;
        frame.writeUInt32BE(bytes.length, 1);
        frame.set(bytes, 5);
        const headers: Record<string, string> = { "content-type": CT_GRPC_PROTO };
        if (this.codec) headers["grpc-encoding"] = this.codec;
        copyHeaders(headers, this.responseHeader);
        const trailers: Record<string, string> = { "grpc-status": "0" };
        copyHeaders(trailers, this.responseTrailer);
        res.writeHead(200, headers);
        res.addTrailers(trailers);
        res.end(frame);
      } else {
        const headers: Record<string, string> = { "content-type": CT_CONNECT_PROTO };
        if (squeeze) headers["content-encoding"] = this.codec!;
        copyHeaders(headers, this.responseHeader);
        copyHeaders(headers, this.responseTrailer, "trailer-");
        headers["content-length"] = String(bytes.length);
        res.writeHead(200, headers);
        res.end(bytes);
      }
    }

    /** Answer with an error (once); non-ConnectErrors become INTERNAL "internal error". */
    fail(reason: unknown): void {
      if (!this.finish()) {
        return;
      }
      // The same mapping as every service adapter (src/server/errors.ts).
      const mapped = toConnectError(reason);
      const error =
        mapped instanceof ConnectError
          ? mapped
          : new ConnectError("internal error", Code.Internal, undefined, undefined, reason);
      const { req, res } = this;
      // Stop reading a body we no longer need (oversize, shutdown).
      req.removeListener("data", this.onData);
      req.resume();
      if (res.closed || res.headersSent) {
        return;
      }
      if (this.grpc) {
        const trailer = new Headers(this.responseTrailer);
        setTrailerStatus(trailer, error);
        const headers: Record<string, string> = { "content-type": CT_GRPC_PROTO };
        if (this.codec) headers["grpc-encoding"] = this.codec;
        copyHeaders(headers, this.responseHeader);
        const trailers: Record<string, string> = {};
        copyHeaders(trailers, trailer);
        res.writeHead(200, headers);
        res.addTrailers(trailers);
        res.end();
      } else {
        const headers: Record<string, string> = {};
        copyHeaders(headers, this.responseHeader);
        copyHeaders(headers, this.responseTrailer, "trailer-");
        if (!error.isWireError) {
          error.metadata.forEach((value, key) => {
            const k = key.toLowerCase();
            if (!FAST_PATH_PROTOCOL_HEADERS.has(k)) {
              headers[k] = headers[k] === undefined ? value : `${headers[k]}, ${value}`;
            }
          });
        }
        const body = errorToJsonBytes(error, jsonOptions ?? {});
        headers["content-type"] = CT_CONNECT_JSON;
        headers["content-length"] = String(body.byteLength);
        res.writeHead(codeToHttpStatus(error.code), headers);
        res.end(body);
      }
    }

    /** Mark the call answered; false if it already was. */
    private finish(): boolean {
      if (this.done) {
        return false;
      }
      this.done = true;
      running.delete(this);
      this.res.removeListener("close", this.onAbort);
      return true;
    }
  }

  return {
    handle,
    get inFlight() {
      return running.size;
    },
    get served() {
      return served;
    },
    get rawServed() {
      return rawServed;
    },
  };
}

/** Connect's own RESOURCE_EXHAUSTED text (protocol/limit-io.js assertReadMaxBytes). */
function tooBig(size: number, known: boolean, readMaxBytes: number): ConnectError {
  return new ConnectError(
    known
      ? `message size ${size} is larger than configured readMaxBytes ${readMaxBytes}`
      : `message size is larger than configured readMaxBytes ${readMaxBytes}`,
    Code.ResourceExhausted,
  );
}

function copyHeaders(into: Record<string, string>, from: Headers | undefined, prefix = ""): void {
  from?.forEach((value, key) => {
    into[prefix + key] = value;
  });
}

function nodeHeadersToWeb(headers: http2.IncomingHttpHeaders): Headers {
  const out = new Headers();
  for (const [key, value] of Object.entries(headers)) {
    if (key.startsWith(":") || value === undefined) {
      continue;
    }
    if (Array.isArray(value)) {
      for (const v of value) {
        out.append(key, v);
      }
    } else {
      out.append(key, value);
    }
  }
  return out;
}
