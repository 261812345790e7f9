/**
 * A plain gRPC client (@grpc/grpc-js + @grpc/proto-loader, NOT Connect) that
 * registers, earns scrip, pays, confirms and takes delivery against the
 * running Connect servers. The .proto files are loaded at run time from
 * proto/ (no generated code); hashing uses the TypeScript library in
 * src/crypto, because the point of this client is the transport: a stock
 * gRPC stack over HTTP/2 talking to the Connect server.
 *
 * usage: node --import=tsx interop/grpcjs-pay.ts CENTER_HOST:PORT SELLER_HOST:PORT [--answer A] [--item ID]
 *        (or SCRIPWIRE_QUIZ_ANSWER / SCRIPWIRE_EARN_ITEM)
 * Exit status: 0 when every step passed, 1 otherwise.
 */
import { create } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { randomBytes } from "node:crypto";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import {
  IdTypeSchema,
  OfferSchema,
  ScripBodyTypeSchema,
  ScripTypeSchema,
  ServerTypeSchema,
  type Offer,
  type ScripType,
} from "../gen/scripwire/v1/types_pb.js";
import { decryptCustomSecret, sealSessionKey } from "../src/crypto/registration.js";
import { computeMessageHash, verifyMessageHash } from "../src/crypto/scrip-auth.js";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
const PROTOCOL_VERSION = "scripwire/1";
const DEADLINE_MS = 15_000;

// CmdType values (proto enum numbers), used as plain numbers with proto-loader's `enums: Number`.
const CMD = {
  UNSPECIFIED: 0, UM1: 1, UM2: 2,
  GM1_1: 10, GM2_1: 11, GM2_2: 12, GM3_1: 13, GM4_1: 14, GM5_1: 16, GM5_2: 17, GM6_1: 20, GM7_1: 23,
  PM1_1: 40, PM2_1: 41, PM3_1: 43, PM4_1: 44, PM5_1: 46, PM5_2: 47, PM6_1: 49, PM7_1: 52, PM8_1: 53,
} as const;
const CMD_NAME = Object.fromEntries(Object.entries(CMD).map(([k, v]) => [v, k])) as Record<number, string>;

class FlowError extends Error {}

function log(step: string, msg: string): void {
  process.stdout.write(`[${step.padStart(9)}] ${msg}\n`);
}

function need(cond: unknown, what: string): asserts cond {
  if (!cond) throw new FlowError(what);
}

function hdr(cmd: number): Record<string, unknown> {
  return { cmdType: cmd, protocolVersion: PROTOCOL_VERSION, serverDateUnixMs: String(Date.now()) };
}

// ------------------------------------------------------------------ proto-loader objects -> protobuf-es (for hashing)

type Obj = Record<string, any>;
const big = (v: unknown): bigint => BigInt((v as string | number | undefined) ?? 0);
const bytes = (v: unknown): Uint8Array => (v ? new Uint8Array(v as Buffer) : new Uint8Array(0));

function serverEs(s: Obj | null | undefined) {
  return create(ServerTypeSchema, { dnsName: s?.dnsName ?? "", ipAddr: s?.ipAddr ?? "", serverName: s?.serverName ?? "", port: s?.port ?? 0 });
}
function idEs(i: Obj | null | undefined) {
  return create(IdTypeSchema, { secretId: i?.secretId ?? 0, serialNumber: big(i?.serialNumber) });
}
function scripEs(s: Obj): ScripType {
  const b = s.scrip ?? {};
  return create(ScripTypeSchema, {
    hashAlgorithm: s.hashAlgorithm ?? 0,
    scrip: create(ScripBodyTypeSchema, {
      currency: b.currency ?? "",
      value: big(b.value),
      vendorId: serverEs(b.vendorId),
      scripId: idEs(b.scripId),
      customId: idEs(b.customId),
      ad: b.ad ?? "",
      expirationDateUnix: big(b.expirationDateUnix),
    }),
    certificate: bytes(s.certificate),
  });
}
function offerEs(o: Obj): Offer {
  return create(OfferSchema, {
    vendor: serverEs(o.vendor),
    vendorId: o.vendorId ?? "",
    tranId: o.tranId ?? "",
    kind: o.kind ?? 0,
    amount: big(o.amount),
    currency: o.currency ?? "",
    item: o.item ?? "",
    campaignId: o.campaignId ?? "",
    deliveryMethod: o.deliveryMethod ?? 0,
    customId: idEs(o.customId),
    expiresAtUnix: big(o.expiresAtUnix),
    vendorKeyId: o.vendorKeyId ?? 0,
    hashAlgorithm: o.hashAlgorithm ?? 0,
    mac: bytes(o.mac),
  });
}

