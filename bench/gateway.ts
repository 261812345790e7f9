/**
 * Section 6: the HTTP 402 gateway. What does putting a site behind the
 * gateway cost a paid request? Measured side by side in one run:
 *
 * - latency: the same 1 KiB page fetched directly from the upstream and
 *   through the gateway with a valid `Authorization: Scrip` receipt,
 *   sequentially over keep-alive HTTP/1.1, alternating one by one so machine
 *   noise hits both alike; reported as p50/p99 and the difference ("added");
 * - CPU: the gateway's own process CPU per paid request (it runs in a child
 *   process, as does the upstream), beside the upstream's CPU per request;
 * - receipt verification alone (decode the credential, checks, one
 *   HMAC-SHA-256), in microseconds, in this process.
 *
 * The receipt is signed here with the vendor secret, exactly as the center
 * signs it after S6; verification does not depend on who signed.
 */
import { create, toBinary } from "@bufbuild/protobuf";
import { fork, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import http from "node:http";
import { fileURLToPath } from "node:url";
import { DeliveryMethod, HashAlgorithm, IdTypeSchema, ReceiptSchema } from "../gen/scripwire/v1/types_pb.js";
import { computeReceiptMac } from "../src/crypto/scrip-auth.js";
import { toBase64Url } from "../src/gateway/challenge.js";
import { parseGatewayConfig } from "../src/gateway/config.js";
import { decodeCredential, verifyCredential, verifyReceipt } from "../src/gateway/verify.js";
import { fmtUs, LatencyLog, microGroup, sig, type LatencySummary, type MicroOptions } from "./lib/stats.js";
import { table } from "./lib/table.js";

const CHILD = fileURLToPath(new URL("./gateway-child.ts", import.meta.url));

export interface GatewayBenchOptions {
  /** Requests per path per round. */
  requestsPerRound: number;
  rounds: number;
  micro: MicroOptions;
}

export interface GatewayReport {
  requests: number;
  direct: LatencySummary;
  paid: LatencySummary;
  addedP50Us: number;
  addedP99Us: number;
  gatewayCpuUsPerPaidRequest: number;
  upstreamCpuUsPerRequest: number;
  /** CPU of the gateway per unpaid request answered with a 402 challenge. */
  gatewayCpuUsPerChallenge: number;
  verifyCredentialUs: number;
  verifyDecodedReceiptUs: number;
}

class Child {
  private seq = 0;
  private waiting = new Map<number, (cpuUs: number) => void>();
  private constructor(
    private readonly proc: ChildProcess,
    readonly url: string,
  ) {
    proc.on("message", (m: { type: string; seq: number; cpuUs: number }) => {
      if (m.type === "stats") this.waiting.get(m.seq)?.(m.cpuUs);
    });
  }

  static async start(role: "upstream" | "gateway", arg = ""): Promise<Child> {
    const proc = fork(CHILD, [role, arg], { execArgv: ["--import=tsx"], stdio: ["ignore", "ignore", "pipe", "ipc"], env: { ...process.env, SCRIPWIRE_LOG: "silent" } });
    let stderr = "";
    proc.stderr!.on("data", (c: Buffer) => (stderr += c.toString()));
    const url = await new Promise<string>((resolve, reject) => {
      proc.once("exit", (code) => reject(new Error(`gateway bench ${role} exited ${code}: ${stderr}`)));
      proc.on("message", (m: { type: string; url?: string }) => m.type === "ready" && resolve(m.url!));
    });
    proc.removeAllListeners("exit");
    return new Child(proc, url);
  }

  cpuUs(): Promise<number> {
    const seq = ++this.seq;
    return new Promise((resolve) => {
      this.waiting.set(seq, resolve);
      this.proc.send({ type: "stats", seq });
    });
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      this.proc.once("exit", () => resolve());
      this.proc.send({ type: "close" });
    });
  }
}

function get(agent: http.Agent, url: URL, headers: Record<string, string>): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: url.hostname, port: url.port, path: url.pathname, headers, agent }, (res) => {
      res.resume();
      res.on("end", () => resolve(res.statusCode!));
      res.on("error", reject);
    });
    req.on("error", reject);
  });
}

async function timed(agent: http.Agent, url: URL, headers: Record<string, string>, n: number, log: LatencyLog | undefined, expect: number): Promise<void> {
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    const status = await get(agent, url, headers);
    if (status !== expect) throw new Error(`gateway bench: ${url.href} answered ${status}, expected ${expect}`);
    log?.add((performance.now() - t0) * 1000);
  }
}

