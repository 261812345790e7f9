/**
 * /.scripwire/paywall.js: the paywall page's button. Filled in once the
 * browser wallet's popup API exists (see docs/gateway.md, browser flow).
 */
export function paywallScript(): string {
  return `// Scripwire paywall: pays with the browser wallet, then trades the receipt for a route cookie.
const data = JSON.parse(document.getElementById("scrip-challenge").textContent);
const status = document.getElementById("scrip-status");
document.getElementById("scrip-pay").addEventListener("click", () => {
  status.textContent = "The browser wallet is not available on this gateway yet; pay with: scripwire wallet fetch " + data.item + " --max-price " + data.price;
});
`;
}
