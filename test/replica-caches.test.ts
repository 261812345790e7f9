/**
 * Caches a center replica holds (Custom_Secret generations, certificate key
 * generations, vendor secrets, vendor records; campaigns are not cached)
 * follow what another replica changes: each kind is rotated or created through
 * replica A's admin API and used at once through replica B, two center
 * processes over one PostgreSQL database. And the reload on a miss is
 * bounded: invented vendor ids do not make every call read the database.
 */
import test from "ava";
import { createClient } from "@connectrpc/connect";
import { randomBytes } from "node:crypto";
import { CenterAdminService, KeyKind } from "../gen/scripwire/v1/admin_pb.js";
import { CmdType, DeliveryMethod, OfferKind } from "../gen/scripwire/v1/types_pb.js";
import { createTransport } from "../src/client/transport.js";
import { openPostgresLedger } from "../src/ledger/postgres.js";
import { openSqliteLedger } from "../src/ledger/sqlite.js";
import { PaymentCenter } from "../src/center/center.js";
import { RELOADS_PER_SECOND } from "../src/center/reload-gate.js";
import { parseSellerConfig } from "../src/seller/catalog.js";
import { startSellerServer } from "../src/seller/server.js";
import { computeOfferMac } from "../src/crypto/scrip-auth.js";
import { spawnCenter } from "./helpers/child-center.js";
import { centerConfig, QUIZ, seedLedger, sellerConfigJson, testClock } from "./helpers/inproc.js";
import { freshPgDatabase, PG_SKIP_REASON, pgTestUrl } from "./helpers/pg.js";
import { hdr, RawCustomer } from "./helpers/raw.js";
import { ADMIN_TOKEN } from "./helpers/real.js";
import { create } from "@bufbuild/protobuf";
import { IdTypeSchema, OfferSchema } from "../gen/scripwire/v1/types_pb.js";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Ledger } from "../src/ledger/ledger.js";

const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");
const admin = { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } };

const url = pgTestUrl();
if (!url) {
  console.log(`replica-caches.test.ts: two-process test skipped: ${PG_SKIP_REASON}`);
  test.skip(`every cache follows another replica's rotation [${PG_SKIP_REASON}]`, () => {});
} else {
  test("keys, vendor secrets, vendors and campaigns rotated or created on replica A work at once on replica B (two processes)", async (t) => {
    const db = await freshPgDatabase(url);
    const ledger = openPostgresLedger(db.url);
    t.teardown(async () => {
      await ledger.close();
      await db.drop();
    });
    const a = await spawnCenter({ database: db.url });
    const b = await spawnCenter({ database: db.url });
    t.teardown(() => Promise.all([a.stop(), b.stop()]).then(() => undefined));
    const seed = await seedLedger(ledger, 100_000n);
    const adminA = createClient(CenterAdminService, createTransport(a.url, { protocol: "grpc" }));
    const toA = createTransport(a.url, { protocol: "grpc" });
    const toB = createTransport(b.url, { protocol: "grpc" });

    // B serves a customer first, so it holds generation 1 of everything in memory.
    const seller1 = await startSellerServer({ config: seed.sellerConfig });
    t.teardown(() => seller1.close(500));
    const early = new RawCustomer(toB, createTransport(seller1.url, { protocol: "grpc" }));
    await early.register();
    await early.earn(QUIZ.itemId, QUIZ.answer);

    // 1. Custom_Secret and certificate keys rotate on A; a customer registered on A (generation 2 of both) works on B.
    t.is((await adminA.rotateKeys({ kind: KeyKind.CUSTOM_SECRET }, admin)).secretId, 2);
    t.is((await adminA.rotateKeys({ kind: KeyKind.CERTIFICATE }, admin)).secretId, 2);
    const c = new RawCustomer(toA, createTransport(seller1.url, { protocol: "grpc" }));
    await c.register();
    t.is(c.customId.secretId, 2, "registered under the new Custom_Secret generation");
    t.is(c.scrip.scrip!.scripId!.secretId, 2, "certified under the new certificate generation");
    const onB = new RawCustomer(toB, createTransport(seller1.url, { protocol: "grpc" }));
    Object.assign(onB, { walletId: c.walletId, customSecret: c.customSecret, scrip: c.scrip });
    await onB.earn(QUIZ.itemId, QUIZ.answer); // BAD_HASH / BAD_CERTIFICATE here if B never reloaded
    t.is(onB.value, 50n);

    // 2. The vendor secret rotates on A; the seller signs with the new generation; B verifies offers and signs receipts with it.
    const rotated = await adminA.rotateVendorSecret({ vendorId: seed.vendorId }, admin);
    t.is(rotated.vendorKeyId, 2);
    const json2 = sellerConfigJson(seed.vendorId, hex(seed.secret), seed.campaignId);
    const seller2 = await startSellerServer({ config: parseSellerConfig({ ...json2, vendorKeys: { "1": hex(seed.secret), "2": hex(rotated.vendorSecret) } }) });
    t.teardown(() => seller2.close(500));
    onB.seller = new RawCustomer(toB, createTransport(seller2.url, { protocol: "grpc" })).seller;
    const receipt = await onB.buy("/articles/both", DeliveryMethod.VIEW);
    t.is(receipt.vendorKeyId, 2, "B signed the receipt with the rotated secret");
    const delivered = await onB.seller!.deliver({ header: hdr(CmdType.PM8_1), receipt });
    t.is(delivered.header?.cmdType, CmdType.PM8_1);

    // 3. A new vendor and its campaign, created and funded on A, are used at once through B.
    const v = await adminA.createVendor({ vendorId: "mall-2", vendor: { dnsName: "mall.test", serverName: "Test Mall", port: 443 } }, admin);
    await adminA.createCampaign({ campaignId: "autumn", vendorId: "mall-2", currency: "KRW", cap: 10_000n }, admin);
    await adminA.fundCampaign({ campaignId: "autumn", amount: 1_000n, requestId: "fund-autumn" }, admin);
    const seller3 = await startSellerServer({ config: parseSellerConfig(sellerConfigJson("mall-2", hex(v.vendorSecret), "autumn")) });
    t.teardown(() => seller3.close(500));
    onB.seller = new RawCustomer(toB, createTransport(seller3.url, { protocol: "grpc" })).seller;
    await onB.earn("survey-1", "new vendors work everywhere");
    t.is(onB.value, 65n, "50 - 5 + 20: the new vendor's campaign paid on B");
    const r3 = await onB.buy("/articles/hash-cash", DeliveryMethod.VIEW);
    t.is(r3.vendorId, "mall-2");
    const audit = await ledger.audit();
    t.deepEqual(audit.problems, []);
  });
}

