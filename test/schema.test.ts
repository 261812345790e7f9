/**
 * The schema against the patent (KR 10-0284579 Tables 1-15) and the
 * toolchain: every cmdType code and every patent message field exists in the
 * generated descriptors, the hashed messages still have exactly the fields
 * docs/canonical-encoding.md encodes, `buf lint` is clean and `buf generate`
 * reproduces gen/ byte for byte.
 */
import test from "ava";
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { ScalarType, type DescField, type DescFile, type DescMessage } from "@bufbuild/protobuf";
import {
  CmdType,
  CmdTypeSchema,
  HeaderTypeSchema,
  IdTypeSchema,
  OfferSchema,
  ReceiptSchema,
  ScripBodyTypeSchema,
  ScripTypeSchema,
  ServerTypeSchema,
  file_scripwire_v1_types,
} from "../gen/scripwire/v1/types_pb.js";
import {
  ConfirmIssueRequestSchema,
  ConfirmIssueResponseSchema,
  ConfirmPaymentRequestSchema,
  ConfirmPaymentResponseSchema,
  InitIssueRequestSchema,
  InitIssueResponseSchema,
  InitPaymentRequestSchema,
  InitPaymentResponseSchema,
  IssueRequestSchema,
  IssueResponseSchema,
  PayRequestSchema,
  PayResponseSchema,
  PaymentCenterService,
  RedeemRequestSchema,
  RegisterRequestSchema,
  RegisterResponseSchema,
  RenewRequestSchema,
  file_scripwire_v1_center,
} from "../gen/scripwire/v1/center_pb.js";
import {
  DeliverRequestSchema,
  DeliverResponseSchema,
  RequestIssueRequestSchema,
  RequestIssueResponseSchema,
  RequestServiceRequestSchema,
  RequestServiceResponseSchema,
  SellerService,
  file_scripwire_v1_seller,
} from "../gen/scripwire/v1/seller_pb.js";
import { file_scripwire_v1_admin } from "../gen/scripwire/v1/admin_pb.js";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const BUF = join(ROOT, "node_modules", ".bin", "buf");

// ------------------------------------------------------------ cmdType codes

/** Every code the patent's tables name, plus GM7_1 for M7. */
const PATENT_CODES = [
  "UM1", "UM2",
  "GM1_1", "GM2_1", "GM2_2", "GM3_1", "GM4_1", "GM4_2",
  "GM5_1", "GM5_2", "GM5_3", "GM5_4", "GM6_1", "GM6_2", "GM6_3", "GM7_1",
  "PM1_1", "PM2_1", "PM2_2", "PM3_1", "PM4_1", "PM4_2",
  "PM5_1", "PM5_2", "PM5_3", "PM6_1", "PM6_2", "PM6_3",
];

test("every patent cmdType code exists in the generated CmdType enum", (t) => {
  const byName = new Map(CmdTypeSchema.values.map((v) => [v.name, v.number]));
  const missing = PATENT_CODES.filter((code) => !byName.has(`CMD_TYPE_${code}`));
  t.deepEqual(missing, [], "codes missing from proto CmdType");
  const enumObj = CmdType as unknown as Record<string, number>;
  for (const code of PATENT_CODES) {
    t.is(typeof enumObj[code], "number", `CmdType.${code} in generated TypeScript`);
    t.is(enumObj[code], byName.get(`CMD_TYPE_${code}`) ?? -1, `CmdType.${code} value`);
  }
  const numbers = CmdTypeSchema.values.map((v) => v.number);
  t.is(new Set(numbers).size, numbers.length, "CmdType numbers are unique");
  t.is(CmdTypeSchema.values[0]!.name, "CMD_TYPE_UNSPECIFIED");
  t.is(CmdTypeSchema.values[0]!.number, 0);
});

// ---------------------------------------------------------- patent fields

function fieldType(f: DescField): string {
  switch (f.fieldKind) {
    case "scalar":
      return ScalarType[f.scalar].toLowerCase();
    case "enum":
      return f.enum.typeName;
    case "message":
      return f.message.typeName;
    case "list":
      return `repeated ${f.listKind === "scalar" ? ScalarType[f.scalar].toLowerCase() : f.listKind === "enum" ? f.enum.typeName : f.message.typeName}`;
    case "map":
      return "map";
  }
}

const S = "string";
const B = "bytes";
const U32 = "uint32";
const I64 = "int64";
const U64 = "uint64";
const HEADER = "scripwire.v1.HeaderType";
const SCRIP = "scripwire.v1.ScripType";
const OFFER = "scripwire.v1.Offer";
const RECEIPT = "scripwire.v1.Receipt";
const SERVER = "scripwire.v1.ServerType";
const ID = "scripwire.v1.IdType";
const DELIVERY = "scripwire.v1.DeliveryMethod";

