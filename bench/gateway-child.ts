/**
 * A child process for the gateway benchmark (bench/gateway.ts): either the
 * upstream (a plain node:http site answering a 1 KiB page) or the 402
 * gateway in front of it, so each side's CPU is measured on its own. Talks to
 * the parent over IPC: "ready" with the URL, then "stats" (CPU used so far)
 * and "close".
 */
import http from "node:http";
import type { AddressInfo } from "node:net";
import { parseGatewayConfig } from "../src/gateway/config.js";
import { startGateway } from "../src/gateway/gateway.js";
import { createLogger } from "../src/server/log.js";

const [role, arg] = process.argv.slice(2) as ["upstream" | "gateway", string | undefined];
const PAGE = Buffer.alloc(1024, "x");

async function main(): Promise<void> {
  let close: () => Promise<void>;
  let url: string;
  if (role === "upstream") {
    const server = http.createServer((req, res) => {
      req.resume();
      res.writeHead(200, { "content-type": "text/html", "content-length": String(PAGE.length) });
      res.end(PAGE);
    });
    server.keepAliveTimeout = 60_000;
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    close = () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      });
  } else {
    const gw = await startGateway({ config: parseGatewayConfig(JSON.parse(arg!)), logger: createLogger({ level: "silent" }) });
    url = gw.url;
    close = () => gw.close(500);
  }
  process.on("message", async (m: { type: string; seq?: number }) => {
    if (m.type === "stats") {
      const c = process.cpuUsage();
      process.send!({ type: "stats", seq: m.seq, cpuUs: c.user + c.system, rssBytes: process.memoryUsage().rss });
    } else if (m.type === "close") {
      await close();
      process.exit(0);
    }
  });
  process.send!({ type: "ready", url });
}

main().catch((e) => {
  process.stderr.write(`${(e as Error).stack}\n`);
  process.exit(1);
});