test("a miss reloads through a gate: invented vendor ids and key generations cannot make every call read the ledger", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "scripwire-gate-"));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const real = openSqliteLedger(join(dir, "center.sqlite"));
  t.teardown(() => real.close());
  let reads = 0;
  // The real ledger, counting the reads a miss can cause.
  const counted = new Proxy(real, {
    get(target, prop, recv) {
      const v = Reflect.get(target, prop, recv);
      if ((prop === "getVendor" || prop === "listKeys") && typeof v === "function") {
        return (...args: unknown[]) => {
          reads++;
          return (v as (...a: unknown[]) => unknown).apply(target, args);
        };
      }
      return typeof v === "function" ? v.bind(target) : v;
    },
  }) as Ledger;
  // A clock that stands still: the gate's budget does not refill during the loop, however slow the machine.
  const clock = testClock();
  let frozen = clock.now();
  const center = new PaymentCenter(counted, centerConfig({ config: { clock: () => frozen } }));
  await center.start();
  const seed = await seedLedger(real, 1_000n);
  reads = 0;
  const customId = create(IdTypeSchema, { secretId: 1, serialNumber: 1n });
  const attempts = 300;
  for (let i = 0; i < attempts; i++) {
    // Each call names a vendor (or, every third, a key generation) nobody created.
    const o = create(OfferSchema, {
      kind: OfferKind.PAY,
      vendorId: i % 3 === 0 ? seed.vendorId : `nobody-${randomBytes(6).toString("hex")}`,
      vendorKeyId: i % 3 === 0 ? 1000 + i : 1,
      tranId: `t_${i}`,
      amount: 5n,
      currency: "KRW",
      customId,
      expiresAtUnix: BigInt(Math.floor(Date.now() / 1000) + 600),
      hashAlgorithm: 1,
    });
    o.mac = computeOfferMac(new Uint8Array(32), o);
    await t.throwsAsync(center.initPayment({ $typeName: "scripwire.v1.InitPaymentRequest", header: hdr(CmdType.PM3_1), order: o }));
  }
  // With no time passing, at most the gate's burst reached the ledger.
  t.log(`${attempts} calls with unknown ids -> ${reads} ledger reads; ${center.keys.gate.denied} misses answered without one`);
  t.true(reads <= RELOADS_PER_SECOND, `reads ${reads} must stay within the gate's burst of ${RELOADS_PER_SECOND}`);
  t.true(center.keys.gate.denied >= attempts - RELOADS_PER_SECOND);
  // A generation at or below the newest known one never reads.
  const before = reads;
  t.is(await center.keys.find("certificate", 0), undefined);
  t.is(reads, before);
  // Time passes: a real newer generation (rotated elsewhere) is found again.
  await real.addKey({ kind: "certificate", secretId: 2, key: new Uint8Array(randomBytes(32)), createdAt: Date.now() });
  frozen += 1_100;
  t.truthy(await center.keys.find("certificate", 2));
});
