/**
 * The server stack over real sockets on 127.0.0.1:0: every protocol and
 * client kind on one port, reflection (in-process client and `buf curl`),
 * health, TLS, message-size limit, logging hygiene and graceful shutdown.
 *
 * Every test closes its clients and then asserts the server saw no dangling
 * connection (`expectNoConnections`) before closing the stack.
 */
import { spawnSync } from "node:child_process";
import test from "ava";
import type { ExecutionContext } from "ava";
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import http from "node:http";
import https from "node:https";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { promisify } from "node:util";
import { create, createFileRegistry, fromBinary, toBinary } from "@bufbuild/protobuf";
import type { DescFile, MessageInitShape } from "@bufbuild/protobuf";
import type { GenService } from "@bufbuild/protobuf/codegenv2";
import {
  BytesValueSchema,
  DurationSchema,
  EmptySchema,
  FieldDescriptorProto_Label,
  FieldDescriptorProto_Type,
  FileDescriptorProtoSchema,
  StringValueSchema,
  file_google_protobuf_descriptor,
  file_google_protobuf_duration,
  file_google_protobuf_empty,
  file_google_protobuf_wrappers,
} from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import type { ConnectRouter, HandlerContext, Transport } from "@connectrpc/connect";
import {
  Http2SessionManager,
  createConnectTransport,
  createGrpcTransport,
  createGrpcWebTransport,
} from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import {
  Health,
  HealthCheckRequestSchema,
  HealthCheckResponseSchema,
  HealthCheckResponse_ServingStatus as ServingStatus,
} from "../gen/grpc/health/v1/health_pb.js";
import * as reflectionV1 from "../gen/grpc/reflection/v1/reflection_pb.js";
import * as reflectionV1alpha from "../gen/grpc/reflection/v1alpha/reflection_pb.js";
import { ERROR_REASON_KEY, errorReason, invalidArgument, scripError } from "../src/server/errors.js";
import {
  createLogger,
  createLoggingInterceptor,
  logLevelFromEnv,
  parseLogLevel,
  redact,
  REDACTED,
} from "../src/server/log.js";
import { HTTP2_PREFACE, sniffProtocol } from "../src/server/protocol-sniff.js";
import { createServerStack } from "../src/server/stack.js";
import type { ServerStack, ServerStackOptions } from "../src/server/stack.js";

const execFileP = promisify(execFile);

// ---------------------------------------------------------------------------
// A tiny test service, described at run time (no proto file needed) and
// importing well-known types, so reflection must send transitive imports.

const TEST_FILE_NAME = "scripwire/test/v1/stack_test.proto";
const TEST_EXTENSION_NUMBER = 50_001;

const testFileProto = create(FileDescriptorProtoSchema, {
  name: TEST_FILE_NAME,
  package: "scripwire.test.v1",
  syntax: "proto3",
  dependency: [
    "google/protobuf/wrappers.proto",
    "google/protobuf/empty.proto",
    "google/protobuf/duration.proto",
    "google/protobuf/descriptor.proto",
  ],
  extension: [
    {
      name: "stack_test_note",
      number: TEST_EXTENSION_NUMBER,
      label: FieldDescriptorProto_Label.OPTIONAL,
      type: FieldDescriptorProto_Type.STRING,
      extendee: ".google.protobuf.MessageOptions",
      jsonName: "stackTestNote",
    },
  ],
  service: [
    {
      name: "StackTestService",
      method: [
        { name: "Echo", inputType: ".google.protobuf.BytesValue", outputType: ".google.protobuf.BytesValue" },
        { name: "Sleep", inputType: ".google.protobuf.Duration", outputType: ".google.protobuf.Empty" },
        { name: "Fail", inputType: ".google.protobuf.StringValue", outputType: ".google.protobuf.Empty" },
        {
          name: "Ticks",
          inputType: ".google.protobuf.Empty",
          outputType: ".google.protobuf.Empty",
          serverStreaming: true,
        },
      ],
    },
  ],
});
const wktFiles: Record<string, DescFile> = {
  "google/protobuf/wrappers.proto": file_google_protobuf_wrappers,
  "google/protobuf/empty.proto": file_google_protobuf_empty,
  "google/protobuf/duration.proto": file_google_protobuf_duration,
  "google/protobuf/descriptor.proto": file_google_protobuf_descriptor,
};
const testRegistry = createFileRegistry(testFileProto, (name) => wktFiles[name]);
const TestService = testRegistry.getService("scripwire.test.v1.StackTestService") as unknown as GenService<{
  echo: { methodKind: "unary"; input: typeof BytesValueSchema; output: typeof BytesValueSchema };
  sleep: { methodKind: "unary"; input: typeof DurationSchema; output: typeof EmptySchema };
  fail: { methodKind: "unary"; input: typeof StringValueSchema; output: typeof EmptySchema };
  ticks: { methodKind: "server_streaming"; input: typeof EmptySchema; output: typeof EmptySchema };
}>;

