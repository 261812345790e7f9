/**
 * Bounds on everything a peer can make a Scripwire server hold (TigerBeetle's
 * rule: every queue and every buffer has a limit). They are enforced on the
 * connections and HTTP/2 streams themselves, before a request reaches either
 * the unary fast path or the connect-node handler, so both paths get the same
 * protection.
 *
 * Before: one HTTP/2 connection opening 1 000 streams, each sending a 1 MB
 * gRPC frame that never ended, took the center from 110 MB to 1 080 MB RSS;
 * an idle session and a never-ending request were still open after 25 s.
 *
 * What a bad or slow peer gets:
 * - more streams than {@link STREAMS_PER_CONNECTION_MAX} at once: refused by
 *   HTTP/2 itself (SETTINGS_MAX_CONCURRENT_STREAMS, RST_STREAM REFUSED_STREAM);
 * - a message over {@link MESSAGE_BYTES_MAX}: RESOURCE_EXHAUSTED at once (the
 *   envelope or content-length declares it), on both paths;
 * - request bytes held past the per-connection or total budget: the stream
 *   that pushed over it is reset (RST_STREAM ENHANCE_YOUR_CALM);
 * - a request body not finished within {@link BODY_TIMEOUT_MS}: reset;
 * - a connection silent past {@link FIRST_BYTE_TIMEOUT_MS} before its first
 *   bytes (or its TLS handshake), or an HTTP/2 session with no open stream for
 *   {@link IDLE_TIMEOUT_MS}: closed;
 * - more than {@link CONNECTIONS_PER_ADDRESS_MAX} connections from one address
 *   (IPv6: one /64): the new one is closed at once.
 * Everyone else keeps being served: nothing here is global except the total
 * byte budget, and that is sized so only a flood reaches it.
 */
import http2 from "node:http2";
import type net from "node:net";
import { addressKey } from "./limits.js";
import type { Logger } from "./log.js";

/**
 * Largest request message, bytes. Scripwire's requests are scrip, offers,
 * receipts and a registration profile: all well under 4 KiB (the largest,
 * Register with a full 2 KB profile, is ~2.4 KiB). 64 KiB is 16x that, so no
 * honest client comes near it, and it bounds what a single call can pin.
 */
export const MESSAGE_BYTES_MAX = 64 * 1024;
/**
 * Concurrent HTTP/2 streams (calls) per connection. A wallet makes one or
 * two calls at a time, a seller a few dozen; 100 is also gRPC's customary
 * default. Bounds the per-connection state a peer can open at once.
 */
export const STREAMS_PER_CONNECTION_MAX = 100;
/**
 * Request bytes received on one connection and not yet released (their
 * stream not yet closed). 100 honest concurrent calls of ~4 KiB are 400 KiB;
 * 1 MiB leaves room for that while one peer cannot pin more.
 */
export const BUFFERED_REQUEST_BYTES_PER_CONNECTION_MAX = 1024 * 1024;
/**
 * Request bytes held across all connections. 64 MiB on top of a ~110 MB
 * process keeps the center within a few hundred MB under any flood; at ~4 KiB
 * a call it is ~16 000 calls in flight, far above what the ledger commits per
 * second, so honest load never reaches it.
 */
export const BUFFERED_REQUEST_BYTES_TOTAL_MAX = 64 * 1024 * 1024;
/** A new connection's first bytes (cleartext) or TLS handshake must arrive within this. */
export const FIRST_BYTE_TIMEOUT_MS = 10_000;
/** HTTP/1.1 request headers must be complete within this (Node's headersTimeout). */
export const HEADERS_TIMEOUT_MS = 10_000;
/**
 * A request's body must be complete within this after its headers. Bodies
 * are a few KiB: on any real network they arrive within one round trip; 10 s
 * covers a phone on a bad link. Server-streaming calls (WatchSettlements)
 * also send their one request message at once, so this holds for them too.
 */
export const BODY_TIMEOUT_MS = 10_000;
/** An HTTP/2 session with no open stream for this long is closed (GOAWAY). Clients reconnect on demand. */
export const IDLE_TIMEOUT_MS = 30_000;
/**
 * Open connections from one address (IPv6: one /64). Each wallet or seller
 * needs one HTTP/2 connection; 256 leaves room for a NAT full of wallets.
 */
export const CONNECTIONS_PER_ADDRESS_MAX = 256;
/** Open connections in total (the listener's maxConnections); file descriptors are the limit behind it. */
export const CONNECTIONS_MAX = 20_000;
/** Largest HTTP/2 header list accepted (our calls send a handful of short headers). */
export const HEADER_LIST_BYTES_MAX = 16 * 1024;

