/**
 * Differential test of the unary fast path (src/server/fast-unary.ts) with
 * connect-node as the oracle, on the REAL center: two centers started by
 * startCenterServer, one with the fast path (default) and one without, get
 * the same raw HTTP/2 requests for each of the six hot methods across a
 * matrix of protocol (Connect binary, Connect JSON, gRPC, gRPC-Web), extra
 * headers (accept-encoding / grpc-accept-encoding, timeouts, unknown
 * headers) and bodies (refused-but-well-formed, wrong command, empty,
 * malformed protobuf, oversize), and must give the same client-visible
 * answer: HTTP status, headers (less `date`), gRPC status/message and body
 * bytes (a 200 body is compared after clearing the server's clock field).
 * The fast-path center must really have served the calls it can take.
 *
 * Plus: the protocol-header set fast-unary.ts copied from connect equals the
 * installed @connectrpc/connect's own (which it does not export).
 */
import test from "ava";
import http2 from "node:http2";
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { create, fromBinary, toBinary, type DescMessage } from "@bufbuild/protobuf";
import { PaymentCenterService } from "../gen/scripwire/v1/center_pb.js";
import { CmdType } from "../gen/scripwire/v1/types_pb.js";
import { CENTER_FAST_METHODS, startCenterServer, type RunningCenter } from "../src/center/server.js";
import { FAST_PATH_PROTOCOL_HEADERS } from "../src/server/fast-unary.js";
import { MESSAGE_BYTES_MAX } from "../src/server/resource-limits.js";

process.env.SCRIPWIRE_LOG ??= "silent";

async function center(fastPath: boolean): Promise<{ c: RunningCenter; close: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), "scripwire-fastdiff-"));
  const c = await startCenterServer({
    identity: { dnsName: "localhost", serverName: "fast path differential", port: 0 },
    currencies: ["KRW"],
    dataDir: dir,
    createLedger: true,
    kek: { file: join(dir, "center.kek") },
    host: "127.0.0.1",
    port: 0,
    adminToken: randomBytes(24).toString("hex"),
    fastPath,
  });
  return {
    c,
    close: async () => {
      await c.close(500);
      await rm(dir, { recursive: true, force: true });
    },
  };
}

type Protocol = "connect" | "connect-json" | "grpc" | "grpc-web";

interface Answer {
  status: number;
  headers: Record<string, string>;
  body: string;
  trailers: Record<string, string>;
}

function envelope(b: Uint8Array): Buffer {
  const h = Buffer.alloc(5);
  h.writeUInt32BE(b.length, 1);
  return Buffer.concat([h, b]);
}

function request(url: string, path: string, headers: Record<string, string>, body: Uint8Array): Promise<Omit<Answer, "body"> & { raw: Buffer }> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(url);
    session.on("error", reject);
    const req = session.request({ ":method": "POST", ":path": path, ...headers });
    const chunks: Buffer[] = [];
    let status = 0;
    let head: Record<string, string> = {};
    let trailers: Record<string, string> = {};
    const flat = (h: http2.IncomingHttpHeaders) =>
      Object.fromEntries(
        Object.entries(h)
          .filter(([k]) => k !== "date" && !k.startsWith(":"))
          .map(([k, v]) => [k, Array.isArray(v) ? v.join(", ") : String(v)]),
      );
    req.on("response", (h) => {
      status = Number(h[":status"]);
      head = flat(h);
    });
    req.on("trailers", (h) => (trailers = flat(h)));
    req.on("data", (d: Buffer) => chunks.push(d));
    req.on("end", () => {
      session.close();
      resolve({ status, headers: head, trailers, raw: Buffer.concat(chunks) });
    });
    req.on("error", (e) => {
      session.close();
      resolve({ status: -1, headers: { error: String((e as { code?: string }).code ?? e) }, trailers: {}, raw: Buffer.alloc(0) });
    });
    req.end(body);
  });
}