/** Resolves each time a Sleep call starts on any test server. */
let onSleepStarted: (() => void) | undefined;

function testRoutes(router: ConnectRouter): void {
  router.service(TestService, {
    echo: (req) => req,
    async sleep(req, ctx: HandlerContext) {
      onSleepStarted?.();
      const ms = Number(req.seconds) * 1000 + req.nanos / 1e6;
      await sleep(ms, undefined, { signal: ctx.signal });
      return create(EmptySchema);
    },
    fail(req) {
      throw scripError(Code.InvalidArgument, req.value, `failing on purpose with ${req.value}; nothing to fix`);
    },
    async *ticks(_req, ctx: HandlerContext) {
      for (;;) {
        yield create(EmptySchema);
        try {
          await sleep(50, undefined, { signal: ctx.signal });
        } catch {
          throw ConnectError.from(ctx.signal.reason);
        }
      }
    },
  });
}

// ---------------------------------------------------------------------------
// Helpers

async function startStack(
  t: ExecutionContext,
  options: Partial<ServerStackOptions> = {},
): Promise<{ stack: ServerStack; url: string; port: number }> {
  const stack = createServerStack({
    services: [TestService],
    routes: testRoutes,
    logger: createLogger({ level: "silent" }),
    ...options,
  });
  const { url, port } = await stack.listen();
  // Safety net if an assertion threw before the test closed the stack.
  t.teardown(() => stack.close(0));
  return { stack, url, port };
}

/**
 * Fail on connections a client left open: wait (bounded) for the server to
 * see every connection close, then close the stack, which must not force
 * anything.
 */
async function expectNoConnections(t: ExecutionContext, stack: ServerStack): Promise<void> {
  const deadline = Date.now() + 3000;
  while (stack.stats().connections > 0 && Date.now() < deadline) {
    await sleep(10);
  }
  t.deepEqual(
    stack.stats(),
    { connections: 0, http2Sessions: 0, http1Connections: 0, forcedCloses: 0 },
    "dangling connection: a client was not closed",
  );
  await stack.close(1000);
  t.is(stack.stats().forcedCloses, 0);
}

function h2Transports(url: string, nodeOptions?: { ca: string }) {
  const sessions: Http2SessionManager[] = [];
  const manager = () => {
    const m = new Http2SessionManager(url, {}, nodeOptions);
    sessions.push(m);
    return m;
  };
  return {
    connect: createConnectTransport({ baseUrl: url, httpVersion: "2", sessionManager: manager() }),
    grpc: createGrpcTransport({ baseUrl: url, sessionManager: manager() }),
    close: () => sessions.forEach((m) => m.abort()),
  };
}

async function expectConnectError(t: ExecutionContext, p: Promise<unknown>, code: Code): Promise<ConnectError> {
  const err = await t.throwsAsync(p);
  const ce = ConnectError.from(err);
  t.is(ce.code, code, `expected ${Code[code]}, got ${Code[ce.code]}: ${ce.message}`);
  return ce;
}

interface RawResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

function postJson(
  url: string,
  path: string,
  body: string,
  opts: { agent?: http.Agent | false; headers?: Record<string, string> } = {},
): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      new URL(path, url),
      {
        method: "POST",
        agent: opts.agent ?? false,
        headers: { "content-type": "application/json", "connect-protocol-version": "1", ...opts.headers },
      },
      (res) => {
        let data = "";
        res.setEncoding("utf8");
        res.on("data", (c: string) => (data += c));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: data }));
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    req.end(body);
  });
}

function grpcJsUnary<I, O>(
  client: grpc.Client,
  path: string,
  encode: (m: I) => Uint8Array,
  decode: (b: Buffer) => O,
  arg: I,
): Promise<O> {
  return new Promise((resolve, reject) => {
    client.makeUnaryRequest(
      path,
      (m: I) => Buffer.from(encode(m)),
      decode,
      arg,
      (err: grpc.ServiceError | null, value?: O) => (err ? reject(err) : resolve(value as O)),
    );
  });
}

