/**
 * Sections 2-4: end-to-end throughput, latency and server CPU per call,
 * against the real center (durable SQLite ledger, group commit) in a child
 * process, side by side with no-op calls on the same stack, on grpc-js and
 * on bare node:http2.
 */
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import {
  ConfirmIssueRequestSchema,
  ConfirmIssueResponseSchema,
  ConfirmPaymentRequestSchema,
  ConfirmPaymentResponseSchema,
  InitIssueRequestSchema,
  InitPaymentRequestSchema,
  IssueRequestSchema,
  IssueResponseSchema,
  PayRequestSchema,
  PayResponseSchema,
} from "../gen/scripwire/v1/center_pb.js";
import { NoopRequestSchema } from "../gen/scripwire/bench/v1/bench_pb.js";
import { CmdType, type Offer } from "../gen/scripwire/v1/types_pb.js";
import { computeMessageHash, verifyMessageHash } from "../src/crypto/scrip-auth.js";
import { Seller } from "../src/seller/seller.js";
import { ServerChild, type ChildOptions } from "./lib/child.js";
import { H2Client, type WireProtocol } from "./lib/h2client.js";
import { closedLoop, openLoop, type LoadResult, type Recorder } from "./lib/load.js";
import type { ServerOptions } from "./server.js";
import { cloneWallets, copyTemplate, fetchOffers, fetchPermits, hdr, type BenchWallet, type World } from "./world.js";

const CENTER = "/scripwire.v1.PaymentCenterService";
export const PATH = {
  initPayment: `${CENTER}/InitPayment`,
  pay: `${CENTER}/Pay`,
  confirmPayment: `${CENTER}/ConfirmPayment`,
  initIssue: `${CENTER}/InitIssue`,
  issue: `${CENTER}/Issue`,
  confirmIssue: `${CENTER}/ConfirmIssue`,
  noop: "/scripwire.bench.v1.NoopService/Noop",
};

/** Size of the no-op payload: about a PayRequest (341 bytes), as in the earlier probe. */
export const NOOP_PAYLOAD_BYTES = 300;

interface Prepared<T> {
  item: T;
  /** The first request of the flow (S3 / M3), encoded before the timed loop. */
  first: Uint8Array;
}

export interface LoadWallet {
  w: BenchWallet;
  offers: Prepared<Offer>[];
  permits: Prepared<Offer>[];
  nextAdItem: number;
}

export interface Timing {
  warmupMs: number;
  durationMs: number;
  concurrency: number;
  connections: number;
}

export class Bench {
  readonly seller: Seller;
  constructor(
    readonly world: World,
    readonly timing: Timing,
    readonly onStatus: (m: string) => void,
  ) {
    this.seller = new Seller(world.sellerConfig);
  }

  /** Fresh wallet state (as saved in the template) for a run on a fresh copy of it. */
  wallets(): LoadWallet[] {
    return cloneWallets(this.world.wallets).slice(0, this.timing.concurrency).map((w) => ({ w, offers: [], permits: [], nextAdItem: 0 }));
  }

  refillOffers(ws: LoadWallet[], perWallet: number): void {
    for (const lw of ws) {
      const need = perWallet - lw.offers.length;
      if (need <= 0) continue;
      for (const order of fetchOffers(this.seller, lw.w, need)) {
        lw.offers.push({ item: order, first: toBinary(InitPaymentRequestSchema, create(InitPaymentRequestSchema, { header: hdr(CmdType.PM3_1), order })) });
      }
    }
  }

  refillPermits(ws: LoadWallet[], perWallet: number): void {
    for (const lw of ws) {
      const need = Math.min(perWallet - lw.permits.length, this.world.adItems - lw.nextAdItem);
      if (need <= 0) continue;
      const items = Array.from({ length: need }, (_, i) => lw.nextAdItem + i);
      lw.nextAdItem += need;
      for (const permit of fetchPermits(this.seller, lw.w, items)) {
        lw.permits.push({ item: permit, first: toBinary(InitIssueRequestSchema, create(InitIssueRequestSchema, { header: hdr(CmdType.GM3_1), permit })) });
      }
    }
  }

