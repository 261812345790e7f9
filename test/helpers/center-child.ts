/**
 * A payment center in a process of its own, for replica tests: two of these
 * over one PostgreSQL database are two real replicas (no shared memory). The
 * parent passes the database URL and options in SCRIPWIRE_CHILD (JSON), reads
 * one JSON line {url, port, metricsPort?} from stdout, and ends the child by
 * closing its stdin.
 */
import { startCenterServer } from "../../src/center/server.js";
import { openPostgresLedger } from "../../src/ledger/postgres.js";
import { centerConfig } from "./inproc.js";
import { ADMIN_TOKEN } from "./real.js";

const o = JSON.parse(process.env.SCRIPWIRE_CHILD ?? "{}") as { database: string; rateLimits?: unknown; metricsPort?: number; healthPollMs?: number };
const ledger = openPostgresLedger(o.database, { connectTimeoutMs: 2_000 });
const running = await startCenterServer({
  ...centerConfig({}),
  ledger,
  adminToken: ADMIN_TOKEN,
  ...(o.rateLimits ? { rateLimits: o.rateLimits as never } : {}),
  ...(o.metricsPort !== undefined ? { metricsPort: o.metricsPort } : {}),
  ...(o.healthPollMs !== undefined ? { healthPollMs: o.healthPollMs } : {}),
} as never);
process.stdout.write(JSON.stringify({ url: running.url, port: running.port, metricsPort: (running as { metricsPort?: number }).metricsPort }) + "\n");
process.stdin.resume();
process.stdin.on("end", async () => {
  await running.close(500);
  await ledger.close();
  process.exit(0);
});
