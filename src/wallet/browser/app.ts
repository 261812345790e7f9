/**
 * The browser wallet, served by the payment center at /wallet/ (bundled by
 * esbuild from this file; see src/center/web.ts). Two pages share it:
 *
 *   /wallet/          the buyer's own page: register (R1/R2, then the
 *                     recovery code, shown once), balance, history, renew,
 *                     redeem, sync, show the recovery code again, restore
 *                     from a recovery code, backup export and import.
 *   /wallet/pay.html  the payment popup a mall page opens (scripwire-pay.js):
 *                     shows what is paid, to whom and the balance after, and
 *                     on approval runs S3-S6 (pay) or M3-M7 (collect), then
 *                     posts the receipt to the opener's exact origin.
 *
 * Both open the wallet for one operation at a time (WalletCore over the
 * IndexedDB store, under a Web Lock) and close it again, so a tab and a popup
 * never hold two copies of the live scrip. Opening finishes any journalled
 * operation first (pCount retransmission), which is how a popup closed right
 * after S4 finishes on the next open.
 */
import { fromBinary } from "@bufbuild/protobuf";
import { OfferSchema, DeliveryMethod, type Offer } from "../../../gen/scripwire/v1/types_pb.js";
import { fromBase64 } from "../bytes.js";
import { encodeReceipt } from "../codec.js";
import { webConnector } from "../connect-web.js";
import { WalletCore, type RecoveryResult } from "../core.js";
import { ScripwireError } from "../errors.js";
import type { WalletState } from "../state.js";
import { IndexedDbWalletStore } from "./idb-store.js";

const CENTER = location.origin;
/** Message protocol version between scripwire-pay.js and the popup. */
const SW = 1;

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
function el<K extends keyof HTMLElementTagNameMap>(tag: K, text?: string, attrs: Record<string, string> = {}): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  if (text !== undefined) e.textContent = text;
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  return e;
}

function status(text: string, kind: "info" | "error" | "ok" = "info"): void {
  const s = $("status");
  s.textContent = text;
  s.dataset.kind = kind;
}

function logStep(message: string): void {
  const log = document.getElementById("log");
  if (log) log.append(el("li", message));
}

const store = () => new IndexedDbWalletStore();

/** Opens the wallet for one operation, then closes it (releasing the lock). */
async function withWallet<T>(fn: (w: WalletCore, recovered: RecoveryResult | undefined) => Promise<T>): Promise<T> {
  const w = await WalletCore.open({ store: store(), connect: webConnector(), onProgress: (p) => logStep(p.message) });
  try {
    if (w.recoveryError) status(`An interrupted ${w.pending?.kind ?? "operation"} could not be finished yet: ${w.recoveryError.message}`, "error");
    return await fn(w, w.recovery);
  } finally {
    await w.close();
  }
}

function errorText(e: unknown): string {
  if (e instanceof ScripwireError) return `${e.message}${e.hint ? ` (${e.hint})` : ""}`;
  return e instanceof Error ? e.message : String(e);
}

function recoveredText(r: RecoveryResult | undefined): string {
  if (!r) return "";
  return r.outcome === "completed" ? `An interrupted ${r.kind} (${r.id}) was finished. ` : `An interrupted ${r.kind} (${r.id}) was abandoned: nothing moved. `;
}

// ------------------------------------------------------------------ the wallet page

/**
 * The recovery code to show once, right after registration; cleared as soon
 * as it is rendered. Never logged, never stored by the page (the wallet can
 * recompute it from its secret on request).
 */
let codeToShow: string | undefined;

/** A box with the recovery code and what it is for. */
function recoveryBox(code: string, first: boolean): HTMLElement {
  const sec = el("section", undefined, { "aria-labelledby": "recovery-h", id: "recovery" });
  sec.append(
    el("h2", first ? "Write down your recovery code" : "Your recovery code", { id: "recovery-h" }),
    el("p", "With this code and this center's address you can restore the wallet on any device if this browser's data is lost. Anyone who has it can spend your balance: keep it private."),
    el("code", code, { id: "recovery-code" }),
  );
  return sec;
}

