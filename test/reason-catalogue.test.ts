/**
 * One catalogue of error reasons (docs/protocol.md "Reason catalogue") against
 * the code: every reason the servers can produce is documented with its code,
 * and nothing else is. The code's list is REASONS (src/protocol/refusal.ts);
 * the core's refusal types only accept its keys, and this test also reads the
 * source for reasons written as literals outside the typed helpers.
 */
import test from "ava";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { REASONS } from "../src/protocol/refusal.js";

/** Names that never reach the wire (ledger-internal outcomes, client-side errors), and why. */
const INTERNAL_ONLY: Record<string, string> = {
  STATE_CHANGED: "a lost race inside the ledger; the center retries and answers CONTENDED if it keeps losing",
  CORRUPT: "an invariant broke inside the ledger; it reaches a client only as INTERNAL without a reason",
  SERIAL_TAKEN: "a customer serial collision inside R1; the center draws another and answers SERIAL_COLLISION if it keeps colliding",
  IN_FLIGHT: "a credit fold that waits for an executed transaction; SY1 answers without folding",
  BAD_RECOVERY_CODE: "the wallet's own parse error for a recovery code typed by its user; no server sends it",
  RECOVERY_CODE_MISTYPED: "the wallet's own check-symbol error for a recovery code; no server sends it",
  KEK_UNKNOWN: "a startup refusal (the key-encryption key file does not match the ledger); no call is served",
  WRITER_FAILED: "the SQLite writer thread failed; callers get INTERNAL without a reason",
  FSYNC_FAILED: "the WAL's fdatasync failed and the SQLite ledger stopped (wal-sync.ts); callers get INTERNAL without a reason and health goes NOT_SERVING",
  WRITE_ON_READER: "a programming error inside the SQLite engine (a write on the read connection); INTERNAL",
  BAD_CONFIG: "an engine option out of range at startup; no call is served",
  SCHEMA_TOO_NEW: "a startup refusal of `center serve`, printed by the CLI; no call is served",
};

function catalogue(): Map<string, string> {
  const md = readFileSync("docs/protocol.md", "utf8");
  const start = md.indexOf("## Reason catalogue");
  if (start < 0) throw new Error("docs/protocol.md has no '## Reason catalogue' section");
  const end = md.indexOf("\n## ", start + 5);
  const rows = new Map<string, string>();
  for (const line of md.slice(start, end < 0 ? undefined : end).split("\n")) {
    const m = /^\| `([A-Z][A-Z0-9_]*)` \| ([A-Z_]+) \|/.exec(line);
    if (m) {
      if (rows.has(m[1]!)) throw new Error(`${m[1]} is listed twice`);
      rows.set(m[1]!, m[2]!);
    }
  }
  return rows;
}

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => {
    const p = join(dir, f);
    if (statSync(p).isDirectory()) return sources(p);
    return p.endsWith(".ts") ? [p] : [];
  });
}

// Not server error reasons: the wallet's and the CLI's own error codes (client
// side), and the HTTP 402 gateway's answers to plain HTTP clients, which
// docs/gateway.md lists (its SellerService, src/gateway/seller.ts, is scanned).
const NOT_RPC = [/src\/wallet\//, /src\/cli\//, /src\/gateway\/(?!seller\.ts)/, /src\/protocol\/refusal\.ts$/];
const SERVER_SOURCES = sources("src").filter((p) => !NOT_RPC.some((r) => r.test(p)));
const PRODUCERS =
  /(?:\b(?:refusal|invalidArgument|failedPrecondition|notFound|alreadyExists|permissionDenied|unauthenticated|resourceExhausted|unavailable|internal|aborted|LedgerError|refuse|Rollback)\(\s*|\breason: |\brefusal: |scripError\(\s*Code\.\w+,\s*)"([A-Z][A-Z0-9_]+)"/g;

test("docs/protocol.md lists exactly the reasons in REASONS, each with its code", (t) => {
  const doc = catalogue();
  const code = new Map(Object.entries(REASONS));
  t.deepEqual([...doc.keys()].filter((r) => !code.has(r)).sort(), [], "documented but not in REASONS");
  t.deepEqual([...code.keys()].filter((r) => !doc.has(r)).sort(), [], "in REASONS but not documented");
  for (const [r, c] of code) if (doc.has(r)) t.is(doc.get(r), c, `${r}: documented code`);
});

test("every reason written in the servers' source is catalogued (or is ledger-internal)", (t) => {
  const found = new Map<string, string>();
  for (const f of SERVER_SOURCES) {
    const text = readFileSync(f, "utf8");
    for (const m of text.matchAll(PRODUCERS)) found.set(m[1]!, f);
    // Metadata set by hand: `[ERROR_REASON_KEY]: NAME`, NAME a constant of that file.
    for (const m of text.matchAll(/\[ERROR_REASON_KEY\]:\s*(?:"([A-Z][A-Z0-9_]+)"|([A-Z][A-Z0-9_]*))/g)) {
      const value = m[1] ?? new RegExp(`const ${m[2]} = "([A-Z][A-Z0-9_]+)"`).exec(text)?.[1];
      if (!value) t.fail(`${f}: cannot resolve the reason ${m[2]}`);
      else found.set(value, f);
    }
  }
  t.true(found.size > 30, `the scan finds the producers (found ${found.size})`);
  const unknown = [...found].filter(([r]) => !(r in REASONS) && !(r in INTERNAL_ONLY)).map(([r, f]) => `${r} (${f})`);
  t.deepEqual(unknown, [], "reasons produced but not catalogued");
});

test("every catalogued reason is produced somewhere (nothing documented is dead)", (t) => {
  const text = SERVER_SOURCES.map((f) => readFileSync(f, "utf8")).join("\n");
  const dead = Object.keys(REASONS).filter((r) => !text.includes(`"${r}"`));
  t.deepEqual(dead, []);
});
