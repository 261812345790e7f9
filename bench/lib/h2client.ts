/**
 * A lean unary RPC client straight on node:http2, for load generation.
 *
 * The load generator shares a 2-core machine with the server under test, so
 * it must cost far less per call than the server does: no interceptors, no
 * per-call header objects beyond the minimum, messages encoded once by the
 * caller. It speaks the two HTTP/2 wire protocols the stack serves:
 *   - Connect unary: POST, `content-type: application/proto`, body = message;
 *     HTTP 200 with the reply, anything else is an error (JSON body).
 *   - gRPC: POST, `content-type: application/grpc+proto`, `te: trailers`,
 *     5-byte length prefix; status in `grpc-status` trailers.
 * Calls are spread round-robin over `connections` HTTP/2 sessions.
 */
import http2 from "node:http2";
import net from "node:net";

export type WireProtocol = "connect" | "grpc";

export class RpcError extends Error {
  constructor(
    message: string,
    readonly code: string,
  ) {
    super(message);
    this.name = "RpcError";
  }
}

const {
  HTTP2_HEADER_METHOD,
  HTTP2_HEADER_PATH,
  HTTP2_HEADER_CONTENT_TYPE,
  HTTP2_HEADER_TE,
  HTTP2_HEADER_STATUS,
} = http2.constants;

export class H2Client {
  private sessions: http2.ClientHttp2Session[] = [];
  private next = 0;
  private readonly connectHeaders = new Map<string, http2.OutgoingHttpHeaders>();
  private readonly grpcHeaders = new Map<string, http2.OutgoingHttpHeaders>();

  constructor(
    readonly baseUrl: string,
    readonly connections = 2,
  ) {}

  async connect(): Promise<void> {
    for (let i = 0; i < this.connections; i++) {
      const u = new URL(this.baseUrl);
      const s = http2.connect(this.baseUrl, {
        settings: { enablePush: false },
        peerMaxConcurrentStreams: 1000,
        createConnection: () => net.connect({ host: u.hostname, port: Number(u.port), noDelay: true }),
      });
      s.on("error", () => {});
      await new Promise<void>((resolve, reject) => {
        s.once("connect", () => resolve());
        s.once("error", reject);
      });
      this.sessions.push(s);
    }
  }

  private headersFor(path: string, protocol: WireProtocol): http2.OutgoingHttpHeaders {
    const cache = protocol === "connect" ? this.connectHeaders : this.grpcHeaders;
    let h = cache.get(path);
    if (!h) {
      h =
        protocol === "connect"
          ? { [HTTP2_HEADER_METHOD]: "POST", [HTTP2_HEADER_PATH]: path, [HTTP2_HEADER_CONTENT_TYPE]: "application/proto", "connect-protocol-version": "1" }
          : { [HTTP2_HEADER_METHOD]: "POST", [HTTP2_HEADER_PATH]: path, [HTTP2_HEADER_CONTENT_TYPE]: "application/grpc+proto", [HTTP2_HEADER_TE]: "trailers" };
      cache.set(path, h);
    }
    return h;
  }

  /** One unary call; resolves with the reply message bytes. */
  unary(path: string, message: Uint8Array, protocol: WireProtocol = "connect"): Promise<Uint8Array> {
    const session = this.sessions[this.next++ % this.sessions.length]!;
    const stream = session.request(this.headersFor(path, protocol), { endStream: false });
    if (protocol === "grpc") {
      const frame = Buffer.allocUnsafe(5 + message.length);
      frame[0] = 0;
      frame.writeUInt32BE(message.length, 1);
      frame.set(message, 5);
      stream.end(frame);
    } else {
      stream.end(message);
    }
    return new Promise<Uint8Array>((resolve, reject) => {
      let status = 0;
      let grpcStatus: string | undefined;
      let grpcMessage = "";
      const chunks: Buffer[] = [];
      stream.on("response", (h) => {
        status = Number(h[HTTP2_HEADER_STATUS]);
        if (h["grpc-status"] !== undefined) {
          grpcStatus = String(h["grpc-status"]);
          grpcMessage = String(h["grpc-message"] ?? "");
        }
      });
      stream.on("trailers", (t) => {
        grpcStatus = String(t["grpc-status"]);
        grpcMessage = String(t["grpc-message"] ?? "");
      });
      stream.on("data", (c: Buffer) => chunks.push(c));
      stream.on("error", reject);
      stream.on("end", () => {
        const body = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
        if (protocol === "connect") {
          if (status !== 200) {
            let code = `http ${status}`;
            let msg = body.toString("utf8");
            try {
              const j = JSON.parse(msg);
              code = j.code ?? code;
              msg = j.message ?? msg;
            } catch {
              // not JSON
            }
            reject(new RpcError(`${path}: ${code}: ${msg}`, code));
            return;
          }
          resolve(body);
          return;
        }
        if (grpcStatus !== "0") {
          reject(new RpcError(`${path}: grpc-status ${grpcStatus}: ${decodeURIComponent(grpcMessage)}`, String(grpcStatus)));
          return;
        }
        if (body.length < 5) {
          reject(new RpcError(`${path}: short gRPC reply`, "internal"));
          return;
        }
        resolve(body.subarray(5, 5 + body.readUInt32BE(1)));
      });
    });
  }

  close(): void {
    for (const s of this.sessions) s.close();
    this.sessions = [];
  }
}