async function renderWallet(): Promise<void> {
  await withWallet(async (w, recovered) => {
    const main = $("wallet");
    main.replaceChildren();
    if (!w.registered) {
      main.append(registerForm(), restoreForm(), importForm());
      if (!recovered) status("This browser has no wallet at this payment center yet.");
      return;
    }
    const b = w.balance();
    const id = w.identity!;
    const sec = el("section", undefined, { "aria-labelledby": "balance-h" });
    sec.append(el("h2", "Balance", { id: "balance-h" }));
    const p = el("p");
    p.append(el("strong", `${b.value} ${b.currency}`, { id: "balance", "data-value": String(b.value) }));
    p.append(` — scrip serial ${b.serial}, ${b.expired ? "EXPIRED: renew it" : `valid until ${b.expiresAt.toISOString().slice(0, 16).replace("T", " ")} UTC`}`);
    sec.append(p, el("p", `Customer ${id.customId.serialNumber} at ${id.centerUrl}`));
    if (b.pending) sec.append(el("p", `Unfinished ${b.pending.kind} ${b.pending.id} at ${b.pending.step}: it resumes when the center is reachable.`, { id: "pending" }));
    const actions = el("div", undefined, { class: "actions" });
    const renew = el("button", "Renew scrip", { type: "button", id: "renew" });
    renew.onclick = () => run("Renewing…", (x) => x.renew().then((r) => `Renewed: ${r.value} ${r.currency} under serial ${r.serial}.`));
    const exp = el("button", "Export backup", { type: "button", id: "export" });
    exp.onclick = () => void exportBackup();
    const sync = el("button", "Sync with the center", { type: "button", id: "sync" });
    sync.onclick = () =>
      run("Syncing…", (x) =>
        x.sync().then((r) => {
          const folded = r.refunds.filter((c) => !c.pending);
          const parts = [`Balance ${r.value} ${r.currency}${r.changed ? " (the center's live scrip adopted)" : ""}.`];
          if (r.finished.length) parts.push(`Finished ${r.finished.length} transaction(s) that were in flight.`);
          if (folded.length) parts.push(`Refunds in the scrip: ${folded.map((c) => `${c.amount} ${c.currency} for ${c.tranId}`).join(", ")}.`);
          return parts.join(" ");
        }),
      );
    const show = el("button", "Show recovery code", { type: "button", id: "show-recovery" });
    show.onclick = () => {
      if (document.getElementById("recovery")) return;
      sec.after(recoveryBox(w.recoveryCode(), false));
    };
    actions.append(renew, sync, exp, show);
    sec.append(actions);
    main.append(sec);
    if (codeToShow) {
      main.append(recoveryBox(codeToShow, true));
      codeToShow = undefined;
    }
    main.append(redeemForm(b.currency), historyTable(w));
    if (recovered) status(recoveredText(recovered), recovered.outcome === "completed" ? "ok" : "info");
  });
}

async function run(busy: string, op: (w: WalletCore) => Promise<string>): Promise<void> {
  status(busy);
  try {
    const msg = await withWallet((w) => op(w));
    await renderWallet();
    status(msg, "ok");
  } catch (e) {
    await renderWallet().catch(() => {});
    status(errorText(e), "error");
  }
}

function field(label: string, name: string, attrs: Record<string, string> = {}): HTMLElement {
  const wrap = el("p");
  const id = `f-${name}`;
  wrap.append(el("label", label, { for: id }), " ", el("input", undefined, { id, name, ...attrs }));
  return wrap;
}

