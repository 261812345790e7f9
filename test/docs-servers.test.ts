/**
 * Where docs and servers disagreed and the server was the odd one out
 * (issue 15, "Docs and servers that agree"): each decision, as the server now
 * behaves, in process over Connect's router.
 */
import test from "ava";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { CmdType, DeliveryMethod, HeaderTypeSchema } from "../gen/scripwire/v1/types_pb.js";
import { TransactionState } from "../gen/scripwire/v1/center_pb.js";
import { parseSellerConfig } from "../src/seller/catalog.js";
import { Seller } from "../src/seller/seller.js";
import { errorReason } from "../src/server/errors.js";
import { inprocWorld, QUIZ, sellerConfigJson } from "./helpers/inproc.js";
import { hdr, RawCustomer } from "./helpers/raw.js";

async function reasonOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return "ok";
  } catch (e) {
    const ce = ConnectError.from(e);
    return `${Code[ce.code]}:${errorReason(ce)}`;
  }
}

test("item 5: Deliver checks cmd_type like every call, and every call checks protocol_version", async (t) => {
  const w = await inprocWorld();
  t.teardown(() => w.close());
  const c = new RawCustomer(w.centerTransport, w.sellerTransport);
  await c.register();
  await c.earn(QUIZ.itemId, QUIZ.answer);
  const receipt = await c.buy("/articles/both");
  const header = (cmdType: CmdType, protocolVersion = "scripwire/1") => create(HeaderTypeSchema, { cmdType, protocolVersion });
  t.is(await reasonOf(c.seller!.deliver({ header: header(CmdType.UNSPECIFIED), receipt })), "InvalidArgument:WRONG_CMD_TYPE");
  t.is(await reasonOf(c.seller!.deliver({ receipt })), "InvalidArgument:WRONG_CMD_TYPE", "no header at all");
  t.is(await reasonOf(c.seller!.deliver({ header: header(CmdType.PM8_1, ""), receipt })), "InvalidArgument:UNSUPPORTED_PROTOCOL_VERSION");
  t.is(await reasonOf(c.seller!.deliver({ header: header(CmdType.PM8_1, "scripwire/2"), receipt })), "InvalidArgument:UNSUPPORTED_PROTOCOL_VERSION");
  t.is(await reasonOf(c.seller!.deliver({ header: header(CmdType.PM8_1), receipt })), "ok");
  t.is(await reasonOf(c.center.register({ header: header(CmdType.UM1, "scripwire/2"), walletId: "w_x" })), "InvalidArgument:UNSUPPORTED_PROTOCOL_VERSION");
  t.is(await reasonOf(c.seller!.requestService({ header: header(CmdType.PM1_1, ""), requestUrl: "/articles/both", pMethod: DeliveryMethod.VIEW, customId: c.customId })), "InvalidArgument:UNSUPPORTED_PROTOCOL_VERSION");
});

test("item 13: a successful undo (GM6_3) has no error_reason or error_message, and the restored scrip drops the undone issuance's ad", async (t) => {
  const w = await inprocWorld();
  t.teardown(() => w.close());
  const c = new RawCustomer(w.centerTransport, w.sellerTransport);
  await c.register();
  const before = c.scrip;
  const m2 = await c.m1(QUIZ.itemId, QUIZ.answer);
  await c.m3(m2.permit!);
  const m5 = await c.m4(m2.permit!.tranId);
  t.is(m5.newScrip?.scrip?.ad, QUIZ.itemId, "the issued scrip names the campaign item");
  const m7 = await c.m6(m2.permit!.tranId, m5.newScrip!, CmdType.GM6_3);
  t.is(m7.state, TransactionState.CANCELLED);
  t.is(m7.header?.errorReason, "", "success carries no reason");
  t.is(m7.header?.errorMessage, "", "and no error message, as the proto says");
  t.is(m7.scrip?.scrip?.value, before.scrip!.value);
  t.is(m7.scrip?.scrip?.ad, before.scrip!.ad, "the restored scrip is the one from before: no ad of the undone issuance");
});

test("item 13: an offer whose vendor ServerType is not the vendor's record is refused", async (t) => {
  const w = await inprocWorld();
  t.teardown(() => w.close());
  const json = sellerConfigJson(w.vendorId, Buffer.from(w.secret).toString("hex"), w.campaignId);
  // The right vendor id and secret, but the seller calls itself someone else.
  const impostor = new Seller(parseSellerConfig({ ...json, identity: { dnsName: "bank.example", serverName: "Test Mall", port: 443 } }));
  const c = new RawCustomer(w.centerTransport, w.sellerTransport);
  await c.register();
  const order = impostor.requestService({ $typeName: "scripwire.v1.RequestServiceRequest", header: hdr(CmdType.PM1_1), requestUrl: "/articles/both", pMethod: DeliveryMethod.VIEW, customId: c.customId }).order!;
  t.is(await reasonOf(c.s3(order)), "Unauthenticated:VENDOR_MISMATCH");
  const permit = impostor.requestIssue({ $typeName: "scripwire.v1.RequestIssueRequest", header: hdr(CmdType.GM1_1), item: QUIZ.itemId, value: QUIZ.answer, customId: c.customId }).permit!;
  t.is(await reasonOf(c.m3(permit)), "Unauthenticated:VENDOR_MISMATCH");
  // The registered identity is accepted.
  const ok = (await c.s1("/articles/both")).order!;
  t.is(await reasonOf(c.s3(ok)), "ok");
});