const BUF = join(process.cwd(), "node_modules", ".bin", "buf");

async function bufCurl(args: string[]): Promise<string> {
  const { stdout } = await execFileP(BUF, ["curl", ...args], {
    timeout: 60_000,
    env: { ...process.env, BUF_CACHE_DIR: join(tmpdir(), "scripwire-buf-cache") },
  });
  return stdout;
}

type ReflectionRequestInit = MessageInitShape<typeof reflectionV1.ServerReflectionRequestSchema>;

async function reflect(transport: Transport, requests: ReflectionRequestInit[]) {
  const client = createClient(reflectionV1.ServerReflection, transport);
  async function* input() {
    for (const r of requests) {
      yield create(reflectionV1.ServerReflectionRequestSchema, r);
    }
  }
  const out: reflectionV1.ServerReflectionResponse[] = [];
  for await (const res of client.serverReflectionInfo(input())) {
    out.push(res);
  }
  return out;
}

function fileNames(res: reflectionV1.ServerReflectionResponse): string[] {
  if (res.messageResponse.case !== "fileDescriptorResponse") {
    return [];
  }
  return res.messageResponse.value.fileDescriptorProto.map((b) => fromBinary(FileDescriptorProtoSchema, b).name);
}

// ---------------------------------------------------------------------------
// Protocols on one cleartext port

test("Connect and gRPC over HTTP/2 prior knowledge", async (t) => {
  const { stack, url } = await startStack(t);
  const tr = h2Transports(url);
  for (const transport of [tr.connect, tr.grpc]) {
    const health = createClient(Health, transport);
    const res = await health.check({ service: "" });
    t.is(res.status, ServingStatus.SERVING);
    const svc = await health.check({ service: "scripwire.test.v1.StackTestService" });
    t.is(svc.status, ServingStatus.SERVING);
    await expectConnectError(t, health.check({ service: "no.such.Service" }), Code.NotFound);

    const echo = createClient(TestService, transport);
    const value = new Uint8Array([1, 2, 3, 250]);
    t.deepEqual((await echo.echo({ value })).value, value);

    const err = await expectConnectError(t, echo.fail({ value: "BAD_SCRIP" }), Code.InvalidArgument);
    t.is(errorReason(err), "BAD_SCRIP");
    t.regex(err.rawMessage, /failing on purpose/);
  }
  t.is(stack.stats().http2Sessions, 2);
  tr.close();
  await expectNoConnections(t, stack);
});

test("gRPC-Web over HTTP/1.1", async (t) => {
  const { stack, url } = await startStack(t);
  const agent = new http.Agent({ keepAlive: true });
  const transport = createGrpcWebTransport({ baseUrl: url, httpVersion: "1.1", nodeOptions: { agent } });
  const health = createClient(Health, transport);
  t.is((await health.check({ service: "" })).status, ServingStatus.SERVING);
  t.is((await health.check({ service: "" })).status, ServingStatus.SERVING);
  const err = await expectConnectError(t, createClient(TestService, transport).fail({ value: "NOPE" }), Code.InvalidArgument);
  t.is(errorReason(err), "NOPE");
  // Server streaming works over HTTP/1.1 with gRPC-Web.
  const ac = new AbortController();
  let ticks = 0;
  for await (const _ of createClient(TestService, transport).ticks({}, { signal: ac.signal })) {
    if (++ticks === 2) break;
  }
  t.is(ticks, 2);
  t.true(stack.stats().http1Connections >= 1);
  agent.destroy();
  await expectNoConnections(t, stack);
});

test("plain Connect JSON POST over HTTP/1.1 (node:http)", async (t) => {
  const { stack, url } = await startStack(t);
  const ok = await postJson(url, "/grpc.health.v1.Health/Check", JSON.stringify({ service: "" }));
  t.is(ok.status, 200);
  t.is(ok.headers["content-type"], "application/json");
  t.deepEqual(JSON.parse(ok.body), { status: "SERVING" });

  const bad = await postJson(url, "/scripwire.test.v1.StackTestService/Fail", JSON.stringify("BAD_SCRIP"));
  t.is(bad.status, 400);
  t.is(bad.headers[ERROR_REASON_KEY], "BAD_SCRIP");
  t.is(JSON.parse(bad.body).code, "invalid_argument");

  const missing = await postJson(url, "/no.such.Service/Method", "{}");
  t.is(missing.status, 404);
  await expectNoConnections(t, stack);
});