function hash(cs: Uint8Array, code: string, contextId: string, pCount: number, scrip: Obj, order?: Obj): Buffer {
  const s = scripEs(scrip);
  return Buffer.from(computeMessageHash(s.hashAlgorithm, cs, { code, contextId, pCount, scrip: s, order: order ? offerEs(order) : undefined }));
}
function verify(cs: Uint8Array, code: string, contextId: string, pCount: number, scrip: Obj, got: Buffer): boolean {
  const s = scripEs(scrip);
  return verifyMessageHash(s.hashAlgorithm, cs, { code, contextId, pCount, scrip: s }, new Uint8Array(got));
}

// ------------------------------------------------------------------ grpc-js plumbing

function unary(client: grpc.Client, method: string, step: string, req: Obj): Promise<Obj> {
  return new Promise((resolve, reject) => {
    const fn = (client as any)[method] as (r: Obj, md: grpc.Metadata, o: grpc.CallOptions, cb: (e: grpc.ServiceError | null, r?: Obj) => void) => void;
    fn.call(client, req, new grpc.Metadata(), { deadline: Date.now() + DEADLINE_MS }, (err, res) => {
      if (err) reject(new FlowError(`${step}: ${method} failed: ${grpc.status[err.code]} ${err.details}`));
      else resolve(res!);
    });
  });
}

function expectCmd(step: string, res: Obj, want: number): void {
  const got = res.header?.cmdType ?? 0;
  if (got !== want) {
    throw new FlowError(`${step}: expected ${CMD_NAME[want]}, got ${CMD_NAME[got] ?? got} (${res.header?.errorReason}: ${res.header?.errorMessage})`);
  }
}

function arg(name: string, env: string): string {
  const i = process.argv.indexOf(name);
  return i >= 0 ? (process.argv[i + 1] ?? "") : (process.env[env] ?? "");
}

