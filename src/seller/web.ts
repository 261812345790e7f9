/**
 * The web mall: `scripwire seller serve` also serves plain HTML pages for a
 * person at a browser, beside the SellerService RPCs on the same port.
 *
 *   GET  /shop/                 the catalog and the campaign items
 *   GET  /shop/item?url=<u>     an item: a paywall with Buy buttons; after
 *                               payment the content replaces it (VIEW) or is
 *                               saved as a download (SAVE)
 *   GET  /shop/earn/<itemId>    an ad, survey or quiz with its form
 *   POST /shop/api/order        S1 -> S2 for the buyer's customer id: the pOder, or PM2_2's page
 *   POST /shop/api/permit       M1 -> M2: the permit, or GM2_2's page
 *   POST /shop/api/deliver      S7: the content for a receipt
 *   GET  /shop/mall.js, /shop/mall.css
 *
 * Payment itself happens in the buyer's wallet at the center's origin
 * (scripwire-pay.js opens it as a popup); this server never sees the
 * buyer's secrets, only the customer id the wallet hands over, the receipt,
 * and the answers. The pages work with the center named by `centerUrl`.
 */
import { fromBinary, toBinary } from "@bufbuild/protobuf";
import type http from "node:http";
import type http2 from "node:http2";
import { CampaignItemKind } from "../../gen/scripwire/v1/seller_pb.js";
import { CmdType, DeliveryMethod, OfferSchema, ReceiptSchema } from "../../gen/scripwire/v1/types_pb.js";
import { header } from "../protocol/header.js";
import type { Seller } from "./seller.js";

type Req = http.IncomingMessage | http2.Http2ServerRequest;
type Res = http.ServerResponse | http2.Http2ServerResponse;

/** Largest JSON body the mall's API reads (a receipt or an answer is well under 8 KiB). */
export const MALL_BODY_BYTES_MAX = 16 * 1024;

export interface MallOptions {
  /** The payment center whose wallet pays here, e.g. http://127.0.0.1:7100. */
  centerUrl?: string;
}

function esc(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]!);
}

function b64(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString("base64");
}

const CSS = `
body{font:16px/1.5 system-ui,"Noto Sans KR","NanumGothic",sans-serif;max-width:48rem;margin:1rem auto;padding:0 1rem;color:#1a1a1a}
header{border-bottom:2px solid #ccc;margin-bottom:1rem}h1{font-size:1.5rem}
ul.items{list-style:none;padding:0}ul.items li{padding:.5rem 0;border-bottom:1px solid #eee}
.price{font-weight:600}.paywall{border:1px dashed #888;padding:1rem;border-radius:.4rem;background:#fafafa}
button{font:inherit;padding:.4rem 1rem;margin:.25rem .5rem .25rem 0}
#status{padding:.5rem .75rem;background:#eef;border-radius:.3rem}#status:empty{display:none}
iframe.refusal{width:100%;min-height:10rem;border:1px solid #c66}
`;

