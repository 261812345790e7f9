/**
 * Headless Chromium for the browser tests: Debian's chromium-headless-shell
 * driven by playwright-core (which downloads no browser of its own). When the
 * browser is missing, `browserOrSkip` tells the test file to skip with the
 * reason printed; under CI (CI=true) a missing browser is a failure instead,
 * so a CI image without it cannot pass silently.
 */
import { existsSync } from "node:fs";
import test from "ava";
import type { Browser } from "playwright-core";

export const CHROMIUM_PATH = process.env.SCRIPWIRE_CHROMIUM ?? "/usr/lib/chromium/chromium-headless-shell";

/** Why the browser tests cannot run here, or undefined if they can. */
export function browserMissing(): string | undefined {
  if (!existsSync(CHROMIUM_PATH)) return `no Chromium at ${CHROMIUM_PATH} (apt-get install chromium-headless-shell, or set SCRIPWIRE_CHROMIUM)`;
  return undefined;
}

/**
 * Returns ava's `test` when a browser exists. Otherwise registers one
 * failing test under CI, or prints the reason and returns `test.skip`.
 */
export function browserTest(file: string): typeof test {
  const missing = browserMissing();
  if (!missing) return test;
  if (process.env.CI === "true") {
    test(`${file}: a browser is required under CI`, (t) => t.fail(missing));
  } else {
    console.log(`${file}: browser tests skipped: ${missing}`);
  }
  // Every test of the file is registered as skipped (so the count shows them); hooks do nothing.
  const skipped = (title: string, ...rest: unknown[]) => (test.skip as (...a: unknown[]) => void)(`${title} (skipped: ${missing})`, ...rest);
  const noop = () => {};
  return Object.assign(skipped, { before: noop, beforeEach: noop, after: Object.assign(noop, { always: noop }), afterEach: Object.assign(noop, { always: noop }), serial: skipped, skip: skipped }) as unknown as typeof test;
}

export async function launch(): Promise<Browser> {
  const { chromium } = await import("playwright-core");
  return chromium.launch({ executablePath: CHROMIUM_PATH, args: ["--disable-dev-shm-usage"] });
}
