/**
 * The ledger's writer thread (started by sqlite-worker.ts). It owns the only
 * write connection and runs SqlLedger's write methods over the group-commit
 * engine: every call that arrives while the previous commit is on disk goes
 * into the next transaction, each in its own SAVEPOINT, and all of them share
 * that transaction's one fsync. An answer is posted only after COMMIT
 * returned, and the answers of one commit travel back in one message.
 */
import { parentPort, workerData } from "node:worker_threads";
import { SqlLedger } from "./sql-ledger.js";
import { SqliteEngine } from "./sqlite.js";
import { ARG_CODECS, toWireError, WRITE_METHODS, type FromWriter, type ToWriter } from "./sqlite-worker.js";

const port = parentPort!;
const { path, groupCommit } = workerData as { path: string; groupCommit: boolean };
const allowed = new Set<string>(WRITE_METHODS);

let ledger: SqlLedger;
try {
  ledger = new SqlLedger("sqlite", new SqliteEngine({ path, groupCommit, writer: "inline", noReader: true }));
} catch (e) {
  port.postMessage({ t: "open-failed", error: toWireError(e) } satisfies FromWriter);
  port.close();
  throw e;
}

let outbox: Array<[number, boolean, unknown]> = [];
let scheduled = false;
let inFlight = 0;
let closeRequested = false;

function answer(id: number, ok: boolean, value: unknown): void {
  outbox.push([id, ok, value]);
  inFlight--;
  if (!scheduled) {
    scheduled = true;
    // The engine resolves a whole commit's calls in one synchronous loop;
    // their continuations run as microtasks before this fires, so one
    // message carries every answer of that commit.
    setImmediate(flush);
  }
}

function flush(): void {
  scheduled = false;
  const results = outbox;
  outbox = [];
  if (results.length > 0) port.postMessage({ t: "results", results } satisfies FromWriter);
  if (closeRequested && inFlight === 0) void shutdown();
}

async function shutdown(): Promise<void> {
  await ledger.close();
  port.postMessage({ t: "closed" } satisfies FromWriter);
  port.close();
}

port.on("message", (m: ToWriter) => {
  if (m.t === "close") {
    closeRequested = true;
    if (inFlight === 0 && !scheduled) void shutdown();
    return;
  }
  for (const [id, method, args] of m.calls) {
    inFlight++;
    if (!allowed.has(method)) {
      answer(id, false, toWireError(new Error(`not a ledger write method: ${String(method)}`)));
      continue;
    }
    let p: Promise<unknown>;
    try {
      const codec = ARG_CODECS[method];
      p = (ledger[method] as (...a: unknown[]) => Promise<unknown>).apply(ledger, codec ? codec.fromWire(args) : args);
    } catch (e) {
      answer(id, false, toWireError(e));
      continue;
    }
    p.then(
      (v) => answer(id, true, v),
      (e: unknown) => answer(id, false, toWireError(e)),
    );
  }
});

port.postMessage({ t: "ready" } satisfies FromWriter);
