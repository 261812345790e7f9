/**
 * Load drivers.
 *
 * closedLoop: N workers, each starting its next operation as soon as the
 * last one finished: measures the most the server can do (throughput).
 *
 * openLoop: operations are STARTED on a fixed schedule (rate per second),
 * whether or not earlier ones have finished, and latency is measured from
 * the scheduled start. A server falling behind therefore shows up as
 * latency (no "coordinated omission"), and a rate below saturation gives the
 * latency a user would see at that load.
 *
 * An "operation" may be several calls (a payment is S3, S4, S6); the
 * Recorder counts calls and operations separately. Server CPU is sampled
 * with `snapshot` right when measurement starts and stops.
 */
import { readFileSync } from "node:fs";
import { cpuBetween, type ProcStats } from "./child.js";
import { LatencyLog, type LatencySummary } from "./stats.js";

export class Recorder {
  measuring = false;
  calls = 0;
  ops = 0;
  errors = 0;
  firstError: string | undefined;
  readonly callLatency = new LatencyLog();
  readonly opLatency = new LatencyLog();

  /** Times one call (from `startedAt`, default now) and counts it if measuring. */
  async call<T>(p: () => Promise<T>, startedAt = performance.now()): Promise<T> {
    const v = await p();
    if (this.measuring) {
      this.calls++;
      this.callLatency.add((performance.now() - startedAt) * 1000);
    }
    return v;
  }

  op(startedAt: number): void {
    if (this.measuring) {
      this.ops++;
      this.opLatency.add((performance.now() - startedAt) * 1000);
    }
  }

  error(e: unknown): void {
    this.errors++;
    this.firstError ??= e instanceof Error ? e.message : String(e);
  }
}

