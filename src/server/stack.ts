/**
 * The server stack every Scripwire server (payment center, seller) runs on:
 * Connect, gRPC and gRPC-Web on one port, with gRPC health, server
 * reflection, structured call logging, a message-size limit and graceful
 * shutdown.
 *
 * Transport layout:
 * - cleartext: one `net` server sniffs each connection's first bytes; the
 *   HTTP/2 prior-knowledge preface goes to an `http2` server (gRPC, Connect
 *   over h2c), anything else to an `http` server (HTTP/1.1: curl, browsers,
 *   Connect JSON, gRPC-Web).
 * - TLS: one `http2.createSecureServer` with `allowHTTP1`, ALPN choosing h2 or
 *   http/1.1.
 * Both feed the same `connectNodeAdapter` handler; business handlers never see
 * which wire a call came on.
 *
 * @example
 * const stack = createServerStack({
 *   services: [CenterService],
 *   routes: (router) => router.service(CenterService, centerImpl),
 * });
 * const { url } = await stack.listen();
 * process.once("SIGTERM", () => void stack.close());
 */
import { setMaxListeners } from "node:events";
import http from "node:http";
import http2 from "node:http2";
import net from "node:net";
import type { AddressInfo } from "node:net";
import type { DescService } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import type { ConnectRouter, Interceptor } from "@connectrpc/connect";
import type { ConnectNodeAdapterOptions } from "@connectrpc/connect-node";
import { Health } from "../../gen/grpc/health/v1/health_pb.js";
import { createFastUnary } from "./fast-unary.js";
import type { FastUnary, FastUnaryService } from "./fast-unary.js";
import { createHealth } from "./health.js";
import type { HealthRegistry } from "./health.js";
import { createLogger, createLoggingInterceptor } from "./log.js";
import { createNodeHandler } from "./malformed-input.js";
import type { Logger } from "./log.js";
import { withHttpExtras, type PageHandler } from "./http-extras.js";
import { sniffConnection } from "./protocol-sniff.js";
import { FIRST_BYTE_TIMEOUT_MS, MESSAGE_BYTES_MAX, ResourceGuard, STREAMS_PER_CONNECTION_MAX, type ResourceGuardStats, type ResourceLimits } from "./resource-limits.js";
import { createReflectionIndex, reflectionServices, registerReflection } from "./reflection.js";

/** Largest request message accepted, in bytes: {@link MESSAGE_BYTES_MAX} (src/server/resource-limits.ts says why). */
export const DEFAULT_MAX_MESSAGE_BYTES = MESSAGE_BYTES_MAX;

/** How long `close()` lets in-flight calls finish before aborting them. */
export const DEFAULT_GRACE_MS = 10_000;

/**
 * HTTP/2 streams (concurrent calls) allowed per connection. Node's default
 * (4294967295) is unbounded; 1000 is generous for a wallet or seller
 * multiplexing many payments, yet bounds what one peer can start at once.
 */
export const DEFAULT_MAX_CONCURRENT_STREAMS = STREAMS_PER_CONNECTION_MAX;

/**
 * How long a cleartext connection may stay silent before its first bytes
 * arrive (and its protocol is known). After that, the HTTP servers' own
 * timeouts apply.
 */
export const SNIFF_TIMEOUT_MS = FIRST_BYTE_TIMEOUT_MS;

/**
 * After the grace period, handlers are aborted with UNAVAILABLE; this is how
 * long their error trailers get to reach clients before sockets are
 * destroyed.
 */
export const ABORT_FLUSH_MS = 250;

/** PEM-encoded certificate chain and private key. */
export interface ServerTlsOptions {
  cert: string | Buffer;
  key: string | Buffer;
}

