/**
 * The browser wallet at the payment center's own origin:
 *
 *   /wallet/                  the buyer's wallet page
 *   /wallet/pay.html          the payment popup a mall page opens
 *   /wallet/app.js            both pages' script (esbuild bundle of src/wallet/browser/app.ts)
 *   /wallet/scripwire-pay.js  the script a mall page includes (classic script, window.Scripwire)
 *   /wallet/wallet.css
 *
 * The bundles are built from source by esbuild the first time they are
 * asked for (once per process, kept in memory), so what is served is always
 * the code in this checkout; nothing built is committed.
 *
 * The pages forbid framing (CSP frame-ancestors 'none', X-Frame-Options) so
 * no mall can overlay the Approve button, and load script only from this
 * origin. The secrets live in this origin's IndexedDB (browser/idb-store.ts);
 * see docs/browser-wallet.md for what protects them and what does not.
 */
import type http from "node:http";
import type http2 from "node:http2";
import { fileURLToPath } from "node:url";

type Req = http.IncomingMessage | http2.Http2ServerRequest;
type Res = http.ServerResponse | http2.Http2ServerResponse;

const SOURCES = {
  app: fileURLToPath(new URL("../wallet/browser/app.ts", import.meta.url)),
  pay: fileURLToPath(new URL("../wallet/browser/scripwire-pay.ts", import.meta.url)),
};

export interface WalletBundles {
  app: string;
  pay: string;
}

let bundles: Promise<WalletBundles> | undefined;

/**
 * Builds the two browser bundles (esbuild --bundle --platform=browser; the
 * wallet as ESM, the mall script as an IIFE). Cached for the process.
 */
export function walletBundles(): Promise<WalletBundles> {
  bundles ??= (async () => {
    const { build } = await import("esbuild");
    const common = { bundle: true, platform: "browser", target: "es2022", minify: true, write: false, legalComments: "none", logLevel: "silent" } as const;
    const [app, pay] = await Promise.all([
      build({ ...common, entryPoints: [SOURCES.app], format: "esm" }),
      build({ ...common, entryPoints: [SOURCES.pay], format: "iife" }),
    ]);
    return { app: app.outputFiles[0]!.text, pay: pay.outputFiles[0]!.text };
  })();
  bundles.catch(() => (bundles = undefined));
  return bundles;
}

const CSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

const CSS = `
body{font:16px/1.5 system-ui,"Noto Sans KR","NanumGothic",sans-serif;max-width:44rem;margin:1rem auto;padding:0 1rem;color:#1a1a1a}
h1{font-size:1.4rem}h2{font-size:1.15rem;margin-top:1.5rem}
#status{padding:.5rem .75rem;border-radius:.3rem;background:#eef}#status:empty{display:none}
#status[data-kind=error]{background:#fdd}#status[data-kind=ok]{background:#dfd}
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:.25rem .5rem;border-bottom:1px solid #ddd}
button{font:inherit;padding:.4rem 1rem;margin-right:.5rem}#approve{background:#0a5;color:#fff;border:0;border-radius:.3rem}
dl{display:grid;grid-template-columns:max-content 1fr;gap:.25rem 1rem}dt{font-weight:600}
#log{font:13px/1.4 ui-monospace,monospace;color:#555}
`;

function page(title: string, mode: "wallet" | "pay"): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${title}</title><link rel="stylesheet" href="/wallet/wallet.css"><script type="module" src="/wallet/app.js"></script></head>
<body data-mode="${mode}">
<header><h1>${title}</h1>${mode === "pay" ? '<p>Requested by <strong id="site">…</strong></p>' : ""}</header>
<div id="status" role="status" aria-live="polite"></div>
<main id="wallet"><p>Opening the wallet…</p></main>
<details><summary>Protocol messages</summary><ol id="log"></ol></details>
<noscript>The wallet needs JavaScript: it keeps your scrip in this browser.</noscript>
</body></html>`;
}

function send(res: Res, status: number, type: string, body: string, headers: Record<string, string> = {}): void {
  res.statusCode = status;
  res.setHeader("content-type", type);
  res.setHeader("x-content-type-options", "nosniff");
  for (const [k, v] of Object.entries(headers)) res.setHeader(k, v);
  res.end(body);
}

const HTML_HEADERS = { "content-security-policy": CSP, "x-frame-options": "DENY", "referrer-policy": "no-referrer", "cache-control": "no-store" };

/** The /wallet/ page handler for the server stack (`pages` option). */
export function walletPages(req: Req, res: Res): boolean {
  if (req.method !== "GET" && req.method !== "HEAD") return false;
  const path = new URL(req.url ?? "/", "http://x").pathname;
  if (path === "/" ) {
    send(res, 302, "text/plain; charset=utf-8", "see /wallet/\n", { location: "/wallet/" });
    return true;
  }
  if (!path.startsWith("/wallet")) return false;
  switch (path) {
    case "/wallet":
      send(res, 301, "text/plain; charset=utf-8", "see /wallet/\n", { location: "/wallet/" });
      return true;
    case "/wallet/":
    case "/wallet/index.html":
      send(res, 200, "text/html; charset=utf-8", page("Scripwire wallet", "wallet"), HTML_HEADERS);
      return true;
    case "/wallet/pay.html":
      send(res, 200, "text/html; charset=utf-8", page("Scripwire wallet: approve a payment", "pay"), HTML_HEADERS);
      return true;
    case "/wallet/wallet.css":
      send(res, 200, "text/css; charset=utf-8", CSS, { "cache-control": "no-cache" });
      return true;
    case "/wallet/app.js":
    case "/wallet/scripwire-pay.js":
      walletBundles().then(
        (b) =>
          path === "/wallet/app.js"
            ? send(res, 200, "text/javascript; charset=utf-8", b.app, { "cache-control": "no-cache" })
            : // Any mall may load this script; it holds no secret and reads none.
              send(res, 200, "text/javascript; charset=utf-8", b.pay, { "cache-control": "no-cache", "access-control-allow-origin": "*", "cross-origin-resource-policy": "cross-origin" }),
        (e: Error) => send(res, 503, "text/plain; charset=utf-8", `the browser wallet could not be built: ${e.message}\n`),
      );
      return true;
    default:
      send(res, 404, "text/plain; charset=utf-8", "not found\n");
      return true;
  }
}
