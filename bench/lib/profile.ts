/**
 * Summarises a V8 .cpuprofile (node --cpu-prof) into where the time went:
 * self time by component (connect-node, node:http2 internals, protobuf-es,
 * SQLite, our crypto, the center's logic, GC, idle) and the hottest
 * functions. Self time = samples whose top frame is that function.
 */
import { readFileSync } from "node:fs";

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

export interface ProfileSummary {
  totalMs: number;
  busyMs: number;
  byComponent: Array<{ component: string; ms: number; pctOfBusy: number }>;
  topFunctions: Array<{ fn: string; where: string; ms: number; pctOfBusy: number }>;
  /** Inclusive time of subtrees rooted at frames matching these components (first match from the root). */
  inclusive: Array<{ component: string; ms: number; pctOfBusy: number }>;
  /**
   * Self time with native/builtin frames charged to the nearest JavaScript
   * caller's component, so SQLite's native statement execution counts as
   * "SQLite", a native HMAC as crypto, and so on.
   */
  folded: Array<{ component: string; ms: number; pctOfBusy: number }>;
}

export function component(url: string, fn: string): string {
  if (fn === "(idle)") return "idle";
  if (fn === "(garbage collector)") return "GC";
  if (fn === "(program)") return "V8/native (program)";
  if (fn === "(root)") return "root";
  const m = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (m) {
    const pkg = m[1]!;
    if (pkg === "better-sqlite3") return "SQLite (better-sqlite3)";
    if (pkg.startsWith("@connectrpc/")) return "connect-es";
    if (pkg === "@bufbuild/protobuf") return "protobuf-es";
    if (pkg.startsWith("@noble/")) return "noble crypto";
    if (pkg === "@grpc/grpc-js") return "grpc-js";
    return pkg;
  }
  if (url.startsWith("node:internal/http2") || url.includes("internal/http2")) return "node:http2";
  if (url.startsWith("node:internal/streams") || url.includes("internal/streams")) return "node streams";
  if (url.startsWith("node:") || url === "") return url === "" ? "native/builtin" : "node internals";
  if (url.includes("/src/crypto/")) return "src/crypto";
  if (url.includes("/src/center/")) return "src/center";
  if (url.includes("/src/ledger/")) return "src/ledger";
  if (url.includes("/src/server/")) return "src/server";
  if (url.includes("/gen/")) return "gen (schemas)";
  if (url.includes("/bench/")) return "bench harness";
  return "other";
}

export function summarizeProfile(path: string, top = 25): ProfileSummary {
  const p = JSON.parse(readFileSync(path, "utf8")) as CpuProfile;
  const byId = new Map<number, ProfileNode>();
  for (const n of p.nodes) byId.set(n.id, n);
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const selfUs = new Map<number, number>();
  for (let i = 0; i < p.samples.length; i++) {
    const id = p.samples[i]!;
    const dt = p.timeDeltas[i + 1] ?? p.timeDeltas[i] ?? 0;
    selfUs.set(id, (selfUs.get(id) ?? 0) + dt);
  }
  let total = 0;
  let idle = 0;
  const comp = new Map<string, number>();
  const fns = new Map<string, { fn: string; where: string; us: number }>();
  const incl = new Map<string, number>();
  const folded = new Map<string, number>();
  for (const [id, us] of selfUs) {
    const n = byId.get(id)!;
    total += us;
    const c = component(n.callFrame.url, n.callFrame.functionName);
    if (c === "idle") idle += us;
    comp.set(c, (comp.get(c) ?? 0) + us);
    const short = n.callFrame.url.replace(/^.*node_modules\//, "").replace(/^file:\/\/\/work\/main\//, "");
    const key = `${n.callFrame.functionName || "(anonymous)"}@${short}:${n.callFrame.lineNumber + 1}`;
    const f = fns.get(key) ?? { fn: n.callFrame.functionName || "(anonymous)", where: `${short}:${n.callFrame.lineNumber + 1}`, us: 0 };
    f.us += us;
    fns.set(key, f);
    if (c === "idle") continue;
    {
      let cur: number | undefined = id;
      let fc = c;
      while (cur !== undefined && (fc === "native/builtin" || fc === "node internals")) {
        cur = parent.get(cur);
        if (cur === undefined) break;
        const pn = byId.get(cur)!;
        fc = component(pn.callFrame.url, pn.callFrame.functionName);
        if (fc === "root") {
          fc = c;
          break;
        }
      }
      if (fc === "src/ledger") fc = "SQLite + src/ledger";
      folded.set(fc, (folded.get(fc) ?? 0) + us);
    }
    // Inclusive attribution: the outermost frame from a "business" component on the stack.
    const chain: ProfileNode[] = [];
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) chain.push(byId.get(cur)!);
    const outer = chain.reverse().find((x) => {
      const cc = component(x.callFrame.url, x.callFrame.functionName);
      return cc === "src/center" || cc === "src/ledger" || cc === "SQLite (better-sqlite3)";
    });
    const key2 = outer ? `under ${component(outer.callFrame.url, outer.callFrame.functionName)} (incl. crypto, protobuf it calls)` : "outside the center's logic (transport, framing, GC, idle)";
    incl.set(key2, (incl.get(key2) ?? 0) + us);
  }
  const busy = total - idle;
  const pct = (us: number) => Math.round((1000 * us) / Math.max(1, busy)) / 10;
  return {
    totalMs: total / 1000,
    busyMs: busy / 1000,
    byComponent: [...comp.entries()]
      .filter(([c]) => c !== "idle")
      .sort((a, b) => b[1] - a[1])
      .map(([component, us]) => ({ component, ms: Math.round(us / 100) / 10, pctOfBusy: pct(us) })),
    topFunctions: [...fns.values()]
      .filter((f) => f.fn !== "(idle)")
      .sort((a, b) => b.us - a.us)
      .slice(0, top)
      .map((f) => ({ fn: f.fn, where: f.where, ms: Math.round(f.us / 100) / 10, pctOfBusy: pct(f.us) })),
    folded: [...folded.entries()].sort((a, b) => b[1] - a[1]).map(([component, us]) => ({ component, ms: Math.round(us / 100) / 10, pctOfBusy: pct(us) })),
    inclusive: [...incl.entries()].sort((a, b) => b[1] - a[1]).map(([component, us]) => ({ component, ms: Math.round(us / 100) / 10, pctOfBusy: pct(us) })),
  };
}
