/**
 * Issue 12, finding 1: "with only a read of the database file, a short script
 * rebuilt the richest customer's live scrip, derived their Custom_Secret and
 * redeemed their whole balance to another payout account."
 *
 * The same script is run here, first against a center whose ledger keeps its
 * keys in the clear (the code path before key wrapping: a ledger opened
 * without a KEK), where it must succeed, proving the script is a real attack;
 * then against a center whose keys are wrapped, where it must fail and leave
 * the victim's scrip live and the payouts table empty. Plus: file modes
 * whatever the umask, refusal of readable files, KEK generation by
 * `center init`, migration of a plaintext ledger, and rotation while the
 * center runs.
 */
import test from "ava";
import { create } from "@bufbuild/protobuf";
import { ConnectError, createClient, type Client } from "@connectrpc/connect";
import { hmac } from "@noble/hashes/hmac.js";
import { sha256 } from "@noble/hashes/sha2.js";
import Database from "better-sqlite3";
import { spawn, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { CenterAdminService } from "../gen/scripwire/v1/admin_pb.js";
import { PaymentCenterService } from "../gen/scripwire/v1/center_pb.js";
import { CmdType, HashAlgorithm, IdTypeSchema, ScripBodyTypeSchema, ScripTypeSchema, type ServerType } from "../gen/scripwire/v1/types_pb.js";
import { createTransport } from "../src/client/transport.js";
import { customSecretInput } from "../src/crypto/canonical.js";
import { isWrapped, KeyEncryptionKeys } from "../src/crypto/kek.js";
import { computeCertificate, computeMessageHash } from "../src/crypto/scrip-auth.js";
import { openSqliteLedger } from "../src/ledger/sqlite.js";
import { RawCustomer, hdr } from "./helpers/raw.js";
import { ADMIN_TOKEN, realWorld } from "./helpers/real.js";

const BIN = join(process.cwd(), "bin", "scripwire.js");
const TOKEN = "keys-at-rest-token-0123456789abcdef";

/**
 * The attacker: a read of the database file and the center's public info,
 * nothing else. Picks the richest live scrip, rebuilds it with the stored
 * certificate key, derives its owner's Custom_Secret from the stored master
 * key, and asks the center to redeem all of it to the attacker's account.
 */
async function attackFromDatabaseFile(dbPath: string, center: Client<typeof PaymentCenterService>, account: string) {
  const db = new Database(dbPath, { readonly: true });
  db.defaultSafeIntegers(true);
  let victim: { serial: bigint; customer_serial: bigint; currency: string; value: bigint; expires_at: bigint; secret_id: bigint };
  let certKey: { secret_id: bigint; key: Buffer };
  let master: { key: Buffer };
  try {
    victim = db
      .prepare(`SELECT s.serial, s.customer_serial, s.currency, s.value, s.expires_at, c.secret_id FROM scrips s JOIN customers c USING (customer_serial) WHERE s.state = 'live' ORDER BY s.value DESC LIMIT 1`)
      .get() as typeof victim;
    certKey = db.prepare(`SELECT secret_id, key FROM keys WHERE kind = 'certificate' ORDER BY secret_id DESC LIMIT 1`).get() as typeof certKey;
    master = db.prepare(`SELECT key FROM keys WHERE kind = 'custom' AND secret_id = ?`).get(victim.secret_id) as typeof master;
  } finally {
    db.close();
  }
  const identity = (await center.getCenterInfo({})).center as ServerType;
  const body = create(ScripBodyTypeSchema, {
    currency: victim.currency,
    value: victim.value,
    vendorId: identity,
    scripId: create(IdTypeSchema, { secretId: Number(certKey.secret_id), serialNumber: victim.serial }),
    customId: create(IdTypeSchema, { secretId: Number(victim.secret_id), serialNumber: victim.customer_serial }),
    ad: "",
    expirationDateUnix: victim.expires_at,
  });
  const alg = HashAlgorithm.HMAC_SHA256;
  const scrip = create(ScripTypeSchema, { hashAlgorithm: alg, scrip: body, certificate: computeCertificate(alg, new Uint8Array(certKey.key), body) });
  const cs = hmac(sha256, new Uint8Array(master.key), customSecretInput(Number(victim.secret_id), victim.customer_serial));
  const requestId = `steal-${randomBytes(6).toString("hex")}`;
  const scripHash = computeMessageHash(alg, cs, { code: "RD1", contextId: requestId, pCount: 0, scrip, amount: 0n, account });
  return { victimValue: victim.value, reply: center.redeem({ header: hdr(CmdType.RD1), requestId, pCount: 0, scrip, scripHash, amount: 0n, payoutAccount: account }) };
}

async function victimWithBalance(w: Awaited<ReturnType<typeof realWorld>>): Promise<RawCustomer> {
  const victim = new RawCustomer(w.centerTransport, w.sellerTransport);
  await victim.register();
  await victim.earn("quiz-1", "hash");
  return victim;
}

const config = { redeemThreshold: { KRW: 1n, USD: 1n } };

test("the attack works on a ledger whose keys are in the clear (the old code path)", async (t) => {
  const w = await realWorld({ config });
  t.teardown(() => w.close());
  const victim = await victimWithBalance(w);
  const center = createClient(PaymentCenterService, w.centerTransport);
  const attack = await attackFromDatabaseFile(join(w.dir, "center.sqlite"), center, "attacker-iban");
  const stolen = await attack.reply;
  t.is(stolen.payout?.amount, victim.value, "the attacker redeemed the victim's whole balance");
  t.is(stolen.payout?.payoutAccount, "attacker-iban");
  // The victim is locked out of their own scrip afterwards.
  await t.throwsAsync(victim.earn("survey-1", "yes"));
});

test("with wrapped keys, a read of the database file cannot redeem anyone's scrip", async (t) => {
  const kek = new KeyEncryptionKeys([new Uint8Array(randomBytes(32))]);
  const w = await realWorld({ config, kek });
  t.teardown(() => w.close());
  const victim = await victimWithBalance(w);
  const center = createClient(PaymentCenterService, w.centerTransport);
  // Every key in the file is wrapped: certificate, Custom_Secret master, X25519, vendor secrets.
  const db = new Database(join(w.dir, "center.sqlite"), { readonly: true });
  const stored = [...(db.prepare(`SELECT key FROM keys`).all() as { key: Buffer }[]).map((r) => r.key), ...(db.prepare(`SELECT secret FROM vendor_keys`).all() as { secret: Buffer }[]).map((r) => r.secret)];
  db.close();
  t.true(stored.length >= 4);
  for (const k of stored) t.true(isWrapped(new Uint8Array(k)), "no key is stored in the clear");
  const attack = await attackFromDatabaseFile(join(w.dir, "center.sqlite"), center, "attacker-iban");
  const e = await t.throwsAsync(attack.reply, { instanceOf: ConnectError });
  t.log(`attack answered: ${e!.message}`);
  t.deepEqual(await w.ledger.listPayouts(10), [], "no payout was made");
  // The victim's scrip is still live and still theirs.
  t.is((await w.ledger.liveScrip(victim.customId.serialNumber, "KRW"))?.serial, victim.scrip.scrip!.scripId!.serialNumber);
  const after = await victim.earn("survey-1", "yes");
  t.true(after.scrip!.value > 0n);
});

function run(args: string[], env: Record<string, string> = {}) {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: "utf8", env: { ...process.env, SCRIPWIRE_LOG: "silent", SCRIPWIRE_ADMIN_TOKEN: TOKEN, ...env }, timeout: 60_000 });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