  /** S3 -> S4 -> S5 -> S6, as a wallet does it (checks the S5 reply hash, adopts the change). */
  paymentOp(client: H2Client, protocol: WireProtocol) {
    return async (lw: LoadWallet, rec: Recorder, scheduledAt?: number): Promise<void> => {
      const t0 = scheduledAt ?? performance.now();
      let o = lw.offers.pop();
      if (!o) {
        this.refillOffers([lw], 8);
        o = lw.offers.pop()!;
      }
      const order = o.item;
      const w = lw.w;
      await rec.call(() => client.unary(PATH.initPayment, o.first, protocol), t0);
      const s4 = toBinary(
        PayRequestSchema,
        create(PayRequestSchema, {
          header: hdr(CmdType.PM4_1),
          scrip: w.scrip,
          order,
          hash: computeMessageHash(w.scrip.hashAlgorithm, w.customSecret, { code: "PM4_1", contextId: order.tranId, pCount: 0, scrip: w.scrip, order }),
          pCount: 0,
        }),
      );
      const s5 = fromBinary(PayResponseSchema, await rec.call(() => client.unary(PATH.pay, s4, protocol)));
      if (s5.header?.cmdType !== CmdType.PM5_1) throw new Error(`S5 ${CmdType[s5.header?.cmdType ?? 0]}: ${s5.header?.errorMessage}`);
      const ns = s5.newScrip!;
      if (!verifyMessageHash(ns.hashAlgorithm, w.customSecret, { code: "PM5_1", contextId: order.tranId, pCount: 0, scrip: ns }, s5.newScripHash)) {
        throw new Error("S5 reply hash does not verify");
      }
      w.scrip = ns;
      const s6 = toBinary(
        ConfirmPaymentRequestSchema,
        create(ConfirmPaymentRequestSchema, {
          header: hdr(CmdType.PM6_1),
          tranId: order.tranId,
          newScrip: ns,
          newScripHash: computeMessageHash(ns.hashAlgorithm, w.customSecret, { code: "PM6_1", contextId: order.tranId, pCount: 0, scrip: ns }),
          pCount: 0,
        }),
      );
      const r = fromBinary(ConfirmPaymentResponseSchema, await rec.call(() => client.unary(PATH.confirmPayment, s6, protocol)));
      if (!r.receipt) throw new Error(`S6 answered without a receipt: ${r.header?.errorMessage}`);
      rec.op(t0);
    };
  }

  /** M3 -> M4 -> M5 -> M6 -> M7. */
  issueOp(client: H2Client, protocol: WireProtocol) {
    return async (lw: LoadWallet, rec: Recorder, scheduledAt?: number): Promise<void> => {
      const t0 = scheduledAt ?? performance.now();
      let p = lw.permits.pop();
      if (!p) {
        this.refillPermits([lw], 8);
        p = lw.permits.pop();
        if (!p) throw new Error("out of ad items for issuance (raise adItems)");
      }
      const permit = p.item;
      const w = lw.w;
      await rec.call(() => client.unary(PATH.initIssue, p.first, protocol), t0);
      const m4 = toBinary(
        IssueRequestSchema,
        create(IssueRequestSchema, {
          header: hdr(CmdType.GM4_1),
          tranId: permit.tranId,
          scrip: w.scrip,
          scripHash: computeMessageHash(w.scrip.hashAlgorithm, w.customSecret, { code: "GM4_1", contextId: permit.tranId, pCount: 0, scrip: w.scrip }),
          pCount: 0,
        }),
      );
      const m5 = fromBinary(IssueResponseSchema, await rec.call(() => client.unary(PATH.issue, m4, protocol)));
      if (m5.header?.cmdType !== CmdType.GM5_1) throw new Error(`M5 ${CmdType[m5.header?.cmdType ?? 0]}: ${m5.header?.errorMessage}`);
      const ns = m5.newScrip!;
      if (!verifyMessageHash(ns.hashAlgorithm, w.customSecret, { code: "GM5_1", contextId: permit.tranId, pCount: 0, scrip: ns }, m5.newScripHash)) {
        throw new Error("M5 reply hash does not verify");
      }
      w.scrip = ns;
      const m6 = toBinary(
        ConfirmIssueRequestSchema,
        create(ConfirmIssueRequestSchema, {
          header: hdr(CmdType.GM6_1),
          tranId: permit.tranId,
          newScrip: ns,
          newScripHash: computeMessageHash(ns.hashAlgorithm, w.customSecret, { code: "GM6_1", contextId: permit.tranId, pCount: 0, scrip: ns }),
          pCount: 0,
        }),
      );
      fromBinary(ConfirmIssueResponseSchema, await rec.call(() => client.unary(PATH.confirmIssue, m6, protocol)));
      rec.op(t0);
    };
  }