/** A 200 protobuf answer with the server's clock field zeroed (the only field that differs between two honest servers). */
function normaliseMessage(output: DescMessage, bytes: Buffer): string {
  try {
    const m = fromBinary(output, bytes) as { header?: { serverDateUnixMs: bigint } };
    if (m.header) m.header.serverDateUnixMs = 0n;
    return Buffer.from(toBinary(output, m as never)).toString("hex");
  } catch {
    return `undecodable:${bytes.toString("hex")}`;
  }
}

function normalise(p: Protocol, output: DescMessage, a: Omit<Answer, "body"> & { raw: Buffer }): Answer {
  let body: string;
  if (a.status !== 200 || p === "connect-json") {
    body = a.raw.toString("utf8");
    if (p === "connect-json" && a.status === 200) {
      try {
        const j = JSON.parse(body) as { header?: { serverDateUnixMs?: string } };
        if (j.header) delete j.header.serverDateUnixMs;
        body = JSON.stringify(j);
      } catch {
        // compared as text
      }
    }
  } else if (p === "connect") {
    body = normaliseMessage(output, a.raw);
  } else {
    // gRPC / gRPC-Web: envelopes; a message frame is normalised, a trailer frame (gRPC-Web, flag 0x80) kept as text.
    const parts: string[] = [];
    let i = 0;
    while (i + 5 <= a.raw.length) {
      const flag = a.raw[i]!;
      const len = a.raw.readUInt32BE(i + 1);
      const frame = a.raw.subarray(i + 5, i + 5 + len);
      parts.push(flag & 0x80 ? `trailer:${frame.toString("utf8").split("\r\n").sort().join("|")}` : normaliseMessage(output, frame));
      i += 5 + len;
    }
    body = parts.join(" ");
  }
  const headers = { ...a.headers };
  // A normalised 200 body may differ in length only because of the clock field's varint.
  if (a.status === 200) delete headers["content-length"];
  // Header order is not visible to a client; compare sorted.
  const sorted = (h: Record<string, string>) => Object.fromEntries(Object.entries(h).sort(([x], [y]) => (x < y ? -1 : 1)));
  return { status: a.status, headers: sorted(headers), body, trailers: sorted(a.trailers) };
}

const PROTOCOLS: Record<Protocol, { ct: string; frame: (b: Uint8Array) => Uint8Array; extra?: Record<string, string> }> = {
  connect: { ct: "application/proto", frame: (b) => b },
  "connect-json": { ct: "application/json", frame: (b) => b },
  grpc: { ct: "application/grpc", frame: envelope, extra: { te: "trailers" } },
  "grpc-web": { ct: "application/grpc-web+proto", frame: envelope },
};

type H = Record<string, string>;
const HEADER_VARIANTS: Record<string, (p: Protocol) => H> = {
  plain: () => ({}),
  "accept-encoding gzip": (p): H => (p.startsWith("grpc") ? { "grpc-accept-encoding": "gzip" } : { "accept-encoding": "gzip", "connect-accept-encoding": "gzip" }),
  timeout: (p): H => (p.startsWith("grpc") ? { "grpc-timeout": "5S" } : { "connect-timeout-ms": "5000" }),
  "unknown headers": (): H => ({ "x-scripwire-unknown": "1", "x-trace-id": "abc" }),
  "connect-protocol-version": (p): H => (p.startsWith("grpc") ? {} : { "connect-protocol-version": "1" }),
};

const HOT_CMD: Record<(typeof CENTER_FAST_METHODS)[number], CmdType> = {
  initIssue: CmdType.GM3_1,
  issue: CmdType.GM4_1,
  confirmIssue: CmdType.GM6_1,
  initPayment: CmdType.PM3_1,
  pay: CmdType.PM4_1,
  confirmPayment: CmdType.PM6_1,
};

