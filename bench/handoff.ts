/**
 * The ledger writer thread's hand-off cost on the event loop: CPU of the
 * calling thread per ledger call, writer thread vs inline writer, with
 * payment-shaped arguments (a 350-byte stored reply, bigints, strings) in
 * batches of 64 concurrent calls. The TranID is unknown, so each call is
 * refused after one UPDATE and one SELECT: little SQL, mostly hand-off.
 * Thread CPU comes from /proc/thread-self/stat (10 ms ticks; hence 40,000
 * calls), because process.cpuUsage() also counts the writer thread.
 *
 *   node --import=tsx bench/handoff.ts
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openSqliteLedger } from "../src/ledger/sqlite.js";
import { SqliteWorkerLedger } from "../src/ledger/sqlite-worker.js";
import { threadCpuUs } from "./throughput.js";

const CALLS = 40_000;
const BATCH = 64;
const dir = mkdtempSync(join(tmpdir(), "scripwire-handoff-"));
try {
  for (const writer of ["inline", "worker", "inline", "worker"] as const) {
    const l = openSqliteLedger(join(dir, `${writer}-${Math.random().toString(36).slice(2)}.db`), { writer });
    await l.migrate();
    const op = {
      vendorId: "mall-1",
      tranId: "t-unknown",
      customerSerial: 123456789012345n,
      inSerial: 987654321098765n,
      inValue: 100n,
      out: { serial: 5555555555555n, customerSerial: 123456789012345n, currency: "KRW", value: 90n, expiresAt: 1900000000n },
      reply: new Uint8Array(350).fill(7),
      now: 1800000000n,
    };
    const m0 = threadCpuUs();
    const t0 = performance.now();
    for (let i = 0; i < CALLS; i += BATCH) {
      const rs = await Promise.all(Array.from({ length: BATCH }, () => l.executePayment(op)));
      if (rs[0]!.status !== "refused") throw new Error("expected UNKNOWN_TRANSACTION");
    }
    const m1 = threadCpuUs();
    const t1 = performance.now();
    const st = l instanceof SqliteWorkerLedger ? l.handOffStats() : undefined;
    process.stdout.write(
      `${writer.padEnd(6)}  event-loop CPU ${((m1 - m0) / CALLS).toFixed(1).padStart(5)} µs/call  wall ${(((t1 - t0) * 1000) / CALLS).toFixed(1).padStart(6)} µs/call` +
        (st ? `  ${st.calls} calls in ${st.messagesSent} messages out, ${st.messagesReceived} back` : "") +
        "\n",
    );
    await l.close();
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
