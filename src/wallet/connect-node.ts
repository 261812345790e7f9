/**
 * Node's way onto the network: connect-node transports over HTTP/2 (Connect,
 * gRPC) or HTTP/1.1 (gRPC-Web), with an owned session per client so
 * `close()` ends it at once. The wallet core (core.ts) never imports this
 * file; wallet.ts hands its connector to the core.
 */
import type { Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport, Http2SessionManager } from "@connectrpc/connect-node";
import { CenterRpc, SellerRpc, type Connection, type Connector, type WireProtocol } from "./client.js";

export interface ClientOptions {
  /** Wire protocol. Default "connect" (Connect over HTTP/2). */
  protocol?: WireProtocol;
  /** Deadline of every call in milliseconds. Default {@link CALL_TIMEOUT_MS_DEFAULT}. */
  timeoutMs?: number;
  /** PEM CA to trust for https:// URLs (self-signed test certificates). */
  ca?: string | Buffer;
  /** Use this transport instead of opening one (in-memory router transports in tests). */
  transport?: Transport;
}

export function connectNode(baseUrl: string, opts: ClientOptions = {}): Connection {
  if (opts.transport) return { transport: opts.transport, close: () => {} };
  const protocol = opts.protocol ?? "connect";
  const nodeOptions = opts.ca ? { ca: opts.ca } : undefined;
  if (protocol === "grpc-web") {
    return { transport: createGrpcWebTransport({ baseUrl, httpVersion: "1.1", nodeOptions }), close: () => {} };
  }
  const sessionManager = new Http2SessionManager(baseUrl, undefined, nodeOptions);
  const transport =
    protocol === "grpc"
      ? createGrpcTransport({ baseUrl, sessionManager })
      : createConnectTransport({ baseUrl, httpVersion: "2", sessionManager });
  return { transport, close: () => sessionManager.abort() };
}

/** A {@link Connector} for the wallet core; `transport(url, role)`, if given, wins (tests inject interceptors). */
export function nodeConnector(opts: Omit<ClientOptions, "transport"> & { transport?: (baseUrl: string, role: "center" | "seller") => Transport }): Connector {
  return (baseUrl, role) => connectNode(baseUrl, { protocol: opts.protocol, ca: opts.ca, transport: opts.transport?.(baseUrl, role) });
}

/**
 * The payment center (PaymentCenterService) from Node, one method per RPC.
 *
 * @example
 * ```ts
 * const center = new CenterClient("http://127.0.0.1:7100", { protocol: "grpc" });
 * const info = await center.getCenterInfo();
 * center.close();
 * ```
 */
export class CenterClient extends CenterRpc {
  constructor(baseUrl: string, opts: ClientOptions = {}) {
    super(baseUrl, connectNode(baseUrl, opts), opts.timeoutMs);
  }
}

/**
 * A seller / internet mall (SellerService) from Node, one method per RPC.
 *
 * @example
 * ```ts
 * const seller = new SellerClient("http://127.0.0.1:7200");
 * const { entries, campaignItems } = await seller.getCatalog();
 * seller.close();
 * ```
 */
export class SellerClient extends SellerRpc {
  constructor(baseUrl: string, opts: ClientOptions = {}) {
    super(baseUrl, connectNode(baseUrl, opts), opts.timeoutMs);
  }
}
