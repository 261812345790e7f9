/**
 * The gateway's pure parts: path normalisation (the table in docs/gateway.md),
 * route matching, the challenge grammar and the credential encoding
 * (differential against node's base64url), config errors.
 */
import test from "ava";
import fc from "fast-check";
import { credentialToken, formatChallenge, fromBase64Url, parseChallenge, toBase64Url, type ScripChallenge } from "../src/gateway/challenge.js";
import { parseGatewayConfig } from "../src/gateway/config.js";
import { normalizeHost, normalizeTarget, type PathRefusal } from "../src/gateway/path.js";
import { matchRoute, parseItemUrl } from "../src/gateway/routes.js";

test("normalizeTarget: canonical forms", (t) => {
  const ok: [string, string, string, string][] = [
    ["/", "/", "/", ""],
    ["/a/b", "/a/b", "/a/b", ""],
    ["/A/B/", "/A/B/", "/a/b", ""],
    ["//a///b", "/a/b", "/a/b", ""],
    ["/a/./b/../c", "/a/c", "/a/c", ""],
    ["/a/%2e%2e/b", "/b", "/b", ""],
    ["/a/.%2E/b", "/b", "/b", ""],
    ["/%61%62c", "/abc", "/abc", ""],
    ["/a%20b", "/a%20b", "/a%20b", ""],
    ["/a%c3%a9", "/a%C3%A9", "/a%c3%a9", ""],
    ["/a/b/..", "/a/", "/a", ""],
    ["/a?x=1&y=/../", "/a", "/a", "?x=1&y=/../"],
  ];
  for (const [input, path, key, query] of ok) t.deepEqual(normalizeTarget(input), { path, key, query }, input);
});

test("normalizeTarget: refusals", (t) => {
  const bad: [string, PathRefusal][] = [
    ["a/b", "NOT_ORIGIN_FORM"],
    ["*", "NOT_ORIGIN_FORM"],
    ["/a%2fb", "ENCODED_SEPARATOR"],
    ["/a%2Fb", "ENCODED_SEPARATOR"],
    ["/a%5cb", "ENCODED_SEPARATOR"],
    ["/a%00", "ENCODED_SEPARATOR"],
    ["/a\\b", "BAD_CHARACTER"],
    ["/a b", "BAD_CHARACTER"],
    ["/é", "BAD_CHARACTER"],
    ["/a#f", "BAD_CHARACTER"],
    ["/a%zz", "BAD_PERCENT_ENCODING"],
    ["/a%2", "BAD_PERCENT_ENCODING"],
    ["/a%252e", "DOUBLE_ENCODED"],
    ["/a;jsessionid=1", "PATH_PARAMETER"],
    ["/a%3b", "PATH_PARAMETER"],
    ["/..", "ESCAPES_ROOT"],
    ["/a/../../b", "ESCAPES_ROOT"],
    // IIS / Windows file serving strip a trailing dot or space: /articles./a is /articles/a there.
    ["/articles./a", "TRAILING_DOT_OR_SPACE"],
    ["/articles%2e/a", "TRAILING_DOT_OR_SPACE"],
    ["/articles%20/a", "TRAILING_DOT_OR_SPACE"],
    ["/a/b...", "TRAILING_DOT_OR_SPACE"],
    ["/" + "a".repeat(9000), "TARGET_TOO_LONG"],
  ];
  for (const [input, reason] of bad) t.is(normalizeTarget(input), reason, input);
});

test("normalizeTarget is idempotent and never yields a dot segment or an empty segment", (t) => {
  fc.assert(
    fc.property(fc.array(fc.constantFrom("a", "B", ".", "..", "", "%2e", "%2E%2e", "%41", "x%20y", "/"), { maxLength: 12 }), (segs) => {
      const n = normalizeTarget("/" + segs.join("/"));
      if (typeof n === "string") return;
      const again = normalizeTarget(n.path);
      t.false(typeof again === "string");
      if (typeof again !== "string") t.is(again.path, n.path);
      t.false(/\/\.{1,2}(\/|$)/.test(n.path) || /\/\/|%2e/i.test(n.path));
    }),
  );
});

test("normalizeHost", (t) => {
  t.deepEqual(normalizeHost("Example.COM."), { host: "example.com", authority: "example.com" });
  t.deepEqual(normalizeHost("example.com:8080"), { host: "example.com", authority: "example.com:8080" });
  t.deepEqual(normalizeHost("[::1]:80"), { host: "[::1]", authority: "[::1]:80" });
  t.is(normalizeHost("evil.com/x"), undefined);
  t.is(normalizeHost("a b"), undefined);
  t.is(normalizeHost(""), undefined);
});

const cfg = parseGatewayConfig({
  upstream: "http://127.0.0.1:1",
  vendorId: "v",
  vendorKeys: { "1": "00".repeat(32) },
  routes: [
    { id: "a", host: "*.example.com", path: "/a/*", price: "1", currency: "KRW", free: ["/a/free", "/a/pub/*"] },
    { id: "b", path: "/a/*", price: "2", currency: "KRW" },
    { id: "exact", path: "/Report.PDF", price: "3", currency: "KRW", method: "SAVE" },
  ],
});

