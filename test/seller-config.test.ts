/** seller.json as docs/seller-config.md specifies it: unknown fields refused with their path, quiz rules, contentType delivered. */
import test from "ava";
import { create } from "@bufbuild/protobuf";
import { readFileSync } from "node:fs";
import { CmdType, DeliveryMethod, HeaderTypeSchema } from "../gen/scripwire/v1/types_pb.js";
import { parseSellerConfig } from "../src/seller/catalog.js";
import { inprocWorld, sellerConfigJson } from "./helpers/inproc.js";
import { RawCustomer } from "./helpers/raw.js";

const base = () => sellerConfigJson("mall-1", "ab".repeat(32), "spring") as Record<string, any>;

test("an unknown field at any level is refused, naming it and the fields there are", (t) => {
  const cases: Array<[string, (j: Record<string, any>) => void, RegExp]> = [
    ["top", (j) => (j.vendor_id = "x"), /seller config: unknown field "vendor_id"/],
    ["identity", (j) => (j.identity.host = "x"), /identity: unknown field "host"/],
    ["catalog", (j) => (j.catalog[0].content_type = "text/plain"), /catalog\[0\]: unknown field "content_type"; the fields are .*contentType/],
    ["campaign", (j) => (j.campaigns[0].budget = "5"), /campaigns\[0\]: unknown field "budget"/],
    ["item", (j) => (j.campaigns[0].items[0].points = 1), /campaigns\[0\]\.items\[0\]: unknown field "points"/],
  ];
  for (const [name, f, re] of cases) {
    const j = base();
    f(j);
    t.throws(() => parseSellerConfig(j), { message: re }, name);
  }
  t.notThrows(() => parseSellerConfig(base()));
});

test("quiz rules: AD/SURVEY take no answer; a quiz answer must be among its choices; contentType must be a media type", (t) => {
  const ad = base();
  ad.campaigns[0].items[2].answer = "yes";
  t.throws(() => parseSellerConfig(ad), { message: /only a QUIZ has an answer/ });
  const quiz = base();
  quiz.campaigns[0].items[0].choices = ["rsa", "dsa"];
  t.throws(() => parseSellerConfig(quiz), { message: /the answer must be one of the choices/ });
  const ct = base();
  ct.catalog[0].contentType = "html";
  t.throws(() => parseSellerConfig(ct), { message: /must be a media type/ });
});

test("contentType is what a VIEW delivery carries", async (t) => {
  const w = await inprocWorld();
  t.teardown(() => w.close());
  const c = new RawCustomer(w.centerTransport, w.sellerTransport);
  await c.register();
  await c.earn("quiz-1", "hash");
  const receipt = await c.buy("/articles/both", DeliveryMethod.VIEW);
  const d = await c.seller!.deliver({ header: create(HeaderTypeSchema, { cmdType: CmdType.PM8_1, protocolVersion: "scripwire/1" }), receipt });
  t.is(d.contentType, "text/html; charset=utf-8", "the documented default");
});

test("docs/seller-config.md documents every field the parser accepts", (t) => {
  const doc = readFileSync("docs/seller-config.md", "utf8");
  const src = readFileSync("src/seller/catalog.ts", "utf8");
  const block = src.slice(src.indexOf("const FIELDS = {"), src.indexOf("} as const;"));
  const fields = [...block.matchAll(/"(\w+)"/g)].map((m) => m[1]!);
  t.true(fields.length > 15);
  for (const f of fields) t.true(doc.includes(`\`${f}\``), `${f} is documented`);
});