function registerForm(): HTMLElement {
  const f = el("form", undefined, { id: "register", "aria-labelledby": "register-h" });
  f.append(el("h2", "Open a wallet (R1 → R2)", { id: "register-h" }), field("Name", "name", { autocomplete: "name" }), field("E-mail", "email", { type: "email", autocomplete: "email" }));
  f.append(el("button", "Register", { type: "submit" }));
  f.onsubmit = (ev) => {
    ev.preventDefault();
    const data = new FormData(f);
    void run("Registering…", (w) =>
      w.register(CENTER, { name: String(data.get("name") ?? ""), email: String(data.get("email") ?? "") }).then((r) => {
        codeToShow = w.recoveryCode();
        return `Registered: customer ${r.customId.serialNumber}, balance 0 ${r.currency}. Write down the recovery code below.`;
      }),
    );
  };
  return f;
}

function restoreForm(): HTMLElement {
  const f = el("form", undefined, { id: "restore", "aria-labelledby": "restore-h" });
  f.append(
    el("h2", "Restore from a recovery code", { id: "restore-h" }),
    field("Recovery code", "code", { autocomplete: "off", spellcheck: "false", placeholder: "SW1-XXXXX-XXXXX-…" }),
    el("button", "Restore wallet", { type: "submit" }),
  );
  f.onsubmit = (ev) => {
    ev.preventDefault();
    const code = String(new FormData(f).get("code") ?? "");
    void run("Restoring…", (w) =>
      w.restore(CENTER, code).then((r) => {
        const done = r.finished.length ? ` Finished ${r.finished.length} transaction(s) that were in flight.` : "";
        return `Restored customer ${r.customId.serialNumber}: ${r.value} ${r.currency}.${done}`;
      }),
    );
  };
  return f;
}

function redeemForm(currency: string): HTMLElement {
  const f = el("form", undefined, { id: "redeem", "aria-labelledby": "redeem-h" });
  f.append(el("h2", "Redeem for money (RD1 → RD2)", { id: "redeem-h" }));
  f.append(field(`Amount in ${currency} (0 = everything)`, "amount", { inputmode: "numeric", pattern: "[0-9]+", value: "0", required: "" }), field("Payout account", "account", { required: "", maxlength: "256" }));
  f.append(el("button", "Redeem", { type: "submit" }));
  f.onsubmit = (ev) => {
    ev.preventDefault();
    const data = new FormData(f);
    const amount = String(data.get("amount") ?? "0").trim();
    if (!/^[0-9]{1,19}$/.test(amount)) return status("The amount is a whole number of the smallest unit.", "error");
    void run("Redeeming…", (w) => w.redeem(BigInt(amount), String(data.get("account") ?? "")).then((r) => `Payout ${r.payoutId}: ${r.amount} ${r.currency} to ${r.payoutAccount}.`));
  };
  return f;
}

function historyTable(w: WalletCore): HTMLElement {
  const sec = el("section", undefined, { "aria-labelledby": "history-h" });
  sec.append(el("h2", "History", { id: "history-h" }));
  const t = el("table", undefined, { id: "history" });
  const head = el("tr");
  for (const h of ["When (UTC)", "What", "Amount", "Balance", "Item"]) head.append(el("th", h, { scope: "col" }));
  t.append(el("thead"), el("tbody"));
  t.tHead!.append(head);
  for (const h of [...w.history()].reverse()) {
    const r = el("tr");
    r.append(el("td", h.at.toISOString().slice(0, 19).replace("T", " ")), el("td", h.kind + (h.recovered ? " (recovered)" : "")), el("td", String(h.amount)), el("td", String(h.balance)));
    r.append(el("td", [h.item, h.method ? `(${h.method})` : "", h.sellerUrl ? `at ${h.sellerUrl}` : ""].filter(Boolean).join(" ")));
    t.tBodies[0]!.append(r);
  }
  sec.append(t);
  return sec;
}

/**
 * A backup in the CLI's wallet-file format (`scripwire wallet --wallet
 * backup.json balance` opens it). It holds Custom_Secret in the clear:
 * whoever has the file can spend the scrip. A backup is a copy of ONE live
 * scrip: after spending, an older backup's scrip is dead.
 */
