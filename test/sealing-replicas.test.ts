/**
 * Several replicas sealing one PostgreSQL database at once: each round is
 * elected by an advisory lock, so exactly one sealer extends the chain at a
 * time, no event is sealed twice or skipped, and the writers never wait for
 * the sealers. (SQLite has one writer; the same test runs there as a
 * baseline.) Writes race from two ledgers while two sealing loops run.
 */
import test from "ava";
import { ed25519 } from "@noble/curves/ed25519.js";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Ledger } from "../src/ledger/ledger.js";
import { openPostgresLedger } from "../src/ledger/postgres.js";
import { openSqliteLedger } from "../src/ledger/sqlite.js";
import { freshPgDatabase, pgTestUrl, PG_SKIP_REASON } from "./helpers/pg.js";

const WRITES_PER_REPLICA = 60;

async function race(t: import("ava").ExecutionContext, a: Ledger, b: Ledger): Promise<void> {
  await a.migrate();
  await b.migrate();
  await a.createVendor({ vendorId: "v", dnsName: "d", ipAddr: "", serverName: "s", port: 1 }, { vendorId: "v", keyId: 1, secret: new Uint8Array(32) });
  for (const id of ["c1", "c2"]) await a.createCampaign({ campaignId: id, vendorId: "v", currency: "KRW", cap: 1_000_000n });
  const key = ed25519.utils.randomSecretKey();
  let stop = false;
  const elected = { a: 0, b: 0, sealed: 0 };
  const sealer = async (l: Ledger, who: "a" | "b") => {
    while (!stop) {
      const r = await l.seal({ now: Date.now, signer: { keyId: 1, secretKey: key, everyMs: 0 } });
      if (r.elected && r.sealed > 0) elected[who]++;
      elected.sealed += r.sealed;
      await new Promise((res) => setTimeout(res, 1));
    }
  };
  const sealers = [sealer(a, "a"), sealer(b, "b")];
  const writer = async (l: Ledger, tag: string) => {
    for (let i = 0; i < WRITES_PER_REPLICA; i++) await l.fundCampaign(i % 2 ? "c1" : "c2", 1n, `${tag}-${i}`, BigInt(i));
  };
  await Promise.all([writer(a, "a"), writer(b, "b")]);
  stop = true;
  await Promise.all(sealers);
  const last = await a.seal({ now: Date.now, signer: { keyId: 1, secretKey: key, everyMs: 0, force: true } });
  const audit = await a.audit({ checkpoint: last.checkpoint ?? (await a.latestCheckpoint()), requireSealed: true });
  t.deepEqual(audit.problems, []);
  t.is(audit.eventsPending, 0);
  t.is(audit.eventsSealed, elected.sealed + last.sealed, "every event sealed exactly once");
  const head = await a.chainHead();
  t.is(head.size, BigInt(audit.eventsSealed!));
  t.log(`sealed ${audit.eventsSealed} events; rounds that sealed something: replica a ${elected.a}, replica b ${elected.b}`);
}

test("two ledgers on one SQLite file: writes and sealing race, the chain stays whole", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "scripwire-seal-"));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const a = openSqliteLedger(join(dir, "l.sqlite"));
  const b = openSqliteLedger(join(dir, "l.sqlite"));
  try {
    await race(t, a, b);
  } finally {
    await a.close();
    await b.close();
  }
});

const url = pgTestUrl();
if (!url) {
  console.log(`sealing-replicas.test.ts: ${PG_SKIP_REASON}`);
  test.skip(`two replicas sealing one PostgreSQL database [${PG_SKIP_REASON}]`, () => {});
} else {
  test("two replicas sealing one PostgreSQL database: one elected sealer per round, every event sealed once", async (t) => {
    const db = await freshPgDatabase(url);
    const a = openPostgresLedger(db.url);
    const b = openPostgresLedger(db.url);
    try {
      await race(t, a, b);
    } finally {
      await a.close();
      await b.close();
      await db.drop();
    }
  });
}
