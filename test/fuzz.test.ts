/**
 * Fuzz suite: the center and the seller against hostile input, with fixed
 * seeds (printed; SCRIPWIRE_FUZZ_SEED replays another) and a size that
 * SCRIPWIRE_FUZZ_RUNS scales (a multiplier; default 1 = the CI quick mode,
 * ~100 000 inputs in about a minute and a half on 2 cores).
 *
 *   (a) wire: raw bytes POSTed over HTTP/2 to every RPC of both services
 *       (and admin and health) in Connect, gRPC and gRPC-Web framing, with
 *       lying length prefixes and messages above the 1 MiB limit. The servers
 *       must answer every one with a status, never INTERNAL, and keep serving.
 *   (b) structured: valid requests from a real flow, one field mutated (bit
 *       flips in certificates, hashes and MACs, boundary integers, hostile
 *       strings, dropped sub-messages), re-signed as a cheating customer
 *       would. No altered scrip, offer or receipt may ever be accepted, and
 *       not one transfer may appear in the ledger. The bulk runs in process
 *       (the Connect ServiceImpl directly, and through createRouterTransport);
 *       a sample runs over real sockets, Connect and gRPC.
 *   (c) random call orders on one customer: refusals, never crashes, and the
 *       value of every success adds up.
 *
 * Bugs found and not fixable from the test suite are pinned by `test.failing`
 * tests named "[finding Fn]": they pass while the bug is there and fail (so
 * the `.failing` can be removed) once it is fixed.
 */
import { create, toBinary, type DescMessage, type DescMethod, type DescService } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, createRouterTransport, type Transport } from "@connectrpc/connect";
import test, { type ExecutionContext } from "ava";
import Database from "better-sqlite3";
import fc from "fast-check";
import { join } from "node:path";
import { CenterAdminService } from "../gen/scripwire/v1/admin_pb.js";
import { PaymentCenterService, TransactionState } from "../gen/scripwire/v1/center_pb.js";
import { Health } from "../gen/grpc/health/v1/health_pb.js";
import { DeliverRequestSchema, SellerService } from "../gen/scripwire/v1/seller_pb.js";
import { CmdType, HeaderTypeSchema, type DeliveryMethod } from "../gen/scripwire/v1/types_pb.js";
import { paymentCenterService } from "../src/center/service.js";
import { errorReason } from "../src/server/errors.js";
import { sellerService } from "../src/seller/service.js";
import { inprocWorld, QUIZ } from "./helpers/inproc.js";
import { RawCustomer, tamper } from "./helpers/raw.js";
import { realWorld } from "./helpers/real.js";
import { createDirectTransport } from "./fuzz/direct.js";
import { actionArb, runSequence, type OrdersContext } from "./fuzz/orders.js";
import { newStats, runStructured, type FuzzStats } from "./fuzz/structured.js";
import { RawH2, envelope, type WireAnswer } from "./fuzz/wire.js";
import { MAX_MESSAGE_BYTES, wireInput } from "./fuzz/wire-inputs.js";
import { buildFuzzWorld } from "./fuzz/world.js";
import { Prng } from "./torture/prng.js";

process.env.SCRIPWIRE_LOG ??= "silent";

const SCALE = Number(process.env.SCRIPWIRE_FUZZ_RUNS ?? "1");
const SEED = Number(process.env.SCRIPWIRE_FUZZ_SEED ?? "20261126") >>> 0;
const N = {
  wire: Math.round(6_000 * SCALE),
  direct: Math.round(76_000 * SCALE),
  router: Math.round(5_000 * SCALE),
  real: Math.round(1_500 * SCALE),
  sequences: Math.round(1_200 * SCALE),
};
/** A center whose redemption threshold (10) the fuzz templates can reach. */
const CONFIG = { config: { redeemThreshold: { KRW: 10n, USD: 10n } }, budget: 1_000_000n };
const totals = { inputs: 0, started: Date.now() };

test.before(() => {
  process.stdout.write(`fuzz: seed=${SEED} runs=x${SCALE} (replay: SCRIPWIRE_FUZZ_SEED=${SEED} SCRIPWIRE_FUZZ_RUNS=${SCALE} npx ava test/fuzz.test.ts)\n`);
});