export interface ServerStackOptions {
  /** Register the server's own services on the router. */
  routes: (router: ConnectRouter) => void;
  /**
   * The services `routes` registers. They are listed by reflection and
   * registered with health (all SERVING at start). Health and the reflection
   * services are added automatically.
   */
  services: readonly DescService[];
  /** Address to bind. Default "127.0.0.1": exposing a server is a deliberate choice. */
  host?: string;
  /** Port to bind; 0 picks a free ephemeral port (tests). Default 0. */
  port?: number;
  /**
   * Serve TLS (HTTP/2 and HTTP/1.1 via ALPN). Default: cleartext, HTTP/2
   * prior knowledge and HTTP/1.1 on the same port.
   */
  tls?: ServerTlsOptions;
  /** Logger for lifecycle and per-call lines. Default: `createLogger()` (level from `SCRIPWIRE_LOG`). */
  logger?: Logger;
  /**
   * Largest request message, in bytes (Connect `readMaxBytes`); larger ones
   * fail with RESOURCE_EXHAUSTED before the handler runs. Default
   * {@link DEFAULT_MAX_MESSAGE_BYTES} (1 MiB).
   */
  maxMessageBytes?: number;
  /** Interceptors run on every call, inside the logging interceptor. Default: none. */
  interceptors?: readonly Interceptor[];
  /** Serve gRPC server reflection (v1 and v1alpha). Default true. */
  reflection?: boolean;
  /** Concurrent HTTP/2 streams per connection. Default {@link DEFAULT_MAX_CONCURRENT_STREAMS}. */
  maxConcurrentStreams?: number;
  /**
   * Further `connectNodeAdapter` options (e.g. `contextValues`,
   * `requestGate`, `jsonOptions`). Default: none.
   */
  adapter?: Omit<
    ConnectNodeAdapterOptions,
    "routes" | "readMaxBytes" | "interceptors" | "shutdownSignal"
  >;
  /**
   * Hot unary methods served by the unary fast path (src/server/fast-unary.ts)
   * instead of connect-node, for binary Connect and gRPC over HTTP/2 without
   * compression or deadline; every other request to them, and everything
   * else, takes the normal Connect handler. Answers, size limit, logging and
   * graceful shutdown are the same; CPU per call is roughly halved.
   * `impl` must be the implementation `routes` registers for `service`.
   *
   * Ignored (with an info log line) when `interceptors`, `adapter.requestGate`
   * or `adapter.contextValues` are set: the fast path runs none of them.
   * Default: none.
   */
  fastUnary?: readonly FastUnaryService[];
  /** Origins whose browser pages may call the RPCs (CORS, see http-extras.ts); `*` for any. Default none. */
  corsOrigins?: readonly string[];
  /** Plain HTTP pages served beside the RPCs (the wallet, the mall). */
  pages?: PageHandler;
  /**
   * Bounds on what peers can make the server hold: buffered bytes, deadlines,
   * connections per address (src/server/resource-limits.ts). Applied to every
   * connection and stream, whichever path serves the call. Default: the
   * constants there; `maxMessageBytes` and `maxConcurrentStreams` win over
   * the corresponding fields here.
   */
  limits?: Partial<ResourceLimits>;
}

/** Where a listening stack can be reached. */
export interface ServerAddress {
  host: string;
  port: number;
  /** Base URL for clients, e.g. `http://127.0.0.1:41235` or `https://…`. */
  url: string;
}

/** Live connection counts, for tests and diagnostics. */
export interface ServerStackStats {
  /** Open TCP connections, any protocol. */
  connections: number;
  /** Open HTTP/2 sessions. */
  http2Sessions: number;
  /** Open HTTP/1.x connections. */
  http1Connections: number;
  /** Connections destroyed by `close()` because they outlived the grace period. */
  forcedCloses: number;
}

