/**
 * Issue 12: "the encrypted wallet file authenticates only walletId and
 * customId: the center URL, the pinned center key, the scrip and the history
 * can be edited unnoticed." Now the whole file (and every journal line) is
 * authenticated; each edit below is refused on load.
 */
import test from "ava";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync, appendFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AuthenticationError, ScripwireError } from "../src/wallet/errors.js";
import { FileWalletStore, type WalletState } from "../src/wallet/store.js";

function state(): WalletState {
  return {
    version: 1,
    walletId: randomBytes(16).toString("hex"),
    centerUrl: "https://center.example",
    centerPublicKey: randomBytes(32).toString("hex"),
    center: { dnsName: "center.example", ipAddr: "", serverName: "Center", port: 443 },
    currency: "KRW",
    customId: { secretId: 1, serialNumber: "123456789" },
    customSecret: randomBytes(32).toString("hex"),
    scrip: randomBytes(120).toString("base64"),
    pending: null,
    history: [{ kind: "registered", atMs: 1, amount: "0", balance: "0", currency: "KRW", serial: "1" }],
    receipts: {},
    createdAtMs: 1,
  };
}

type Edit = [string, (f: { version: number; state: Record<string, unknown> }) => void];
const edits: Edit[] = [
  ["the center URL", (f) => void (f.state.centerUrl = "https://evil.example")],
  ["the pinned center key", (f) => void (f.state.centerPublicKey = "00".repeat(32))],
  ["the scrip", (f) => void (f.state.scrip = randomBytes(120).toString("base64"))],
  ["the history", (f) => void (f.state.history as unknown[]).push({ kind: "earned", atMs: 2, amount: "1000000", balance: "1000000", currency: "KRW", serial: "2" })],
  ["the currency", (f) => void (f.state.currency = "USD")],
];

for (const passphrase of ["correct horse battery staple", undefined]) {
  const kind = passphrase ? "an encrypted" : "a plain";
  test(`${kind} wallet file: every edit of its content is refused on load`, async (t) => {
    const dir = mkdtempSync(join(tmpdir(), "scripwire-wfile-"));
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    const path = join(dir, "wallet.json");
    const store = new FileWalletStore(path, { passphrase, scryptLogN: 10 });
    const s = state();
    await store.save(s);
    const original = readFileSync(path, "utf8");
    t.deepEqual(await new FileWalletStore(path, { passphrase, scryptLogN: 10 }).load(), s, "an unaltered file loads");
    for (const [what, edit] of edits) {
      const f = JSON.parse(original);
      edit(f);
      writeFileSync(path, JSON.stringify(f, null, 2));
      const e = await t.throwsAsync(new FileWalletStore(path, { passphrase, scryptLogN: 10 }).load(), { instanceOf: AuthenticationError }, what);
      t.is(e?.reason, "WALLET_FILE_ALTERED", what);
    }
    // A journal line edited after the snapshot (the wallet appends one before each value-moving request).
    writeFileSync(path, original);
    const live = new FileWalletStore(path, { passphrase, scryptLogN: 10 });
    await live.load();
    await live.append({ history: [{ kind: "earned", atMs: 3, amount: "50", balance: "50", currency: "KRW", serial: "3" }] } as never);
    await live.append({ scrip: randomBytes(120).toString("base64") });
    const journal = `${path}.journal`;
    const lines = readFileSync(journal, "utf8").split("\n");
    lines[0] = lines[0]!.replace('"50"', '"5000000"');
    writeFileSync(journal, lines.join("\n"));
    const j = await t.throwsAsync(new FileWalletStore(path, { passphrase, scryptLogN: 10 }).load(), { instanceOf: ScripwireError });
    t.regex(j!.message, /damaged/);
  });
}

test("an encrypted version-2 file relabelled as version 1 (to skip its MAC) does not open", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "scripwire-wfile-"));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, "wallet.json");
  await new FileWalletStore(path, { passphrase: "pw-pw-pw-pw", scryptLogN: 10 }).save(state());
  const f = JSON.parse(readFileSync(path, "utf8"));
  t.is(f.version, 2);
  f.version = 1;
  delete f.mac;
  f.state.centerUrl = "https://evil.example";
  writeFileSync(path, JSON.stringify(f));
  await t.throwsAsync(new FileWalletStore(path, { passphrase: "pw-pw-pw-pw", scryptLogN: 10 }).load(), { instanceOf: AuthenticationError });
  void appendFileSync;
});
