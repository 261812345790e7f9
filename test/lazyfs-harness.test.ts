/**
 * The power-loss harness's own guards (test/torture/lazyfs.ts). LazyFS's
 * argument loop drops a --config-path containing "-o" in any case and then
 * aborts, so a temporary directory whose random suffix began with "o" or "O"
 * failed the CI step, reported as a 30 s mount timeout. These need no FUSE:
 * the first refuses before anything starts, the second starts a real process
 * that dies by a signal the way LazyFS's abort does.
 */
import test from "ava";
import { chmodSync, existsSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { LazyFs } from "./torture/lazyfs.js";

test('a config path LazyFS would drop ("-o" in any case) is refused before anything is made', (t) => {
  const parent = mkdtempSync(join(tmpdir(), "scripwire_lazyfs_test_"));
  for (const name of ["scripwire-lazyfs-Ou7Gsp", "x-o"]) {
    const dir = join(parent, name);
    const e = t.throws(() => new LazyFs("/bin/false", dir));
    t.regex(e!.message, /"-o"/);
    t.false(existsSync(join(dir, "lazyfs.toml")), "nothing written for a refused directory");
  }
  t.notThrows(() => new LazyFs("/bin/false", join(parent, "scripwire_lazyfs_Ou7Gsp")));
});

test("a LazyFS that dies by a signal while mounting is reported at once, not as a mount timeout", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "scripwire_lazyfs_test_"));
  const bin = join(dir, "aborts.sh");
  writeFileSync(bin, "#!/bin/sh\nkill -ABRT $$\n");
  chmodSync(bin, 0o755);
  const fs = new LazyFs(bin, join(dir, "run"));
  const t0 = Date.now();
  const e = await t.throwsAsync(fs.mount());
  t.regex(e!.message, /lazyfs exited \(SIGABRT\) while mounting/);
  t.true(Date.now() - t0 < 10_000, `reported after ${Date.now() - t0} ms`);
});