test.after.always(() => {
  process.stdout.write(`fuzz: ${totals.inputs} inputs in ${((Date.now() - totals.started) / 1000).toFixed(1)}s, seed=${SEED}\n`);
});

/** Input seeds from fast-check's generator, so one printed seed fixes every input. */
function seeds(n: number, salt: number): number[] {
  if (n <= 0) return [];
  return fc.sample(fc.integer({ min: 0, max: 0x7fffffff }), { seed: (SEED ^ salt) | 0, numRuns: n });
}

function report(t: ExecutionContext, label: string, s: FuzzStats): void {
  totals.inputs += s.inputs;
  const top = [...s.refusals].sort((a, b) => b[1] - a[1]).slice(0, 12).map(([k, v]) => `${k}=${v}`).join(" ");
  t.log(`${label}: ${s.inputs} inputs (${s.unsendable} unsendable skipped); refusals: ${top}`);
  if (s.known.size) t.log(`${label}: known findings hit: ${[...s.known].map(([k, v]) => `${k}=${v}`).join(" ")}`);
  t.deepEqual(s.failures, [], `${label}: violations (seed ${SEED})`);
}

function amounts(w: { seller: { config: { campaignItems: { itemId: string; reward: bigint }[]; catalog: { requestUrl: string; price: bigint }[] } } }) {
  const m = new Map<string, bigint>();
  for (const i of w.seller.config.campaignItems) m.set(i.itemId, i.reward);
  for (const c of w.seller.config.catalog) m.set(c.requestUrl, c.price);
  return m;
}

// ---------------------------------------------------------------- (a) wire

/** Codes a malformed call may get. INTERNAL, UNKNOWN, no status at all, or a dropped stream are failures. */
const WIRE_OK = new Set(["ok", "invalid_argument", "resource_exhausted", "unauthenticated", "failed_precondition", "not_found", "permission_denied", "already_exists", "out_of_range", "unsupported_media_type"]);

/** Wire answers that are reported findings in code outside the test suite (see docs/reliability.md). */
const WIRE_KNOWN: { id: string; test: (a: WireAnswer) => boolean }[] = [
  { id: "F1 (parse error is INTERNAL)", test: (a) => a.code === "internal" && /^parse binary:/.test(a.message) },
  { id: "F1 (compressed flag without encoding is INTERNAL)", test: (a) => a.code === "internal" && /compressed envelope/.test(a.message) },
  { id: "F1 (truncated compressed body is INTERNAL)", test: (a) => a.code === "internal" && /^decompression failed/.test(a.message) },
];

function wireVerdict(a: WireAnswer, expect: string | undefined): { ok: boolean; known?: string } {
  if (expect && a.code !== expect) return { ok: false };
  // UNIMPLEMENTED is what gRPC specifies for an unsupported grpc-encoding; Connect uses it for a unary call with zero or two messages.
  if (a.code === "unimplemented") return { ok: /protocol error|unknown compression/.test(a.message) };
  if (WIRE_OK.has(a.code)) return { ok: true };
  const k = WIRE_KNOWN.find((x) => x.test(a));
  return k ? { ok: true, known: k.id } : { ok: false };
}

