/**
 * Entry module of the ledger's writer thread when the center's hot calls run
 * there (hot-calls.ts says why). The thread is the plain writer
 * (writer-host.ts) plus this guest: a PaymentCenter over the thread's own
 * SqlLedger, answering `start` once and then the six hot calls as bytes.
 */
import { fromBinary, toBinary } from "@bufbuild/protobuf";
import { ConnectError, type HandlerContext } from "@connectrpc/connect";
import type { SqlLedger } from "../ledger/sql-ledger.js";
import { hostWriter, type WriterGuest } from "../ledger/writer-host.js";
import { toConnectError } from "../server/errors.js";
import { PaymentCenter } from "./center.js";
import { timedWrites } from "../ledger/ledger.js";
import { exact, methodOf, type HotNotice, type HotReply, type HotStart } from "./hot-calls.js";
import { encodingOf } from "../server/encoded.js";
import { malformedRequest } from "../server/fast-unary.js";
import { paymentCenterService } from "./service.js";

type Impl = Record<string, (req: unknown, ctx: HandlerContext) => Promise<unknown>>;

/** The six hot methods read nothing from their context. */
const NO_CONTEXT = {} as HandlerContext;

class CenterGuest implements WriterGuest {
  private impl: Impl | undefined;
  private center: PaymentCenter | undefined;
  private notices: HotNotice[] = [];

  constructor(private readonly ledger: SqlLedger) {}

  /** The ledger with its metered writes timed here and reported as notices (as CenterMetrics.meterLedger does on the event loop). */
  private metered(): SqlLedger {
    return timedWrites(this.ledger, (op, seconds, failed) => this.notices.push({ t: "write", op, seconds, failed }));
  }

  async call(name: string, args: unknown[]): Promise<unknown> {
    if (name === "start") {
      const start = args[0] as HotStart;
      const center = new PaymentCenter(start.meterWrites ? this.metered() : this.ledger, start.config);
      await center.start();
      center.events.on("settlement", (vendorId: string) => this.notices.push({ t: "settlement", vendorId }));
      this.impl = paymentCenterService(center) as unknown as Impl;
      this.center = center;
      return true;
    }
    if (name === "reload-keys") {
      await this.center?.keys.reloadAll();
      return true;
    }
    const m = methodOf(name);
    if (!this.impl) throw new Error("hot calls used before start");
    let req: unknown;
    try {
      req = fromBinary(m.input, args[0] as Uint8Array);
    } catch (e) {
      // The event loop's fast path did not decode it: the same refusal it would have made.
      const refused = malformedRequest(e);
      return { code: refused.code, message: refused.rawMessage, metadata: [] } satisfies HotReply;
    }
    try {
      const out = await this.impl[name]!(req, NO_CONTEXT);
      // The bytes the center stored for this reply, when it has them (it encodes before storing).
      return { ok: exact(encodingOf(out as object) ?? toBinary(m.output, out as never)) } satisfies HotReply;
    } catch (e) {
      const ce = toConnectError(e);
      if (ce instanceof ConnectError) return { code: ce.code, message: ce.rawMessage, metadata: [...ce.metadata.entries()] } satisfies HotReply;
      return { fault: e instanceof Error ? e.message : String(e) } satisfies HotReply;
    }
  }

  drainNotices(): unknown[] {
    return this.notices.splice(0);
  }
}

hostWriter((ledger) => new CenterGuest(ledger));
