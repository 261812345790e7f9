/**
 * The 402 body for browsers: the patent's PM2_1 payment information as a
 * page. The button runs /.scripwire/paywall.js, which pays with the browser
 * wallet at the payment center's origin, trades the receipt for an HttpOnly
 * route cookie at /.scripwire/session and reloads into the content.
 */
import type { ScripChallenge } from "./challenge.js";

function esc(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]!);
}

/** JSON safe inside a <script> element: no "</script>" or "<!--" can be formed. */
function scriptJson(v: unknown): string {
  return JSON.stringify(v).replace(/</g, "\\u003c").replace(/>/g, "\\u003e").replace(/&/g, "\\u0026");
}

function duration(seconds: number): string {
  if (seconds % 86400 === 0) return `${seconds / 86400} day${seconds === 86400 ? "" : "s"}`;
  if (seconds % 3600 === 0) return `${seconds / 3600} hour${seconds === 3600 ? "" : "s"}`;
  if (seconds % 60 === 0) return `${seconds / 60} minute${seconds === 60 ? "" : "s"}`;
  return `${seconds} seconds`;
}

export function paywallPage(c: ScripChallenge, title: string, reasonMessage?: string): string {
  const data = { ...c, price: c.price.toString() };
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Payment required: ${esc(title)}</title>
<style>body{font-family:system-ui,sans-serif;max-width:36rem;margin:3rem auto;padding:0 1rem;color:#222}
table{border-collapse:collapse;margin:1rem 0}td{padding:.25rem .75rem .25rem 0}td:first-child{color:#666}
button{font-size:1.1rem;padding:.6rem 1.2rem;cursor:pointer}#scrip-status{margin-top:1rem;color:#555}</style>
</head><body>
<h1>${esc(title)}</h1>
<p>This page costs <strong>${esc(c.price.toString())} ${esc(c.currency)}</strong> in scrip. One payment opens it for ${esc(duration(c.lifetime))}.</p>
${reasonMessage ? `<p id="scrip-reason" data-reason="${esc(c.reason ?? "")}">${esc(reasonMessage)}</p>` : ""}
<table id="scrip-payment-information">
<tr><td>Seller</td><td>${esc(c.realm)} (${esc(c.vendor)})</td></tr>
<tr><td>Item</td><td>${esc(c.item)}</td></tr>
<tr><td>Price</td><td>${esc(c.price.toString())} ${esc(c.currency)}</td></tr>
<tr><td>Delivery</td><td>${esc(c.method)}</td></tr>
</table>
<button id="scrip-pay" type="button">Pay ${esc(c.price.toString())} ${esc(c.currency)} with my Scripwire wallet</button>
<p id="scrip-status" role="status"></p>
${c.center ? `<p>No Scripwire wallet yet? <a href="${esc(c.center)}/wallet/" target="_blank" rel="noopener">Open one at the payment center</a>, then come back.</p>` : ""}
<noscript><p>Paying from the browser needs JavaScript. From a terminal: <code>scripwire wallet fetch ${esc(c.item)} --max-price ${esc(c.price.toString())}</code></p></noscript>
<script type="application/json" id="scrip-challenge">${scriptJson(data)}</script>
${c.center ? `<script src="${esc(c.center)}/wallet/scripwire-pay.js"></script>
` : ""}<script type="module" src="/.scripwire/paywall.js"></script>
</body></html>
`;
}
