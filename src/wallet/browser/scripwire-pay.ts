/**
 * scripwire-pay.js: what a mall page includes to be paid from the buyer's
 * browser wallet. Served by the payment center at /wallet/scripwire-pay.js
 * (a classic script defining `window.Scripwire`); see docs/browser-wallet.md.
 *
 *   <script src="https://center.example/wallet/scripwire-pay.js"></script>
 *   button.onclick = async () => {
 *     const paid = await Scripwire.pay({
 *       center: "https://center.example",
 *       // S1 -> S2 on your server, for this buyer: return the pOder (base64 protobuf Offer)
 *       order: async (customer) => (await (await fetch("/shop/api/order", {...})).json()).order,
 *     });
 *     // paid.receipt: base64 protobuf Receipt; present it for S7 (Deliver)
 *   };
 *
 * Call it from a click handler: it opens the wallet as a top-level popup at
 * the center's origin (not an iframe: an iframe's storage is partitioned per
 * top-level site, which would give the buyer one wallet per mall). Messages
 * are accepted only from that popup and that origin; the popup answers only
 * this page's origin.
 */

/** The buyer's customer id, as the wallet hands it to the mall for S1/M1. */
export interface Customer {
  customId: { secretId: number; serialNumber: string };
  currency: string;
  /** The balance when the popup opened, smallest units, decimal. */
  balance: string;
}

export interface PayResult {
  tranId: string;
  /** Base64 of the protobuf Receipt the center signed (present it to Deliver, S7). */
  receipt: string;
  balance: string;
}

export interface CollectResult {
  tranId: string;
  amount: string;
  balance: string;
}

export interface ScripwireOptions {
  /** The payment center's origin, e.g. "https://center.example". */
  center: string;
  /** Popup features; default a 440x640 popup. */
  features?: string;
}

/** A refusal or failure, with the wallet's machine-readable reason (NOT_REGISTERED, CANCELLED, POPUP_BLOCKED, POPUP_CLOSED, INSUFFICIENT_VALUE…). */
export class ScripwirePayError extends Error {
  constructor(
    readonly reason: string,
    message: string,
  ) {
    super(message);
    this.name = "ScripwirePayError";
  }
}

const SW = 1;
const POLL_MS = 300;

type Msg = { sw: number; type: string; id?: string; reason?: string; message?: string; [k: string]: unknown };

function session<R>(opts: ScripwireOptions, kind: "pay" | "collect", offer: (c: Customer) => Promise<string>): Promise<R> {
  const origin = new URL(opts.center).origin;
  const popup = window.open(`${origin}/wallet/pay.html`, "scripwire-wallet", opts.features ?? "popup,width=440,height=640");
  if (!popup) return Promise.reject(new ScripwirePayError("POPUP_BLOCKED", "the browser blocked the wallet popup; call Scripwire.pay from a click"));
  const id = Math.random().toString(36).slice(2);
  return new Promise<R>((resolve, reject) => {
    let settled = false;
    const finish = (err: Error | undefined, value?: R) => {
      if (settled) return;
      settled = true;
      window.removeEventListener("message", onMessage);
      clearInterval(poll);
      if (err) reject(err);
      else resolve(value as R);
    };
    const poll = setInterval(() => {
      if (popup.closed) finish(new ScripwirePayError("POPUP_CLOSED", "the wallet window was closed before it answered"));
    }, POLL_MS);
    const post = (m: Record<string, unknown>) => popup.postMessage({ sw: SW, ...m }, origin);
    const onMessage = async (ev: MessageEvent) => {
      const m = ev.data as Msg | null;
      if (ev.origin !== origin || ev.source !== popup || !m || m.sw !== SW) return;
      switch (m.type) {
        case "ready":
          post({ type: "hello" });
          return;
        case "identity": {
          let b64: string;
          try {
            b64 = await offer({ customId: m.customId as Customer["customId"], currency: String(m.currency), balance: String(m.balance) });
          } catch (e) {
            popup.close();
            return finish(e instanceof Error ? e : new Error(String(e)));
          }
          post(kind === "pay" ? { type: "pay", id, order: b64 } : { type: "collect", id, permit: b64 });
          return;
        }
        case "receipt":
          if (kind === "pay" && m.id === id) finish(undefined, { tranId: m.tranId, receipt: m.receipt, balance: m.balance } as R);
          return;
        case "collected":
          if (kind === "collect" && m.id === id) finish(undefined, { tranId: m.tranId, amount: m.amount, balance: m.balance } as R);
          return;
        case "cancelled":
          return finish(new ScripwirePayError("CANCELLED", "the buyer cancelled in the wallet"));
        case "error":
          return finish(new ScripwirePayError(String(m.reason ?? "ERROR"), String(m.message ?? "the wallet failed")));
      }
    };
    window.addEventListener("message", onMessage);
  });
}

const Scripwire = {
  version: "1",
  /** Pays a pOder (S2) the mall fetches for this buyer: the wallet runs S3-S6 and returns the receipt. */
  pay: (opts: ScripwireOptions & { order: (c: Customer) => Promise<string> }) => session<PayResult>(opts, "pay", opts.order),
  /** Collects an earned permit (M2) the mall fetches for this buyer: the wallet runs M3-M7. */
  collect: (opts: ScripwireOptions & { permit: (c: Customer) => Promise<string> }) => session<CollectResult>(opts, "collect", opts.permit),
  ScripwirePayError,
};

(globalThis as unknown as { Scripwire: typeof Scripwire }).Scripwire = Scripwire;