export interface ResourceLimits {
  messageBytesMax: number;
  streamsPerConnectionMax: number;
  bufferedRequestBytesPerConnectionMax: number;
  bufferedRequestBytesTotalMax: number;
  firstByteTimeoutMs: number;
  headersTimeoutMs: number;
  bodyTimeoutMs: number;
  idleTimeoutMs: number;
  connectionsPerAddressMax: number;
  connectionsMax: number;
}

export const DEFAULT_RESOURCE_LIMITS: Readonly<ResourceLimits> = {
  messageBytesMax: MESSAGE_BYTES_MAX,
  streamsPerConnectionMax: STREAMS_PER_CONNECTION_MAX,
  bufferedRequestBytesPerConnectionMax: BUFFERED_REQUEST_BYTES_PER_CONNECTION_MAX,
  bufferedRequestBytesTotalMax: BUFFERED_REQUEST_BYTES_TOTAL_MAX,
  firstByteTimeoutMs: FIRST_BYTE_TIMEOUT_MS,
  headersTimeoutMs: HEADERS_TIMEOUT_MS,
  bodyTimeoutMs: BODY_TIMEOUT_MS,
  idleTimeoutMs: IDLE_TIMEOUT_MS,
  connectionsPerAddressMax: CONNECTIONS_PER_ADDRESS_MAX,
  connectionsMax: CONNECTIONS_MAX,
};

/** What the guard did, for tests and diagnostics. */
export interface ResourceGuardStats {
  /** Request bytes currently held (received on streams not yet closed). */
  bufferedRequestBytes: number;
  /** Streams reset because their connection or the server went over its byte budget. */
  budgetResets: number;
  /** Requests reset because their body did not finish in time. */
  bodyTimeouts: number;
  /** HTTP/2 sessions closed for being idle. */
  idleCloses: number;
  /** Connections refused because their address had too many. */
  addressRefusals: number;
}

interface SessionState {
  held: number;
  open: number;
  idle: NodeJS.Timeout | undefined;
}

export class ResourceGuard {
  readonly limits: ResourceLimits;
  private total = 0;
  private readonly perAddress = new Map<string, number>();
  private readonly sessions = new WeakMap<http2.ServerHttp2Session, SessionState>();
  private readonly counters = { budgetResets: 0, bodyTimeouts: 0, idleCloses: 0, addressRefusals: 0 };

  constructor(
    limits: Partial<ResourceLimits> = {},
    private readonly logger?: Logger,
  ) {
    this.limits = { ...DEFAULT_RESOURCE_LIMITS, ...limits };
    for (const [k, v] of Object.entries(this.limits)) {
      if (!Number.isSafeInteger(v) || v <= 0) throw new RangeError(`"${k}" expected a positive integer, got ${v}`);
    }
  }

  stats(): ResourceGuardStats {
    return { bufferedRequestBytes: this.total, ...this.counters };
  }

  /** HTTP/2 server options that carry these limits. */
  http2Settings(): Pick<http2.ServerOptions, "settings" | "peerMaxConcurrentStreams" | "maxSessionMemory"> {
    return {
      settings: { maxConcurrentStreams: this.limits.streamsPerConnectionMax, maxHeaderListSize: HEADER_LIST_BYTES_MAX },
      // Without this, Node assumes 100 until the peer's SETTINGS arrive.
      peerMaxConcurrentStreams: this.limits.streamsPerConnectionMax,
    };
  }

  /** A new TCP connection: false (and closed) when its address already has too many. */
  acceptConnection(socket: net.Socket): boolean {
    const key = socket.remoteAddress ? addressKey(socket.remoteAddress) : "unknown";
    const n = this.perAddress.get(key) ?? 0;
    if (n >= this.limits.connectionsPerAddressMax) {
      this.counters.addressRefusals++;
      this.logger?.info("connection refused: too many from this address", { peer: socket.remoteAddress, open: n, max: this.limits.connectionsPerAddressMax });
      socket.destroy();
      return false;
    }
    this.perAddress.set(key, n + 1);
    socket.once("close", () => {
      const m = (this.perAddress.get(key) ?? 1) - 1;
      if (m <= 0) this.perAddress.delete(key);
      else this.perAddress.set(key, m);
    });
    return true;
  }

