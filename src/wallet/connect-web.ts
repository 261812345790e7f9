/**
 * The browser's way onto the network: connect-web over fetch (Connect
 * protocol, binary messages so the bytes the center MACs are the bytes the
 * wallet keeps). Nothing to close: fetch owns its connections.
 */
import { createConnectTransport, createGrpcWebTransport } from "@connectrpc/connect-web";
import type { Connector } from "./client.js";

export function webConnector(opts: { protocol?: "connect" | "grpc-web" } = {}): Connector {
  return (baseUrl) => ({
    transport: opts.protocol === "grpc-web" ? createGrpcWebTransport({ baseUrl }) : createConnectTransport({ baseUrl, useBinaryFormat: true }),
    close: () => {},
  });
}
