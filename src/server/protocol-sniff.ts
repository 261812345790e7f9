/**
 * Tell HTTP/2 prior-knowledge connections from HTTP/1.x ones by their first
 * bytes, so one cleartext port serves gRPC (HTTP/2) and browsers / curl
 * (HTTP/1.1) alike.
 *
 * An HTTP/2 client without TLS starts with the fixed connection preface
 * (RFC 9113 §3.4). No HTTP/1 request line can start with it ("PRI" is not a
 * method HTTP/1 servers accept), and most HTTP/1 requests differ within the
 * first two bytes ("GET", "POST", "PUT", …).
 */
import type net from "node:net";

/** The HTTP/2 client connection preface, RFC 9113 §3.4. */
export const HTTP2_PREFACE: Buffer = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "latin1");

/** What the bytes seen so far say about the connection. */
export type SniffVerdict = "http2" | "http1" | "need-more";

/**
 * Classify a connection by the bytes received so far: "http2" once the whole
 * preface is seen, "http1" at the first byte that differs from it, otherwise
 * "need-more". An empty buffer needs more.
 */
export function sniffProtocol(head: Uint8Array): SniffVerdict {
  const n = head.length < HTTP2_PREFACE.length ? head.length : HTTP2_PREFACE.length;
  for (let i = 0; i < n; i++) {
    if (head[i] !== HTTP2_PREFACE[i]) {
      return "http1";
    }
  }
  return n === HTTP2_PREFACE.length ? "http2" : "need-more";
}

/**
 * Wait for enough of `socket`'s first bytes to classify it, then hand it to
 * `onHttp1` or `onHttp2` with those bytes put back so the chosen server parses
 * the connection from its start. Allocates only when the first chunk is too
 * short to decide (rare: a client writes its preface in one go).
 *
 * Hand-off differs by protocol because the servers read sockets differently:
 * - `http2`: the session reads data already buffered in the socket when it is
 *   created (Node's Http2Session constructor), so pause and `unshift()`.
 * - `http1`: the HTTP/1 parser consumes the socket's handle directly and
 *   never reads the JS buffer of a paused socket; instead it is fed the bytes
 *   through its 'data' listener, synchronously, before any later chunk can
 *   arrive.
 */
export function sniffConnection(
  socket: net.Socket,
  onHttp1: (socket: net.Socket) => void,
  onHttp2: (socket: net.Socket) => void,
): void {
  let head: Buffer | undefined;
  const onData = (chunk: Buffer) => {
    head = head === undefined ? chunk : Buffer.concat([head, chunk]);
    // At most 24 bytes (the preface length) are ever buffered here.
    const verdict = sniffProtocol(head);
    if (verdict === "need-more") {
      return;
    }
    socket.removeListener("data", onData);
    const first = head;
    head = undefined;
    if (verdict === "http2") {
      socket.pause();
      socket.unshift(first);
      onHttp2(socket);
    } else {
      onHttp1(socket);
      socket.emit("data", first);
    }
  };
  socket.on("data", onData);
}
