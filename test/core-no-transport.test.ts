/**
 * The protocol core (center and seller logic, their refusal types and step
 * table) loads with no transport at all: a child process whose module loader
 * throws on any import of Connect, gRPC, node:http/http2/net/tls or a
 * database driver imports each core module. If any of them, however
 * indirectly, pulled one in, the import would fail here.
 */
import test from "ava";
import { execFileSync } from "node:child_process";

const CORE = ["src/center/center.ts", "src/center/steps.ts", "src/seller/seller.ts", "src/protocol/refusal.ts", "src/protocol/header.ts"];

const script = `
import { register } from "node:module";
import { pathToFileURL } from "node:url";
register(pathToFileURL("test/helpers/no-transport-hook.mjs"));
const out = {};
for (const f of ${JSON.stringify(CORE)}) {
  try { const m = await import(pathToFileURL(f).href); out[f] = Object.keys(m).length; }
  catch (e) { out[f] = "FAILED: " + e.message; }
}
// The hook itself works: a transport import is refused.
try { await import("@connectrpc/connect"); out.control = "loaded"; } catch (e) { out.control = "refused"; }
console.log(JSON.stringify(out));
`;

test("center, seller and refusal modules import with every transport and database driver forbidden", (t) => {
  const stdout = execFileSync(process.execPath, ["--import=tsx", "--input-type=module", "-e", script], { encoding: "utf8", env: { ...process.env, SCRIPWIRE_LOG: "silent" } });
  const out = JSON.parse(stdout.trim().split("\n").pop()!) as Record<string, number | string>;
  t.is(out.control, "refused", "the hook refuses a transport import (so a pass below means something)");
  for (const f of CORE) t.is(typeof out[f], "number", `${f}: ${out[f]}`);
});