test.serial("(a) wire: malformed, truncated, random and oversized bytes on every RPC in Connect, gRPC and gRPC-Web framing", async (t) => {
  const w = await realWorld(CONFIG);
  t.teardown(() => w.close());
  const tr = { center: w.centerTransport, seller: w.sellerTransport };
  const fw = await buildFuzzWorld(new Prng(SEED), tr, { vendorId: w.vendorId, secret: w.secret });
  const bases = new Map<string, Uint8Array[]>();
  for (const tm of fw.templates) {
    if (tm.live) continue;
    const path = `/${tm.method.parent.typeName}/${tm.method.name}`;
    bases.set(path, [...(bases.get(path) ?? []), toBinary(tm.method.input as DescMessage, tm.request as never)]);
  }
  const services: DescService[] = [PaymentCenterService, SellerService, CenterAdminService, Health];
  const targets: { method: DescMethod; path: string; server: "center" | "seller" }[] = [];
  for (const svc of services) {
    for (const m of svc.methods) {
      if (m.methodKind === "bidi_streaming" || (svc === Health && m.name === "Watch")) continue; // endless by design
      targets.push({ method: m, path: `/${svc.typeName}/${m.name}`, server: svc === SellerService ? "seller" : "center" });
    }
  }
  // The seller also serves health.
  targets.push({ method: Health.method.check, path: `/grpc.health.v1.Health/Check`, server: "seller" });
  const raw = { center: new RawH2(w.centerServer.url), seller: new RawH2(w.sellerServer.url) };
  t.teardown(() => {
    raw.center.close();
    raw.seller.close();
  });
  const db = new Database(join(w.dir, "center.sqlite"), { readonly: true });
  t.teardown(() => db.close());
  db.defaultSafeIntegers(true);
  const transfers = () => (db.prepare(`SELECT COALESCE(MAX(transfer_id), 0) AS v FROM transfers`).get() as { v: bigint }).v;
  const before = transfers();
  const centerClient = createClient(PaymentCenterService, w.centerTransport);
  const sellerClient = createClient(SellerService, w.sellerTransport);
  const health = createClient(Health, w.centerTransport);

  const codes = new Map<string, number>();
  const known = new Map<string, number>();
  const failures: string[] = [];
  const perPath = new Map<string, number>();
  const inputSeeds = seeds(N.wire, 0xa);
  const BATCH = 300;
  for (let i = 0; i < inputSeeds.length; i += BATCH) {
    const batch = inputSeeds.slice(i, i + BATCH);
    let next = 0;
    await Promise.all(
      Array.from({ length: 12 }, async () => {
        while (next < batch.length) {
          const seed = batch[next++]!;
          const rng = new Prng(seed);
          const target = rng.pick(targets);
          const input = wireInput(rng, target.method, target.path, bases.get(target.path) ?? []);
          const a = await raw[target.server].post(input.path, input.framing, input.body, input.headers);
          codes.set(a.code, (codes.get(a.code) ?? 0) + 1);
          perPath.set(target.path, (perPath.get(target.path) ?? 0) + 1);
          const v = wireVerdict(a, input.expect);
          if (v.known) known.set(v.known, (known.get(v.known) ?? 0) + 1);
          if (!v.ok && failures.length < 30) {
            failures.push(`[input seed ${seed}] ${target.server} ${input.path} ${input.framing} ${input.kind} (${input.body.length} bytes): ` +
              `${a.code}${input.expect ? ` (expected ${input.expect})` : ""} http ${a.http} ${a.reset ?? ""} ${a.message.slice(0, 160)}`);
          }
        }
      }),
    );
    totals.inputs += batch.length;
    // After every batch both servers still serve, and no value moved.
    const info = await centerClient.getCenterInfo({});
    t.is(info.publicKey.length, 32);
    t.true((await sellerClient.getCatalog({})).entries.length > 0);
    t.is((await health.check({ service: "" })).status, 1, "center health: SERVING");
    t.is(transfers(), before, "no transfer appeared");
  }
  t.is(perPath.size, targets.length > 0 ? new Set(targets.map((x) => x.path)).size : 0, "every RPC path got inputs");
  t.log(`wire: ${inputSeeds.length} inputs over ${perPath.size} RPC paths; answers: ${[...codes].map(([k, v]) => `${k}=${v}`).join(" ")}`);
  if (known.size) t.log(`wire: known findings: ${[...known].map(([k, v]) => `${k}=${v}`).join(" ")}`);
  if (raw.center.halfOpen + raw.seller.halfOpen) t.log(`wire: ${raw.center.halfOpen + raw.seller.halfOpen} answered streams the server left half-open (finding F4)`);
  t.deepEqual(failures, [], `wire violations (seed ${SEED})`);
  t.true((await w.ledger.audit()).ok, "audit after the wire fuzz");
});