test("matchRoute: order, hosts, prefixes, free paths, case", (t) => {
  t.is(matchRoute(cfg.routes, "x.example.com", "/a/1")?.route.id, "a");
  t.is(matchRoute(cfg.routes, "example.com", "/a/1")?.route.id, "b", "*.example.com is subdomains only");
  t.is(matchRoute(cfg.routes, "x.example.com", "/a")?.route.id, "a");
  t.is(matchRoute(cfg.routes, "x.example.com", "/ab"), undefined);
  t.true(matchRoute(cfg.routes, "x.example.com", "/a/free")!.free);
  t.true(matchRoute(cfg.routes, "x.example.com", "/a/pub/x/y")!.free);
  t.false(matchRoute(cfg.routes, "x.example.com", "/a/free/x")!.free);
  t.is(matchRoute(cfg.routes, "h", "/report.pdf")?.route.id, "exact");
});

test("parseItemUrl accepts only canonical item URLs", (t) => {
  t.deepEqual(parseItemUrl("http://h:1/A/b"), { host: "h", authority: "h:1", path: "/A/b", key: "/a/b" });
  for (const bad of ["http://h/a/../b", "http://h//a", "http://H/a", "ftp://h/a", "http://h/a?x", "/a", "http://h"]) t.is(parseItemUrl(bad), undefined, bad);
});

test("config errors name the field", (t) => {
  const base = { upstream: "http://u", vendorId: "v", vendorKeys: { "1": "00".repeat(32) }, routes: [{ path: "/a/*", price: "1", currency: "KRW" }] };
  t.throws(() => parseGatewayConfig({ ...base, upstream: "ftp://x" }), { message: /upstream/ });
  t.throws(() => parseGatewayConfig({ ...base, vendorKeys: { "1": "zz" } }), { message: /vendorKeys\.1/ });
  t.throws(() => parseGatewayConfig({ ...base, routes: [{ ...base.routes[0], price: "-1" }] }), { message: /routes\[0\]\.price/ });
  t.throws(() => parseGatewayConfig({ ...base, routes: [{ ...base.routes[0], path: "/a/*/b" }] }), { message: /routes\[0\]\.path/ });
  t.throws(() => parseGatewayConfig({ ...base, routes: [{ ...base.routes[0], method: "STREAM" }] }), { message: /method/ });
  t.throws(() => parseGatewayConfig({ ...base, routes: [base.routes[0], base.routes[0]].map((r) => ({ ...r, id: "x" })) }), { message: /used twice/ });
  t.throws(() => parseGatewayConfig({ ...base, routes: [{ ...base.routes[0], receiptLifetimeSeconds: 10 ** 9 }] }), { message: /receiptLifetimeSeconds/ });
});

const sample: ScripChallenge = {
  realm: 'Kim\'s "news"',
  vendor: "news",
  seller: "https://news.example",
  item: "https://news.example/articles/a%20b",
  price: 30n,
  currency: "KRW",
  method: "VIEW",
  route: "articles",
  lifetime: 3600,
  reason: "EXPIRED",
};

test("challenge: format then parse round-trips; other schemes around it are skipped", (t) => {
  const h = formatChallenge(sample);
  t.is(
    h,
    'Scrip realm="Kim\'s \\"news\\"", vendor="news", seller="https://news.example", item="https://news.example/articles/a%20b", price="30", currency="KRW", method="VIEW", route="articles", lifetime="3600", reason="EXPIRED"',
  );
  t.deepEqual(parseChallenge(h), { ...sample, center: undefined });
  t.deepEqual(parseChallenge(`Basic realm="x", Bearer abc==, ${h}, Other a="b"`), { ...sample, center: undefined });
  t.is(parseChallenge('Basic realm="x"'), undefined);
  t.is(parseChallenge('Scrip vendor="v"'), undefined, "missing required parameters");
  t.is(parseChallenge(h.replace('price="30"', 'price="-1"')), undefined);
  t.is(parseChallenge(h.replace('method="VIEW"', 'method="STEAL"')), undefined);
});

test("credential: base64url agrees with node's, strict decoding", (t) => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 300 }), (b) => {
      const s = toBase64Url(b);
      t.is(s, Buffer.from(b).toString("base64url"));
      t.deepEqual(fromBase64Url(s), b);
    }),
  );
  t.is(fromBase64Url("ab+c"), undefined);
  t.is(fromBase64Url("a"), undefined);
  t.is(credentialToken("Scrip abc"), "abc");
  t.is(credentialToken("scrip   abc  "), "abc");
  t.is(credentialToken("Scrip a b"), "MALFORMED");
  t.is(credentialToken("Scrip"), "MALFORMED");
  t.is(credentialToken("Scrip " + "a".repeat(2000)), "MALFORMED");
  t.is(credentialToken("Basic abc"), undefined);
  t.is(credentialToken(undefined), undefined);
});