test("@grpc/grpc-js client calls Health/Check and reads the error reason", async (t) => {
  const { stack, port } = await startStack(t);
  const client = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  try {
    const res = await grpcJsUnary(
      client,
      "/grpc.health.v1.Health/Check",
      (m: MessageInitShape<typeof HealthCheckRequestSchema>) => toBinary(HealthCheckRequestSchema, create(HealthCheckRequestSchema, m)),
      (b) => fromBinary(HealthCheckResponseSchema, b),
      { service: "" },
    );
    t.is(res.status, ServingStatus.SERVING);
    const err = await t.throwsAsync(
      grpcJsUnary(
        client,
        "/scripwire.test.v1.StackTestService/Fail",
        (m: string) => toBinary(StringValueSchema, create(StringValueSchema, { value: m })),
        (b) => b,
        "BAD_MAC",
      ),
    );
    t.is((err as grpc.ServiceError).code, grpc.status.INVALID_ARGUMENT);
    t.is(errorReason(err), "BAD_MAC");
  } finally {
    client.close();
  }
  await expectNoConnections(t, stack);
});

test("a preface split across TCP segments is still recognised as HTTP/2", async (t) => {
  const { stack, port } = await startStack(t);
  const socket = net.connect(port, "127.0.0.1");
  await new Promise<void>((resolve) => socket.once("connect", () => resolve()));
  const firstFrame = new Promise<Buffer>((resolve) => socket.once("data", (d: Buffer) => resolve(d)));
  socket.write(HTTP2_PREFACE.subarray(0, 3));
  await sleep(20);
  socket.write(HTTP2_PREFACE.subarray(3, 17));
  await sleep(20);
  socket.write(HTTP2_PREFACE.subarray(17));
  // An empty SETTINGS frame: length 0, type 0x4, flags 0, stream 0.
  socket.write(Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0]));
  const frame = await firstFrame;
  t.is(frame[3], 0x4, "server's first frame is SETTINGS");
  socket.destroy();
  await expectNoConnections(t, stack);
});

test("sniffProtocol classifies by the preface", (t) => {
  t.is(sniffProtocol(new Uint8Array()), "need-more");
  t.is(sniffProtocol(Buffer.from("PRI * HTTP/2")), "need-more");
  t.is(sniffProtocol(HTTP2_PREFACE), "http2");
  t.is(sniffProtocol(Buffer.concat([HTTP2_PREFACE, Buffer.from([0, 0, 0, 4])])), "http2");
  t.is(sniffProtocol(Buffer.from("POST / HTTP/1.1\r\n")), "http1");
  t.is(sniffProtocol(Buffer.from("PRI * HTTP/1.1\r\n")), "http1");
  t.is(sniffProtocol(Buffer.from("G")), "http1");
});

// ---------------------------------------------------------------------------
// Reflection