function mallJs(): string {
  // Plain script, no build step: the glue between this mall's pages and scripwire-pay.js.
  return `"use strict";
const center = document.body.dataset.center;
const statusEl = document.getElementById("status");
const say = (t) => { statusEl.textContent = t; };
async function post(path, body) {
  const r = await fetch(path, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
  return r;
}
async function offerOrRefusal(path, body) {
  const r = await post(path, body);
  const j = await r.json();
  if (!r.ok) { const e = new Error(j.message || "refused"); e.document = j.document; throw e; }
  return j.offer;
}
function showRefusal(doc, where) {
  const f = document.createElement("iframe");
  f.setAttribute("sandbox", "");
  f.className = "refusal";
  f.title = "The mall's answer";
  f.srcdoc = doc;
  where.replaceChildren(f);
}
function requireWallet() {
  if (!center || !window.Scripwire) { say("This mall has no payment center configured, or its wallet script did not load."); return false; }
  return true;
}
for (const b of document.querySelectorAll("button[data-buy]")) {
  b.addEventListener("click", async () => {
    if (!requireWallet()) return;
    const content = document.getElementById("content");
    const requestUrl = b.dataset.url, method = b.dataset.buy;
    say("Waiting for your wallet…");
    try {
      const paid = await Scripwire.pay({ center, order: (c) => offerOrRefusal("/shop/api/order", { requestUrl, method, customId: c.customId }) });
      document.body.dataset.receiptAt = String(Date.now());
      say("Paid; fetching the content (S7)…");
      const r = await post("/shop/api/deliver", { receipt: paid.receipt });
      if (!r.ok) throw new Error(await r.text());
      if (method === "VIEW") {
        content.innerHTML = await r.text();
        content.classList.remove("paywall");
      } else {
        const blob = await r.blob();
        const name = (r.headers.get("content-disposition") || "").match(/filename="([^"]+)"/);
        const a = document.createElement("a");
        a.href = URL.createObjectURL(blob);
        a.download = name ? name[1] : "download";
        document.body.append(a);
        a.click();
        a.remove();
      }
      say("Paid. Your balance is now " + paid.balance + ".");
      document.body.dataset.paid = paid.tranId;
    } catch (e) {
      if (e.document) showRefusal(e.document, content);
      say(e.message);
    }
  });
}
const earn = document.getElementById("earn");
if (earn) earn.addEventListener("submit", async (ev) => {
  ev.preventDefault();
  if (!requireWallet()) return;
  const data = new FormData(earn);
  const answer = String(data.get("answer") || "");
  const item = earn.dataset.item;
  say("Waiting for your wallet…");
  try {
    const got = await Scripwire.collect({ center, permit: (c) => offerOrRefusal("/shop/api/permit", { item, answer, customId: c.customId }) });
    say("You earned " + got.amount + ". Your balance is now " + got.balance + ".");
    document.body.dataset.earned = got.tranId;
  } catch (e) {
    if (e.document) showRefusal(e.document, document.getElementById("result"));
    say(e.message);
  }
});
`;
}

