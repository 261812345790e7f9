/**
 * Client transports for Scripwire servers. Connect and gRPC both run over
 * HTTP/2; gRPC-Web over HTTP/1.1 exists for browsers and proxies.
 */
import type { Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";

export type WireProtocol = "connect" | "grpc" | "grpc-web";

export interface TransportOptions {
  protocol?: WireProtocol;
  /** Extra headers on every call, e.g. the admin bearer token. */
  headers?: Record<string, string>;
  /** PEM CA to trust for https:// URLs (self-signed test certificates). */
  ca?: string | Buffer;
}

export function createTransport(baseUrl: string, opts: TransportOptions = {}): Transport {
  const protocol = opts.protocol ?? "connect";
  const headers = opts.headers ?? {};
  const interceptors = Object.keys(headers).length
    ? [
        (next: any) => async (req: any) => {
          for (const [k, v] of Object.entries(headers)) req.header.set(k, v);
          return next(req);
        },
      ]
    : [];
  const nodeOptions = opts.ca ? { ca: opts.ca } : undefined;
  switch (protocol) {
    case "connect":
      return createConnectTransport({ baseUrl, httpVersion: "2", interceptors, nodeOptions });
    case "grpc":
      return createGrpcTransport({ baseUrl, interceptors, nodeOptions });
    case "grpc-web":
      return createGrpcWebTransport({ baseUrl, httpVersion: "1.1", interceptors, nodeOptions });
  }
}
