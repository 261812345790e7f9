/**
 * /.scripwire/paywall.js, the paywall page's button (docs/gateway.md,
 * browsers). The page also loads the payment center's
 * /wallet/scripwire-pay.js, which defines `window.Scripwire`:
 *
 * 1. click -> `Scripwire.pay` opens the buyer's wallet as a top-level popup
 *    at the center's origin (synchronously inside the click, or the browser
 *    blocks it);
 * 2. the popup names the buyer's customer id; the page gets the signed pOder
 *    for it from the gateway (`POST /.scripwire/order`, S1 -> S2);
 * 3. the popup runs S3..S6 and posts the receipt back to this origin only;
 * 4. the page trades the receipt for the route's HttpOnly cookie
 *    (`POST /.scripwire/session`) and reloads into the content.
 *
 * Plain ES2020 in a string: it runs in the buyer's browser as is, no bundle.
 */
export function paywallScript(): string {
  return `// Scripwire paywall: pay with the browser wallet, trade the receipt for a route cookie, reload.
const data = JSON.parse(document.getElementById("scrip-challenge").textContent);
const button = document.getElementById("scrip-pay");
const statusEl = document.getElementById("scrip-status");
const say = (t) => { statusEl.textContent = t; };
const b64url = (b64) => b64.replace(/\\+/g, "-").replace(/\\//g, "_").replace(/=+$/, "");
async function postJson(path, body) {
  const r = await fetch(path, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body), credentials: "same-origin" });
  const j = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(j.error || ("HTTP " + r.status));
  return j;
}
if (!data.center || !window.Scripwire) {
  button.disabled = true;
  say(data.center ? "The wallet script of " + data.center + " did not load." : "This gateway names no payment center; pay from a terminal: scripwire wallet fetch " + data.item + " --max-price " + data.price);
} else {
  document.body.dataset.scripReady = "1";
  button.addEventListener("click", async () => {
    say("Waiting for your wallet…");
    button.disabled = true;
    try {
      const paid = await window.Scripwire.pay({
        center: data.center,
        order: async (customer) => (await postJson("/.scripwire/order", { item: data.item, method: data.method, customId: customer.customId })).order,
      });
      say("Paid (" + paid.tranId + "); opening the page…");
      await postJson("/.scripwire/session", { receipt: b64url(paid.receipt) });
      document.body.dataset.scripPaid = paid.tranId;
      location.reload();
    } catch (e) {
      button.disabled = false;
      say((e && e.reason ? e.reason + ": " : "") + (e && e.message ? e.message : String(e)));
    }
  });
}
`;
}
