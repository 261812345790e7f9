import { SellerService } from "../../gen/scripwire/v1/seller_pb.js";
import { createServerStack } from "../server/stack.js";
import type { SellerConfig } from "./catalog.js";
import { Seller } from "./seller.js";
import { sellerService } from "./service.js";

export interface SellerServerOptions {
  config: SellerConfig;
  host?: string;
  port?: number;
  tls?: { cert: string | Buffer; key: string | Buffer };
}

export interface RunningSeller {
  seller: Seller;
  port: number;
  url: string;
  close(graceMs?: number): Promise<void>;
}

export async function startSellerServer(opts: SellerServerOptions): Promise<RunningSeller> {
  const seller = new Seller(opts.config);
  const stack = createServerStack({
    services: [SellerService],
    routes: (router) => router.service(SellerService, sellerService(seller)),
    host: opts.host ?? "127.0.0.1",
    port: opts.port ?? 0,
    tls: opts.tls,
  });
  const { port, url } = await stack.listen();
  return { seller, port, url, close: (graceMs = 5_000) => stack.close(graceMs) };
}