function bodies(input: DescMessage, cmd: CmdType, json: boolean): Record<string, Uint8Array> {
  const enc = (m: unknown) => (json ? new TextEncoder().encode(JSON.stringify(m)) : toBinary(input, m as never));
  return {
    // Well-formed, right command, missing everything else: the center's own refusal.
    refused: json ? enc({ header: { cmdType: CmdType[cmd], protocolVersion: 1 } }) : enc(create(input, { header: { cmdType: cmd, protocolVersion: 1 } } as never)),
    "wrong command": json ? enc({ header: { cmdType: "PM8_1" } }) : enc(create(input, { header: { cmdType: CmdType.PM8_1 } } as never)),
    empty: new Uint8Array(0),
    malformed: json ? new TextEncoder().encode("{\"header\": ") : new Uint8Array([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f]),
    oversize: new Uint8Array(MESSAGE_BYTES_MAX + 1000).fill(0x20),
  };
}

test("the real center answers every hot method identically with the fast path on and off", async (t) => {
  const on = await center(true);
  const off = await center(false);
  t.teardown(async () => {
    await on.close();
    await off.close();
  });
  let compared = 0;
  const diffs: string[] = [];
  for (const name of CENTER_FAST_METHODS) {
    const method = PaymentCenterService.method[name];
    const path = `/${PaymentCenterService.typeName}/${method.name}`;
    for (const p of Object.keys(PROTOCOLS) as Protocol[]) {
      const proto = PROTOCOLS[p];
      for (const [bname, body] of Object.entries(bodies(method.input, HOT_CMD[name], p === "connect-json"))) {
        for (const [hname, hv] of Object.entries(HEADER_VARIANTS)) {
          const headers = { "content-type": proto.ct, ...proto.extra, ...hv(p) };
          const framed = proto.frame(body);
          const [a, b] = await Promise.all([request(on.c.url, path, headers, framed), request(off.c.url, path, headers, framed)]);
          const na = normalise(p, method.output, a);
          const nb = normalise(p, method.output, b);
          compared++;
          if (JSON.stringify(na) !== JSON.stringify(nb)) {
            diffs.push(`${name} ${p} ${bname} ${hname}: fast ${JSON.stringify(na).slice(0, 300)} vs connect ${JSON.stringify(nb).slice(0, 300)}`);
          }
        }
      }
    }
  }
  t.log(`${compared} request pairs compared; fast path took ${on.c.stack.fastUnaryServed()} of them, the other center ${off.c.stack.fastUnaryServed()}`);
  for (const d of diffs.slice(0, 40)) t.log(d);
  t.deepEqual(diffs, [], diffs.slice(0, 5).join("\n"));
  t.true(on.c.stack.fastUnaryServed() > 0, "the fast path was really used");
  t.is(off.c.stack.fastUnaryServed(), 0);
});

test("the protocol-header set fast-unary.ts copied equals the installed @connectrpc/connect's", async (t) => {
  // Not exported by the package: load the installed file itself, then recover
  // its set through the one function that uses it (it drops exactly the protocol headers).
  const require = createRequire(import.meta.url);
  const pkgMain = require.resolve("@connectrpc/connect");
  const file = join(pkgMain, "..", "..", "esm", "protocol", "protocol-headers.js");
  const version = (JSON.parse(readFileSync(join(pkgMain, "..", "..", "..", "package.json"), "utf8")) as { version: string }).version;
  const mod = (await import(pathToFileURL(file).href)) as { mergeNonProtocolHeaders(into: Headers, from: Headers): void };
  const candidates = new Set<string>([...FAST_PATH_PROTOCOL_HEADERS]);
  // Every header name connect's protocol modules define, so a header connect ADDED to its set is noticed too.
  for (const sub of ["protocol-connect/headers.js", "protocol-grpc/headers.js", "protocol-grpc-web/headers.js"]) {
    const h = (await import(pathToFileURL(join(pkgMain, "..", "..", "esm", sub)).href)) as Record<string, unknown>;
    for (const v of Object.values(h)) if (typeof v === "string") candidates.add(v.toLowerCase());
  }
  const from = new Headers();
  for (const c of candidates) from.set(c, "x");
  const kept = new Headers();
  mod.mergeNonProtocolHeaders(kept, from);
  const theirs = [...candidates].filter((c) => !kept.has(c)).sort();
  t.log(`@connectrpc/connect ${version}: ${theirs.length} protocol headers`);
  t.deepEqual([...FAST_PATH_PROTOCOL_HEADERS].sort(), theirs);
});