test("reflection v1 over a Connect bidi stream", async (t) => {
  const { stack, url } = await startStack(t);
  const tr = h2Transports(url);
  const res = await reflect(tr.connect, [
    { host: "h", messageRequest: { case: "listServices", value: "" } },
    { messageRequest: { case: "fileContainingSymbol", value: "scripwire.test.v1.StackTestService" } },
    { messageRequest: { case: "fileContainingSymbol", value: "scripwire.test.v1.StackTestService.Echo" } },
    { messageRequest: { case: "fileContainingSymbol", value: "grpc.health.v1.HealthCheckResponse.ServingStatus" } },
    { messageRequest: { case: "fileContainingSymbol", value: "grpc.health.v1.HealthCheckResponse.SERVING" } },
    { messageRequest: { case: "fileContainingSymbol", value: "no.such.Symbol" } },
    { messageRequest: { case: "fileByFilename", value: "grpc/health/v1/health.proto" } },
    { messageRequest: { case: "fileByFilename", value: "nope.proto" } },
    {
      messageRequest: {
        case: "fileContainingExtension",
        value: { containingType: "google.protobuf.MessageOptions", extensionNumber: TEST_EXTENSION_NUMBER },
      },
    },
    {
      messageRequest: {
        case: "fileContainingExtension",
        value: { containingType: "google.protobuf.MessageOptions", extensionNumber: 1 },
      },
    },
    { messageRequest: { case: "allExtensionNumbersOfType", value: "google.protobuf.MessageOptions" } },
    { messageRequest: { case: "allExtensionNumbersOfType", value: "no.such.Type" } },
  ]);
  t.is(res.length, 12, "one response per request; errors do not end the stream");

  const [list] = res;
  t.is(list!.validHost, "h");
  t.is(list!.originalRequest?.messageRequest.case, "listServices");
  t.deepEqual(
    list!.messageResponse.case === "listServicesResponse" ? list!.messageResponse.value.service.map((s) => s.name) : [],
    [
      "scripwire.test.v1.StackTestService",
      "grpc.health.v1.Health",
      "grpc.reflection.v1.ServerReflection",
      "grpc.reflection.v1alpha.ServerReflection",
    ],
  );
  // The requested file first, then its transitive imports.
  const svcFiles = fileNames(res[1]!);
  t.is(svcFiles[0], TEST_FILE_NAME);
  t.deepEqual(
    [...svcFiles].sort(),
    [
      "google/protobuf/descriptor.proto",
      "google/protobuf/duration.proto",
      "google/protobuf/empty.proto",
      "google/protobuf/wrappers.proto",
      TEST_FILE_NAME,
    ],
  );
  const decoded = fromBinary(FileDescriptorProtoSchema, (res[1]!.messageResponse.value as { fileDescriptorProto: Uint8Array[] }).fileDescriptorProto[0]!);
  t.deepEqual(decoded.service[0]?.method.map((m) => m.name), ["Echo", "Sleep", "Fail", "Ticks"]);
  t.is(fileNames(res[2]!)[0], TEST_FILE_NAME);
  t.deepEqual(fileNames(res[3]!), ["grpc/health/v1/health.proto"]);
  t.deepEqual(fileNames(res[4]!), ["grpc/health/v1/health.proto"]);
  for (const i of [5, 7, 9, 11]) {
    const r = res[i]!;
    t.is(r.messageResponse.case, "errorResponse", `request ${i}`);
    t.is(r.messageResponse.case === "errorResponse" ? r.messageResponse.value.errorCode : -1, Code.NotFound);
  }
  t.deepEqual(fileNames(res[6]!), ["grpc/health/v1/health.proto"]);
  t.is(fileNames(res[8]!)[0], TEST_FILE_NAME);
  const numbers = res[10]!.messageResponse;
  t.deepEqual(
    numbers.case === "allExtensionNumbersResponse" ? [numbers.value.baseTypeName, numbers.value.extensionNumber] : [],
    ["google.protobuf.MessageOptions", [TEST_EXTENSION_NUMBER]],
  );

  // v1alpha answers the same way (older clients).
  const alpha = createClient(reflectionV1alpha.ServerReflection, tr.grpc);
  async function* one() {
    yield create(reflectionV1alpha.ServerReflectionRequestSchema, {
      messageRequest: { case: "fileContainingSymbol", value: "grpc.health.v1.Health" },
    });
  }
  const alphaRes: reflectionV1alpha.ServerReflectionResponse[] = [];
  for await (const r of alpha.serverReflectionInfo(one())) alphaRes.push(r);
  t.is(alphaRes.length, 1);
  t.is(alphaRes[0]!.messageResponse.case, "fileDescriptorResponse");
  tr.close();
  await expectNoConnections(t, stack);
});

test("buf curl lists methods and calls through reflection", async (t) => {
  const { stack, url } = await startStack(t);
  const h2c = ["--protocol", "grpc", "--http2-prior-knowledge"];
  const methods = (await bufCurl([...h2c, url, "--list-methods"])).trim().split("\n");
  for (const m of [
    "scripwire.test.v1.StackTestService/Echo",
    "scripwire.test.v1.StackTestService/Ticks",
    "grpc.health.v1.Health/Check",
    "grpc.health.v1.Health/Watch",
    "grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
  ]) {
    t.true(methods.includes(m), `${m} listed`);
  }
  const check = await bufCurl([...h2c, "-d", '{"service":""}', `${url}/grpc.health.v1.Health/Check`]);
  t.deepEqual(JSON.parse(check), { status: "SERVING" });
  const echo = await bufCurl([...h2c, "-d", '"aGVsbG8="', `${url}/scripwire.test.v1.StackTestService/Echo`]);
  t.is(JSON.parse(echo), "aGVsbG8=");
  // Connect protocol over HTTP/2 through the same reflection.
  const connectCheck = await bufCurl(["--protocol", "connect", "--http2-prior-knowledge", "-d", "{}", `${url}/grpc.health.v1.Health/Check`]);
  t.deepEqual(JSON.parse(connectCheck), { status: "SERVING" });
  await expectNoConnections(t, stack);
});