  noopOp(client: H2Client, protocol: WireProtocol, path = PATH.noop) {
    const body = toBinary(NoopRequestSchema, create(NoopRequestSchema, { payload: new Uint8Array(NOOP_PAYLOAD_BYTES).fill(7) }));
    return async (_w: unknown, rec: Recorder, scheduledAt?: number): Promise<void> => {
      const t0 = scheduledAt ?? performance.now();
      await rec.call(() => client.unary(path, body, protocol), t0);
      rec.op(t0);
    };
  }

  tick(label: string) {
    return (rec: Recorder, ms: number) => this.onStatus(`${label}: ${rec.calls.toLocaleString("en-US")} calls, ${Math.round(rec.calls / Math.max(ms / 1000, 0.001))}/s`);
  }

  async closed<W>(
    label: string,
    child: ServerChild,
    workers: W[],
    op: (w: W, rec: Recorder) => Promise<void>,
    durationMs = this.timing.durationMs,
    profilePath?: string,
  ): Promise<LoadResult> {
    const around = profilePath ? { start: () => child.profileStart(), stop: () => child.profileStop(profilePath) } : undefined;
    return closedLoop({ workers, warmupMs: this.timing.warmupMs, durationMs, op, snapshot: () => child.stats(), onTick: this.tick(label), around });
  }

  async open<W>(label: string, child: ServerChild, rate: number, workers: W[], op: (w: W, rec: Recorder, at: number) => Promise<void>): Promise<LoadResult> {
    return openLoop({ rate, workers, warmupMs: Math.min(1000, this.timing.warmupMs), durationMs: this.timing.durationMs, op, snapshot: () => child.stats(), onTick: this.tick(label) });
  }

  /** Starts a server child, connects a client, runs `body`, and always cleans up. */
  async withServer<T>(opts: ServerOptions, body: (child: ServerChild, client: H2Client) => Promise<T>, co: ChildOptions = {}): Promise<T> {
    const child = await ServerChild.start(opts, co);
    const client = new H2Client(child.url, this.timing.connections);
    try {
      await client.connect();
      return await body(child, client);
    } catch (e) {
      const log = child.log().trim().split("\n").slice(-15).join("\n");
      throw new Error(`${e instanceof Error ? e.message : String(e)}\n--- server (${opts.mode}) stderr tail ---\n${log}`);
    } finally {
      client.close();
      await child.close();
    }
  }

  freshDb(runName: string): string {
    return copyTemplate(this.world, join(this.world.dir, runName));
  }
}

/** Expected operations for a phase at a rate, per wallet, with margin. */
export function perWallet(opsPerSec: number, ms: number, wallets: number): number {
  return Math.ceil(((opsPerSec * ms) / 1000 / wallets) * 1.3) + 4;
}

export function dbBytes(path: string): number {
  let n = 0;
  for (const ext of ["", "-wal"]) {
    try {
      n += statSync(path + ext).size;
    } catch {
      // absent
    }
  }
  return n;
}

export interface InprocResult {
  payments: number;
  seconds: number;
  paymentsPerSec: number;
  /** Process CPU per payment (center + ledger + crypto + the wallet loop itself), µs. */
  cpuUsPerPayment: number;
  cpuUserUsPerPayment: number;
  cpuSystemUsPerPayment: number;
  /** CPU of the event-loop thread only (the ledger writer may run on another), µs per payment. */
  mainThreadCpuUsPerPayment: number;
}

/**
 * The same payment loop with no transport at all: wallets call PaymentCenter's
 * methods directly in this process (real SQLite file, group commit,
 * synchronous=FULL). CPU per payment here is the floor the protocol logic
 * sets; it includes the wallet side of the loop (its 4 MACs and message
 * building, see section 5), so it slightly overstates the center's share.
 */