test.serial("(a) wire: messages above the 1 MiB limit are RESOURCE_EXHAUSTED in every framing, and the server keeps serving", async (t) => {
  const w = await realWorld(CONFIG);
  t.teardown(() => w.close());
  const h = new RawH2(w.centerServer.url);
  t.teardown(() => h.close());
  const big = new Uint8Array(MAX_MESSAGE_BYTES + 1);
  const path = "/scripwire.v1.PaymentCenterService/Pay";
  const answers = {
    connect: await h.post(path, "connect", big),
    grpc: await h.post(path, "grpc", envelope(big)),
    "grpc-web": await h.post(path, "grpc-web", envelope(big)),
    "grpc, lying 4 GiB prefix": await h.post(path, "grpc", envelope(new Uint8Array(10), { length: 0xffffffff })),
    "connect-stream": await h.post("/scripwire.v1.PaymentCenterService/WatchSettlements", "connect-stream", envelope(big)),
  };
  totals.inputs += Object.keys(answers).length;
  for (const [k, a] of Object.entries(answers)) t.is(a.code, "resource_exhausted", `${k}: ${a.code} ${a.message}`);
  const ok = await h.post(path, "connect", new Uint8Array(0));
  t.is(ok.code, "invalid_argument", "the next call on the same connection is served");
  // Exactly at the limit is not too big (it is refused for its content, not its size).
  const atLimit = await h.post(path, "grpc", envelope(new Uint8Array(MAX_MESSAGE_BYTES)));
  t.not(atLimit.code, "resource_exhausted");
});

