/**
 * grpc.health.v1 reports NOT_SERVING while the center's ledger is unreachable
 * and SERVING again when it returns, and the center then serves payments
 * without a restart. The center is a process of its own on PostgreSQL; the
 * "outage" is a TCP relay between it and the database that the test cuts
 * (every connection reset, the port refusing) and later restores.
 */
import test from "ava";
import { createClient } from "@connectrpc/connect";
import { createServer, connect, type Server, type Socket } from "node:net";
import { Health, HealthCheckResponse_ServingStatus as S } from "../gen/grpc/health/v1/health_pb.js";
import { createTransport } from "../src/client/transport.js";
import { openPostgresLedger } from "../src/ledger/postgres.js";
import { startSellerServer } from "../src/seller/server.js";
import { spawnCenter } from "./helpers/child-center.js";
import { QUIZ, seedLedger } from "./helpers/inproc.js";
import { freshPgDatabase, PG_SKIP_REASON, pgTestUrl } from "./helpers/pg.js";
import { RawCustomer } from "./helpers/raw.js";

/** A TCP relay to `target` that can be cut and restored on the same port. */
class Relay {
  private server: Server | undefined;
  private sockets = new Set<Socket>();
  constructor(
    private readonly target: { host: string; port: number },
    public port = 0,
  ) {}
  async up(): Promise<void> {
    this.server = createServer((client) => {
      const upstream = connect(this.target.port, this.target.host);
      for (const s of [client, upstream]) {
        this.sockets.add(s);
        s.on("close", () => this.sockets.delete(s));
        s.on("error", () => {});
      }
      client.pipe(upstream).pipe(client);
    });
    await new Promise<void>((r) => this.server!.listen(this.port, "127.0.0.1", () => r()));
    this.port = (this.server.address() as { port: number }).port;
  }
  async down(): Promise<void> {
    if (!this.server) return;
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((r) => this.server!.close(() => r()));
    this.server = undefined;
  }
}

async function until(what: string, f: () => Promise<boolean>, limitMs = 60_000): Promise<void> {
  const end = Date.now() + limitMs;
  while (!(await f())) {
    if (Date.now() > end) throw new Error(`gave up waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const url = pgTestUrl();
if (!url) {
  console.log(`ledger-health.test.ts: skipped: ${PG_SKIP_REASON}`);
  test.skip(`health follows the ledger [${PG_SKIP_REASON}]`, () => {});
} else {
  test("health is NOT_SERVING while the ledger is unreachable, SERVING when it returns, and payments work again without a restart", async (t) => {
    const db = await freshPgDatabase(url);
    t.teardown(() => db.drop());
    const pg = new URL(db.url);
    const relay = new Relay({ host: pg.hostname, port: Number(pg.port || 5432) });
    await relay.up();
    t.teardown(() => relay.down());
    const viaRelay = new URL(db.url);
    viaRelay.port = String(relay.port);
    const center = await spawnCenter({ database: viaRelay.toString(), healthPollMs: 200 });
    t.teardown(() => center.stop());
    const direct = openPostgresLedger(db.url);
    t.teardown(() => direct.close());
    const seed = await seedLedger(direct, 10_000n);
    const seller = await startSellerServer({ config: seed.sellerConfig });
    t.teardown(() => seller.close(500));
    const health = createClient(Health, createTransport(center.url, { protocol: "grpc" }));
    const status = async (service = "") => (await health.check({ service })).status;
    const c = new RawCustomer(createTransport(center.url, { protocol: "grpc" }), createTransport(seller.url, { protocol: "grpc" }));
    await c.register();
    t.is(await status(), S.SERVING);
    t.is(await status("scripwire.v1.PaymentCenterService"), S.SERVING);

    await relay.down();
    await until("NOT_SERVING", async () => (await status()) === S.NOT_SERVING);
    t.is(await status("scripwire.v1.PaymentCenterService"), S.NOT_SERVING);
    // A payment step during the outage is refused, not half-done (GM5_4 / an error).
    const m2 = await c.m1(QUIZ.itemId, QUIZ.answer);
    await t.throwsAsync(c.m3(m2.permit!));

    await relay.up();
    await until("SERVING again", async () => (await status()) === S.SERVING);
    t.is(await status("scripwire.v1.PaymentCenterService"), S.SERVING);
    await c.earn(QUIZ.itemId, QUIZ.answer);
    t.is(c.value, 50n, "the center pays again, without a restart");
    t.deepEqual((await direct.audit()).problems, []);
  });
}