/** Patent table -> message -> the fields it must have (proto name: type). */
const PATENT_FIELDS: Array<[string, DescMessage, Record<string, string>]> = [
  ["Table 15 HeaderType", HeaderTypeSchema, { cmd_type: "scripwire.v1.CmdType", protocol_version: S, server_date_unix_ms: I64, error_message: S }],
  ["Table 15 ServerType", ServerTypeSchema, { dns_name: S, ip_addr: S, server_name: S, port: U32 }],
  ["Table 15 IdType", IdTypeSchema, { secret_id: U32, serial_number: U64 }],
  [
    "Table 15 ScripBodyType",
    ScripBodyTypeSchema,
    { currency: S, value: I64, vendor_id: SERVER, scrip_id: ID, custom_id: ID, ad: S, expiration_date_unix: I64 },
  ],
  ["Table 15 ScripType", ScripTypeSchema, { hash_algorithm: "scripwire.v1.HashAlgorithm", scrip: "scripwire.v1.ScripBodyType", certificate: B }],
  [
    "Table 1 R1 (UM1)",
    RegisterRequestSchema,
    { header: HEADER, wallet_id: S, name: S, address: S, email: S, etc: S, sealed_session_key: B },
  ],
  ["Table 2 R2 (UM2)", RegisterResponseSchema, { header: HEADER, scrip: SCRIP, encrypted_custom_secret: B }],
  ["Table 3 M1 (GM1_1)", RequestIssueRequestSchema, { header: HEADER, item: S, value: S }],
  ["Table 4 M2 (GM2_1/GM2_2)", RequestIssueResponseSchema, { header: HEADER, permit: OFFER, html_document: S }],
  [
    "Tables 4/10 permit and pOder",
    OfferSchema,
    { vendor: SERVER, vendor_id: S, tran_id: S, amount: I64, currency: S, item: S, delivery_method: DELIVERY, custom_id: ID, mac: B },
  ],
  ["Table 5 M3 (GM3_1)", InitIssueRequestSchema, { header: HEADER, permit: OFFER }],
  ["Table 5 M3 reply", InitIssueResponseSchema, { header: HEADER, tran_id: S }],
  ["Table 6 M4 (GM4_1/GM4_2)", IssueRequestSchema, { header: HEADER, tran_id: S, scrip: SCRIP, scrip_hash: B, p_count: U32 }],
  [
    "Table 7 M5 (GM5_1..GM5_4)",
    IssueResponseSchema,
    { header: HEADER, tran_id: S, new_scrip: SCRIP, new_scrip_hash: B, scrip: SCRIP, scrip_hash: B, p_count: U32 },
  ],
  ["Table 8 M6 (GM6_1..GM6_3)", ConfirmIssueRequestSchema, { header: HEADER, tran_id: S, new_scrip: SCRIP, new_scrip_hash: B, p_count: U32 }],
  ["M7 (GM7_1)", ConfirmIssueResponseSchema, { header: HEADER, tran_id: S }],
  ["Table 9 S1 (PM1_1)", RequestServiceRequestSchema, { header: HEADER, request_url: S, p_method: DELIVERY }],
  ["Table 10 S2 (PM2_1/PM2_2)", RequestServiceResponseSchema, { header: HEADER, order: OFFER, html_document: S }],
  ["Table 11 S3 (PM3_1)", InitPaymentRequestSchema, { header: HEADER, order: OFFER }],
  ["Table 11 S3 reply", InitPaymentResponseSchema, { header: HEADER, tran_id: S }],
  ["Table 12 S4 (PM4_1/PM4_2)", PayRequestSchema, { header: HEADER, scrip: SCRIP, order: OFFER, hash: B, p_count: U32 }],
  [
    "Table 13 S5 (PM5_1..PM5_3)",
    PayResponseSchema,
    { header: HEADER, new_scrip: SCRIP, new_scrip_hash: B, scrip: SCRIP, order: OFFER, hash: B, p_count: U32 },
  ],
  ["Table 14 S6 (PM6_1..PM6_3)", ConfirmPaymentRequestSchema, { header: HEADER, tran_id: S, new_scrip: SCRIP, new_scrip_hash: B, p_count: U32 }],
  ["S6 reply (receipt)", ConfirmPaymentResponseSchema, { header: HEADER, tran_id: S, receipt: RECEIPT }],
  [
    "receipt",
    ReceiptSchema,
    { vendor_id: S, tran_id: S, request_url: S, price: I64, currency: S, delivery_method: DELIVERY, custom_id: ID, paid_at_unix: I64, mac: B },
  ],
  ["S7 request", DeliverRequestSchema, { header: HEADER, receipt: RECEIPT }],
  ["S7 service transmission", DeliverResponseSchema, { header: HEADER, delivery_method: DELIVERY, content: B }],
  ["renewal (RN1)", RenewRequestSchema, { header: HEADER, request_id: S, scrip: SCRIP, scrip_hash: B, p_count: U32 }],
  [
    "redemption (RD1)",
    RedeemRequestSchema,
    { header: HEADER, request_id: S, scrip: SCRIP, scrip_hash: B, amount: I64, payout_account: S, p_count: U32 },
  ],
];