  /** A new HTTP/2 session: closed once it has had no open stream for the idle timeout. */
  onSession(session: http2.ServerHttp2Session): void {
    const s: SessionState = { held: 0, open: 0, idle: undefined };
    this.sessions.set(session, s);
    const arm = () => {
      clearTimeout(s.idle);
      s.idle = setTimeout(() => {
        if (s.open > 0 || session.closed || session.destroyed) return;
        this.counters.idleCloses++;
        this.logger?.debug("idle http2 session closed", { peer: session.socket?.remoteAddress });
        session.close();
        // A peer that ignores GOAWAY and keeps the socket open is cut off.
        setTimeout(() => session.destroy(), 1_000).unref();
      }, this.limits.idleTimeoutMs);
      s.idle.unref();
    };
    arm();
    session.on("stream", (stream: http2.ServerHttp2Stream) => {
      s.open++;
      clearTimeout(s.idle);
      stream.once("close", () => {
        s.open--;
        if (s.open === 0) arm();
      });
    });
    session.once("close", () => clearTimeout(s.idle));
  }

  /**
   * Called for every HTTP/2 request before it is dispatched: counts the bytes
   * the peer sends on it against the connection's and the server's budgets
   * and resets it if its body is not complete in time. The bytes are released
   * when the stream closes or, sooner, when its answer has been sent: a
   * request refused before its body was read (oversize) stays open until the
   * body deadline, and its unread bytes must not keep counting against the
   * connection meanwhile — they did, and the ×10 fuzz run's connection was
   * then reset (ENHANCE_YOUR_CALM) on every request (2026-11-30).
   */
  admitHttp2(req: http2.Http2ServerRequest): void {
    const stream = req.stream;
    const s = this.sessions.get(stream.session as http2.ServerHttp2Session);
    let held = 0;
    let done = false;
    const reset = (why: string, code: number) => {
      if (done || stream.destroyed) return;
      done = true;
      this.logger?.info("stream reset", { reason: why, peer: stream.session?.socket?.remoteAddress, path: req.url });
      stream.close(code);
    };
    let released = false;
    const count = (n: number) => {
      // After the answer, what the peer still sends is drained, not held.
      if (released) return;
      held += n;
      this.total += n;
      if (s) s.held += n;
      if ((s && s.held > this.limits.bufferedRequestBytesPerConnectionMax) || this.total > this.limits.bufferedRequestBytesTotalMax) {
        this.counters.budgetResets++;
        reset(s && s.held > this.limits.bufferedRequestBytesPerConnectionMax ? "connection over its buffered-bytes budget" : "server over its buffered-bytes budget", http2.constants.NGHTTP2_ENHANCE_YOUR_CALM);
      }
    };
    // Count at the request's push(): every body chunk of the compatibility
    // request passes there, whichever path reads it, and (unlike a 'data'
    // listener on the stream) counting there does not start the flow early.
    const push = req.push.bind(req) as (chunk: unknown, encoding?: BufferEncoding) => boolean;
    (req as { push: typeof push }).push = (chunk, encoding) => {
      if (chunk !== null && chunk !== undefined) count((chunk as { length: number }).length);
      return push(chunk, encoding);
    };
    const timer = setTimeout(() => {
      this.counters.bodyTimeouts++;
      reset(`request body not complete within ${this.limits.bodyTimeoutMs} ms`, http2.constants.NGHTTP2_CANCEL);
    }, this.limits.bodyTimeoutMs);
    timer.unref();
    req.once("end", () => clearTimeout(timer));
    const release = () => {
      if (released) return;
      released = true;
      this.total -= held;
      if (s) s.held -= held;
      held = 0;
    };
    stream.once("close", () => {
      clearTimeout(timer);
      release();
    });
    // The answer is out: nothing of this request is needed any more.
    stream.once("finish", () => {
      release();
      if (!req.complete && !stream.destroyed) req.resume();
    });
  }

  /** HTTP/1.1: one request per connection at a time; a body not complete in time closes the connection. */
  admitHttp1(req: { socket: net.Socket; once(e: "end" | "close", f: () => void): unknown; complete?: boolean; url?: string }): void {
    if (req.complete) return;
    const timer = setTimeout(() => {
      this.counters.bodyTimeouts++;
      this.logger?.info("connection closed", { reason: `request body not complete within ${this.limits.bodyTimeoutMs} ms`, peer: req.socket.remoteAddress, path: req.url });
      req.socket.destroy();
    }, this.limits.bodyTimeoutMs);
    timer.unref();
    req.once("end", () => clearTimeout(timer));
    req.once("close", () => clearTimeout(timer));
  }
}