export interface ServerStack {
  /** Bind and start accepting. Resolves with the bound address. */
  listen(): Promise<ServerAddress>;
  /**
   * Shut down gracefully: stop accepting connections, set health to
   * NOT_SERVING, let in-flight calls finish, close idle HTTP/2 sessions
   * (GOAWAY) and HTTP/1 keep-alive connections. Calls still running after
   * `graceMs` (e.g. long-lived streams) are aborted with UNAVAILABLE and their
   * connections destroyed. Never hangs; idempotent.
   *
   * @param graceMs default {@link DEFAULT_GRACE_MS}.
   */
  close(graceMs?: number): Promise<void>;
  /** Per-service health; `close()` flips it to NOT_SERVING. */
  readonly health: HealthRegistry;
  readonly logger: Logger;
  /**
   * All routes served (the caller's, health, reflection), for running the
   * same server in-process with `createRouterTransport(stack.routes)`.
   */
  readonly routes: (router: ConnectRouter) => void;
  /** The Node request handler (HTTP/1 and HTTP/2 compatible). */
  readonly handler: (req: http.IncomingMessage | http2.Http2ServerRequest, res: http.ServerResponse | http2.Http2ServerResponse) => void;
  /** The bound address once `listen()` resolved. */
  readonly address: ServerAddress | undefined;
  /** True once `close()` was called. */
  readonly closing: boolean;
  stats(): ServerStackStats;
  /**
   * Calls being served by the unary fast path right now (0 when it is off).
   * They are HTTP/2 streams, so `close()` waits for them like any call.
   */
  fastUnaryInFlight(): number;
  /** Calls the unary fast path has taken since start (0 when it is off). */
  fastUnaryServed(): number;
  /** Of those, calls served bytes to bytes, undecoded (0 when none are). */
  fastUnaryRawServed(): number;
  /** What the resource limits did (buffered bytes held, resets, idle closes, refused connections). */
  resources(): ResourceGuardStats;
}

// Per-socket HTTP/1 bookkeeping, stored on the socket to avoid a Map lookup.
const kActive = Symbol("scripwire.activeRequests");
const kLastResponse = Symbol("scripwire.lastResponse");
const kSniffed = Symbol("scripwire.sniffed");
type TrackedSocket = net.Socket & {
  [kActive]?: number;
  [kLastResponse]?: http.ServerResponse;
  [kSniffed]?: boolean;
};

/**
 * Create (but do not start) a server stack. Call `listen()` to serve.
 */
