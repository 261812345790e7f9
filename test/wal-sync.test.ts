/**
 * The WAL's fsync off the writer thread (src/ledger/wal-sync.ts) and the
 * horizon readers wait on (src/ledger/durable-horizon.ts). The invariant:
 * with commits visible before they are durable, no job's outcome and no read
 * leaves before the fdatasync that covers every commit it could have seen.
 * A test holds the sync (an injected fdatasync that waits for the test) and
 * shows that nothing leaves meanwhile; the power-loss torture on LazyFS
 * (CI's torture-power-loss) checks the same thing against a real crash.
 */
import test from "ava";
import { fstatSync, mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DurableHorizon } from "../src/ledger/durable-horizon.js";
import { LedgerError } from "../src/ledger/ledger.js";
import { SqliteEngine, SQLITE_SYNC_ENV, syncOffThreadWanted, UNSAFE_SYNCHRONOUS_ENV } from "../src/ledger/sqlite.js";
import { SqliteWorkerLedger } from "../src/ledger/sqlite-worker.js";
import { openSqliteLedger } from "../src/ledger/sqlite.js";
import { fdatasync as realFdatasync } from "node:fs";

function tempDb(t: { teardown(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), "scripwire-walsync-"));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return join(dir, "ledger.db");
}

/** An fdatasync the test releases (or fails) by hand; each call is recorded. */
function heldSync() {
  const calls: Array<{ fd: number; release: () => void; fail: (e: Error) => void }> = [];
  let onCall: (() => void) | undefined;
  const fn = (fd: number, cb: (err: NodeJS.ErrnoException | null) => void) => {
    calls.push({
      fd,
      release: () => realFdatasync(fd, cb),
      fail: (e) => cb(e as NodeJS.ErrnoException),
    });
    onCall?.();
  };
  const next = () =>
    new Promise<(typeof calls)[number]>((resolve) => {
      const take = () => {
        const c = calls.shift();
        if (c) resolve(c);
        else onCall = take;
      };
      take();
    });
  return { fn, next };
}

const tick = () => new Promise((r) => setTimeout(r, 20));

/** An engine syncing off-thread through a held fdatasync, with table t created (and its sync released). */
async function heldEngine(t: { teardown(fn: () => void): void }, horizon?: DurableHorizon) {
  const path = tempDb(t);
  const sync = heldSync();
  const engine = new SqliteEngine({ path, writer: "inline", syncOffThread: { fdatasync: sync.fn, horizon } });
  const created = engine.tx(async (q) => q.run("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT NOT NULL)"));
  (await sync.next()).release();
  await created;
  return { path, sync, engine };
}

test("a commit's result leaves only after the fdatasync of the WAL that covers it", async (t) => {
  const { path, sync, engine } = await heldEngine(t);

  // The writer commits without its own fsync: synchronous=NORMAL (1).
  t.is((engine as unknown as { writer: { pragma(s: string, o: object): unknown } }).writer.pragma("synchronous", { simple: true }), 1n);

  let delivered = false;
  const write = engine.tx(async (q) => q.run("INSERT INTO t (k, v) VALUES (1, 'one')")).then((n) => {
    delivered = true;
    return n;
  });
  const held = await sync.next();
  // The sync really is of the WAL file.
  t.is(fstatSync(held.fd).ino, statSync(`${path}-wal`).ino);
  await tick();
  t.false(delivered, "the result waited for the sync");

  // A read that can see the commit waits for it as well.
  let readDone = false;
  const read = engine.read(async (q) => q.get<{ v: string }>("SELECT v FROM t WHERE k = 1")).then((r) => {
    readDone = true;
    return r;
  });
  await tick();
  t.false(readDone, "a read of a commit not yet durable waits");

  held.release();
  t.is(await write, 1);
  t.deepEqual(await read, { v: "one" });
  await engine.close();
});

test("a refusal that may rest on a commit not yet durable waits for that commit's sync", async (t) => {
  const { sync, engine } = await heldEngine(t);

  const first = engine.tx(async (q) => q.run("INSERT INTO t (k, v) VALUES (7, 'seven')"));
  const held = await sync.next();
  let refused: unknown;
  const second = engine
    .tx(async (q) => {
      const row = await q.get<{ v: string }>("SELECT v FROM t WHERE k = 7");
      if (row) throw new LedgerError("TAKEN", "k = 7 is taken");
      return 0;
    })
    .catch((e: unknown) => {
      refused = e;
    });
  await tick();
  t.is(refused, undefined, "the refusal saw an undurable commit and waits");
  held.release();
  await first;
  await second;
  t.true(refused instanceof LedgerError);
  await engine.close();
});