// ---------------------------------------------------------------------------
// TLS

// The test certificate is made with openssl: without it, a real skip with its reason.
const OPENSSL = spawnSync("openssl", ["version"]).status === 0;
if (!OPENSSL) console.log("server-stack.test.ts: TLS test skipped: openssl is not installed (it makes the test certificate)");
(OPENSSL ? test : test.skip)("TLS: HTTP/2 and HTTP/1.1 via ALPN, grpc-js and buf curl", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "scripwire-tls-"));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const keyPath = join(dir, "key.pem");
  const certPath = join(dir, "cert.pem");
  try {
    await execFileP("openssl", [
      "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
      "-keyout", keyPath, "-out", certPath, "-days", "1", "-subj", "/CN=localhost",
      "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
    ]);
  } catch (err) {
    t.fail(`openssl failed to make the test certificate: ${String(err)}`);
    return;
  }
  const cert = readFileSync(certPath, "utf8");
  const key = readFileSync(keyPath, "utf8");
  const { stack, url, port } = await startStack(t, { tls: { cert, key } });
  t.true(url.startsWith("https://127.0.0.1:"));

  const tr = h2Transports(url, { ca: cert });
  t.is((await createClient(Health, tr.connect).check({})).status, ServingStatus.SERVING);
  t.is((await createClient(Health, tr.grpc).check({})).status, ServingStatus.SERVING);
  t.is(stack.stats().http2Sessions, 2);

  const agent = new https.Agent({ keepAlive: true, ca: cert });
  const web = createGrpcWebTransport({ baseUrl: url, httpVersion: "1.1", nodeOptions: { agent } });
  t.is((await createClient(Health, web).check({})).status, ServingStatus.SERVING);
  t.is(stack.stats().http1Connections, 1);

  // Name the certificate's DNS SAN: an IP address as TLS SNI is deprecated (DEP0123).
  const client = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createSsl(Buffer.from(cert)), {
    "grpc.ssl_target_name_override": "localhost",
    "grpc.default_authority": "localhost",
  });
  try {
    const res = await grpcJsUnary(
      client,
      "/grpc.health.v1.Health/Check",
      (m: MessageInitShape<typeof HealthCheckRequestSchema>) => toBinary(HealthCheckRequestSchema, create(HealthCheckRequestSchema, m)),
      (b) => fromBinary(HealthCheckResponseSchema, b),
      {},
    );
    t.is(res.status, ServingStatus.SERVING);
  } finally {
    client.close();
  }

  const methods = await bufCurl(["--protocol", "grpc", "--cacert", certPath, url, "--list-methods"]);
  t.true(methods.includes("grpc.health.v1.Health/Check"));

  tr.close();
  agent.destroy();
  await expectNoConnections(t, stack);
});

// ---------------------------------------------------------------------------
// Limits

test("a request above maxMessageBytes fails with RESOURCE_EXHAUSTED", async (t) => {
  const { stack, url } = await startStack(t, { maxMessageBytes: 1024 });
  const tr = h2Transports(url);
  const agent = new http.Agent({ keepAlive: true });
  const web = createGrpcWebTransport({ baseUrl: url, httpVersion: "1.1", nodeOptions: { agent } });
  for (const transport of [tr.connect, tr.grpc, web]) {
    const echo = createClient(TestService, transport);
    t.is((await echo.echo({ value: new Uint8Array(900) })).value.length, 900);
    await expectConnectError(t, echo.echo({ value: new Uint8Array(2048) }), Code.ResourceExhausted);
  }
  tr.close();
  agent.destroy();
  await expectNoConnections(t, stack);
});

// ---------------------------------------------------------------------------
// Graceful shutdown