export function createServerStack(options: ServerStackOptions): ServerStack {
  const logger = options.logger ?? createLogger();
  const host = options.host ?? "127.0.0.1";
  const port = options.port ?? 0;
  const maxMessageBytes = options.maxMessageBytes ?? options.limits?.messageBytesMax ?? DEFAULT_MAX_MESSAGE_BYTES;
  const maxConcurrentStreams = options.maxConcurrentStreams ?? options.limits?.streamsPerConnectionMax ?? DEFAULT_MAX_CONCURRENT_STREAMS;
  checkPositiveInt("maxMessageBytes", maxMessageBytes);
  checkPositiveInt("maxConcurrentStreams", maxConcurrentStreams);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new RangeError(`"port" expected an integer in 0..65535, got ${port}`);
  }
  const serveReflection = options.reflection ?? true;
  const guard = new ResourceGuard({ ...options.limits, messageBytesMax: maxMessageBytes, streamsPerConnectionMax: maxConcurrentStreams }, logger);
  const limits = guard.limits;

  const allServices = uniqueServices([
    ...options.services,
    Health,
    ...(serveReflection ? reflectionServices : []),
  ]);
  const health = createHealth(allServices);
  const reflectionIndex = serveReflection ? createReflectionIndex({ services: allServices }) : undefined;

  const routes = (router: ConnectRouter) => {
    options.routes(router);
    health.register(router);
    if (reflectionIndex !== undefined) {
      registerReflection(router, reflectionIndex);
    }
  };

  const shutdown = new AbortController();
  // Connect links every in-flight call's signal to this one (one 'abort'
  // listener per call, removed when the call ends), so the listener count is
  // the number of concurrent calls; lift Node's warning threshold of 10.
  setMaxListeners(0, shutdown.signal);
  const interceptors: Interceptor[] = [];
  const logging = createLoggingInterceptor(logger);
  if (logging !== undefined) {
    interceptors.push(logging); // outermost: duration covers caller interceptors
  }
  interceptors.push(...(options.interceptors ?? []));

  const handler = withHttpExtras(
    createNodeHandler({
      ...options.adapter,
      routes,
      readMaxBytes: maxMessageBytes,
      interceptors,
      shutdownSignal: shutdown.signal,
    }),
    { corsOrigins: options.corsOrigins, pages: options.pages },
  );

  // The fast path cannot run interceptors or request gates (it does give
  // handlers the adapter's context values);
  // rather than silently skipping them, it is not used when they are set.
  let fast: FastUnary | undefined;
  if (options.fastUnary !== undefined && options.fastUnary.length > 0) {
    const blockers = [
      (options.interceptors?.length ?? 0) > 0 ? "interceptors" : undefined,
      options.adapter?.requestGate !== undefined ? "adapter.requestGate" : undefined,
    ].filter((b) => b !== undefined);
    if (blockers.length > 0) {
      logger.info("unary fast path disabled", { reason: `${blockers.join(", ")} set` });
    } else {
      fast = createFastUnary(options.fastUnary, {
        readMaxBytes: maxMessageBytes,
        shutdownSignal: shutdown.signal,
        logger,
        jsonOptions: options.adapter?.jsonOptions,
        contextValues: options.adapter?.contextValues as never,
      });
    }
  }
  // HTTP/2 requests (cleartext or TLS): resource limits first, then the fast path.
  const http2Handler = (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => {
    guard.admitHttp2(req);
    // Browser calls (they carry Origin) need CORS headers the fast path does not write.
    if (fast === undefined || req.headers.origin !== undefined || !fast.handle(req, res)) {
      handler(req, res);
    }
  };

  // --- connection tracking ------------------------------------------------
  const sockets = new Set<net.Socket>();
  const http1Sockets = new Set<TrackedSocket>();
  const sessions = new Set<http2.ServerHttp2Session>();
  let closing = false;
  let forcedCloses = 0;

  // Resolved by the last socket to close once close() has begun.
  let onDrained: (() => void) | undefined;
  const trackSocket = (socket: net.Socket) => {
    sockets.add(socket);
    socket.once("close", () => {
      sockets.delete(socket);
      if (sockets.size === 0) {
        onDrained?.();
      }
    });
  };
  const trackHttp1 = (socket: TrackedSocket) => {
    http1Sockets.add(socket);
    socket.once("close", () => http1Sockets.delete(socket));
  };
  const onSession = (session: http2.ServerHttp2Session) => {
    sessions.add(session);
    guard.onSession(session);
    session.once("close", () => sessions.delete(session));
    if (closing) {
      session.close();
    }
  };

  // HTTP/1 requests are counted per socket so close() can tell idle
  // keep-alive connections (destroy now) from busy ones (close after reply).
  const http1Handler = (req: http.IncomingMessage, res: http.ServerResponse) => {
    const socket = req.socket as TrackedSocket;
    guard.admitHttp1(req);
    socket[kActive] = (socket[kActive] ?? 0) + 1;
    socket[kLastResponse] = res;
    if (closing) {
      res.setHeader("connection", "close");
    }
    res.once("close", () => {
      const n = (socket[kActive] ?? 1) - 1;
      socket[kActive] = n;
      if (n === 0) {
        socket[kLastResponse] = undefined;
        if (closing) {
          socket.end();
        }
      }
    });
    handler(req, res);
  };

  const h2Options: http2.ServerOptions = guard.http2Settings();

  let listener: net.Server;
  let http1Server: http.Server | undefined;
  if (options.tls !== undefined) {
    const secure = http2.createSecureServer(
      {
        ...h2Options,
        cert: options.tls.cert,
        key: options.tls.key,
        allowHTTP1: true,
        ALPNProtocols: ["h2", "http/1.1"],
        noDelay: true,
        // A TLS handshake is a connection's first bytes: same deadline as cleartext.
        handshakeTimeout: limits.firstByteTimeoutMs,
      } as http2.SecureServerOptions,
      (req, res) => {
        if (req.httpVersionMajor === 2) {
          http2Handler(req, res);
        } else {
          http1Handler(req as unknown as http.IncomingMessage, res as unknown as http.ServerResponse);
        }
      },
    );
    secure.on("connection", (socket: net.Socket) => {
      if (guard.acceptConnection(socket)) trackSocket(socket);
    });
    secure.on("secureConnection", (tlsSocket) => {
      if (tlsSocket.alpnProtocol !== "h2") {
        trackHttp1(tlsSocket);
        if (closing) {
          tlsSocket.destroy(); // handshake finished after close() began
        }
      }
    });
    secure.on("session", onSession);
    secure.on("sessionError", (err) => logger.debug("http2 session error", { error: err }));
    secure.on("tlsClientError", (err) => logger.debug("tls client error", { error: err }));
    listener = secure;
  } else {
    const h1 = http.createServer({ headersTimeout: limits.headersTimeoutMs, requestTimeout: limits.headersTimeoutMs + limits.bodyTimeoutMs }, http1Handler);
    const h2 = http2.createServer(h2Options, http2Handler);
    h2.on("session", onSession);
    h2.on("sessionError", (err) => logger.debug("http2 session error", { error: err }));
    const toHttp1 = (socket: net.Socket) => {
      finishSniff(socket);
      trackHttp1(socket);
      h1.emit("connection", socket);
    };
    const toHttp2 = (socket: net.Socket) => {
      finishSniff(socket);
      h2.emit("connection", socket);
    };
    const onSniffTimeout = function (this: net.Socket) {
      this.destroy();
    };
    const onSniffError = () => {
      // Before hand-off nobody else listens; the socket closes itself.
    };
    const finishSniff = (socket: TrackedSocket) => {
      socket[kSniffed] = true;
      socket.setTimeout(0);
      socket.removeListener("timeout", onSniffTimeout);
      socket.removeListener("error", onSniffError);
    };
    listener = net.createServer({ noDelay: true }, (socket) => {
      if (!guard.acceptConnection(socket)) return;
      trackSocket(socket);
      if (closing) {
        socket.destroy();
        return;
      }
      socket.setTimeout(limits.firstByteTimeoutMs, onSniffTimeout);
      socket.on("error", onSniffError);
      sniffConnection(socket, toHttp1, toHttp2);
    });
    http1Server = h1;
  }
  listener.on("error", (err) => logger.error("listener error", { error: err }));
  listener.maxConnections = limits.connectionsMax;

  // --- lifecycle ------------------------------------------------------------
  let address: ServerAddress | undefined;
  let listening: Promise<ServerAddress> | undefined;
  let closed: Promise<void> | undefined;

  const listen = (): Promise<ServerAddress> => {
    if (closing) {
      return Promise.reject(new Error("server stack is closed; create a new one"));
    }
    listening ??= new Promise<ServerAddress>((resolve, reject) => {
      const onError = (err: Error) => reject(err);
      listener.once("error", onError);
      listener.listen(port, host, () => {
        listener.removeListener("error", onError);
        // Start the HTTP/1 server's header/request timeout checks: it never
        // listens itself (connections are handed to it), and Node starts
        // these checks on 'listening'.
        http1Server?.emit("listening");
        const bound = (listener.address() as AddressInfo).port;
        const urlHost = net.isIPv6(host) ? `[${host}]` : host;
        address = {
          host,
          port: bound,
          url: `${options.tls !== undefined ? "https" : "http"}://${urlHost}:${bound}`,
        };
        logger.info("listening", { url: address.url, tls: options.tls !== undefined });
        resolve(address);
      });
    });
    return listening;
  };

  const close = (graceMs: number = DEFAULT_GRACE_MS): Promise<void> => {
    closed ??= doClose(graceMs);
    return closed;
  };

  const doClose = async (graceMs: number): Promise<void> => {
    closing = true;
    health.shutdown();
    const started = performance.now();
    logger.info("shutting down", { grace_ms: graceMs, connections: sockets.size });

    // 1. Stop accepting. Done when the listener has closed and every
    //    tracked socket has emitted 'close' (the listener's own callback can
    //    run a tick before the last socket's 'close').
    const listenerClosed = new Promise<void>((resolve) => {
      if (!listener.listening) {
        resolve();
        return;
      }
      listener.close(() => resolve());
    });
    const drained = new Promise<void>((resolve) => {
      onDrained = resolve;
      if (sockets.size === 0) {
        resolve();
      }
    });
    const allClosed = Promise.all([listenerClosed, drained]);
    // Stop the HTTP/1 timeout checker (close() on a never-listening server
    // reports ERR_SERVER_NOT_RUNNING to the callback; that is expected).
    http1Server?.close(() => {});

    // 2. Close what is idle now; busy connections close when their calls end.
    for (const session of sessions) {
      session.close(); // GOAWAY; in-flight streams complete
    }
    for (const socket of http1Sockets) {
      if ((socket[kActive] ?? 0) === 0) {
        socket.destroy();
      } else {
        const res = socket[kLastResponse];
        if (res !== undefined && !res.headersSent) {
          res.setHeader("connection", "close");
        }
      }
    }
    for (const socket of sockets as Set<TrackedSocket>) {
      if (options.tls === undefined && socket[kSniffed] !== true) {
        socket.destroy(); // still silent: nothing in flight
      }
    }

    // 3. Wait for in-flight calls, at most graceMs.
    if (!(await settlesWithin(allClosed, graceMs))) {
      // 4. Abort what is left (long-lived streams), give error trailers a
      //    moment to go out, then destroy.
      shutdown.abort(new ConnectError("server is shutting down; retry", Code.Unavailable));
      if (!(await settlesWithin(allClosed, ABORT_FLUSH_MS))) {
        forcedCloses += sockets.size;
        for (const session of sessions) {
          session.destroy();
        }
        for (const socket of sockets) {
          socket.destroy();
        }
        for (const socket of http1Sockets) {
          socket.destroy();
        }
        await settlesWithin(allClosed, ABORT_FLUSH_MS);
      }
    }
    if (!shutdown.signal.aborted) {
      shutdown.abort(new ConnectError("server is shut down", Code.Unavailable));
    }
    logger.info("stopped", {
      duration_ms: Math.round(performance.now() - started),
      forced_closes: forcedCloses,
    });
  };

  return {
    listen,
    close,
    health,
    logger,
    routes,
    handler: handler as ServerStack["handler"],
    get address() {
      return address;
    },
    get closing() {
      return closing;
    },
    stats: () => ({
      connections: sockets.size,
      http2Sessions: sessions.size,
      http1Connections: http1Sockets.size,
      forcedCloses,
    }),
    fastUnaryInFlight: () => fast?.inFlight ?? 0,
    fastUnaryServed: () => fast?.served ?? 0,
    fastUnaryRawServed: () => fast?.rawServed ?? 0,
    resources: () => guard.stats(),
  };
}

/** Resolves true if `p` settles within `ms`, false otherwise; never leaves a timer behind. */
async function settlesWithin(p: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), Math.max(0, ms));
  });
  try {
    return await Promise.race([p.then(() => true as const), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

function uniqueServices(services: readonly DescService[]): DescService[] {
  const seen = new Set<string>();
  return services.filter((s) => !seen.has(s.typeName) && (seen.add(s.typeName), true));
}

function checkPositiveInt(name: string, value: number): void {
  if (!Number.isSafeInteger(value) || value <= 0) {
    throw new RangeError(`"${name}" expected a positive integer, got ${value}`);
  }
}