function layout(title: string, centerUrl: string | undefined, body: string): string {
  const center = centerUrl ? new URL(centerUrl).origin : "";
  const wallet = center ? `<script src="${esc(center)}/wallet/scripwire-pay.js"></script>` : "";
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(title)}</title><link rel="stylesheet" href="/shop/mall.css">${wallet}<script src="/shop/mall.js" defer></script></head>
<body data-center="${esc(center)}">
<header><p><a href="/shop/">Catalog</a>${center ? ` · <a href="${esc(center)}/wallet/" target="_blank" rel="noopener">Your wallet</a>` : ""}</p><h1>${esc(title)}</h1></header>
<div id="status" role="status" aria-live="polite"></div>
<main>${body}</main></body></html>`;
}

const METHOD_WORDS: Record<number, string> = { [DeliveryMethod.VIEW]: "view", [DeliveryMethod.SAVE]: "save a copy" };

async function readJson(req: Req): Promise<Record<string, unknown>> {
  let size = 0;
  const chunks: Buffer[] = [];
  for await (const c of req as AsyncIterable<Buffer>) {
    size += c.length;
    if (size > MALL_BODY_BYTES_MAX) throw new RangeError(`the request body is over ${MALL_BODY_BYTES_MAX} bytes`);
    chunks.push(c);
  }
  const v = JSON.parse(Buffer.concat(chunks).toString("utf8")) as unknown;
  if (!v || typeof v !== "object") throw new RangeError("expected a JSON object");
  return v as Record<string, unknown>;
}

function customIdOf(v: unknown): { secretId: number; serialNumber: bigint } {
  const c = v as { secretId?: unknown; serialNumber?: unknown } | undefined;
  if (!c || !Number.isInteger(c.secretId) || (c.secretId as number) < 0 || typeof c.serialNumber !== "string" || !/^[0-9]{1,20}$/.test(c.serialNumber)) {
    throw new RangeError('"customId" expected {secretId: integer, serialNumber: decimal string}');
  }
  return { secretId: c.secretId as number, serialNumber: BigInt(c.serialNumber) };
}

function reply(res: Res, status: number, type: string, body: string | Uint8Array, headers: Record<string, string> = {}): void {
  res.statusCode = status;
  res.setHeader("content-type", type);
  res.setHeader("x-content-type-options", "nosniff");
  res.setHeader("cache-control", "no-store");
  for (const [k, v] of Object.entries(headers)) res.setHeader(k, v);
  res.end(body);
}

const json = (res: Res, status: number, v: unknown) => reply(res, status, "application/json", JSON.stringify(v));

/** The mall's page handler for the server stack (`pages` option). */
export function mallPages(seller: Seller, opts: MallOptions = {}): (req: Req, res: Res) => boolean {
  const centerOrigin = opts.centerUrl ? new URL(opts.centerUrl).origin : "";
  const htmlHeaders = {
    "content-security-policy": `default-src 'self'; script-src 'self' ${centerOrigin}; style-src 'self'; frame-src 'self'; img-src 'self' data:; frame-ancestors 'self'`,
  };
  const html = (res: Res, status: number, title: string, body: string) => reply(res, status, "text/html; charset=utf-8", layout(title, opts.centerUrl, body), htmlHeaders);
  const cfg = seller.config;

  return (req, res) => {
    // Every RPC passes through here first: let it go without parsing its URL.
    const raw = req.url ?? "/";
    if (raw !== "/" && !raw.startsWith("/shop")) return false;
    const url = new URL(raw, "http://x");
    const path = url.pathname;
    if (path === "/" && req.method === "GET") {
      reply(res, 302, "text/plain; charset=utf-8", "see /shop/\n", { location: "/shop/" });
      return true;
    }
    if (!path.startsWith("/shop")) return false;
    if (req.method === "POST" && path.startsWith("/shop/api/")) {
      void api(path, req, res).catch((e: Error) => json(res, 400, { message: e.message }));
      return true;
    }
    if (req.method !== "GET" && req.method !== "HEAD") {
      reply(res, 405, "text/plain; charset=utf-8", "method not allowed\n", { allow: "GET, HEAD" });
      return true;
    }
    if (path === "/shop" || path === "/shop/") {
      const items = cfg.catalog
        .map((c) => `<li><a href="/shop/item?url=${encodeURIComponent(c.requestUrl)}">${esc(c.title)}</a> — <span class="price">${c.price} ${esc(c.currency)}</span> (${c.methods.map((m) => METHOD_WORDS[m]).join(" or ")})</li>`)
        .join("");
      const earn = cfg.campaignItems
        .map((i) => `<li><a href="/shop/earn/${encodeURIComponent(i.itemId)}">${esc(i.prompt)}</a> — earn <span class="price">${i.reward} ${esc(i.currency)}</span> (${CampaignItemKind[i.kind]?.toLowerCase()})</li>`)
        .join("");
      html(res, 200, cfg.identity.serverName || cfg.vendorId, `<h2>For sale</h2><ul class="items">${items}</ul><h2>Earn scrip</h2><ul class="items">${earn}</ul>`);
      return true;
    }
    if (path === "/shop/item") {
      const entry = cfg.catalog.find((c) => c.requestUrl === url.searchParams.get("url"));
      if (!entry) {
        html(res, 404, "Not for sale", `<p>Nothing is sold at ${esc(url.searchParams.get("url") ?? "")}. (PM2_2)</p>`);
        return true;
      }
      const buttons = entry.methods
        .map((m) => `<button type="button" data-buy="${DeliveryMethod[m]}" data-url="${esc(entry.requestUrl)}">${m === DeliveryMethod.SAVE ? "Buy and save" : "Buy to read"} — ${entry.price} ${esc(entry.currency)}</button>`)
        .join("");
      html(res, 200, entry.title, `<section id="content" class="paywall" aria-live="polite"><p>This ${entry.methods.includes(DeliveryMethod.VIEW) ? "article" : "file"} costs <span class="price">${entry.price} ${esc(entry.currency)}</span>, paid from your Scripwire wallet.</p>${buttons}</section>`);
      return true;
    }
    if (path.startsWith("/shop/earn/")) {
      const item = cfg.campaignItems.find((i) => i.itemId === decodeURIComponent(path.slice("/shop/earn/".length)));
      if (!item) {
        html(res, 404, "No such offer", "<p>There is no advertisement, survey or quiz here by that name.</p>");
        return true;
      }
      let field: string;
      if (item.kind === CampaignItemKind.QUIZ && item.choices.length) {
        field = `<fieldset><legend>${esc(item.prompt)}</legend>${item.choices.map((c, n) => `<p><input type="radio" name="answer" id="c${n}" value="${esc(c)}" required> <label for="c${n}">${esc(c)}</label></p>`).join("")}</fieldset>`;
      } else if (item.kind === CampaignItemKind.AD) {
        field = `<p class="ad">${esc(item.prompt)}</p><input type="hidden" name="answer" value="seen">`;
      } else {
        field = `<p><label for="answer">${esc(item.prompt)}</label></p><p><textarea id="answer" name="answer" rows="3" cols="50" maxlength="2000" required></textarea></p>`;
      }
      const verb = item.kind === CampaignItemKind.AD ? "I have read it: collect" : "Answer and collect";
      html(res, 200, `Earn ${item.reward} ${item.currency}`, `<form id="earn" data-item="${esc(item.itemId)}">${field}<button type="submit">${verb} ${item.reward} ${esc(item.currency)}</button></form><section id="result" aria-live="polite"></section>`);
      return true;
    }
    if (path === "/shop/mall.js") {
      reply(res, 200, "text/javascript; charset=utf-8", mallJs());
      return true;
    }
    if (path === "/shop/mall.css") {
      reply(res, 200, "text/css; charset=utf-8", CSS);
      return true;
    }
    reply(res, 404, "text/plain; charset=utf-8", "not found\n");
    return true;
  };

  async function api(path: string, req: Req, res: Res): Promise<void> {
    const body = await readJson(req);
    const now = Date.now();
    if (path === "/shop/api/order") {
      const method = body.method === "SAVE" ? DeliveryMethod.SAVE : body.method === "VIEW" ? DeliveryMethod.VIEW : undefined;
      if (method === undefined || typeof body.requestUrl !== "string") return json(res, 400, { message: '"method" expected VIEW or SAVE and "requestUrl" a string' });
      const r = seller.requestService({ header: header(CmdType.PM1_1, now), requestUrl: body.requestUrl, pMethod: method, customId: customIdOf(body.customId) } as never);
      if (!r.order) return json(res, 409, { reason: r.header?.errorReason, message: r.header?.errorMessage, document: r.htmlDocument });
      return json(res, 200, { offer: b64(toBinary(OfferSchema, r.order)) });
    }
    if (path === "/shop/api/permit") {
      if (typeof body.item !== "string" || typeof body.answer !== "string") return json(res, 400, { message: '"item" and "answer" expected strings' });
      const r = seller.requestIssue({ header: header(CmdType.GM1_1, now), item: body.item, value: body.answer, customId: customIdOf(body.customId) } as never);
      if (!r.permit) return json(res, 409, { reason: r.header?.errorReason, message: r.header?.errorMessage, document: r.htmlDocument });
      return json(res, 200, { offer: b64(toBinary(OfferSchema, r.permit)) });
    }
    if (path === "/shop/api/deliver") {
      if (typeof body.receipt !== "string") return json(res, 400, { message: '"receipt" expected base64 of a protobuf Receipt' });
      let d;
      try {
        d = seller.deliver({ header: header(CmdType.PM8_1, now), receipt: fromBinary(ReceiptSchema, Buffer.from(body.receipt, "base64")) } as never);
      } catch (e) {
        return reply(res, 403, "text/plain; charset=utf-8", `${(e as Error).message}\n`);
      }
      const save = d.deliveryMethod === DeliveryMethod.SAVE;
      return reply(res, 200, save ? d.contentType : d.contentType, d.content, save ? { "content-disposition": `attachment; filename="${d.fileName.replace(/["\\\r\n]/g, "_")}"` } : {});
    }
    json(res, 404, { message: "no such API" });
  }
}