test("close() lets in-flight unary calls finish, then refuses connections", async (t) => {
  const { stack, url, port } = await startStack(t);
  const tr = h2Transports(url);
  const agent = new http.Agent({ keepAlive: true });
  // Warm both connections so the calls below run on existing ones.
  await createClient(Health, tr.grpc).check({});
  await postJson(url, "/grpc.health.v1.Health/Check", "{}", { agent });

  let started = 0;
  const bothStarted = new Promise<void>((resolve) => {
    onSleepStarted = () => {
      if (++started === 2) resolve();
    };
  });
  const t0 = performance.now();
  const h2Call = createClient(TestService, tr.grpc).sleep({ nanos: 200_000_000 });
  const h1Call = postJson(url, "/scripwire.test.v1.StackTestService/Sleep", JSON.stringify("0.200s"), { agent });
  await bothStarted;
  onSleepStarted = undefined;

  const closing = stack.close(20_000);
  t.true(stack.closing);
  t.is(stack.health.get(""), ServingStatus.NOT_SERVING);
  t.is(stack.health.get("scripwire.test.v1.StackTestService"), ServingStatus.NOT_SERVING);

  // The listener is closed at once: a new connection is refused.
  const refused = await new Promise<string>((resolve) => {
    const s = net.connect(port, "127.0.0.1");
    s.once("connect", () => {
      s.destroy();
      resolve("connected");
    });
    s.once("error", (e: NodeJS.ErrnoException) => resolve(e.code ?? "error"));
  });
  t.is(refused, "ECONNREFUSED");

  // Both in-flight calls complete normally.
  await t.notThrowsAsync(h2Call);
  const h1 = await h1Call;
  t.is(h1.status, 200);
  t.is(h1.headers.connection, "close", "HTTP/1 keep-alive connection told to close");
  t.true(performance.now() - t0 >= 190);

  await closing;
  t.true(performance.now() - t0 < 10_000, "close() did not wait for the grace period");
  t.is(stack.stats().forcedCloses, 0);
  t.is(stack.stats().connections, 0);
  tr.close();
  agent.destroy();
});

test("close() closes idle HTTP/1 and HTTP/2 connections without waiting", async (t) => {
  const { stack, url, port } = await startStack(t);
  const tr = h2Transports(url);
  const agent = new http.Agent({ keepAlive: true });
  await createClient(Health, tr.connect).check({});
  await postJson(url, "/grpc.health.v1.Health/Check", "{}", { agent });
  // A client that connected but never spoke.
  const silent = net.connect(port, "127.0.0.1");
  await new Promise<void>((resolve) => silent.once("connect", () => resolve()));
  const silentClosed = new Promise<void>((resolve) => silent.once("close", () => resolve()));
  silent.on("error", () => {});
  await sleep(20);
  t.is(stack.stats().connections, 3);

  const t0 = performance.now();
  await stack.close(20_000);
  t.true(performance.now() - t0 < 5000, "idle connections closed promptly, not after the grace period");
  t.is(stack.stats().connections, 0);
  t.is(stack.stats().forcedCloses, 0);
  await silentClosed;
  tr.close();
  agent.destroy();
});

test("close() aborts long-lived streams after the grace period; Watch sees NOT_SERVING", async (t) => {
  const { stack, url } = await startStack(t);
  const tr = h2Transports(url);

  const watchStatuses: ServingStatus[] = [];
  let firstStatus!: () => void;
  let firstTick!: () => void;
  const gotStatus = new Promise<void>((resolve) => (firstStatus = resolve));
  const gotTick = new Promise<void>((resolve) => (firstTick = resolve));
  // Settle both streams into values at once so no rejection goes unhandled.
  const watch = (async () => {
    for await (const res of createClient(Health, tr.connect).watch({ service: "" })) {
      watchStatuses.push(res.status);
      firstStatus();
    }
  })().then(() => "ended without error", (e: unknown) => e);
  const ticks = (async () => {
    for await (const _ of createClient(TestService, tr.grpc).ticks({})) {
      firstTick();
    }
  })().then(() => "ended without error", (e: unknown) => e);
  await Promise.all([gotStatus, gotTick]);
  t.deepEqual(watchStatuses, [ServingStatus.SERVING]);

  const t0 = performance.now();
  await stack.close(300);
  const elapsed = performance.now() - t0;
  t.true(elapsed >= 290 && elapsed < 8000, `close took ${elapsed} ms`);

  const watchErr = ConnectError.from(await watch);
  t.is(watchErr.code, Code.Unavailable, watchErr.message);
  t.regex(watchErr.rawMessage, /shutting down/);
  const ticksErr = ConnectError.from(await ticks);
  t.is(ticksErr.code, Code.Unavailable, ticksErr.message);
  t.deepEqual(watchStatuses, [ServingStatus.SERVING, ServingStatus.NOT_SERVING]);
  t.is(stack.stats().connections, 0);
  tr.close();
});