test.serial("(a) wire: malformed protobuf is INVALID_ARGUMENT, not INTERNAL [finding F1, fixed]", async (t) => {
  const w = await realWorld(CONFIG);
  t.teardown(() => w.close());
  const h = new RawH2(w.centerServer.url);
  t.teardown(() => h.close());
  const garbage = new Uint8Array([0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
  const a = await h.post("/scripwire.v1.PaymentCenterService/Issue", "connect", garbage);
  const b = await h.post("/scripwire.v1.PaymentCenterService/Issue", "grpc", envelope(garbage));
  t.is(a.code, "invalid_argument", `Connect: ${a.code} ${a.message}`);
  t.is(b.code, "invalid_argument", `gRPC: ${b.code} ${b.message}`);
  // The connect-node path (Register is not a fast-path method; gRPC-Web and
  // Connect streaming never take the fast path) answers the same.
  const others = {
    "Register connect": await h.post("/scripwire.v1.PaymentCenterService/Register", "connect", garbage),
    "Register grpc": await h.post("/scripwire.v1.PaymentCenterService/Register", "grpc", envelope(garbage)),
    "Register grpc-web": await h.post("/scripwire.v1.PaymentCenterService/Register", "grpc-web", envelope(garbage)),
    "Issue grpc-web": await h.post("/scripwire.v1.PaymentCenterService/Issue", "grpc-web", envelope(garbage)),
    "WatchSettlements connect-stream": await h.post("/scripwire.v1.PaymentCenterService/WatchSettlements", "connect-stream", envelope(garbage)),
  };
  for (const [k, r] of Object.entries(others)) t.is(r.code, "invalid_argument", `${k}: ${r.code} ${r.message}`);
  // Still serving on the same connection.
  t.is((await h.post("/scripwire.v1.PaymentCenterService/Issue", "connect", new Uint8Array(0))).code, "invalid_argument");
});

// ---------------------------------------------------------------- (b) structured

async function structuredInproc(t: ExecutionContext, via: "direct" | "router", n: number, salt: number) {
  const w = await inprocWorld(CONFIG);
  t.teardown(() => w.close());
  const routes: Array<[DescService, any]> = [
    [PaymentCenterService, paymentCenterService(w.center)],
    [SellerService, sellerService(w.seller)],
  ];
  let center: Transport;
  let seller: Transport;
  if (via === "direct") {
    center = seller = createDirectTransport(routes);
  } else {
    center = createRouterTransport((r) => r.service(PaymentCenterService, routes[0]![1]));
    seller = createRouterTransport((r) => r.service(SellerService, routes[1]![1]));
  }
  const tr = { center, seller };
  const fw = await buildFuzzWorld(new Prng(SEED ^ salt), tr, { vendorId: w.vendorId, secret: w.secret });
  const stats = newStats();
  await runStructured({
    world: fw,
    transports: [tr],
    dbPath: join(w.dir, "center.sqlite"),
    ledger: w.ledger,
    amounts: amounts(w),
    seeds: seeds(n, salt),
    concurrency: 4,
    stats,
    label: `structured/${via}`,
  });
  report(t, `structured/${via}`, stats);
  const audit = await w.ledger.audit();
  t.deepEqual(audit.problems, []);
}

test.serial("(b) structured mutations of every RPC, in process (Connect ServiceImpl): no forgery accepted, no value moved", async (t) => {
  await structuredInproc(t, "direct", N.direct, 0xb1);
});

test.serial("(b) structured mutations of every RPC, in process through createRouterTransport", async (t) => {
  await structuredInproc(t, "router", N.router, 0xb2);
});

test.serial("(b) structured mutations of every RPC over real sockets, Connect and gRPC", async (t) => {
  const w = await realWorld(CONFIG);
  t.teardown(() => w.close());
  const { createTransport } = await import("../src/client/transport.js");
  const connect = { center: w.centerTransport, seller: w.sellerTransport };
  const grpc = { center: createTransport(w.centerServer.url, { protocol: "grpc" }), seller: createTransport(w.sellerServer.url, { protocol: "grpc" }) };
  const fw = await buildFuzzWorld(new Prng(SEED ^ 0xb3), connect, { vendorId: w.vendorId, secret: w.secret });
  const stats = newStats();
  await runStructured({
    world: fw,
    transports: [connect, grpc],
    dbPath: join(w.dir, "center.sqlite"),
    ledger: w.ledger,
    amounts: amounts(w),
    seeds: seeds(N.real, 0xb3),
    concurrency: 8,
    stats,
    label: "structured/real",
  });
  report(t, "structured/real", stats);
  t.true((await w.ledger.audit()).ok);
});

test.serial("(b) an undo (GM6_3 / PM6_3) with an altered scrip is refused and moves nothing [fixed finding F2]", async (t) => {
  const w = await inprocWorld(CONFIG);
  t.teardown(() => w.close());
  const c = new RawCustomer(w.centerTransport, w.sellerTransport);
  await c.register();
  const m2 = await c.m1(QUIZ.itemId, QUIZ.answer);
  await c.m3(m2.permit!);
  const m5 = await c.m4(m2.permit!.tranId);
  t.is(m5.header?.cmdType, CmdType.GM5_1);
  const forged = tamper(m5.newScrip!, (s) => {
    s.scrip!.vendorId!.dnsName = "evil.example"; // a foreign issuer; the certificate no longer verifies either
  });
  const before = (await w.ledger.listCampaigns())[0]!.budget;
  const undo = c.m6(m2.permit!.tranId, forged, CmdType.GM6_3);
  const e = await t.throwsAsync(undo);
  t.true(e instanceof ConnectError && e.code === Code.FailedPrecondition, `GM6_3: expected FAILED_PRECONDITION, got ${e}`);
  t.is((await w.ledger.listCampaigns())[0]!.budget, before, "the reward stayed with the customer");
  // The same for a payment: PM6_3 with a change scrip whose certificate was altered.
  c.scrip = (await c.m4(m2.permit!.tranId)).newScrip!;
  const o = (await c.s1("/articles/both")).order!;
  await c.s3(o);
  const s5 = await c.s4(o);
  const bad = tamper(s5.newScrip!, (s) => void (s.certificate[0]! ^= 1));
  const e2 = await t.throwsAsync(c.s6(o.tranId, bad, CmdType.PM6_3));
  t.true(e2 instanceof ConnectError && e2.code === Code.FailedPrecondition, `PM6_3: expected FAILED_PRECONDITION, got ${e2}`);
});

test.serial("(b) the seller answers a receipt with a negative enum with INVALID_ARGUMENT, not INTERNAL [fixed finding F3]", async (t) => {
  const w = await inprocWorld(CONFIG);
  t.teardown(() => w.close());
  const seller = createClient(SellerService, w.sellerTransport);
  const c = new RawCustomer(w.centerTransport, w.sellerTransport);
  await c.register();
  await c.earn(QUIZ.itemId, QUIZ.answer);
  const receipt = await c.buy("/articles/hash-cash");
  const bad = create(DeliverRequestSchema, { header: create(HeaderTypeSchema, { cmdType: CmdType.PM8_1, protocolVersion: "scripwire/1" }), receipt: { ...receipt, deliveryMethod: -1 as DeliveryMethod } });
  const e = await t.throwsAsync(seller.deliver(bad));
  t.true(e instanceof ConnectError && e.code !== Code.Internal, `got ${e instanceof ConnectError ? Code[e.code] : e}: ${e?.message}`);
});

test.serial("(c) a retransmitted cancel (GM4_2 / PM4_2) is hashed for this attempt's pCount, like M7 [fixed finding F5]", async (t) => {
  const w = await inprocWorld(CONFIG);
  t.teardown(() => w.close());
  const c = new RawCustomer(w.centerTransport, w.sellerTransport);
  await c.register();
  const p = (await c.m1(QUIZ.itemId, QUIZ.answer)).permit!;
  await c.m3(p);
  await c.m4(p.tranId); // executed; its M5 "lost"
  await c.m4(p.tranId, { cmd: CmdType.GM4_2, pCount: 1 }); // the cancel's reply "lost" too
  const again = await c.m4(p.tranId, { cmd: CmdType.GM4_2, pCount: 2 });
  t.is(again.header?.errorReason, "CANCELLED");
  t.true(c.verify(CmdType.GM5_3, p.tranId, 3, again.newScrip!, again.newScripHash), "GM4_2 replay: restored scrip hashed for pCount 2 + 1");
  c.scrip = again.newScrip!;
  await c.earn("ad-1", ""); // the restored scrip holds 0: earn enough for the 5-unit article
  const o = (await c.s1("/articles/both")).order!;
  await c.s3(o);
  await c.s4(o);
  await c.s4(o, { cmd: CmdType.PM4_2, pCount: 1 });
  const pm = await c.s4(o, { cmd: CmdType.PM4_2, pCount: 2 });
  t.true(c.verify(CmdType.PM5_2, o.tranId, 3, pm.newScrip!, pm.newScripHash), "PM4_2 replay: restored scrip hashed for pCount 2 + 1");
});

// ---------------------------------------------------------------- (c) call orders

test.serial("(c) random call orders get refusals, never crashes, and every success adds up", async (t) => {
  const w = await inprocWorld(CONFIG);
  t.teardown(() => w.close());
  const direct = createDirectTransport([
    [PaymentCenterService, paymentCenterService(w.center)],
    [SellerService, sellerService(w.seller)],
  ]);
  const ctx: OrdersContext = {
    center: direct,
    seller: direct,
    ledger: w.ledger,
    centerPublicKey: (await createClient(PaymentCenterService, direct).getCenterInfo({})).publicKey,
    calls: { n: 0 },
    refusals: new Map(),
  };
  let k = 0;
  const out = await fc.check(
    fc.asyncProperty(fc.array(actionArb, { minLength: 4, maxLength: 28 }), async (actions) => {
      // A fresh customer per run (and per shrink attempt), so every sequence starts from nothing.
      const rng = new Prng((SEED + k++) >>> 0);
      await runSequence(ctx, `order-${SEED}-${k}-${rng.hex(6)}`, rng.bytes(32), actions);
    }),
    { seed: SEED ^ 0xc, numRuns: N.sequences },
  );
  if (out.failed) {
    const cause = out.errorInstance instanceof Error ? out.errorInstance.message : String(out.errorInstance);
    t.fail(`call-order property failed (seed ${out.seed}, path ${out.counterexamplePath}) after shrinking ${out.numShrinks} times:\n${cause}\ncounterexample: ${JSON.stringify(out.counterexample)}`);
  }
  totals.inputs += ctx.calls.n;
  const top = [...ctx.refusals].sort((a, b) => b[1] - a[1]).slice(0, 16).map(([x, v]) => `${x}=${v}`).join(" ");
  t.log(`orders: ${N.sequences} sequences, ${ctx.calls.n} calls; refusals: ${top}`);
  const audit = await w.ledger.audit();
  t.deepEqual(audit.problems, [], "audit after every call order");
});

test.serial("(c) out-of-order calls get the refusal the protocol names", async (t) => {
  const w = await inprocWorld(CONFIG);
  t.teardown(() => w.close());
  const c = new RawCustomer(w.centerTransport, w.sellerTransport);
  await c.register();
  await c.earn("survey-1", "yes"); // 20
  const reason = async (p: Promise<unknown>): Promise<string> => {
    try {
      const r = (await p) as { header?: { cmdType: CmdType; errorReason: string } };
      return `${CmdType[r.header!.cmdType]}:${r.header!.errorReason}`;
    } catch (e) {
      return e instanceof ConnectError ? `${Code[e.code]}:${errorReason(e)}` : `THROWN ${e}`;
    }
  };
  const p = (await c.m1(QUIZ.itemId, QUIZ.answer)).permit!;
  t.is(await reason(c.m4(p.tranId)), "GM5_3:UNKNOWN_TRANSACTION", "M4 before M3");
  t.is(await reason(c.m6(p.tranId, c.scrip)), "FailedPrecondition:UNKNOWN_TRANSACTION", "M6 before M3");
  await c.m3(p);
  t.is(await reason(c.m6(p.tranId, c.scrip)), "FailedPrecondition:TRANSACTION_STATE", "M6 before M4");
  const o = (await c.s1("/articles/both")).order!;
  t.is(await reason(c.s4(o)), "PM5_2:UNKNOWN_TRANSACTION", "S4 before S3");
  t.is(await reason(c.s6(o.tranId, c.scrip)), "FailedPrecondition:UNKNOWN_TRANSACTION", "S6 before S3");
  await c.s3(o);
  t.is(await reason(c.s6(o.tranId, c.scrip)), "FailedPrecondition:TRANSACTION_STATE", "S6 before S4");
  t.is(await reason(c.s4(o, { cmd: CmdType.PM4_2 })), "PM5_2:CANCELLED", "cancel before paying");
  t.is(await reason(c.s4(o)), "PM5_2:TRANSACTION_STATE", "pay after cancel");
  // Found by the x10 run: the S4 cancel's stored PayResponse was replayed to
  // an S6 undo as a ConfirmPaymentResponse, an INTERNAL "illegal tag".
  t.is(await reason(c.s6(o.tranId, c.scrip, CmdType.PM6_3)), "FailedPrecondition:TRANSACTION_STATE", "undo at S6 after a cancel at S4");
  t.is(await reason(c.s4(o, { cmd: CmdType.PM4_2 })), "PM5_2:CANCELLED", "the cancel itself still replays");
  t.is(await reason(c.s3(p)), "Unauthenticated:WRONG_OFFER_KIND", "a permit where an order belongs");
  t.is(await reason(c.m3(o)), "Unauthenticated:WRONG_OFFER_KIND", "an order where a permit belongs");
  const m5 = await c.m4(p.tranId);
  t.is(m5.header?.cmdType, CmdType.GM5_1);
  const old = c.scrip;
  c.scrip = m5.newScrip!;
  await c.m6(p.tranId, c.scrip);
  t.is(await reason(c.m6(p.tranId, c.scrip, CmdType.GM6_3)), "FailedPrecondition:TRANSACTION_STATE", "undo after confirm");
  const o2 = (await c.s1("/articles/both")).order!;
  await c.s3(o2);
  t.is(await reason(c.s4(o2, { scrip: old })), "PM5_2:SCRIP_NOT_LIVE", "pay with the scrip the issuance replaced");
  const s5 = await c.s4(o2);
  t.is(s5.header?.cmdType, CmdType.PM5_1);
  t.is(await reason(c.s6(o2.tranId, c.scrip)), "FailedPrecondition:SCRIP_NOT_LIVE", "S6 with the scrip S4 spent, not the change");
  const done = await c.s6(o2.tranId, s5.newScrip!);
  t.is(done.state, TransactionState.CONFIRMED);
  t.is(await reason(c.s4(o2, { scrip: s5.newScrip! })), "PM5_2:TRANSACTION_STATE", "pay a confirmed TranID again with the change");
  t.is(await reason(c.m4(p.tranId, { scrip: s5.newScrip! })), "GM5_3:TRANSACTION_STATE", "issue a confirmed TranID again with a new scrip");
  // The reverse: an issuance undone at M6 (GM6_3), then cancelled at M4 (GM4_2).
  const p3 = (await c.m1("ad-1", "")).permit!;
  await c.m3(p3);
  const m5b = await c.m4(p3.tranId, { scrip: s5.newScrip! });
  t.is(m5b.header?.cmdType, CmdType.GM5_1, m5b.header?.errorReason);
  const undone = await c.m6(p3.tranId, m5b.newScrip!, CmdType.GM6_3);
  t.is(undone.state, TransactionState.CANCELLED);
  t.is(await reason(c.m4(p3.tranId, { scrip: undone.scrip!, cmd: CmdType.GM4_2 })), "GM5_3:TRANSACTION_STATE", "cancel at M4 after an undo at M6");
  totals.inputs += 23;
  t.true((await w.ledger.audit()).ok);
});