function tmp(t: { teardown(f: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), "scripwire-keys-"));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

const mode = (p: string) => statSync(p).mode & 0o777;

test("center init under umask 022: data directory 0700, ledger files 0600, KEK generated beside it with a message, keys wrapped", (t) => {
  const dir = tmp(t);
  const dataDir = join(dir, "data");
  const r = spawnSync("sh", ["-c", `umask 022 && exec "${process.execPath}" "${BIN}" center init --data-dir "${dataDir}"`], { encoding: "utf8", env: { ...process.env, SCRIPWIRE_LOG: "silent" } });
  t.is(r.status, 0, r.stderr);
  t.regex(r.stderr, /generated a key-encryption key in .*data\.kek/);
  t.is(mode(dataDir), 0o700);
  for (const f of ["center.sqlite", "center.sqlite-wal", "center.sqlite-shm"]) if (existsSync(join(dataDir, f))) t.is(mode(join(dataDir, f)), 0o600, f);
  t.is(mode(join(dir, "data.kek")), 0o600);
  const db = new Database(join(dataDir, "center.sqlite"), { readonly: true });
  const keys = db.prepare(`SELECT key FROM keys`).all() as { key: Buffer }[];
  db.close();
  t.true(keys.length >= 3);
  for (const k of keys) t.true(isWrapped(new Uint8Array(k.key)));
});