export interface LoadResult {
  kind: "closed" | "open";
  seconds: number;
  calls: number;
  ops: number;
  callsPerSec: number;
  opsPerSec: number;
  errors: number;
  firstError?: string;
  /** Server CPU time per call / per operation, µs (user + system). */
  serverCpuUsPerCall: number;
  serverCpuUsPerOp: number;
  /** Server CPU utilisation over the window (1.0 = one core busy). */
  serverCpuCores: number;
  /** Linux: the event-loop thread's share of serverCpuCores, and cores' worth of time the server's threads waited for a CPU. */
  serverMainCores?: number;
  serverRunqWaitCores?: number;
  /**
   * Linux: cores' worth of the whole machine's CPU time no thread used over
   * the window (idle + iowait in /proc/stat). Shows what the run left on the
   * table: under loopback RPC load a virtual machine may idle while threads
   * wait to be woken, even when every stage has work.
   */
  machineIdleCores?: number;
  /** Load generator CPU per call, µs (to show the client was not the bottleneck). */
  clientCpuUsPerCall: number;
  clientCpuCores: number;
  serverRssBytes: number;
  callLatency: LatencySummary;
  opLatency: LatencySummary;
  /** Open loop only: target rate (operations/s), and operations that had to wait for a free worker. */
  targetOpsPerSec?: number;
  queuedOps?: number;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Idle + iowait of all CPUs, in seconds since boot (Linux; undefined elsewhere). */
export function machineIdleSeconds(): number | undefined {
  try {
    const cpu = readFileSync("/proc/stat", "utf8").split("\n", 1)[0]!.trim().split(/\s+/);
    if (cpu[0] !== "cpu") return undefined;
    // Fields after "cpu": user nice system idle iowait ... in USER_HZ ticks (100 per second on Linux).
    return (Number(cpu[4]) + Number(cpu[5])) / 100;
  } catch {
    return undefined;
  }
}

function finish(
  kind: "closed" | "open",
  rec: Recorder,
  t0: number,
  t1: number,
  s0: ProcStats,
  s1: ProcStats,
  c0: NodeJS.CpuUsage,
  c1: NodeJS.CpuUsage,
  idle: [number | undefined, number | undefined] = [undefined, undefined],
): LoadResult {
  const seconds = (t1 - t0) / 1000;
  const cpu = cpuBetween(s0, s1);
  const ccpu = c1.user + c1.system - (c0.user + c0.system);
  return {
    kind,
    seconds,
    calls: rec.calls,
    ops: rec.ops,
    callsPerSec: rec.calls / seconds,
    opsPerSec: rec.ops / seconds,
    errors: rec.errors,
    firstError: rec.firstError,
    serverCpuUsPerCall: cpu / Math.max(1, rec.calls),
    serverCpuUsPerOp: cpu / Math.max(1, rec.ops),
    serverCpuCores: cpu / 1e6 / ((s1.at - s0.at) / 1000),
    serverMainCores: s1.mainThreadUs !== undefined && s0.mainThreadUs !== undefined ? (s1.mainThreadUs - s0.mainThreadUs) / 1e6 / ((s1.at - s0.at) / 1000) : undefined,
    serverRunqWaitCores: s1.runqWaitUs !== undefined && s0.runqWaitUs !== undefined ? (s1.runqWaitUs - s0.runqWaitUs) / 1e6 / ((s1.at - s0.at) / 1000) : undefined,
    machineIdleCores: idle[0] !== undefined && idle[1] !== undefined ? (idle[1] - idle[0]) / seconds : undefined,
    clientCpuUsPerCall: ccpu / Math.max(1, rec.calls),
    clientCpuCores: ccpu / 1e6 / seconds,
    serverRssBytes: s1.rssBytes,
    callLatency: rec.callLatency.summary(),
    opLatency: rec.opLatency.summary(),
  };
}

export interface ClosedLoopOptions<W> {
  workers: W[];
  warmupMs: number;
  durationMs: number;
  /** One operation by one worker; must record its calls on `rec`. */
  op: (w: W, rec: Recorder) => Promise<void>;
  snapshot: () => Promise<ProcStats>;
  onTick?: (rec: Recorder, elapsedMs: number) => void;
  /** Called right before / after the measured window (e.g. to start and stop a profiler). */
  around?: { start: () => Promise<void>; stop: () => Promise<void> };
}

export async function closedLoop<W>(o: ClosedLoopOptions<W>): Promise<LoadResult> {
  const rec = new Recorder();
  let stop = false;
  const loops = o.workers.map(async (w) => {
    while (!stop) {
      try {
        await o.op(w, rec);
      } catch (e) {
        rec.error(e);
        await sleep(1);
      }
    }
  });
  await sleep(o.warmupMs);
  await o.around?.start();
  const s0 = await o.snapshot();
  const c0 = process.cpuUsage();
  const idle0 = machineIdleSeconds();
  const t0 = performance.now();
  rec.measuring = true;
  const tick = setInterval(() => o.onTick?.(rec, performance.now() - t0), 500);
  await sleep(o.durationMs);
  rec.measuring = false;
  const t1 = performance.now();
  const c1 = process.cpuUsage();
  const idle1 = machineIdleSeconds();
  clearInterval(tick);
  const s1 = await o.snapshot();
  await o.around?.stop();
  stop = true;
  await Promise.all(loops);
  return finish("closed", rec, t0, t1, s0, s1, c0, c1, [idle0, idle1]);
}

export interface OpenLoopOptions<W> {
  /** Operations started per second. */
  rate: number;
  warmupMs: number;
  durationMs: number;
  /** Idle workers; an operation takes one and gives it back when done. */
  workers: W[];
  op: (w: W, rec: Recorder, scheduledAt: number) => Promise<void>;
  snapshot: () => Promise<ProcStats>;
  onTick?: (rec: Recorder, elapsedMs: number) => void;
}

export async function openLoop<W>(o: OpenLoopOptions<W>): Promise<LoadResult> {
  const rec = new Recorder();
  const idle = [...o.workers];
  const backlog: number[] = [];
  let queued = 0;
  let inflight = 0;
  const interval = 1000 / o.rate;
  const start = performance.now();
  const endAt = start + o.warmupMs + o.durationMs;
  let nextAt = start;
  let s0: ProcStats | undefined;
  let c0: NodeJS.CpuUsage | undefined;
  let t0 = 0;
  let idle0: number | undefined;

  const run = (w: W, scheduledAt: number) => {
    inflight++;
    o.op(w, rec, scheduledAt)
      .catch((e: unknown) => rec.error(e))
      .finally(() => {
        inflight--;
        const waiting = backlog.shift();
        if (waiting !== undefined) run(w, waiting);
        else idle.push(w);
      });
  };

  const tick = setInterval(() => o.onTick?.(rec, performance.now() - start), 500);
  while (performance.now() < endAt) {
    const now = performance.now();
    if (!rec.measuring && now >= start + o.warmupMs) {
      s0 = await o.snapshot();
      c0 = process.cpuUsage();
      idle0 = machineIdleSeconds();
      t0 = performance.now();
      rec.measuring = true;
      queued = 0;
    }
    while (nextAt <= now) {
      const w = idle.pop();
      if (w !== undefined) run(w, nextAt);
      else {
        backlog.push(nextAt);
        queued++;
      }
      nextAt += interval;
    }
    await sleep(Math.max(0, Math.min(5, nextAt - performance.now())));
  }
  rec.measuring = false;
  const t1 = performance.now();
  const c1 = process.cpuUsage();
  const idle1 = machineIdleSeconds();
  const s1 = await o.snapshot();
  clearInterval(tick);
  backlog.length = 0;
  while (inflight > 0) await sleep(2);
  const r = finish("open", rec, t0, t1, s0!, s1, c0!, c1, [idle0, idle1]);
  r.targetOpsPerSec = o.rate;
  r.queuedOps = queued;
  return r;
}
