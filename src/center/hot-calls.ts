/**
 * The center's hot calls (M3, M4, M6, S3, S4, S6: CENTER_FAST_METHODS) served
 * on the SQLite ledger's writer thread instead of the event loop.
 *
 * Why: with the writer alone on its own thread, the event loop still did the
 * whole payment — protobuf, a dozen hashes, the ledger reads, the hand-off of
 * every write — and saturated one core while the writer thread idled
 * (docs/performance.md §0). Here the event loop keeps HTTP/2, framing,
 * limits and metrics; the writer thread runs a second PaymentCenter over its
 * own SqlLedger (a replica in all but process: it shares the write
 * connection's group commit and reads through a read-only connection of its
 * own), so a payment's work is split across two cores. The request crosses
 * as its wire bytes and the answer comes back as wire bytes: one structured
 * clone of ~300 bytes each way, batched with everything else that crossed in
 * the same turn. On the fast path the event loop does not even decode them
 * (the `raw` methods, when neither rate limits nor metrics wrap the methods:
 * both read the decoded message); elsewhere it decodes, and the fast path re-uses the
 * bytes instead of encoding again (src/server/encoded.ts).
 *
 * What the answer carries: the result bytes, or the ConnectError's code,
 * message and metadata (the `scripwire-error-reason` a wallet reads), or for
 * an unexpected fault just its message, which becomes INTERNAL "internal
 * error" on the wire exactly as a fault on the event loop does. Settlements
 * confirmed on the writer thread are sent back as notices, so settlement
 * streams on the event loop wake at once, as they did before.
 *
 * Not used (the calls stay on the event loop) when the center has an
 * injected clock (a function cannot cross threads), when the ledger is not a
 * SQLite ledger opened with this thread (PostgreSQL, or a ledger the caller
 * opened), or when `hotCallsThread: false`.
 */
import { fromBinary, toBinary, type DescMessage, type Message } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { PaymentCenterService } from "../../gen/scripwire/v1/center_pb.js";
import type { Ledger } from "../ledger/ledger.js";
import { SqliteWorkerLedger } from "../ledger/sqlite-worker.js";
import { encodingOf, rememberEncoding } from "../server/encoded.js";
import type { CenterMetrics } from "../server/metrics.js";
import type { RawUnaryFn } from "../server/fast-unary.js";
import type { CenterConfig, PaymentCenter } from "./center.js";

/** The writer thread's entry module when it hosts the center's hot calls (a function: see sqlite-worker.ts's plainWriter). */
export const centerThread = () => new URL("./center-thread.ts", import.meta.url);

/** The PaymentCenterService methods every payment and issuance makes (M3, M4, M6, S3, S4, S6). */
export const CENTER_FAST_METHODS = ["initIssue", "issue", "confirmIssue", "initPayment", "pay", "confirmPayment"] as const;
export type HotMethod = (typeof CENTER_FAST_METHODS)[number];

/** One hot call's answer, as it crosses from the writer thread. */
export type HotReply =
  | { ok: Uint8Array }
  | { code: Code; message: string; metadata: Array<[string, string]> }
  | { fault: string };

/** What of CenterConfig crosses to the thread (everything but the clock). */
export type HotCenterConfig = Omit<CenterConfig, "clock">;

/** How the thread's center starts: its config, and whether its ledger writes are timed for the metrics. */
export interface HotStart {
  config: HotCenterConfig;
  meterWrites: boolean;
}

/** What the thread tells the event loop beside the answers. */
export type HotNotice = { t: "settlement"; vendorId: string } | { t: "write"; op: string; seconds: number; failed: boolean };

export function hotCenterConfig(c: CenterConfig): HotCenterConfig {
  return {
    identity: { ...c.identity },
    currencies: [...c.currencies],
    acceptedAlgorithms: c.acceptedAlgorithms ? [...c.acceptedAlgorithms] : undefined,
    scripLifetimeSeconds: c.scripLifetimeSeconds,
    redeemThreshold: c.redeemThreshold ? { ...c.redeemThreshold } : undefined,
  };
}

export function methodOf(name: string) {
  const m = PaymentCenterService.method[name as HotMethod];
  if (!m || !(CENTER_FAST_METHODS as readonly string[]).includes(name)) throw new Error(`not a hot call: ${name}`);
  return m as { input: DescMessage; output: DescMessage };
}

/**
 * Exactly the message's bytes: a view into a bigger buffer (an HTTP/2 read)
 * would clone all of that buffer. `new Uint8Array(view)` copies; a Buffer's
 * own `slice()` would not (it returns a view).
 */
export function exact(b: Uint8Array): Uint8Array {
  return b.byteOffset === 0 && b.byteLength === b.buffer.byteLength ? b : new Uint8Array(b);
}

/** The six methods forwarding to the thread: over messages (any path), and over wire bytes (the fast path). */
export interface HotCalls {
  methods: Record<HotMethod, (req: Message) => Promise<Message>>;
  raw: Record<HotMethod, RawUnaryFn>;
}

/**
 * Start the hot calls on the ledger's writer thread and return the six
 * methods that forward to it, or undefined when this ledger cannot host them.
 */
export async function startHotCalls(ledger: Ledger, center: PaymentCenter, config: CenterConfig, metrics?: CenterMetrics): Promise<HotCalls | undefined> {
  if (!(ledger instanceof SqliteWorkerLedger) || ledger.thread.href !== centerThread().href || config.clock) return undefined;
  await ledger.guestCall("start", [{ config: hotCenterConfig(config), meterWrites: metrics !== undefined } satisfies HotStart]);
  // A rotation on the event loop (RotateKeys) reaches the thread's key ring before it answers.
  center.keys.afterRotate = async () => {
    await ledger.guestCall("reload-keys", []);
  };
  ledger.onGuestNotices((notices) => {
    for (const n of notices as HotNotice[]) {
      if (n.t === "settlement") center.events.emit("settlement", n.vendorId);
      else metrics?.ledgerWrite(n.op, n.seconds, n.failed);
    }
  });
  const raw = (name: HotMethod) => async (request: Uint8Array): Promise<Uint8Array> => {
    const r = (await ledger.guestCall(name, [exact(request)])) as HotReply;
    if ("ok" in r) return r.ok;
    if ("fault" in r) throw new Error(r.fault);
    throw new ConnectError(r.message, r.code, new Headers(r.metadata));
  };
  const forward = (name: HotMethod) => {
    const m = methodOf(name);
    const call = raw(name);
    return async (req: Message): Promise<Message> => {
      const bytes = await call(encodingOf(req) ?? toBinary(m.input, req));
      const out = fromBinary(m.output, bytes);
      rememberEncoding(out, bytes);
      return out;
    };
  };
  const table = <T>(f: (n: HotMethod) => T) => Object.fromEntries(CENTER_FAST_METHODS.map((n) => [n, f(n)])) as Record<HotMethod, T>;
  return { methods: table(forward), raw: table(raw) };
}
