/**
 * The unary fast path (src/server/fast-unary.ts) must be invisible to
 * clients: a real stack on loopback answers the same requests identically
 * with `fastUnary` on and off — over Connect binary, Connect JSON, gRPC
 * (connect-node and @grpc/grpc-js clients) and gRPC-Web — for a success, a
 * ConnectError with a reason, a thrown non-Connect error, an oversize
 * message and an unknown method; raw HTTP/2 answers (status, headers,
 * body, trailers) match byte for byte; log lines match; and graceful
 * shutdown waits for an in-flight fast call.
 */
import test from "ava";
import http2 from "node:http2";
import { create, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import type { Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import { NoopRequestSchema, NoopResponseSchema, NoopService } from "../gen/scripwire/bench/v1/bench_pb.js";
import { ERROR_REASON_KEY, errorReason, scripError } from "../src/server/errors.js";
import { createLogger } from "../src/server/log.js";
import { createServerStack } from "../src/server/stack.js";
import type { ServerStack } from "../src/server/stack.js";

const MAX = 1024;
const OK = new Uint8Array([0, 1, 2, 3]);
const WITH_REASON = new Uint8Array([1]);
const THROWS = new Uint8Array([2]);
const SLOW = new Uint8Array([3]);
const OVERSIZE = new Uint8Array(MAX + 100).fill(7);

interface Harness {
  stack: ServerStack;
  url: string;
  lines: Record<string, unknown>[];
  /** Resolves the pending SLOW calls. */
  release: () => void;
  /** Resolves once a SLOW call is inside the handler. */
  entered: Promise<void>;
}

async function start(fast: boolean): Promise<Harness> {
  const lines: Record<string, unknown>[] = [];
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  let onEnter!: () => void;
  const entered = new Promise<void>((r) => (onEnter = r));
  const impl = {
    async noop(req: { payload: Uint8Array }) {
      switch (req.payload[0]) {
        case 1:
          throw scripError(Code.FailedPrecondition, "TEST_REASON", "not now; try later");
        case 2:
          throw new Error("secret internals: db password is hunter2");
        case 3:
          onEnter();
          await gate;
      }
      return create(NoopResponseSchema, { payload: req.payload });
    },
  };
  const stack = createServerStack({
    services: [NoopService],
    routes: (router) => router.service(NoopService, impl),
    maxMessageBytes: MAX,
    logger: createLogger({ level: "debug", write: (l) => lines.push(JSON.parse(l) as Record<string, unknown>) }),
    fastUnary: fast ? [{ service: NoopService, impl, methods: ["noop"] }] : undefined,
  });
  const { url } = await stack.listen();
  return { stack, url, lines, release, entered };
}

type Outcome = string;

function describeError(e: unknown): Outcome {
  const ce = ConnectError.from(e);
  return `err ${Code[ce.code]} reason=${errorReason(ce) ?? "-"} msg=${ce.rawMessage}`;
}

async function viaConnectNode(transport: Transport, payload: Uint8Array): Promise<Outcome> {
  const client = createClient(NoopService, transport);
  try {
    const res = await client.noop({ payload });
    return `ok ${Buffer.from(res.payload).toString("hex")}`;
  } catch (e) {
    return describeError(e);
  }
}

/** An unknown method on the same service path prefix. */
async function unknownViaConnectNode(transport: Transport): Promise<Outcome> {
  try {
    await transport.unary(
      { ...NoopService.method.noop, name: "Nope", localName: "nope" } as typeof NoopService.method.noop,
      undefined,
      undefined,
      undefined,
      create(NoopRequestSchema, { payload: OK }),
      undefined,
    );
    return "ok";
  } catch (e) {
    return describeError(e);
  }
}

async function viaGrpcJs(url: string, path: string, payload: Uint8Array): Promise<Outcome> {
  const client = new grpc.Client(new URL(url).host, grpc.credentials.createInsecure());
  try {
    return await new Promise<Outcome>((resolve) => {
      client.makeUnaryRequest(
        path,
        (b: Buffer) => b,
        (b: Buffer) => b,
        Buffer.from(toBinary(NoopRequestSchema, create(NoopRequestSchema, { payload }))),
        (err, value) => {
          if (err) {
            const reason = err.metadata.get(ERROR_REASON_KEY)[0];
            resolve(`err ${Code[err.code]} reason=${reason === undefined ? "-" : String(reason)} msg=${err.details}`);
          } else {
            resolve(`ok ${value!.toString("hex")}`);
          }
        },
      );
    });
  } finally {
    client.close();
  }
}

const NOOP_PATH = "/scripwire.bench.v1.NoopService/Noop";
const UNKNOWN_PATH = "/scripwire.bench.v1.NoopService/Nope";

async function outcomes(h: Harness): Promise<Record<string, Outcome>> {
  const transports: Record<string, Transport> = {
    "connect binary": createConnectTransport({ baseUrl: h.url, httpVersion: "2" }),
    "connect json": createConnectTransport({ baseUrl: h.url, httpVersion: "2", useBinaryFormat: false }),
    "connect binary http1.1": createConnectTransport({ baseUrl: h.url, httpVersion: "1.1" }),
    grpc: createGrpcTransport({ baseUrl: h.url }),
    "grpc-web": createGrpcWebTransport({ baseUrl: h.url, httpVersion: "2" }),
    "grpc-web http1.1": createGrpcWebTransport({ baseUrl: h.url, httpVersion: "1.1" }),
  };
  const out: Record<string, Outcome> = {};
  const cases: Record<string, Uint8Array> = { ok: OK, reason: WITH_REASON, throws: THROWS, oversize: OVERSIZE };
  for (const [name, transport] of Object.entries(transports)) {
    for (const [c, payload] of Object.entries(cases)) {
      out[`${name} ${c}`] = await viaConnectNode(transport, payload);
    }
    out[`${name} unknown`] = await unknownViaConnectNode(transport);
  }
  for (const [c, payload] of Object.entries(cases)) {
    out[`grpc-js ${c}`] = await viaGrpcJs(h.url, NOOP_PATH, payload);
  }
  out["grpc-js unknown"] = await viaGrpcJs(h.url, UNKNOWN_PATH, OK);
  return out;
}

interface RawAnswer {
  status: number;
  headers: Record<string, unknown>;
  body: string;
  trailers: Record<string, unknown>;
}

/** One raw HTTP/2 request; `date` dropped, everything else kept. */
async function raw(url: string, path: string, headers: http2.OutgoingHttpHeaders, body: Uint8Array): Promise<RawAnswer> {
  const session = http2.connect(url);
  try {
    return await new Promise<RawAnswer>((resolve, reject) => {
      const stream = session.request({ ":method": "POST", ":path": path, ...headers });
      const answer: RawAnswer = { status: 0, headers: {}, body: "", trailers: {} };
      const chunks: Buffer[] = [];
      stream.on("response", (h) => {
        const { date: _d, ...rest } = h;
        answer.status = Number(h[":status"]);
        answer.headers = rest;
      });
      stream.on("trailers", (t) => (answer.trailers = { ...t }));
      stream.on("data", (c: Buffer) => chunks.push(c));
      stream.on("end", () => {
        answer.body = Buffer.concat(chunks).toString("hex");
        resolve(answer);
      });
      stream.on("error", reject);
      stream.end(body);
    });
  } finally {
    session.close();
  }
}

function grpcFrame(msg: Uint8Array): Uint8Array {
  const f = Buffer.alloc(5 + msg.length);
  f.writeUInt32BE(msg.length, 1);
  f.set(msg, 5);
  return f;
}

async function rawAnswers(h: Harness): Promise<Record<string, RawAnswer>> {
  const enc = (p: Uint8Array) => toBinary(NoopRequestSchema, create(NoopRequestSchema, { payload: p }));
  const connect = { "content-type": "application/proto" };
  const grpcH = { "content-type": "application/grpc", te: "trailers" };
  const out: Record<string, RawAnswer> = {};
  for (const [c, p] of Object.entries({ ok: OK, reason: WITH_REASON, throws: THROWS, oversize: OVERSIZE })) {
    out[`connect ${c}`] = await raw(h.url, NOOP_PATH, connect, enc(p));
    out[`connect ${c} with content-length`] = await raw(h.url, NOOP_PATH, { ...connect, "content-length": enc(p).length }, enc(p));
    out[`grpc ${c}`] = await raw(h.url, NOOP_PATH, grpcH, grpcFrame(enc(p)));
  }
  out["connect garbage"] = await raw(h.url, NOOP_PATH, connect, new Uint8Array([0xff, 0xff, 0xff]));
  out["grpc garbage"] = await raw(h.url, NOOP_PATH, grpcH, grpcFrame(new Uint8Array([0xff, 0xff, 0xff])));
  out["grpc empty body"] = await raw(h.url, NOOP_PATH, grpcH, new Uint8Array());
  out["grpc two messages"] = await raw(h.url, NOOP_PATH, grpcH, Buffer.concat([grpcFrame(enc(OK)), grpcFrame(enc(OK))]));
  out["grpc truncated"] = await raw(h.url, NOOP_PATH, grpcH, grpcFrame(enc(OK)).subarray(0, 7));
  out["connect unknown"] = await raw(h.url, UNKNOWN_PATH, connect, enc(OK));
  out["grpc unknown"] = await raw(h.url, UNKNOWN_PATH, grpcH, grpcFrame(enc(OK)));
  return out;
}

/** Log lines without the fields that differ between runs. */
function logShape(lines: Record<string, unknown>[]): string[] {
  return lines
    .filter((l) => l.msg === "rpc")
    .map(({ time: _t, duration_ms: _d, ...rest }) => JSON.stringify(rest))
    .sort();
}

test("fast path on and off answer identically over every protocol and client", async (t) => {
  const results: Record<string, { outcomes: Record<string, Outcome>; raw: Record<string, RawAnswer>; log: string[] }> = {};
  for (const fast of [false, true]) {
    const h = await start(fast);
    try {
      const o = await outcomes(h);
      const logAfterClients = logShape(h.lines);
      const r = await rawAnswers(h);
      results[String(fast)] = { outcomes: o, raw: r, log: logAfterClients };
    } finally {
      await h.stack.close(1000);
    }
  }
  const slow = results["false"]!;
  const fast = results["true"]!;
  t.deepEqual(fast.outcomes, slow.outcomes);
  t.deepEqual(fast.raw, slow.raw);
  t.deepEqual(fast.log, slow.log);

  // And the answers are the ones the stack promises.
  t.is(fast.outcomes["connect binary ok"], `ok ${Buffer.from(OK).toString("hex")}`);
  for (const p of ["connect binary", "grpc", "grpc-js", "connect json", "grpc-web"]) {
    // grpc-js hands over grpc-message still percent-encoded.
    const msg = p === "grpc-js" ? "not now%3B try later" : "not now; try later";
    t.is(fast.outcomes[`${p} reason`], `err FailedPrecondition reason=TEST_REASON msg=${msg}`, p);
    t.is(fast.outcomes[`${p} throws`], "err Internal reason=- msg=internal error", p);
    t.regex(fast.outcomes[`${p} oversize`]!, /^err ResourceExhausted .*readMaxBytes 1024/, p);
    t.regex(fast.outcomes[`${p} unknown`]!, /^err Unimplemented/, p);
  }
  t.is(fast.raw["connect reason"]!.status, 400); // FAILED_PRECONDITION per the Connect spec
  t.is(fast.raw["connect reason"]!.headers[ERROR_REASON_KEY], "TEST_REASON");
  t.is(fast.raw["grpc reason"]!.trailers[ERROR_REASON_KEY], "TEST_REASON");
  t.is(fast.raw["connect throws"]!.status, 500);
  t.false(JSON.stringify(fast.raw).includes("hunter2"), "handler error messages do not leak");
  t.is(fast.raw["connect unknown"]!.status, 404);
  // The thrown error is logged at "error" with its real message, as the logging interceptor does.
  t.true(fast.log.some((l) => l.includes('"level":"error"') && l.includes("hunter2")));
});

test("the fast path actually serves binary Connect and gRPC over HTTP/2, and nothing else", async (t) => {
  const h = await start(true);
  try {
    const observe = async (transport: Transport) => {
      const call = createClient(NoopService, transport).noop({ payload: SLOW });
      await h.entered;
      const seen = h.stack.fastUnaryInFlight();
      return { seen, call };
    };
    // One SLOW call at a time: release it by restarting the harness gate.
    const first = await observe(createConnectTransport({ baseUrl: h.url, httpVersion: "2" }));
    t.is(first.seen, 1);
    h.release();
    await first.call;
  } finally {
    await h.stack.close(1000);
  }
  for (const [name, transport] of [
    ["connect json", (u: string) => createConnectTransport({ baseUrl: u, httpVersion: "2", useBinaryFormat: false })],
    ["connect http/1.1", (u: string) => createConnectTransport({ baseUrl: u, httpVersion: "1.1" })],
    ["grpc-web", (u: string) => createGrpcWebTransport({ baseUrl: u, httpVersion: "2" })],
    ["connect with deadline", (u: string) => createConnectTransport({ baseUrl: u, httpVersion: "2", defaultTimeoutMs: 10_000 })],
    ["grpc with gzip", (u: string) => createGrpcTransport({ baseUrl: u, sendCompression: { name: "gzip", compress: async (b) => b as Uint8Array<ArrayBuffer>, decompress: async (b) => b as Uint8Array<ArrayBuffer> } })],
  ] as const) {
    const h2 = await start(true);
    try {
      const call = createClient(NoopService, transport(h2.url)).noop({ payload: SLOW }).catch((e: unknown) => e);
      await h2.entered;
      t.is(h2.stack.fastUnaryInFlight(), 0, name);
      h2.release();
      await call;
    } finally {
      await h2.stack.close(1000);
    }
  }
  const g = await start(true);
  try {
    const call = createClient(NoopService, createGrpcTransport({ baseUrl: g.url })).noop({ payload: SLOW });
    await g.entered;
    t.is(g.stack.fastUnaryInFlight(), 1, "grpc");
    g.release();
    await call;
  } finally {
    await g.stack.close(1000);
  }
});

test("graceful shutdown waits for an in-flight fast call, then refuses new calls like the normal path", async (t) => {
  const refusals: Record<string, string> = {};
  for (const fast of [false, true]) {
    const h = await start(fast);
    const transport = createConnectTransport({ baseUrl: h.url, httpVersion: "2" });
    const call = createClient(NoopService, transport).noop({ payload: SLOW });
    await h.entered;
    if (fast) {
      t.is(h.stack.fastUnaryInFlight(), 1);
    }
    let closed = false;
    const closing = h.stack.close(5000).then(() => (closed = true));
    await new Promise((r) => setTimeout(r, 200));
    t.false(closed, "close() waits for the in-flight call");
    h.release();
    const res = await call;
    t.deepEqual(res.payload, SLOW);
    await closing;
    t.true(closed);
    t.is(h.stack.fastUnaryInFlight(), 0);
    const refusal = await viaConnectNode(createConnectTransport({ baseUrl: h.url, httpVersion: "2" }), OK);
    refusals[String(fast)] = refusal.replace(/:\d+$/, ":PORT");
  }
  t.is(refusals["true"], refusals["false"]);
  t.regex(refusals["true"]!, /^err Unavailable/);
});

// The stack promises UNAVAILABLE for calls aborted after the grace period. A
// normal-path unary handler that ignores ctx.signal is instead cut off when
// its connection is destroyed (the client sees CANCELED); the fast path
// answers with the shutdown reason, as documented. Both are retryable.
test("a call still running after the grace period is answered UNAVAILABLE", async (t) => {
  const outcomesByMode: Record<string, string> = {};
  for (const fast of [false, true]) {
    const h = await start(fast);
    const call = viaConnectNode(createConnectTransport({ baseUrl: h.url, httpVersion: "2" }), SLOW);
    await h.entered;
    await h.stack.close(100);
    outcomesByMode[String(fast)] = await call;
    h.release();
  }
  t.is(outcomesByMode["true"], "err Unavailable reason=- msg=server is shutting down; retry");
  t.regex(outcomesByMode["false"]!, /^err (Unavailable|Canceled)/);
});

test("the fast path is disabled when the stack has extra interceptors", async (t) => {
  const lines: string[] = [];
  const impl = { noop: (req: { payload: Uint8Array }) => create(NoopResponseSchema, { payload: req.payload }) };
  let intercepted = 0;
  const stack = createServerStack({
    services: [NoopService],
    routes: (router) => router.service(NoopService, impl),
    logger: createLogger({ level: "info", write: (l) => lines.push(l) }),
    interceptors: [(next) => (req) => (intercepted++, next(req))],
    fastUnary: [{ service: NoopService, impl, methods: ["noop"] }],
  });
  const { url } = await stack.listen();
  try {
    await createClient(NoopService, createConnectTransport({ baseUrl: url, httpVersion: "2" })).noop({ payload: OK });
    t.is(intercepted, 1);
    t.true(lines.some((l) => l.includes("unary fast path disabled")));
  } finally {
    await stack.close(1000);
  }
});

test("createFastUnary rejects unknown and non-unary method names", (t) => {
  const impl = { noop: () => create(NoopResponseSchema) };
  t.throws(
    () => createServerStack({ services: [NoopService], routes: () => {}, fastUnary: [{ service: NoopService, impl, methods: ["nope"] }] }),
    { message: /has no method "nope"/ },
  );
});