test("a ledger or KEK readable by others is refused with the fix in the message", (t) => {
  const dir = tmp(t);
  const dataDir = join(dir, "data");
  t.is(run(["center", "init", "--data-dir", dataDir]).code, 0);
  chmodSync(join(dataDir, "center.sqlite"), 0o644);
  const r = run(["center", "serve", "--port", "0", "--data-dir", dataDir]);
  t.is(r.code, 1);
  t.regex(r.err, /readable by other users.*Fix: chmod 600 .*center\.sqlite/);
  chmodSync(join(dataDir, "center.sqlite"), 0o600);
  chmodSync(dataDir, 0o755);
  const d = run(["center", "serve", "--port", "0", "--data-dir", dataDir]);
  t.is(d.code, 1);
  t.regex(d.err, /Fix: chmod 700 .*data/);
  chmodSync(dataDir, 0o700);
  chmodSync(join(dir, "data.kek"), 0o640);
  const k = run(["center", "serve", "--port", "0", "--data-dir", dataDir]);
  t.is(k.code, 1);
  t.regex(k.err, /key-encryption key file .* readable by other users/);
});

test("a wrapped ledger without its KEK is refused, never given a new KEK", (t) => {
  const dir = tmp(t);
  const dataDir = join(dir, "data");
  t.is(run(["center", "init", "--data-dir", dataDir]).code, 0);
  rmSync(join(dir, "data.kek"));
  const r = run(["center", "serve", "--port", "0", "--data-dir", dataDir]);
  t.is(r.code, 1);
  t.regex(r.err, /key-encryption key file .* does not exist/);
  t.false(existsSync(join(dir, "data.kek")), "no new KEK was made");
});

test("a ledger from before key wrapping: the first start wraps its keys (and makes the KEK)", async (t) => {
  const dir = tmp(t);
  const dataDir = join(dir, "data");
  // The old code path: a ledger and its keys written with no KEK at all.
  const w = await realWorld();
  const old = join(dataDir, "center.sqlite");
  await w.close();
  const ledger = openSqliteLedger(old);
  await ledger.migrate();
  await ledger.addKey({ kind: "certificate", secretId: 1, key: new Uint8Array(randomBytes(32)), createdAt: 1 });
  await ledger.addKey({ kind: "custom", secretId: 1, key: new Uint8Array(randomBytes(32)), createdAt: 1 });
  await ledger.addKey({ kind: "center-x25519", secretId: 1, key: new Uint8Array(randomBytes(32)), createdAt: 1 });
  await ledger.createVendor({ vendorId: "v1", dnsName: "d", ipAddr: "", serverName: "s", port: 0 }, { vendorId: "v1", keyId: 1, secret: new Uint8Array(randomBytes(32)) });
  const before = (await ledger.listKeys()).map((k) => `${k.kind}/${k.secretId}/${Buffer.from(k.key).toString("hex")}`);
  await ledger.close();
  const center = await serve(dataDir);
  t.teardown(() => center.stop());
  t.regex(center.stderr(), /generated a key-encryption key/);
  const db = new Database(old, { readonly: true });
  for (const r of db.prepare(`SELECT key FROM keys UNION ALL SELECT secret FROM vendor_keys`).all() as { key: Buffer }[]) t.true(isWrapped(new Uint8Array(r.key)));
  db.close();
  // Same keys underneath: the KEK from the file unwraps them to what they were.
  const kekHex = readFileSync(join(dir, "data.kek"), "utf8").split("\n").find((l) => /^[0-9a-f]{64}/.test(l))!.slice(0, 64);
  const reopened = openSqliteLedger(old);
  await reopened.protectKeys(new KeyEncryptionKeys([new Uint8Array(Buffer.from(kekHex, "hex"))]));
  // (The start may add key families of its own, e.g. the checkpoint key; the old ones are unchanged.)
  const after = new Set((await reopened.listKeys()).map((k) => `${k.kind}/${k.secretId}/${Buffer.from(k.key).toString("hex")}`));
  for (const k of before) t.true(after.has(k), k);
  await reopened.close();
});

