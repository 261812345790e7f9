/**
 * The body of the ledger's writer thread (see sqlite-writer.ts, its plain
 * entry, and sqlite-worker.ts, its other end). It owns the only write
 * connection and runs SqlLedger's write methods over the group-commit engine:
 * every call that arrives while the previous commit is on disk goes into the
 * next transaction, and all of them share that transaction's one fsync. An
 * answer is posted only after COMMIT returned, and the answers of one commit
 * travel back in one message.
 *
 * A guest (an entry module other than sqlite-writer.ts that calls
 * `hostWriter(guest)`) may serve calls of its own on this thread, named
 * `guest:<name>`, over the same SqlLedger: the payment center runs its hot
 * calls here that way (src/center/center-thread.ts), so their SQL, hashing
 * and protobuf work leave the event loop. A guest's ledger reads go to a
 * read-only connection of their own (committed = fsynced data only), never
 * to the half-built group transaction on the write connection.
 */
import { parentPort, workerData } from "node:worker_threads";
import { SqlLedger } from "./sql-ledger.js";
import { SqliteEngine } from "./sqlite.js";
import { ARG_CODECS, toWireError, WRITE_METHODS, GUEST_PREFIX, type FromWriter, type ToWriter, type WriteMethod, type WriterData } from "./sqlite-worker.js";
import { DurableHorizon } from "./durable-horizon.js";
import { useNativeHashes } from "../crypto/native-hash.js";

export interface WriterGuest {
  /** Serve `guest:<name>`; what it resolves to goes back as the call's result. */
  call(name: string, args: unknown[]): Promise<unknown>;
  /** Notices for the other thread, sent with the next results (e.g. settlements). */
  drainNotices?(): unknown[];
}

export function hostWriter(makeGuest?: (ledger: SqlLedger) => WriterGuest): void {
// Sealing links the chain on this thread: OpenSSL, like the event loop.
useNativeHashes();

  const port = parentPort!;
  const { path, groupCommit, horizon } = workerData as WriterData;
  const allowed = new Set<string>(WRITE_METHODS);

  let ledger: SqlLedger;
  let guest: WriterGuest | undefined;
  try {
    ledger = new SqlLedger(
      "sqlite",
      new SqliteEngine({
        path,
        groupCommit,
        writer: "inline",
        noReader: makeGuest === undefined,
        // The WAL's fsync off this thread, so the hot calls here never wait for the disk (wal-sync.ts).
        syncOffThread: horizon ? { horizon: new DurableHorizon(horizon) } : undefined,
      }),
    );
    guest = makeGuest?.(ledger);
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
    const notices = guest?.drainNotices?.();
    if (results.length > 0 || (notices && notices.length > 0)) port.postMessage({ t: "results", results, notices } satisfies FromWriter);
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
      let p: Promise<unknown>;
      try {
        if (guest && method.startsWith(GUEST_PREFIX)) {
          p = guest.call(method.slice(GUEST_PREFIX.length), args);
        } else if (!allowed.has(method)) {
          throw new Error(`not a ledger write method: ${String(method)}`);
        } else {
          const codec = ARG_CODECS[method as WriteMethod];
          p = (ledger[method as WriteMethod] as (...a: unknown[]) => Promise<unknown>).apply(ledger, codec ? codec.fromWire(args) : args);
        }
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
}
