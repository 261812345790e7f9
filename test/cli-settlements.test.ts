/**
 * `scripwire seller settlements` lists every settlement by default, paging
 * through the center's answers (a page here is 2, to page with few rows),
 * and `--limit n` lists the first n.
 */
import test from "ava";
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { DeliveryMethod } from "../gen/scripwire/v1/types_pb.js";
import { QUIZ } from "./helpers/inproc.js";
import { RawCustomer } from "./helpers/raw.js";
import { realWorld } from "./helpers/real.js";

const BIN = "bin/scripwire.js";

// Asynchronous: the center runs in this process and must keep answering while the CLI runs.
async function settlements(url: string, vendorId: string, secretHex: string, extra: string[]): Promise<{ settlements: Array<{ sequence: string }>; nextSequence: string }> {
  const r = await promisify(execFile)(process.execPath, [BIN, "seller", "settlements", "--center", url, "--vendor-id", vendorId, "--vendor-secret", secretHex, "--json", ...extra], {
    encoding: "utf8",
    env: { ...process.env, SCRIPWIRE_LOG: "silent" },
    timeout: 60_000,
  });
  return JSON.parse(r.stdout.trim().split("\n").pop()!);
}

test("seller settlements lists all of them by default (paging), and --limit lists fewer", async (t) => {
  const w = await realWorld();
  t.teardown(() => w.close());
  const c = new RawCustomer(w.centerTransport, w.sellerTransport);
  await c.register();
  await c.earn(QUIZ.itemId, QUIZ.answer);
  for (let i = 0; i < 4; i++) await c.buy("/articles/both", DeliveryMethod.VIEW);
  const url = w.centerServer.url;
  const hex = Buffer.from(w.secret).toString("hex");
  const all = await settlements(url, w.vendorId, hex, ["--page-size", "2"]);
  t.is(all.settlements.length, 5, "one issuance and four payments, over three pages of 2");
  t.deepEqual(all.settlements.map((s) => String(s.sequence)), ["1", "2", "3", "4", "5"]);
  t.is(String(all.nextSequence), "5");
  const three = await settlements(url, w.vendorId, hex, ["--page-size", "2", "--limit", "3"]);
  t.deepEqual(three.settlements.map((s) => String(s.sequence)), ["1", "2", "3"]);
  const after = await settlements(url, w.vendorId, hex, ["--after", "3"]);
  t.deepEqual(after.settlements.map((s) => String(s.sequence)), ["4", "5"]);
});
