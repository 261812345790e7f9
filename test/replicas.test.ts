/**
 * Several stateless center replicas over one PostgreSQL database: every
 * decision is made inside the database, so a double spend split across two
 * replicas still lets exactly one through.
 */
import test from "ava";
import { CmdType, DeliveryMethod } from "../gen/scripwire/v1/types_pb.js";
import { startCenterServer } from "../src/center/server.js";
import { createTransport } from "../src/client/transport.js";
import { openPostgresLedger } from "../src/ledger/postgres.js";
import { startSellerServer } from "../src/seller/server.js";
import { centerConfig, QUIZ, seedLedger } from "./helpers/inproc.js";
import { freshPgDatabase, PG_SKIP_REASON, pgTestUrl } from "./helpers/pg.js";
import { RawCustomer } from "./helpers/raw.js";
import { ADMIN_TOKEN } from "./helpers/real.js";

const url = pgTestUrl();

if (!url) {
  console.log(`replicas.test.ts: ${PG_SKIP_REASON}`);
  test.skip(`center replicas over PostgreSQL [${PG_SKIP_REASON}]`, () => {});
} else {
  test("a double spend split across two replicas lets exactly one through", async (t) => {
    const db = await freshPgDatabase(url);
    const ledgerA = openPostgresLedger(db.url);
    const ledgerB = openPostgresLedger(db.url);
    const config = centerConfig({});
    const a = await startCenterServer({ ...config, ledger: ledgerA, adminToken: ADMIN_TOKEN });
    const b = await startCenterServer({ ...config, ledger: ledgerB, adminToken: ADMIN_TOKEN });
    const seed = await seedLedger(ledgerA, 100_000n);
    const seller = await startSellerServer({ config: seed.sellerConfig });
    t.teardown(async () => {
      await seller.close(500);
      await a.close(500);
      await b.close(500);
      await ledgerA.close();
      await ledgerB.close();
      await db.drop();
    });
    const sellerT = createTransport(seller.url, { protocol: "grpc" });
    const viaA = new RawCustomer(createTransport(a.url, { protocol: "grpc" }), sellerT);
    await viaA.register();
    await viaA.earn(QUIZ.itemId, QUIZ.answer); // registered on A, earns on A
    const viaB = new RawCustomer(createTransport(b.url, { protocol: "grpc" }), sellerT);
    Object.assign(viaB, { walletId: viaA.walletId, customSecret: viaA.customSecret, scrip: viaA.scrip });
    await viaB.earn("survey-1", "replicas are stateless"); // and keeps going on B
    viaA.scrip = viaB.scrip;
    t.is(viaA.value, 70n);

    for (let round = 0; round < 5; round++) {
      const o1 = (await viaA.s1("/articles/both", DeliveryMethod.VIEW)).order!;
      const o2 = (await viaA.s1("/articles/both", DeliveryMethod.VIEW)).order!;
      await viaA.s3(o1);
      await viaB.s3(o2);
      viaB.scrip = viaA.scrip;
      const [r1, r2] = await Promise.all([viaA.s4(o1), viaB.s4(o2)]);
      const winners = [r1, r2].filter((r) => r.header?.cmdType === CmdType.PM5_1);
      t.is(winners.length, 1, `round ${round}: exactly one replica accepts`);
      const loser = [r1, r2].find((r) => r.header?.cmdType !== CmdType.PM5_1)!;
      t.is(loser.header?.cmdType, CmdType.PM5_2);
      t.is(loser.header?.errorReason, "SCRIP_NOT_LIVE");
      viaA.scrip = winners[0]!.newScrip!;
    }
    const live = await ledgerB.liveScrip(viaA.customId.serialNumber, "KRW");
    t.is(live?.value, 45n);
    const audit = await ledgerA.audit();
    t.deepEqual(audit.problems, []);
  });
}
