import { join } from "node:path";
import type { ResourceLimits } from "../server/resource-limits.js";
import { SqliteSurveyStore } from "./survey-store.js";
import { SellerService } from "../../gen/scripwire/v1/seller_pb.js";
import { createRateLimiterCore, rateLimitService, remoteAddressContextValues, type RateLimitOptions } from "../server/limits.js";
import { createServerStack } from "../server/stack.js";
import type { SellerConfig } from "./catalog.js";
import { Seller } from "./seller.js";
import { sellerService } from "./service.js";
import { mallPages } from "./web.js";
import { useNativeHashes } from "../crypto/native-hash.js";

export interface SellerServerOptions {
  config: SellerConfig;
  host?: string;
  port?: number;
  tls?: { cert: string | Buffer; key: string | Buffer };
  /** Per-address rate limits (M1/S1 carry no hash proving a customer id, so none per customer). Default off; the CLI turns them on. */
  rateLimits?: RateLimitOptions | false;
  /** Serve the web mall at /shop/ (src/seller/web.ts), paid from this center's browser wallet. Default: pages on, with no center they say so. */
  centerUrl?: string;
  /** Serve the web mall pages. Default true. */
  mallPages?: boolean;
  /** Origins whose pages may call the seller's RPCs from a browser (CORS); `*` for any. Default none. */
  corsOrigins?: readonly string[];
  /**
   * Directory for the seller's own state (survey answers in `seller.sqlite`,
   * created 0700/0600). Default: none, answers kept in an in-memory SQLite
   * database (tests); `scripwire seller serve` always gives one.
   */
  dataDir?: string;
  /** Bounds on what peers can make the server hold (src/server/resource-limits.ts). */
  limits?: Partial<ResourceLimits>;
}

export interface RunningSeller {
  seller: Seller;
  port: number;
  url: string;
  close(graceMs?: number): Promise<void>;
}

export async function startSellerServer(opts: SellerServerOptions): Promise<RunningSeller> {
  useNativeHashes();
  const surveys = new SqliteSurveyStore(opts.dataDir ? join(opts.dataDir, "seller.sqlite") : ":memory:");
  const seller = new Seller(opts.config, undefined, surveys);
  const limiter = opts.rateLimits ? createRateLimiterCore({ perCustomer: false, ...opts.rateLimits }) : undefined;
  const impl = limiter ? rateLimitService(SellerService, sellerService(seller), limiter) : sellerService(seller);
  const stack = createServerStack({
    services: [SellerService],
    routes: (router) => router.service(SellerService, impl),
    adapter: limiter ? { contextValues: remoteAddressContextValues } : undefined,
    host: opts.host ?? "127.0.0.1",
    port: opts.port ?? 0,
    tls: opts.tls,
    pages: opts.mallPages === false ? undefined : mallPages(seller, { centerUrl: opts.centerUrl }),
    corsOrigins: opts.corsOrigins,
    limits: opts.limits,
  });
  const { port, url } = await stack.listen();
  return {
    seller,
    port,
    url,
    close: async (graceMs = 5_000) => {
      await stack.close(graceMs);
      surveys.close();
    },
  };
}
