/**
 * Administration over a real server: the admin credential, and key rotation
 * by generation — new keys sign, old ones keep verifying.
 */
import test from "ava";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { CenterAdminService, KeyKind } from "../gen/scripwire/v1/admin_pb.js";
import { CmdType, DeliveryMethod } from "../gen/scripwire/v1/types_pb.js";
import { createTransport } from "../src/client/transport.js";
import { errorReason } from "../src/server/errors.js";
import { parseSellerConfig } from "../src/seller/catalog.js";
import { Seller } from "../src/seller/seller.js";
import { QUIZ, sellerConfigJson } from "./helpers/inproc.js";
import { hdr, RawCustomer } from "./helpers/raw.js";
import { checkpointSignatureValid } from "../src/ledger/chain.js";
import { ADMIN_TOKEN, realWorld } from "./helpers/real.js";

test("admin calls need the bearer token", async (t) => {
  const w = await realWorld();
  t.teardown(() => w.close());
  const none = createClient(CenterAdminService, createTransport(w.centerServer.url));
  const e1 = await t.throwsAsync(none.listCampaigns({}));
  t.is((e1 as ConnectError).code, Code.Unauthenticated);
  t.is(errorReason(e1), "ADMIN_TOKEN_MISSING");
  const wrong = createClient(CenterAdminService, createTransport(w.centerServer.url, { headers: { authorization: "Bearer nope-nope-nope-nope" } }));
  const e2 = await t.throwsAsync(wrong.listCampaigns({}));
  t.is((e2 as ConnectError).code, Code.PermissionDenied);
  const admin = createClient(CenterAdminService, createTransport(w.centerServer.url, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } }));
  // A wrong token makes its address back off (src/server/admin-guard.ts):
  // even the right token waits, so a guess inside the wait teaches nothing.
  // (On a loaded machine the call may land after the 250 ms wait: then it is simply served.)
  const first = await admin.listCampaigns({}).then(
    (r) => r,
    (e: unknown) => e as ConnectError,
  );
  if (first instanceof ConnectError) {
    t.is(first.code, Code.ResourceExhausted);
    t.is(errorReason(first), "ADMIN_BACKOFF");
    await new Promise((r) => setTimeout(r, Number(first.metadata.get("scripwire-retry-after-ms")) + 20));
  }
  t.is((await admin.listCampaigns({})).campaigns.length, 1);
  const e3 = await t.throwsAsync(admin.fundCampaign({ campaignId: w.campaignId, amount: -5n, requestId: "x" }));
  t.is((e3 as ConnectError).code, Code.InvalidArgument);
  const e4 = await t.throwsAsync(admin.createCampaign({ campaignId: "c2", vendorId: "nobody", currency: "KRW", cap: 10n }));
  t.is((e4 as ConnectError).code, Code.NotFound);
  t.deepEqual((await admin.audit({})).problems, []);
});

// With the hot calls on the writer thread (as `center serve` runs), the
// thread's own key ring must sign with a rotated generation from the next call.
for (const hotThread of [false, true]) test(`rotated certificate, Custom_Secret and vendor keys: new generations sign, old ones verify${hotThread ? " (hot calls on the writer thread)" : ""}`, async (t) => {
  const w = await realWorld({ hotThread });
  t.teardown(() => w.close());
  const admin = createClient(CenterAdminService, createTransport(w.centerServer.url, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } }));
  const a = new RawCustomer(w.centerTransport, w.sellerTransport);
  await a.register();
  await a.earn(QUIZ.itemId, QUIZ.answer);
  t.is(a.scrip.scrip!.scripId!.secretId, 1);
  t.is(a.customId.secretId, 1);

  t.is((await admin.rotateKeys({ kind: KeyKind.CERTIFICATE })).secretId, 2);
  await a.buy("/articles/hash-cash"); // pays with a generation-1 scrip
  t.is(a.scrip.scrip!.scripId!.secretId, 2, "the change is certified by the new generation");

  t.is((await admin.rotateKeys({ kind: KeyKind.CUSTOM_SECRET })).secretId, 2);
  const b = new RawCustomer(w.centerTransport, w.sellerTransport);
  await b.register();
  t.is(b.customId.secretId, 2, "new customers get the new master key generation");
  await b.earn(QUIZ.itemId, QUIZ.answer);
  await a.earn("ad-1", ""); // the old generation still authenticates existing customers
  t.is(a.value, 30n);

  const rotated = await admin.rotateVendorSecret({ vendorId: w.vendorId });
  t.is(rotated.vendorKeyId, 2);
  // The running seller still knows only key 1: its offers and their receipts keep working.
  const receipt = await a.buy("/articles/both");
  t.is(receipt.vendorKeyId, 1, "the receipt is signed with the generation the offer used");
  const delivered = await a.seller!.deliver({ header: hdr(CmdType.PM8_1), receipt });
  t.true(delivered.content.length > 0);
  // A seller that has learnt key 2 signs with it, and the center accepts it.
  const json = sellerConfigJson(w.vendorId, Buffer.from(w.secret).toString("hex"), w.campaignId);
  (json.vendorKeys as Record<string, string>)["2"] = Buffer.from(rotated.vendorSecret).toString("hex");
  const newer = new Seller(parseSellerConfig(json));
  const s2 = newer.requestService({ $typeName: "scripwire.v1.RequestServiceRequest", header: hdr(CmdType.PM1_1), requestUrl: "/articles/both", pMethod: DeliveryMethod.VIEW, customId: a.customId });
  t.is(s2.order!.vendorKeyId, 2);
  await a.s3(s2.order!);
  const s5 = await a.s4(s2.order!);
  t.is(s5.header?.cmdType, CmdType.PM5_1);
  const s6 = await a.s6(s2.order!.tranId, s5.newScrip!);
  t.is(s6.receipt?.vendorKeyId, 2);
  t.notThrows(() => newer.deliver({ $typeName: "scripwire.v1.DeliverRequest", header: hdr(CmdType.PM8_1), receipt: s6.receipt }));
  t.deepEqual((await w.ledger.audit()).problems, []);
});

test("the journal's checkpoint key rotates by generation: new checkpoints use the new key, older ones keep verifying", async (t) => {
  const w = await realWorld();
  t.teardown(() => w.close());
  const admin = createClient(CenterAdminService, createTransport(w.centerServer.url, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } }));
  const sealing = w.centerServer.sealing!;
  const a = new RawCustomer(w.centerTransport, w.sellerTransport);
  await a.register();
  await a.earn(QUIZ.itemId, QUIZ.answer);
  // The center's own loop may have signed the head already: then that checkpoint is the latest.
  const latest = async () => (await sealing.round(true)) ?? (await w.ledger.latestCheckpoint())!;
  const first = await latest();
  t.is(first.keyId, 1);
  t.is((await admin.rotateKeys({ kind: KeyKind.CHECKPOINT })).secretId, 2);
  await a.buy("/articles/hash-cash");
  const second = await latest();
  t.is(second.keyId, 2, "the next checkpoint is signed by generation 2");
  t.notDeepEqual(Buffer.from(second.publicKey), Buffer.from(first.publicKey));
  t.true(checkpointSignatureValid(first) && checkpointSignatureValid(second));
  // The ledger still extends the generation-1 checkpoint, and the audit accepts both generations.
  const audit = await w.ledger.audit({ checkpoint: first });
  t.deepEqual(audit.problems, []);
  t.true(audit.savedCheckpointOk);
});