test("close() is idempotent and listen() after close() fails", async (t) => {
  const { stack } = await startStack(t);
  const a = stack.close(100);
  t.is(stack.close(5), a);
  await a;
  await t.throwsAsync(stack.listen(), { message: /closed/ });
});

// ---------------------------------------------------------------------------
// Logging and errors

test("call log lines carry method, code and duration, never bodies or headers", async (t) => {
  const lines: string[] = [];
  const logger = createLogger({ level: "debug", write: (l) => lines.push(l) });
  const { stack, url } = await startStack(t, { logger });
  const tr = h2Transports(url);
  const secretBytes = new TextEncoder().encode("TOP-SECRET-PAYLOAD");
  const echo = createClient(TestService, tr.connect);
  await echo.echo({ value: secretBytes }, { headers: { authorization: "Bearer TOKEN-123" } });
  await t.throwsAsync(echo.fail({ value: "BAD_SCRIP" }));
  tr.close();
  await expectNoConnections(t, stack);

  const records = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
  for (const r of records) {
    t.is(typeof r.time, "string");
    t.true(["error", "info", "debug"].includes(r.level as string));
  }
  const rpc = records.filter((r) => r.msg === "rpc");
  t.deepEqual(
    rpc.map((r) => [r.level, r.method, r.code]),
    [
      ["debug", "scripwire.test.v1.StackTestService/Echo", "ok"],
      ["info", "scripwire.test.v1.StackTestService/Fail", "invalid_argument"],
    ],
  );
  t.is(typeof rpc[0]!.duration_ms, "number");
  const all = lines.join("\n");
  t.false(all.includes("TOKEN-123"));
  t.false(all.includes("TOP-SECRET"));
  t.false(all.includes(Buffer.from(secretBytes).toString("base64")));
  t.true(records.some((r) => r.msg === "listening"));
  t.true(records.some((r) => r.msg === "stopped"));
});

test("silent logging installs no interceptor; levels parse from SCRIPWIRE_LOG", (t) => {
  t.is(createLoggingInterceptor(createLogger({ level: "silent" })), undefined);
  t.not(createLoggingInterceptor(createLogger({ level: "error" })), undefined);
  const lines: string[] = [];
  const info = createLogger({ level: "info", write: (l) => lines.push(l) });
  info.debug("dropped");
  info.info("kept", { level: "forged", n: 1 });
  t.is(lines.length, 1);
  t.like(JSON.parse(lines[0]!), { level: "info", msg: "kept", n: 1 });
  t.is(logLevelFromEnv({}), "info");
  t.is(logLevelFromEnv({ SCRIPWIRE_LOG: "DEBUG" }), "debug");
  t.is(parseLogLevel("silent"), "silent");
  t.throws(() => parseLogLevel("verbose"), { message: /SCRIPWIRE_LOG must be one of/ });
});

test("redact() hides secret-looking keys and raw bytes", (t) => {
  const input = {
    serial: 7,
    scrip: { certificate: "c", macKey: "k", value_minor: 5 },
    clientSecret: "s",
    Authorization: "Bearer x",
    payload_hash: "h",
    list: [{ mac: "m", ok: true }],
    blob: new Uint8Array(32),
  };
  t.deepEqual(redact(input), {
    serial: 7,
    scrip: { certificate: REDACTED, macKey: REDACTED, value_minor: 5 },
    clientSecret: REDACTED,
    Authorization: REDACTED,
    payload_hash: REDACTED,
    list: [{ mac: REDACTED, ok: true }],
    blob: "<32 bytes>",
  });
  t.is(input.scrip.certificate, "c", "input untouched");
  const cyclic: Record<string, unknown> = { a: 1 };
  cyclic.self = cyclic;
  t.deepEqual(redact(cyclic), { a: 1, self: "[circular]" });
});

test("error helpers carry an UPPER_SNAKE reason in metadata", (t) => {
  const err = invalidArgument("BAD_SCRIP", "scrip.certificate must be 32 bytes; resend the scrip exactly as the center issued it");
  t.is(err.code, Code.InvalidArgument);
  t.is(err.metadata.get(ERROR_REASON_KEY), "BAD_SCRIP");
  t.is(errorReason(err), "BAD_SCRIP");
  t.is(errorReason(new Error("x")), undefined);
  t.is(errorReason(undefined), undefined);
  t.throws(() => scripError(Code.Internal, "bad reason", "m"), { instanceOf: TypeError });
});