async function exportBackup(): Promise<void> {
  const s = store();
  await s.lock();
  let state: WalletState | undefined;
  try {
    state = await s.load();
  } finally {
    await s.unlock();
  }
  if (!state) return status("Nothing to export.", "error");
  const { customSecret, ...rest } = state;
  const file = { format: "scripwire-wallet", version: 1, state: rest, secret: { encoding: "plain", customSecret } };
  const a = el("a", undefined, { href: URL.createObjectURL(new Blob([JSON.stringify(file, null, 2)], { type: "application/json" })), download: `scripwire-wallet-${state.customId.serialNumber}.json` });
  document.body.append(a);
  a.click();
  a.remove();
  status("Backup saved. It holds your Custom_Secret: keep it private. It is a copy of today's scrip; export again after paying.", "ok");
}

function importForm(): HTMLElement {
  const f = el("form", undefined, { id: "import", "aria-labelledby": "import-h" });
  f.append(el("h2", "Restore from a backup file", { id: "import-h" }), field("Backup file", "file", { type: "file", accept: "application/json,.json" }), el("button", "Restore", { type: "submit" }));
  f.onsubmit = async (ev) => {
    ev.preventDefault();
    const file = (f.elements.namedItem("file") as HTMLInputElement).files?.[0];
    if (!file) return status("Choose the backup file first.", "error");
    try {
      const parsed = JSON.parse(await file.text());
      if (parsed?.format !== "scripwire-wallet" || parsed.version !== 1 || parsed.secret?.encoding !== "plain" || !parsed.state?.scrip) {
        throw new Error("this is not an unencrypted Scripwire wallet backup");
      }
      const state = { ...parsed.state, customSecret: parsed.secret.customSecret } as WalletState;
      const s = store();
      await s.lock();
      try {
        if (await s.load()) throw new Error("this browser already holds a wallet; it was left as it is");
        await s.save(state);
      } finally {
        await s.unlock();
      }
      await renderWallet();
      status("Wallet restored from the backup.", "ok");
    } catch (e) {
      status(`Not restored: ${errorText(e)}`, "error");
    }
  };
  return f;
}

// ------------------------------------------------------------------ the payment popup

interface Peer {
  origin: string;
  source: MessageEventSource;
}

function send(peer: Peer, msg: Record<string, unknown>): void {
  // The exact origin that asked: if the opener navigated elsewhere meanwhile, the browser drops the message.
  (peer.source as WindowProxy).postMessage({ sw: SW, ...msg }, peer.origin);
}

function describeOffer(o: Offer, origin: string, balance: bigint, kind: "pay" | "collect"): HTMLElement {
  const dl = el("dl", undefined, { id: "offer" });
  const row = (k: string, v: string, id?: string) => dl.append(el("dt", k), el("dd", v, id ? { id } : {}));
  if (kind === "pay") {
    row("What", `${o.item} (${o.deliveryMethod === DeliveryMethod.SAVE ? "save a copy" : "view"})`, "offer-what");
    row("To whom", `${o.vendor?.serverName || o.vendorId} (vendor ${o.vendorId}), asked by ${origin}`, "offer-whom");
    row("Price", `${o.amount} ${o.currency}`, "offer-price");
    row("Balance after", `${balance - o.amount} ${o.currency}`, "offer-after");
  } else {
    row("Reward for", o.item, "offer-what");
    row("From", `${o.vendor?.serverName || o.vendorId} (vendor ${o.vendorId}), asked by ${origin}`, "offer-whom");
    row("Amount", `${o.amount} ${o.currency}`, "offer-price");
    row("Balance after", `${balance + o.amount} ${o.currency}`, "offer-after");
  }
  return dl;
}