export async function runGateway(opts: GatewayBenchOptions, onStep: (m: string) => void): Promise<GatewayReport> {
  const vendorSecret = new Uint8Array(randomBytes(32));
  const rawConfig = (upstream: string) => ({
    upstream,
    vendorId: "bench-gw",
    vendorKeys: { "1": Buffer.from(vendorSecret).toString("hex") },
    routes: [{ id: "articles", path: "/articles/*", price: "10", currency: "KRW", receiptLifetimeSeconds: 3600, rateLimit: false }],
  });
  const upstream = await Child.start("upstream");
  const gateway = await Child.start("gateway", JSON.stringify(rawConfig(upstream.url)));
  try {
    const gwUrl = new URL(gateway.url);
    const receipt = create(ReceiptSchema, {
      vendorId: "bench-gw",
      tranId: `t_${randomBytes(16).toString("hex")}`,
      requestUrl: `${gwUrl.origin}/articles/bench`,
      price: 10n,
      currency: "KRW",
      deliveryMethod: DeliveryMethod.VIEW,
      customId: create(IdTypeSchema, { secretId: 1, serialNumber: 42n }),
      paidAtUnix: BigInt(Math.floor(Date.now() / 1000)),
      vendorKeyId: 1,
      hashAlgorithm: HashAlgorithm.HMAC_SHA256,
    });
    receipt.mac = computeReceiptMac(vendorSecret, receipt);
    const token = toBase64Url(toBinary(ReceiptSchema, receipt));
    const auth = { authorization: `Scrip ${token}` };

    // Receipt verification alone, in this process.
    onStep("gateway: receipt verification alone");
    const config = parseGatewayConfig(rawConfig(upstream.url));
    const route = config.routes[0]!;
    const decoded = decodeCredential(token)!;
    const now = Date.now();
    const [full, decodedOnly] = microGroup(
      [
        () => {
          if (!verifyCredential(config, token, route, now).ok) throw new Error("verify");
        },
        () => {
          if (!verifyReceipt(config, decoded, route, now).ok) throw new Error("verify");
        },
      ],
      opts.micro,
    );

    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const directUrl = new URL(`${upstream.url}/articles/bench`);
    const paidUrl = new URL(`${gateway.url}/articles/bench`);
    onStep("gateway: warm-up");
    await timed(agent, directUrl, {}, 200, undefined, 200);
    await timed(agent, paidUrl, auth, 400, undefined, 200);
    await timed(agent, paidUrl, {}, 200, undefined, 402);
    const direct = new LatencyLog();
    const paid = new LatencyLog();
    let gwCpu = 0;
    let upCpu = 0;
    let challengeCpu = 0;
    const n = opts.requestsPerRound;
    for (let r = 0; r < opts.rounds; r++) {
      onStep(`gateway: round ${r + 1}/${opts.rounds}, ${n} requests direct, ${n} paid through the gateway, ${n} unpaid (402)`);
      // Direct and paid requests alternate one by one, so a burst of load on
      // this shared machine hits both distributions alike; only the paid ones
      // touch the gateway, so its CPU delta is theirs alone.
      const u0 = await upstream.cpuUs();
      let g0 = await gateway.cpuUs();
      for (let i = 0; i < n; i++) {
        await timed(agent, directUrl, {}, 1, direct, 200);
        await timed(agent, paidUrl, auth, 1, paid, 200);
      }
      gwCpu += (await gateway.cpuUs()) - g0;
      upCpu += (await upstream.cpuUs()) - u0;
      g0 = await gateway.cpuUs();
      await timed(agent, paidUrl, {}, n, undefined, 402);
      challengeCpu += (await gateway.cpuUs()) - g0;
    }
    agent.destroy();
    const d = direct.summary();
    const p = paid.summary();
    const total = n * opts.rounds;
    return {
      requests: total,
      direct: d,
      paid: p,
      addedP50Us: p.p50Us - d.p50Us,
      addedP99Us: p.p99Us - d.p99Us,
      gatewayCpuUsPerPaidRequest: gwCpu / total,
      // The upstream served the direct and the paid requests: 2 per round-request.
      upstreamCpuUsPerRequest: upCpu / (2 * total),
      gatewayCpuUsPerChallenge: challengeCpu / total,
      verifyCredentialUs: full!.us,
      verifyDecodedReceiptUs: decodedOnly!.us,
    };
  } finally {
    await Promise.all([gateway.close(), upstream.close()]);
  }
}

export function gatewayTable(r: GatewayReport): string {
  return [
    table(
      `6. HTTP 402 gateway: a 1 KiB page direct vs through the gateway with a receipt (${r.requests} sequential keep-alive requests each, alternating)`,
      ["", "p50", "p99", "CPU per request"],
      [
        ["upstream directly", fmtUs(r.direct.p50Us), fmtUs(r.direct.p99Us), `${fmtUs(r.upstreamCpuUsPerRequest)} (upstream)`],
        ["through the gateway, paid", fmtUs(r.paid.p50Us), fmtUs(r.paid.p99Us), `${fmtUs(r.gatewayCpuUsPerPaidRequest)} (gateway)`],
        [
          "added by the gateway",
          fmtUs(r.addedP50Us),
          // A tail below the direct one is the machine's noise, not a gain: say so rather than print a negative.
          r.addedP99Us >= 0 ? fmtUs(r.addedP99Us) : "within noise",
          `${sig(r.gatewayCpuUsPerPaidRequest / r.upstreamCpuUsPerRequest, 3)}x the upstream's`,
        ],
        ["unpaid: 402 challenge", "", "", `${fmtUs(r.gatewayCpuUsPerChallenge)} (gateway)`],
      ],
    ),
    table(
      "   receipt verification alone (no I/O, no call to the center)",
      ["step", "time"],
      [
        ["decode credential + route/price/age checks + one HMAC-SHA-256", fmtUs(r.verifyCredentialUs)],
        ["checks + one HMAC-SHA-256 on a decoded receipt", fmtUs(r.verifyDecodedReceiptUs)],
      ],
    ),
  ].join("\n") + "\n";
}

// `node --import=tsx bench/gateway.ts` runs this section alone.
if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  runGateway({ requestsPerRound: 500, rounds: 3, micro: { sampleMs: 15, samples: 9 } }, (m) => process.stderr.write(m + "\n")).then(
    (r) => process.stdout.write(gatewayTable(r)),
    (e) => {
      process.stderr.write(`${(e as Error).stack}\n`);
      process.exitCode = 1;
    },
  );
}