async function main(): Promise<number> {
  const [centerAddr, sellerAddr] = process.argv.slice(2).filter((a, i, all) => !a.startsWith("--") && !(all[i - 1] ?? "").startsWith("--"));
  if (!centerAddr || !sellerAddr) {
    process.stderr.write("usage: node --import=tsx interop/grpcjs-pay.ts CENTER_HOST:PORT SELLER_HOST:PORT [--answer A] [--item ID]\n");
    return 2;
  }
  const answer = arg("--answer", "SCRIPWIRE_QUIZ_ANSWER");
  const itemArg = arg("--item", "SCRIPWIRE_EARN_ITEM");

  const def = protoLoader.loadSync(["scripwire/v1/center.proto", "scripwire/v1/seller.proto"], {
    includeDirs: [join(ROOT, "proto")],
    keepCase: false,
    longs: String,
    enums: Number,
    bytes: Buffer,
    defaults: true,
    oneofs: true,
  });
  const pkg = grpc.loadPackageDefinition(def) as any;
  const creds = grpc.credentials.createInsecure();
  const center: grpc.Client = new pkg.scripwire.v1.PaymentCenterService(centerAddr, creds);
  const seller: grpc.Client = new pkg.scripwire.v1.SellerService(sellerAddr, creds);

  try {
    const info = await unary(center, "getCenterInfo", "info", {});
    need(info.publicKey?.length === 32, "info: public_key is not 32 bytes");
    log("info", `grpc-js -> ${centerAddr}: center ${info.center.dnsName}:${info.center.port}, algorithms ${info.acceptedHashAlgorithms}`);

    // R1 -> R2
    const walletId = randomBytes(16).toString("hex");
    const ks = new Uint8Array(randomBytes(32));
    const reg = await unary(center, "register", "R1", {
      header: hdr(CMD.UM1),
      walletId,
      name: "grpc-js interop",
      sealedSessionKey: Buffer.from(sealSessionKey(new Uint8Array(info.publicKey), walletId, ks)),
    });
    expectCmd("R2", reg, CMD.UM2);
    let scrip: Obj = reg.scrip;
    const cid = scrip.scrip.customId;
    const cs = decryptCustomSecret(ks, walletId, { secretId: cid.secretId, serialNumber: BigInt(cid.serialNumber) }, new Uint8Array(reg.encryptedCustomSecret));
    log("R2", `UM2 custom_id=${cid.secretId}/${cid.serialNumber}; Custom_Secret decrypted`);

    // catalog
    const cat = await unary(seller, "getCatalog", "catalog", {});
    const items: Obj[] = cat.campaignItems;
    const item = itemArg
      ? items.find((i) => i.itemId === itemArg)
      : answer
        ? items.find((i) => i.kind === 3)
        : items.find((i) => i.kind === 1);
    need(item, "catalog: no campaign item to earn with");
    log("catalog", `${cat.entries.length} entries, earning with ${item.itemId}`);

    // M1 -> M2 -> M3 -> M4 -> M5 -> M6 -> M7
    const m2 = await unary(seller, "requestIssue", "M1", { header: hdr(CMD.GM1_1), item: item.itemId, value: item.kind === 3 ? answer : "read", customId: cid });
    expectCmd("M2", m2, CMD.GM2_1);
    const permit = m2.permit;
    const tran: string = permit.tranId;
    log("M2", `GM2_1 permit tran_id=${tran} amount=${permit.amount}`);
    const m3 = await unary(center, "initIssue", "M3", { header: hdr(CMD.GM3_1), permit });
    expectCmd("M3", m3, CMD.GM3_1);
    const m5 = await unary(center, "issue", "M4", { header: hdr(CMD.GM4_1), tranId: tran, scrip, scripHash: hash(cs, "GM4_1", tran, 0, scrip), pCount: 0 });
    expectCmd("M5", m5, CMD.GM5_1);
    need(verify(cs, "GM5_1", tran, 0, m5.newScrip, m5.newScripHash), "M5: new_scrip_hash does not verify");
    need(big(m5.newScrip.scrip.value) === big(scrip.scrip.value) + big(permit.amount), "M5: wrong value");
    log("M5", `GM5_1 new scrip value=${m5.newScrip.scrip.value}; hash verified`);
    const m7 = await unary(center, "confirmIssue", "M6", { header: hdr(CMD.GM6_1), tranId: tran, newScrip: m5.newScrip, newScripHash: hash(cs, "GM6_1", tran, 0, m5.newScrip), pCount: 0 });
    expectCmd("M7", m7, CMD.GM7_1);
    need(m7.state === 3, `M7: state ${m7.state}`);
    scrip = m7.scrip;
    log("M7", `GM7_1 CONFIRMED balance=${scrip.scrip.value}`);

    // S1 -> S2 -> S3 -> S4 -> S5 -> S6 -> S7
    const entry = (cat.entries as Obj[]).find((e) => big(e.price) <= big(scrip.scrip.value) && e.currency === scrip.scrip.currency);
    need(entry, "catalog: nothing affordable");
    const method: number = (entry.deliveryMethods as number[]).includes(1) ? 1 : entry.deliveryMethods[0];
    const s2 = await unary(seller, "requestService", "S1", { header: hdr(CMD.PM1_1), requestUrl: entry.requestUrl, pMethod: method, customId: cid });
    expectCmd("S2", s2, CMD.PM2_1);
    const order = s2.order;
    const ptran: string = order.tranId;
    log("S2", `PM2_1 pOder tran_id=${ptran} price=${order.amount}`);
    const s3 = await unary(center, "initPayment", "S3", { header: hdr(CMD.PM3_1), order });
    expectCmd("S3", s3, CMD.PM3_1);

    // Tamper: value changed, hash recomputed with the real Custom_Secret. PM5_2 is a normal response,
    // not an RPC error (the Python client covers the tamper cases in depth; this proves grpc-js decodes it).
    const bad = structuredClone(scrip);
    bad.scrip.value = String(big(bad.scrip.value) + 5n);
    const t = await unary(center, "pay", "S4-tamper", { header: hdr(CMD.PM4_1), scrip: bad, order, hash: hash(cs, "PM4_1", ptran, 0, bad, order), pCount: 0 });
    expectCmd("S4-tamper", t, CMD.PM5_2);
    log("S4-tamper", `tampered value -> PM5_2 (${t.header.errorReason})`);

    const s5 = await unary(center, "pay", "S4", { header: hdr(CMD.PM4_1), scrip, order, hash: hash(cs, "PM4_1", ptran, 0, scrip, order), pCount: 0 });
    expectCmd("S5", s5, CMD.PM5_1);
    need(verify(cs, "PM5_1", ptran, 0, s5.newScrip, s5.newScripHash), "S5: new_scrip_hash does not verify");
    need(big(s5.newScrip.scrip.value) === big(scrip.scrip.value) - big(order.amount), "S5: wrong change");
    log("S5", `PM5_1 change value=${s5.newScrip.scrip.value}; hash verified`);
    const s6 = await unary(center, "confirmPayment", "S6", { header: hdr(CMD.PM6_1), tranId: ptran, newScrip: s5.newScrip, newScripHash: hash(cs, "PM6_1", ptran, 0, s5.newScrip), pCount: 0 });
    expectCmd("S6", s6, CMD.PM7_1);
    need(s6.state === 3 && s6.receipt?.mac?.length === 32, "S6: no confirmed receipt");
    log("S6", `PM7_1 CONFIRMED receipt price=${s6.receipt.price}`);
    const d = await unary(seller, "deliver", "S7", { header: hdr(CMD.PM8_1), receipt: s6.receipt });
    expectCmd("S7", d, CMD.PM8_1);
    need(d.content?.length > 0, "S7: empty content");
    log("S7", `PM8_1 delivered ${d.content.length} bytes (${d.contentType})`);
    process.stdout.write(`grpcjs-pay: all steps passed (content length ${d.content.length})\n`);
    return 0;
  } catch (e) {
    process.stdout.write(`FAIL: ${e instanceof Error ? e.message : String(e)}\n`);
    return 1;
  } finally {
    center.close();
    seller.close();
  }
}

main().then(
  (code) => process.exit(code),
  (e) => {
    process.stderr.write(`grpcjs-pay: ${String(e)}\n`);
    process.exit(1);
  },
);