async function serve(dataDir: string, extra: string[] = []) {
  const child = spawn(process.execPath, [BIN, "center", "serve", "--port", "0", "--data-dir", dataDir, "--json", ...extra], {
    env: { ...process.env, SCRIPWIRE_LOG: "silent", SCRIPWIRE_ADMIN_TOKEN: TOKEN },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let err = "";
  child.stderr!.on("data", (d) => (err += d));
  const line = await new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stdout! }).once("line", resolve);
    child.once("exit", (c) => reject(new Error(`center exited ${c}: ${err}`)));
  });
  const { url } = JSON.parse(line) as { url: string };
  return {
    url,
    stderr: () => err,
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once("exit", () => resolve());
        child.kill("SIGTERM");
      }),
  };
}

test("KEK rotation while the center runs: every key re-wrapped, the running center keeps serving, old vendor secrets keep working", async (t) => {
  const dir = tmp(t);
  const dataDir = join(dir, "data");
  t.is(run(["center", "init", "--data-dir", dataDir]).code, 0);
  const center = await serve(dataDir);
  t.teardown(() => center.stop());
  const admin = createClient(CenterAdminService, createTransport(center.url, { headers: { authorization: `Bearer ${TOKEN}` } }));
  await admin.createVendor({ vendorId: "mall-r", vendor: { dnsName: "localhost", serverName: "R" } });
  const kekBefore = readFileSync(join(dir, "data.kek"), "utf8");
  const rot = run(["center", "rotate-kek", "--data-dir", dataDir, "--json"]);
  t.is(rot.code, 0, rot.err);
  const report = JSON.parse(rot.out) as { rewrapped: number; current: string; previous: string[] };
  t.true(report.rewrapped >= 4, `re-wrapped ${report.rewrapped}`);
  t.is(report.previous.length, 1);
  t.not(readFileSync(join(dir, "data.kek"), "utf8"), kekBefore);
  // The running center meets keys wrapped by a KEK it did not start with: it
  // re-reads its file and goes on. A vendor rotation reads the vendor's keys.
  const rotated = await admin.rotateVendorSecret({ vendorId: "mall-r" });
  t.is(rotated.vendorKeyId, 2);
  const info = await createClient(PaymentCenterService, createTransport(center.url)).getCenterInfo({});
  t.is(info.publicKey.length, 32);
  // Once every replica uses the new file, the old KEK can go; the ledger no longer needs it.
  const retire = run(["center", "rotate-kek", "--data-dir", dataDir, "--retire-old", "--json"]);
  t.is(retire.code, 0, retire.err);
  const lines = readFileSync(join(dir, "data.kek"), "utf8").split("\n").filter((l) => /^[0-9a-f]{64}/.test(l));
  t.is(lines.length, 1);
  await center.stop();
  const again = await serve(dataDir);
  t.teardown(() => again.stop());
  const admin2 = createClient(CenterAdminService, createTransport(again.url, { headers: { authorization: `Bearer ${TOKEN}` } }));
  t.is((await admin2.rotateVendorSecret({ vendorId: "mall-r" })).vendorKeyId, 3, "restarted on the rotated KEK alone, every key readable");
});

test("replicas share the KEK by configuration: --kek-env", async (t) => {
  const dir = tmp(t);
  const dataDir = join(dir, "data");
  const kek = randomBytes(32).toString("hex");
  const init = run(["center", "init", "--data-dir", dataDir, "--kek-env", "MY_KEK"], { MY_KEK: kek });
  t.is(init.code, 0, init.err);
  t.false(existsSync(join(dir, "data.kek")), "no file when the KEK comes from the environment");
  const wrong = run(["center", "serve", "--port", "0", "--data-dir", dataDir, "--kek-env", "MY_KEK"], { MY_KEK: randomBytes(32).toString("hex") });
  t.is(wrong.code, 1);
  t.regex(wrong.err, /wrapped by key-encryption key [0-9a-f]{16}, which this center does not have/);
  void ADMIN_TOKEN;
});
