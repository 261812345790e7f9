/**
 * Pieces for gateway tests: a real node:http upstream that records what
 * reaches it, a vendor for the gateway at the world's center, a gateway
 * config, and a wallet with scrip to pay with.
 */
import { createClient } from "@connectrpc/connect";
import { toBinary } from "@bufbuild/protobuf";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { CenterAdminService } from "../../gen/scripwire/v1/admin_pb.js";
import { ReceiptSchema, type Receipt } from "../../gen/scripwire/v1/types_pb.js";
import { createTransport } from "../../src/client/transport.js";
import { parseChallenge, toBase64Url } from "../../src/gateway/challenge.js";
import { parseGatewayConfig, type GatewayConfig } from "../../src/gateway/config.js";
import { MemoryWalletStore, Wallet } from "../../src/wallet/index.js";
import type { World } from "./world.js";

export interface UpstreamRequest {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
}

export interface Upstream {
  url: string;
  log: UpstreamRequest[];
  /** Answer the next n requests under /flaky/ with 500. */
  failNext: number;
  /** Bytes of /big/* written so far, and whether a write is waiting for 'drain' (backpressure). */
  big: { written: number; blocked: boolean };
  close(): Promise<void>;
}

export const BIG_BYTES = 100 * 1024 * 1024;
const CHUNK = Buffer.alloc(64 * 1024, 0x61);

export async function startUpstream(): Promise<Upstream> {
  const up: Upstream = { url: "", log: [], failNext: 0, big: { written: 0, blocked: false }, close: async () => {} };
  const server = http.createServer((req, res) => {
    up.log.push({ method: req.method!, url: req.url!, headers: req.headers });
    const url = req.url!;
    if (url.startsWith("/flaky/") && up.failNext > 0) {
      up.failNext--;
      res.writeHead(500, { "content-type": "text/plain" });
      res.end("upstream exploded");
      return;
    }
    if (url === "/free/go") {
      res.writeHead(302, { location: `${up.url}/articles/a` });
      res.end();
      return;
    }
    if (url.startsWith("/big/")) {
      res.writeHead(200, { "content-type": "application/octet-stream", "content-length": String(BIG_BYTES) });
      up.big = { written: 0, blocked: false };
      const pump = () => {
        while (up.big.written < BIG_BYTES) {
          const n = Math.min(CHUNK.length, BIG_BYTES - up.big.written);
          up.big.written += n;
          if (!res.write(n === CHUNK.length ? CHUNK : CHUNK.subarray(0, n))) {
            up.big.blocked = true;
            res.once("drain", () => {
              up.big.blocked = false;
              pump();
            });
            return;
          }
        }
        res.end();
      };
      pump();
      return;
    }
    let bytes = 0;
    req.on("data", (c: Buffer) => (bytes += c.length));
    req.on("end", () => {
      const body = JSON.stringify({ path: url, method: req.method, range: req.headers.range ?? null, ...(bytes ? { bytes } : {}) });
      res.writeHead(200, { "content-type": "application/json", "cache-control": "public, max-age=60", "set-cookie": "upstream=1; Path=/" });
      if (req.method === "HEAD") res.end();
      else res.end(body);
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  up.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  up.close = () =>
    new Promise<void>((r) => {
      server.closeAllConnections();
      server.close(() => r());
    });
  return up;
}

export async function createVendor(world: World, vendorId: string): Promise<{ vendorId: string; keys: Record<string, string> }> {
  const admin = createClient(CenterAdminService, createTransport(world.centerUrl, { headers: { authorization: `Bearer ${world.adminToken}` } }));
  const v = await admin.createVendor({ vendorId, vendor: { dnsName: "localhost", serverName: `Gateway ${vendorId}` } });
  return { vendorId, keys: { [String(v.vendorKeyId)]: Buffer.from(v.vendorSecret).toString("hex") } };
}

/** Routes every gateway test relies on; `routes` overrides by id. */
export function gatewayConfig(upstreamUrl: string, vendor: { vendorId: string; keys: Record<string, string> }, extra: Record<string, unknown> = {}, routeOverrides: Record<string, Record<string, unknown>> = {}): GatewayConfig {
  const routes: Record<string, unknown>[] = [
    { id: "articles", title: "Articles", path: "/articles/*", price: "3", currency: "KRW", receiptLifetimeSeconds: 600, free: ["/articles/index.html"] },
    { id: "premium", title: "Premium", path: "/premium/*", price: "5", currency: "KRW" },
    { id: "flaky", title: "Flaky", path: "/flaky/*", price: "2", currency: "KRW" },
    { id: "big", title: "Big files", path: "/big/*", price: "1", currency: "KRW", method: "SAVE", rateLimit: false },
    { id: "vhost", title: "Paid host", host: "paid.example", path: "/*", price: "1", currency: "KRW" },
    { id: "free", title: "Free", path: "/free/*", price: "1", currency: "KRW", free: ["/free/*"] },
  ].map((r) => ({ ...r, ...(routeOverrides[r.id as string] ?? {}) }));
  return parseGatewayConfig({ upstream: upstreamUrl, vendorId: vendor.vendorId, vendorKeys: vendor.keys, identity: { serverName: "Test Gateway" }, routes, ...extra });
}

/** A registered wallet holding 80 KRW (quiz 50 + survey 20 + ad 10). */
export async function fundedWallet(world: World): Promise<Wallet> {
  const w = await Wallet.open({ store: new MemoryWalletStore() });
  await w.register(world.centerUrl);
  await w.earn(world.sellerUrl, world.quiz.itemId, world.quiz.answer);
  await w.earn(world.sellerUrl, world.survey.itemId, "more about hashes");
  await w.earn(world.sellerUrl, world.ad.itemId, "");
  return w;
}

export function receiptToken(r: Receipt): string {
  return toBase64Url(toBinary(ReceiptSchema, r));
}

/** Pays the challenge of a 402 answer with the ordinary wallet flow (S1..S6, S7) and returns the receipt. */
export async function payChallenge(wallet: Wallet, wwwAuthenticate: string | null): Promise<Receipt> {
  const c = parseChallenge(wwwAuthenticate);
  if (!c) throw new Error(`no Scrip challenge in ${wwwAuthenticate}`);
  const r = await wallet.buy(c.seller, c.item, c.method, { maxPrice: c.price });
  return r.receipt;
}

/** A raw HTTP/1.1 request: the path goes out byte for byte (fetch would normalise it first). */
export function raw(base: string, method: string, path: string, headers: Record<string, string> = {}): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  const u = new URL(base);
  return new Promise((resolve, reject) => {
    const req = http.request({ host: u.hostname, port: u.port, method, path, headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks).toString("utf8") }));
    });
    req.on("error", reject);
    req.end();
  });
}
