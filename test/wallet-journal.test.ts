/**
 * The wallet's journal and its platform-neutral core:
 *   - a payment appends a few records; the whole state is written once at
 *     registration and once when the wallet closes (compaction), not several
 *     times per payment;
 *   - FileWalletStore replays its record log, drops a torn last line (its
 *     request never left), ignores lines of an older generation, and refuses
 *     a damaged line in the middle;
 *   - the core bundles for the browser: nothing it imports names `node:*`
 *     or `Buffer`.
 */
import test from "ava";
import { appendFile, mkdtemp, readFile, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { FileWalletStore, MemoryWalletStore, StateError, Wallet } from "../src/wallet/index.js";
import { startWorld, type World } from "./helpers/world.js";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
let world: World;
test.before(async () => {
  world = await startWorld();
});
test.after.always(async () => {
  await world?.close();
});

test("a payment appends records; the whole state is saved at registration and on close only", async (t) => {
  const store = new MemoryWalletStore();
  const w = await Wallet.open({ store });
  await w.register(world.centerUrl);
  t.is(store.saves, 1, "registration writes the first snapshot");
  await w.earn(world.sellerUrl, world.quiz.itemId, world.quiz.answer);
  await w.buy(world.sellerUrl, world.catalog.article.requestUrl, "VIEW");
  t.is(store.saves, 1, "no whole-state rewrite during earn and buy");
  // earn: pending(M4), scrip+pending(M6), done; buy: the same three.
  t.is(store.appends, 6);
  const replayed = (await store.load())!;
  t.is(replayed.history.length, 3);
  t.is(replayed.pending, null);
  t.is(Object.keys(replayed.receipts).length, 1);
  await w.close();
  t.is(store.saves, 2, "close folds the records into one snapshot");
  t.is(store.recordCount, 0);
});

test("FileWalletStore: records replay; a torn last line is dropped; an old generation is ignored; damage is refused", async (t) => {
  const dir = await mkdtemp(join(tmpdir(), "scripwire-journal-"));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const path = join(dir, "wallet.json");
  const w = await Wallet.open({ store: new FileWalletStore(path) });
  await w.register(world.centerUrl);
  await w.earn(world.sellerUrl, world.quiz.itemId, world.quiz.answer);
  const snapshotBefore = await readFile(path, "utf8");
  const journal = await readFile(`${path}.journal`, "utf8");
  t.is(journal.trim().split("\n").length, 3, "earning appended three lines");
  t.is(JSON.parse(snapshotBefore).state.history.length, 1, "the snapshot was not rewritten by the earn");

  // Another process reads the same files (as the crash tests do): snapshot + records.
  const seen = (await new FileWalletStore(path).load())!;
  t.is(seen.history.at(-1)!.kind, "earned");

  // A torn line at the end (the process died mid-append) is dropped.
  await appendFile(`${path}.journal`, '{"g":"x","n":3,"r":{"pending":nu');
  t.is((await new FileWalletStore(path).load())!.history.length, 2);
  // A damaged line in the middle is not a crash: refused.
  const lines = journal.trim().split("\n");
  await writeFile(`${path}.journal`, [lines[0], "garbage", lines[2], ""].join("\n"));
  const e = await t.throwsAsync(new FileWalletStore(path).load(), { instanceOf: StateError });
  t.is(e!.reason, "BAD_WALLET_FILE");
  // Put it back; close compacts: one snapshot file, no journal.
  await writeFile(`${path}.journal`, journal);
  await w.close();
  t.deepEqual((await readdir(dir)).sort(), ["wallet.json"]);
  // Lines left from an older generation (a crash after the snapshot's rename, before the journal's removal) are ignored.
  await writeFile(`${path}.journal`, journal);
  const again = await Wallet.open({ store: new FileWalletStore(path) });
  t.teardown(() => again.close());
  t.is(again.history().length, 2);
  t.is(again.balance().value, 50n);
});

test("the wallet core and src/crypto bundle for the browser: no node:* module, no Buffer", async (t) => {
  const { build } = await import("esbuild");
  const out = await build({
    stdin: { contents: 'export * from "./src/wallet/core.js"; export * from "./src/wallet/state.js"; export * from "./src/wallet/journal.js";', resolveDir: ROOT, loader: "ts" },
    bundle: true,
    platform: "browser",
    format: "esm",
    write: false,
    metafile: true,
    logLevel: "silent",
  });
  const inputs = Object.keys(out.metafile.inputs);
  t.false(inputs.some((i) => i.startsWith("node:") || i.includes("connect-node")), inputs.filter((i) => i.includes("node")).join(", "));
  const own = inputs.filter((i) => i.startsWith("src/"));
  t.true(own.includes("src/wallet/steps.ts") && own.some((i) => i.startsWith("src/crypto/")));
  for (const f of own) {
    const text = await readFile(join(ROOT, f), "utf8");
    t.false(/\bBuffer\b/.test(text.replace(/\/\*[\s\S]*?\*\/|\/\/.*$/gm, "")), `${f} uses Buffer`);
  }
});

test("FileWalletStore: after a torn last line, the next append cuts it off first (it never ends up mid-file)", async (t) => {
  const dir = await mkdtemp(join(tmpdir(), "scripwire-journal-"));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const path = join(dir, "wallet.json");
  const dying = new FileWalletStore(path);
  const first = await Wallet.open({ store: dying });
  await first.register(world.centerUrl);
  await first.earn(world.sellerUrl, world.quiz.itemId, world.quiz.answer);
  // The process dies in the middle of its next append: the wallet is never closed
  // (nothing is compacted); its lock goes with it.
  await appendFile(`${path}.journal`, '{"g":"torn","n":3,"r":{"pend');
  await dying.unlock();
  const second = await Wallet.open({ store: new FileWalletStore(path) });
  t.teardown(() => second.close());
  t.is(second.balance().value, 50n);
  await second.buy(world.sellerUrl, world.catalog.viewOnly.requestUrl, "VIEW");
  const lines = (await readFile(`${path}.journal`, "utf8")).trim().split("\n");
  t.false(lines.some((l) => l.includes('"torn"')), "the torn fragment is gone");
  const seen = (await new FileWalletStore(path).load())!;
  t.is(seen.history.at(-1)!.kind, "bought");
  t.is(seen.pending, null);
});