function popup(): void {
  let peer: Peer | undefined;
  let busy = false;
  const main = $("wallet");

  window.addEventListener("message", (ev: MessageEvent) => {
    const m = ev.data as { sw?: number; type?: string; id?: string; order?: string; permit?: string } | null;
    if (!m || m.sw !== SW || !ev.source) return;
    if (!peer) {
      if (m.type !== "hello" || ev.source !== window.opener) return;
      peer = { origin: ev.origin, source: ev.source };
    } else if (ev.origin !== peer.origin || ev.source !== peer.source) {
      return; // one popup serves the page that opened it, nobody else
    }
    void handle(peer, m);
  });

  async function handle(p: Peer, m: { type?: string; id?: string; order?: string; permit?: string }): Promise<void> {
    if (m.type === "hello") {
      try {
        const id = await withWallet(async (w, recovered) => {
          if (recovered) status(recoveredText(recovered), "ok");
          if (!w.registered) return undefined;
          return { identity: w.identity!, balance: w.balance() };
        });
        if (!id) {
          main.replaceChildren(el("p", "This browser has no wallet yet. "), el("a", "Open the wallet to register", { href: "/wallet/", target: "_blank" }));
          return send(p, { type: "error", reason: "NOT_REGISTERED", message: "the buyer has no wallet at this payment center yet" });
        }
        $("site").textContent = p.origin;
        send(p, {
          type: "identity",
          customId: { secretId: id.identity.customId.secretId, serialNumber: String(id.identity.customId.serialNumber) },
          currency: id.balance.currency,
          balance: String(id.balance.value),
        });
      } catch (e) {
        status(errorText(e), "error");
        send(p, { type: "error", reason: e instanceof ScripwireError ? e.reason : "INTERNAL", message: errorText(e) });
      }
      return;
    }
    if ((m.type !== "pay" && m.type !== "collect") || busy) return;
    const id = String(m.id ?? "");
    let offer: Offer;
    try {
      offer = fromBinary(OfferSchema, fromBase64(String(m.type === "pay" ? m.order : m.permit)));
    } catch {
      return send(p, { type: "error", id, reason: "BAD_OFFER", message: "the offer is not a base64 protobuf Offer" });
    }
    const balance = await withWallet(async (w) => w.balance().value).catch(() => 0n);
    main.replaceChildren(el("h2", m.type === "pay" ? `Pay ${p.origin}?` : `Collect a reward from ${p.origin}?`), describeOffer(offer, p.origin, balance, m.type));
    const approve = el("button", m.type === "pay" ? `Pay ${offer.amount} ${offer.currency}` : `Collect ${offer.amount} ${offer.currency}`, { type: "button", id: "approve" });
    const cancel = el("button", "Cancel", { type: "button", id: "cancel" });
    const actions = el("div", undefined, { class: "actions" });
    actions.append(approve, cancel);
    main.append(actions);
    approve.focus();
    cancel.onclick = () => {
      send(p, { type: "cancelled", id });
      window.close();
    };
    approve.onclick = async () => {
      busy = true;
      approve.disabled = cancel.disabled = true;
      status(m.type === "pay" ? "Paying…" : "Collecting…");
      try {
        if (m.type === "pay") {
          const r = await withWallet((w) => w.pay(p.origin, offer, { deliver: false }));
          send(p, { type: "receipt", id, tranId: r.tranId, receipt: encodeReceipt(r.receipt), balance: String(r.balance) });
          status(`Paid ${r.price} ${r.currency}; balance ${r.balance} ${r.currency}. The receipt went to ${p.origin}.`, "ok");
        } else {
          const r = await withWallet((w) => w.collect(p.origin, offer));
          send(p, { type: "collected", id, tranId: r.tranId, amount: String(r.amount), balance: String(r.balance) });
          status(`Collected ${r.amount} ${r.currency}; balance ${r.balance} ${r.currency}.`, "ok");
        }
        setTimeout(() => window.close(), 1500);
      } catch (e) {
        status(errorText(e), "error");
        send(p, { type: "error", id, reason: e instanceof ScripwireError ? e.reason : "INTERNAL", message: errorText(e) });
      } finally {
        busy = false;
      }
    };
  }

  if (window.opener) (window.opener as WindowProxy).postMessage({ sw: SW, type: "ready" }, "*");
  else status("This window is opened by a mall's Pay button; the wallet itself is at /wallet/.");
}

// ------------------------------------------------------------------ start

const mode = document.body.dataset.mode;
if (mode === "pay") popup();
else void renderWallet().catch((e) => status(errorText(e), "error"));