for (const [table, desc, fields] of PATENT_FIELDS) {
  test(`patent fields: ${table} -> ${desc.typeName}`, (t) => {
    const have = new Map(desc.fields.map((f) => [f.name, fieldType(f)]));
    const problems: string[] = [];
    for (const [name, type] of Object.entries(fields)) {
      if (!have.has(name)) problems.push(`missing field ${name} (${type})`);
      else if (have.get(name) !== type) problems.push(`${name} is ${have.get(name)}, expected ${type}`);
    }
    t.deepEqual(problems, []);
  });
}

test("patent message flows map onto the RPCs", (t) => {
  const rpc = (svc: typeof PaymentCenterService | typeof SellerService, name: string) => {
    const m = svc.methods.find((x) => x.name === name);
    return m ? `${m.input.typeName} -> ${m.output.typeName}` : "missing";
  };
  t.is(rpc(PaymentCenterService, "Register"), "scripwire.v1.RegisterRequest -> scripwire.v1.RegisterResponse"); // R1 -> R2
  t.is(rpc(SellerService, "RequestIssue"), "scripwire.v1.RequestIssueRequest -> scripwire.v1.RequestIssueResponse"); // M1 -> M2
  t.is(rpc(PaymentCenterService, "InitIssue"), "scripwire.v1.InitIssueRequest -> scripwire.v1.InitIssueResponse"); // M3
  t.is(rpc(PaymentCenterService, "Issue"), "scripwire.v1.IssueRequest -> scripwire.v1.IssueResponse"); // M4 -> M5
  t.is(rpc(PaymentCenterService, "ConfirmIssue"), "scripwire.v1.ConfirmIssueRequest -> scripwire.v1.ConfirmIssueResponse"); // M6 -> M7
  t.is(rpc(SellerService, "RequestService"), "scripwire.v1.RequestServiceRequest -> scripwire.v1.RequestServiceResponse"); // S1 -> S2
  t.is(rpc(PaymentCenterService, "InitPayment"), "scripwire.v1.InitPaymentRequest -> scripwire.v1.InitPaymentResponse"); // S3
  t.is(rpc(PaymentCenterService, "Pay"), "scripwire.v1.PayRequest -> scripwire.v1.PayResponse"); // S4 -> S5
  t.is(rpc(PaymentCenterService, "ConfirmPayment"), "scripwire.v1.ConfirmPaymentRequest -> scripwire.v1.ConfirmPaymentResponse"); // S6
  t.is(rpc(SellerService, "Deliver"), "scripwire.v1.DeliverRequest -> scripwire.v1.DeliverResponse"); // S7
});

// ---------------------------------------------- what the canonical encoder covers

/**
 * The exact fields, in encoding order, that docs/canonical-encoding.md §2 and
 * src/crypto/canonical.ts encode. A new proto field fails here until the
 * encoder, the doc and the vectors cover it (a protocol version change).
 */
const CANONICAL: Array<[DescMessage, string[]]> = [
  [ServerTypeSchema, ["dns_name", "ip_addr", "server_name", "port"]],
  [IdTypeSchema, ["secret_id", "serial_number"]],
  [ScripBodyTypeSchema, ["currency", "value", "vendor_id", "scrip_id", "custom_id", "ad", "expiration_date_unix"]],
  [ScripTypeSchema, ["hash_algorithm", "scrip", "certificate"]],
  [
    OfferSchema,
    [
      "vendor", "vendor_id", "tran_id", "kind", "amount", "currency", "item", "campaign_id",
      "delivery_method", "custom_id", "expires_at_unix", "vendor_key_id", "hash_algorithm", "mac",
    ],
  ],
  [
    ReceiptSchema,
    [
      "vendor_id", "tran_id", "request_url", "price", "currency", "delivery_method", "custom_id",
      "paid_at_unix", "vendor_key_id", "hash_algorithm", "mac",
    ],
  ],
];