export async function inprocPayments(
  bench: Bench,
  runDir: string,
  warmupMs: number,
  durationMs: number,
  writer: "worker" | "inline" = "worker",
): Promise<InprocResult> {
  const { PaymentCenter } = await import("../src/center/center.js");
  const { openSqliteLedger } = await import("../src/ledger/sqlite.js");
  const { CENTER_CONFIG } = await import("./world.js");
  const ledger = openSqliteLedger(copyTemplate(bench.world, runDir), { writer });
  const center = new PaymentCenter(ledger, CENTER_CONFIG);
  await center.start();
  const ws = bench.wallets();
  let measuring = false;
  let payments = 0;
  let stop = false;
  const flow = async (lw: LoadWallet) => {
    let o = lw.offers.pop();
    if (!o) {
      bench.refillOffers([lw], 16);
      o = lw.offers.pop()!;
    }
    const order = o.item;
    const w = lw.w;
    await center.initPayment(fromBinary(InitPaymentRequestSchema, o.first));
    const s5 = await center.pay(
      create(PayRequestSchema, {
        header: hdr(CmdType.PM4_1),
        scrip: w.scrip,
        order,
        hash: computeMessageHash(w.scrip.hashAlgorithm, w.customSecret, { code: "PM4_1", contextId: order.tranId, pCount: 0, scrip: w.scrip, order }),
        pCount: 0,
      }),
    );
    if (s5.header?.cmdType !== CmdType.PM5_1) throw new Error(`S5 ${s5.header?.errorMessage}`);
    const ns = s5.newScrip!;
    if (!verifyMessageHash(ns.hashAlgorithm, w.customSecret, { code: "PM5_1", contextId: order.tranId, pCount: 0, scrip: ns }, s5.newScripHash)) throw new Error("S5 hash");
    w.scrip = ns;
    const r = await center.confirmPayment(
      create(ConfirmPaymentRequestSchema, {
        header: hdr(CmdType.PM6_1),
        tranId: order.tranId,
        newScrip: ns,
        newScripHash: computeMessageHash(ns.hashAlgorithm, w.customSecret, { code: "PM6_1", contextId: order.tranId, pCount: 0, scrip: ns }),
        pCount: 0,
      }),
    );
    if (!r.receipt) throw new Error("no receipt");
    if (measuring) payments++;
  };
  bench.refillOffers(ws, 64);
  const loops = ws.map(async (lw) => {
    while (!stop) await flow(lw);
  });
  await new Promise((r) => setTimeout(r, warmupMs));
  const c0 = process.cpuUsage();
  const m0 = threadCpuUs();
  const t0 = performance.now();
  measuring = true;
  await new Promise((r) => setTimeout(r, durationMs));
  measuring = false;
  const c1 = process.cpuUsage();
  const m1 = threadCpuUs();
  const seconds = (performance.now() - t0) / 1000;
  stop = true;
  await Promise.all(loops);
  await ledger.close();
  return {
    payments,
    seconds,
    paymentsPerSec: payments / seconds,
    cpuUsPerPayment: (c1.user + c1.system - c0.user - c0.system) / Math.max(1, payments),
    cpuUserUsPerPayment: (c1.user - c0.user) / Math.max(1, payments),
    cpuSystemUsPerPayment: (c1.system - c0.system) / Math.max(1, payments),
    mainThreadCpuUsPerPayment: (m1 - m0) / Math.max(1, payments),
  };
}

/**
 * CPU time of the calling thread alone, µs (Linux /proc; 10 ms ticks, so only
 * meaningful over seconds). process.cpuUsage() counts every thread, and with
 * the ledger writer on its own thread the question is what is left on the
 * event loop's.
 */
export function threadCpuUs(): number {
  try {
    const stat = readFileSync("/proc/thread-self/stat", "utf8");
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    // fields 14 and 15 (utime, stime) are at 11 and 12 after the ")"
    return ((Number(f[11]) + Number(f[12])) * 1e6) / 100;
  } catch {
    return Number.NaN;
  }
}
