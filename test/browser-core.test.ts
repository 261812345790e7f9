/**
 * The wallet core in the browser: test/browser/core-entry.ts bundled by
 * esbuild (--platform=browser) and run in headless Chromium at the center's
 * origin. It runs the same vectors (testdata/vectors.json through
 * test/shared/vectors.ts) and the same flows (test/shared/wallet-core-flows.ts)
 * as the Node tests, over connect-web and IndexedDB; the seller is called
 * cross-origin, so its CORS answers are exercised too.
 */
import { readFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import type { Browser, Page } from "playwright-core";
import { browserTest, launch } from "./helpers/browser.js";
import { flowsEnv } from "./shared/wallet-core-flows.js";
import { startWorld, type World } from "./helpers/world.js";

const test = browserTest("browser-core");
const ROOT = fileURLToPath(new URL("..", import.meta.url));
let browser: Browser;
let bundle: { code: string; inputs: string[] };
test.before(async () => {
  browser = await launch();
  const { build } = await import("esbuild");
  const out = await build({ entryPoints: [`${ROOT}test/browser/core-entry.ts`], bundle: true, platform: "browser", format: "esm", write: false, metafile: true, logLevel: "silent" });
  bundle = { code: out.outputFiles[0]!.text, inputs: Object.keys(out.metafile.inputs) };
});
test.after.always(async () => {
  await browser?.close();
});

/**
 * A page at the center's origin running the bundle. The document is a real
 * loopback response (a 404 without a CSP): a page Playwright made up would
 * sit in no address space, and Chromium's Local Network Access checks would
 * then refuse its calls to the loopback servers.
 */
async function corePage(w: World): Promise<Page> {
  const page = await browser.newPage();
  await page.goto(`${w.centerUrl}/__core-test`);
  await page.addScriptTag({ content: bundle.code, type: "module" });
  await page.waitForFunction(() => "coreTests" in globalThis);
  return page;
}

test("the bundle holds no node:* module and no connect-node", (t) => {
  t.false(bundle.inputs.some((i) => i.startsWith("node:") || i.includes("connect-node")));
  t.true(bundle.inputs.includes("src/wallet/steps.ts"));
});

test("the same vectors in the browser bundle", async (t) => {
  const w = await startWorld();
  t.teardown(() => w.close());
  const page = await corePage(w);
  t.teardown(() => page.close());
  const file = JSON.parse(await readFile(`${ROOT}testdata/vectors.json`, "utf8"));
  const results = (await page.evaluate((f) => (globalThis as any).coreTests.vectors(f), file)) as { name: string; canonical: boolean; result: boolean; verified: boolean; error?: string }[];
  t.is(results.length, file.vectors.length);
  for (const r of results) t.true(r.canonical && r.result && r.verified, `${r.name}: ${JSON.stringify(r)}`);
});

test("the same wallet-core flows in the browser bundle (connect-web, IndexedDB)", async (t) => {
  const w = await startWorld();
  t.teardown(() => w.close());
  const page = await corePage(w);
  t.teardown(() => page.close());
  const env = flowsEnv(w);
  const checks = (await page.evaluate((e) => (globalThis as any).coreTests.flows(e), env)) as [string, boolean][];
  for (const [what, ok] of checks) t.true(ok, what);
  t.is(checks.length, 12, "every check of the walk ran");
  const audit = await w.center.ledger.audit();
  t.true(audit.ok, audit.problems.join("; "));
});
