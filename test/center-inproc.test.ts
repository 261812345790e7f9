/**
 * The protocol scenarios in process (no sockets), plus the cases that need
 * a fault injected into the ledger. The same scenarios run over real HTTP/2
 * in center-e2e.test.ts.
 */
import test from "ava";
import { CmdType } from "../gen/scripwire/v1/types_pb.js";
import { inprocWorld, QUIZ } from "./helpers/inproc.js";
import { RawCustomer } from "./helpers/raw.js";
import { registerScenarios } from "./helpers/scenarios.js";

registerScenarios(test, inprocWorld, "in-process");

test("a ledger failure during M4 answers GM5_4 and the retransmission succeeds", async (t) => {
  const w = await inprocWorld();
  t.teardown(() => w.close());
  const c = new RawCustomer(w.centerTransport, w.sellerTransport);
  await c.register();
  const m2 = await c.m1(QUIZ.itemId, QUIZ.answer);
  await c.m3(m2.permit!);
  const real = w.ledger.executeIssue.bind(w.ledger);
  let failures = 1;
  w.ledger.executeIssue = async (op) => {
    if (failures-- > 0) throw new Error("disk on fire");
    return real(op);
  };
  const m5 = await c.m4(m2.permit!.tranId);
  t.is(m5.header?.cmdType, CmdType.GM5_4);
  t.is(m5.pCount, 1);
  t.notRegex(m5.header!.errorMessage, /disk on fire/, "internal details stay inside");
  const retry = await c.m4(m2.permit!.tranId, { pCount: m5.pCount });
  t.is(retry.header?.cmdType, CmdType.GM5_1);
  t.true((await w.ledger.audit()).ok);
});
