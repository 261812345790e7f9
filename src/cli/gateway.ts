/**
 * `scripwire gateway serve --config gateway.json`: the HTTP 402 paywall
 * gateway in front of an upstream website (src/gateway, docs/gateway.md).
 */
import { readFileSync, statSync } from "node:fs";
import { loadGatewayConfig } from "../gateway/config.js";
import { startGateway } from "../gateway/gateway.js";
import { EXIT, print, UsageError, waitForSignal, type Command } from "./options.js";

export const gatewayServe: Command = {
  usage: "scripwire gateway serve --config <gateway.json> [--host h] [--port p]",
  summary:
    "Put a website behind scrip payments: priced routes answer 402 with a Scrip challenge until a receipt is presented; SellerService (S1/S2, S7) is served on the same port. The config file format is in docs/gateway.md.",
  options: [
    { name: "host", description: "address to listen on", default: "127.0.0.1" },
    { name: "port", description: "port (0 = any free port)", default: "7300" },
    { name: "tls-cert", description: "PEM certificate file (enables TLS)" },
    { name: "tls-key", description: "PEM private key file" },
  ],
  async run(o) {
    // The shared option loader reads --config for flag defaults (so "host" and
    // "port" may live in gateway.json); the whole file is the gateway's config.
    const path = o.configPath;
    if (!path) throw new UsageError("--config <gateway.json> is required (see docs/gateway.md for its format)");
    let config;
    try {
      config = loadGatewayConfig(path);
    } catch (e) {
      throw new UsageError((e as Error).message);
    }
    // The file holds the vendor secret, which signs offers and verifies every receipt.
    if ((statSync(path).mode & 0o077) !== 0 && !o.json) {
      process.stderr.write(`warning: ${path} holds the vendor secret and is readable by other users; run: chmod 600 ${path}\n`);
    }
    const tlsCert = o.get("tls-cert");
    const gw = await startGateway({
      config,
      host: o.get("host"),
      port: o.int("port"),
      tls: tlsCert ? { cert: readFileSync(tlsCert), key: readFileSync(o.require("tls-key")) } : undefined,
      processMetrics: true,
    });
    print(
      o.json,
      { url: gw.url, port: gw.port, upstream: config.upstream.href, routes: config.routes.map((r) => r.id) },
      `gateway listening on ${gw.url} in front of ${config.upstream.href} (${config.routes.length} priced route${config.routes.length === 1 ? "" : "s"})`,
    );
    await waitForSignal(() => gw.close());
    return EXIT.OK;
  },
};

export const gatewayCommands: Record<string, Command> = { serve: gatewayServe };