test("hashed messages have exactly the fields the canonical encoding covers, numbered 1..n in order", (t) => {
  for (const [desc, names] of CANONICAL) {
    const sorted = [...desc.fields].sort((a, b) => a.number - b.number);
    t.deepEqual(
      sorted.map((f) => f.name),
      names,
      `${desc.typeName}: update src/crypto/canonical.ts, docs/canonical-encoding.md and the vectors together`,
    );
    t.deepEqual(
      sorted.map((f) => f.number),
      names.map((_, i) => i + 1),
      `${desc.typeName} field numbers`,
    );
    for (const f of desc.fields) {
      t.true(f.fieldKind !== "list" && f.fieldKind !== "map", `${desc.typeName}.${f.name} is singular`);
    }
  }
});

test("money is never a float: no float or double field anywhere in scripwire.v1", (t) => {
  const bad: string[] = [];
  const visit = (m: DescMessage) => {
    for (const f of m.fields) {
      const scalar = f.fieldKind === "scalar" || (f.fieldKind === "list" && f.listKind === "scalar") ? f.scalar : undefined;
      if (scalar === ScalarType.FLOAT || scalar === ScalarType.DOUBLE) bad.push(`${m.typeName}.${f.name}`);
    }
    m.nestedMessages.forEach(visit);
  };
  const files: DescFile[] = [file_scripwire_v1_types, file_scripwire_v1_center, file_scripwire_v1_seller, file_scripwire_v1_admin];
  files.forEach((f) => f.messages.forEach(visit));
  t.deepEqual(bad, []);
});

// ----------------------------------------------------------------- buf

/** Runs the project's buf (async, so other tests keep running meanwhile). */
function buf(args: string[]): Promise<{ status: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(BUF, args, { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"], timeout: 60_000 });
    let output = "";
    child.stdout.on("data", (d: Buffer) => (output += d.toString()));
    child.stderr.on("data", (d: Buffer) => (output += d.toString()));
    child.on("error", reject);
    child.on("close", (status) => resolve({ status, output }));
  });
}

test("buf lint exits 0", async (t) => {
  const r = await buf(["lint"]);
  t.is(r.status, 0, `buf lint:\n${r.output}`);
});

function listFiles(dir: string): string[] {
  if (!existsSync(dir)) return [];
  const out: string[] = [];
  const walk = (d: string) => {
    for (const name of readdirSync(d)) {
      const p = join(d, name);
      if (statSync(p).isDirectory()) walk(p);
      else out.push(relative(dir, p));
    }
  };
  walk(dir);
  return out.sort();
}

test("buf generate reproduces gen/ byte for byte", async (t) => {
  const tmp = mkdtempSync(join(tmpdir(), "scripwire-gen-"));
  try {
    const out = join(tmp, "out");
    // Same plugins and options as buf.gen.yaml; only the output directory moves.
    const template = readFileSync(join(ROOT, "buf.gen.yaml"), "utf8");
    let replaced = 0;
    const moved = template.replace(/^(\s*(?:-\s*)?out:\s*)gen((?:\/\S*)?)\s*$/gm, (_m, head: string, rest: string) => {
      replaced++;
      return `${head}${JSON.stringify(out + rest)}`;
    });
    t.true(replaced > 0, "buf.gen.yaml has an `out: gen` to redirect");
    const templatePath = join(tmp, "buf.gen.yaml");
    writeFileSync(templatePath, moved);
    const r = await buf(["generate", "--template", templatePath]);
    t.is(r.status, 0, `buf generate:\n${r.output}`);

    const dirs = new Set(["scripwire", ...listFiles(out).map((f) => f.split(/[\\/]/)[0]!)]);
    if (existsSync(join(ROOT, "gen", "grpc"))) dirs.add("grpc");
    const differing: string[] = [];
    let compared = 0;
    for (const dir of [...dirs].sort()) {
      const committed = listFiles(join(ROOT, "gen", dir));
      const fresh = listFiles(join(out, dir));
      for (const f of new Set([...committed, ...fresh])) {
        const a = join(ROOT, "gen", dir, f);
        const b = join(out, dir, f);
        if (!committed.includes(f)) differing.push(`gen/${dir}/${f} (missing from gen/: run buf generate)`);
        else if (!fresh.includes(f)) differing.push(`gen/${dir}/${f} (not produced by buf generate: stale?)`);
        else if (!readFileSync(a).equals(readFileSync(b))) differing.push(`gen/${dir}/${f} (content differs)`);
        compared++;
      }
    }
    t.true(compared > 0, "some generated files were compared");
    t.deepEqual(differing, [], "files under gen/ that `buf generate` does not reproduce");
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
});
