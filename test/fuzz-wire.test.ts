/**
 * The fuzz client's own decoding (test/fuzz/wire.ts) must not crash on what a
 * correct server sends. The ×10 run of 2026-11-30 died with "URIError: URI
 * malformed": a gRPC-Web error message was percent-decoded twice, so any
 * message holding a "%" (a fuzzed id echoed in a refusal) broke the harness.
 */
import test from "ava";
import { decodeAnswer, percentDecoded } from "./fuzz/wire.js";

function grpcWebTrailer(lines: string): Buffer {
  const payload = Buffer.from(lines);
  const head = Buffer.alloc(5);
  head[0] = 0x80;
  head.writeUInt32BE(payload.length, 1);
  return Buffer.concat([head, payload]);
}

test("a gRPC-Web error message with a percent sign is decoded once", (t) => {
  const a = decodeAnswer("grpc-web", 200, {}, grpcWebTrailer(`grpc-status: 3\r\ngrpc-message: ${encodeURIComponent("id 100% bad")}\r\n`));
  t.is(a.code, "invalid_argument");
  t.is(a.message, "id 100% bad");
});

test("a gRPC trailer message is decoded once too", (t) => {
  const a = decodeAnswer("grpc", 200, { "grpc-status": "3", "grpc-message": encodeURIComponent("50%: nope") }, Buffer.alloc(0));
  t.is(a.message, "50%: nope");
});

test("a malformed grpc-message is reported, not thrown", (t) => {
  t.regex(percentDecoded("%E0%A4%A"), /not percent-decodable/);
  t.is(percentDecoded("plain"), "plain");
});