test("a failed fdatasync fails the waiting results, stops the ledger and tells other threads' readers", async (t) => {
  const horizon = new DurableHorizon();
  const { sync, engine } = await heldEngine(t, horizon);

  const write = engine.tx(async (q) => q.run("INSERT INTO t (k, v) VALUES (2, 'two')"));
  const held = await sync.next();
  // Another thread's reader whose snapshot could contain that commit.
  const reader = new DurableHorizon(horizon.buffer);
  const waiting = reader.visibleIsDurable();
  held.fail(Object.assign(new Error("EIO: i/o error, fdatasync"), { code: "EIO" }));
  const e = await t.throwsAsync(write);
  t.true(e instanceof LedgerError && e.reason === "FSYNC_FAILED", String(e));
  t.regex(e!.message, /EIO/);
  await t.throwsAsync(waiting, { message: /could not fsync/ });
  await t.throwsAsync(engine.tx(async () => 0), { message: /could not fsync/ });
  await t.throwsAsync(engine.read(async () => 0), { message: /could not fsync/ });
  await engine.close();
});

test("the horizon: a reader on another thread waits until every commit it could have seen is durable", async (t) => {
  const writer = new DurableHorizon();
  const reader = new DurableHorizon(writer.buffer);
  writer.begin(1);
  writer.durable(1);
  await reader.visibleIsDurable(); // nothing pending: at once
  writer.begin(2);
  writer.begin(3);
  let done = false;
  const p = reader.visibleIsDurable().then(() => {
    done = true;
  });
  await tick();
  t.false(done);
  writer.durable(2);
  await tick();
  t.false(done, "commit 3 was visible and is not yet durable");
  writer.durable(3);
  await p;
  t.true(done);
});

test("the horizon: if the writer thread is gone, a reader waiting for a sync fails instead of waiting for ever", async (t) => {
  const writer = new DurableHorizon();
  const reader = new DurableHorizon(writer.buffer);
  writer.begin(4);
  writer.durable(3);
  const waiting = reader.visibleIsDurable();
  // The event loop's WriterClient does this when the thread fails or exits.
  reader.writerGone();
  const e = await t.throwsAsync(waiting);
  t.true(e instanceof LedgerError && e.reason === "WRITER_FAILED", String(e));
  // A later fsync failure report does not overwrite the first cause.
  writer.fail();
  const again = await t.throwsAsync(reader.visibleIsDurable());
  t.is((again as LedgerError).reason, "WRITER_FAILED");
});

test("which engines sync off-thread: the writer thread by default; not under SCRIPWIRE_SQLITE_SYNC=commit or the unsafe test setting", async (t) => {
  const saved = { sync: process.env[SQLITE_SYNC_ENV], unsafe: process.env[UNSAFE_SYNCHRONOUS_ENV] };
  t.teardown(() => {
    for (const [k, v] of [
      [SQLITE_SYNC_ENV, saved.sync],
      [UNSAFE_SYNCHRONOUS_ENV, saved.unsafe],
    ] as const) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  });
  delete process.env[SQLITE_SYNC_ENV];
  delete process.env[UNSAFE_SYNCHRONOUS_ENV];
  t.true(syncOffThreadWanted());
  process.env[SQLITE_SYNC_ENV] = "commit";
  t.false(syncOffThreadWanted());
  delete process.env[SQLITE_SYNC_ENV];
  process.env[UNSAFE_SYNCHRONOUS_ENV] = "NORMAL";
  t.false(syncOffThreadWanted(), "the unsafe setting must stay as weak as it says");
  delete process.env[UNSAFE_SYNCHRONOUS_ENV];

  // An engine without the option keeps the fsync inside COMMIT: synchronous=FULL (2).
  const plain = new SqliteEngine({ path: tempDb(t), writer: "inline" });
  t.is((plain as unknown as { writer: { pragma(s: string, o: object): unknown } }).writer.pragma("synchronous", { simple: true }), 2n);
  await plain.close();

  // End to end through the writer thread: writes, and reads on this thread, see each other.
  const ledger = openSqliteLedger(tempDb(t));
  t.true(ledger instanceof SqliteWorkerLedger);
  await ledger.migrate();
  await ledger.addKey({ kind: "custom", secretId: 42, key: new Uint8Array(32).fill(4), createdAt: 1 });
  t.true((await ledger.listKeys()).some((k) => k.secretId === 42));
  await ledger.close();
});
