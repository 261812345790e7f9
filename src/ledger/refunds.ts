/**
 * Refunds after confirmation and the ledger side of restore/sync, over the
 * same SqlEngine as the rest of the ledger (both engines run this code).
 *
 * How a refund moves value, and the invariant that replaces nothing:
 *
 *   refund    one transaction: vendor/<v>/<cur> -> credit/<customer>/<cur>
 *             (transfer kind "refund", ref "<vendor>/<tranId>"), a row in
 *             `refunds` (UNIQUE per TranID: at most one refund, amount <= paid)
 *             and a settlement row of kind "refund" with the NEGATIVE amount.
 *   fold      at the customer's next sync: spend the live scrip, issue one of
 *             value + pending credits, transfer credit/<c>/<cur> ->
 *             customer/<c>/<cur> (kind "credit-fold", ref "fold/<new serial>"),
 *             mark the credits folded into that serial.
 *
 * So "value of the live scrip = balance of customer/<c>/<cur>" holds at every
 * step, unchanged; the credit in between lives in its own account, and the
 * audit checks "balance of credit/<c>/<cur> = sum of that customer's pending
 * refunds" as well. What the center owes a customer = live scrip + pending
 * credit; the scrip stays the only thing that can be spent.
 */
import type { CustomerState, FoldOp, FoldResult, RefundOp, RefundRecord, RefundRefusal, RefundResult, Refusal, TransactionRecord } from "./ledger.js";
import { LedgerError } from "./ledger.js";
import { account, big, ensureAccount, insertScrip, rowToTx, settle, spendScrip, transfer, TX_COLS, TX_REPLY_COLS, u8 } from "./sql-ledger.js";
import { blob, RetryableConflict, Rollback, type Row, type SqlEngine, type SqlTx } from "./sql.js";

/** A customer's pending refund credit: an account of its own, so the customer account keeps equalling the live scrip. */
export const creditAccount = (serial: bigint, cur: string) => `credit/${serial}/${cur}`;

const REFUND_COLS =
  "refund_id, vendor_id, tran_id, request_id, customer_serial, amount, paid, currency, reason, created_at, settlement_sequence, folded_serial";

function rowToRefund(r: Row): RefundRecord {
  return {
    refundId: r.refund_id as string,
    vendorId: r.vendor_id as string,
    tranId: r.tran_id as string,
    requestId: r.request_id as string,
    customerSerial: big(r.customer_serial),
    amount: big(r.amount),
    paid: big(r.paid),
    currency: r.currency as string,
    reason: r.reason as string,
    createdAt: big(r.created_at),
    settlementSequence: big(r.settlement_sequence),
    foldedSerial: big(r.folded_serial),
  };
}

function refuse(refusal: RefundRefusal | Refusal | "IN_FLIGHT", detail: string): never {
  throw new Rollback(refusal, detail);
}

export async function refund(engine: string, db: SqlEngine, op: RefundOp): Promise<RefundResult> {
  if (op.amount < 0n) throw new LedgerError("BAD_AMOUNT", "refund amount must not be negative (0 refunds everything)");
  const r = await settle(
    db.tx<RefundResult>(async (q) => {
      const tx = await q.get(`SELECT kind, state, customer_serial, amount, currency FROM transactions WHERE vendor_id = ? AND tran_id = ?`, [
        op.vendorId,
        op.tranId,
      ]);
      if (!tx) refuse("UNKNOWN_TRANSACTION", `vendor ${op.vendorId} has no TranID ${op.tranId}`);
      if (tx.kind !== "pay") refuse("NOT_A_PAYMENT", `TranID ${op.tranId} is an issuance, not a payment`);
      if (tx.state !== "confirmed") refuse("NOT_CONFIRMED", `TranID ${op.tranId} is ${tx.state as string}; only confirmed payments are refunded (an unconfirmed one is cancelled by the wallet)`);
      const paid = big(tx.amount);
      const amount = op.amount === 0n ? paid : op.amount;
      const currency = tx.currency as string;
      const customer = big(tx.customer_serial);
      // A refund that exists decides first, so a retransmission (same
      // request id) is recognised whatever else changed since.
      const prior = await q.get(`SELECT ${REFUND_COLS} FROM refunds WHERE vendor_id = ? AND tran_id = ?`, [op.vendorId, op.tranId]);
      if (prior) {
        const p = rowToRefund(prior);
        if (p.requestId === op.requestId) return { status: "replayed", refund: p };
        refuse("ALREADY_REFUNDED", `TranID ${op.tranId} was already refunded (${p.amount} ${p.currency}, refund ${p.refundId}); a payment is refunded at most once`);
      }
      if (amount > paid) refuse("REFUND_EXCEEDS_PAYMENT", `the payment was ${paid} ${currency}; cannot refund ${amount}`);
      // The UNIQUE (vendor_id, tran_id) row is where two concurrent refunds
      // meet: on PostgreSQL the second waits here for the first to commit,
      // inserts nothing, and is run again, when it finds the first above.
      const inserted = await q.run(
        `INSERT INTO refunds (refund_id, vendor_id, tran_id, request_id, customer_serial, amount, paid, currency, reason, created_at, settlement_sequence, folded_serial)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, 0) ON CONFLICT (vendor_id, tran_id) DO NOTHING`,
        [op.refundId, op.vendorId, op.tranId, op.requestId, customer, amount, paid, currency, op.reason, op.now],
      );
      if (inserted !== 1) throw new RetryableConflict(`TranID ${op.tranId} was refunded concurrently`);
      await ensureAccount(q, creditAccount(customer, currency), "credit", currency);
      await transfer(
        q,
        "refund",
        `${op.vendorId}/${op.tranId}`,
        account.vendor(op.vendorId, currency),
        creditAccount(customer, currency),
        amount,
        currency,
        op.now,
        "VENDOR_BALANCE_LOW" as Refusal,
      );
      // Same ordering rule as a confirmation's settlement (see SqlLedger.confirm).
      if (engine === "postgres") await q.get(`SELECT pg_advisory_xact_lock(hashtextextended(?, 0))`, [`scripwire/settlements/${op.vendorId}`]);
      const s = await q.get(
        `INSERT INTO settlements (kind, vendor_id, tran_id, amount, currency, item, settled_at) VALUES ('refund', ?, ?, ?, ?, ?, ?) RETURNING sequence`,
        [op.vendorId, op.tranId, -amount, currency, op.reason, op.now],
      );
      const sequence = big(s!.sequence);
      await q.run(`UPDATE refunds SET settlement_sequence = ? WHERE refund_id = ?`, [sequence, op.refundId]);
      return {
        status: "done",
        refund: {
          refundId: op.refundId,
          vendorId: op.vendorId,
          tranId: op.tranId,
          requestId: op.requestId,
          customerSerial: customer,
          amount,
          paid,
          currency,
          reason: op.reason,
          createdAt: op.now,
          settlementSequence: sequence,
          foldedSerial: 0n,
        },
      };
    }),
  );
  return r as RefundResult;
}

export function customerState(db: SqlEngine, customerSerial: bigint): Promise<CustomerState | undefined> {
  return db.read(async (q) => {
    const c = await q.get(`SELECT secret_id FROM customers WHERE customer_serial = ?`, [customerSerial]);
    if (!c) return undefined;
    const live = (
      await q.all(`SELECT serial, currency, value, expires_at FROM scrips WHERE customer_serial = ? AND state = 'live' ORDER BY currency`, [customerSerial])
    ).map((r) => ({ serial: big(r.serial), customerSerial, currency: r.currency as string, value: big(r.value), expiresAt: big(r.expires_at) }));
    const inFlight: TransactionRecord[] = (
      await q.all(
        `SELECT ${TX_COLS}, ${TX_REPLY_COLS} FROM transactions WHERE customer_serial = ? AND state IN ('initiated', 'executed')
         ORDER BY updated_at DESC, tran_id LIMIT 100`,
        [customerSerial],
      )
    ).map(rowToTx);
    const pending = await q.all(`SELECT ${REFUND_COLS} FROM refunds WHERE customer_serial = ? AND folded_serial = 0 ORDER BY created_at, refund_id`, [customerSerial]);
    const folded = await q.all(
      `SELECT ${REFUND_COLS} FROM refunds WHERE customer_serial = ? AND folded_serial <> 0 ORDER BY folded_at DESC, refund_id LIMIT 20`,
      [customerSerial],
    );
    return { secretId: Number(c.secret_id), live, inFlight, credits: [...pending, ...folded].map(rowToRefund) };
  });
}

export function claimSyncNonce(db: SqlEngine, customerSerial: bigint, nonce: Uint8Array, now: bigint, forgetBefore: bigint): Promise<boolean> {
  return db.tx(async (q) => {
    await q.run(`DELETE FROM sync_nonces WHERE customer_serial = ? AND created_at < ?`, [customerSerial, forgetBefore]);
    const n = await q.run(`INSERT INTO sync_nonces (customer_serial, nonce, created_at) VALUES (?, ?, ?) ON CONFLICT (customer_serial, nonce) DO NOTHING`, [
      customerSerial,
      blob(nonce),
      now,
    ]);
    return n === 1;
  });
}

export async function foldCredits(db: SqlEngine, op: FoldOp): Promise<FoldResult> {
  if (op.refundIds.length === 0 || op.total <= 0n) throw new LedgerError("BAD_AMOUNT", "nothing to fold");
  if (op.out.value !== op.inValue + op.total) throw new LedgerError("BAD_AMOUNT", "the folded scrip must carry the old value plus the credits");
  if (op.out.customerSerial !== op.customerSerial || op.out.currency !== op.currency) throw new LedgerError("BAD_SCRIP", "the folded scrip must be the customer's, in the credits' currency");
  const r = await settle(
    db.tx<FoldResult>(async (q) => {
      // An executed payment or issuance still needs its issued scrip live to
      // be undone (PM6_3 / GM6_3): leave the credit pending until it is settled.
      const busy = await q.get(`SELECT tran_id FROM transactions WHERE customer_serial = ? AND currency = ? AND state = 'executed' LIMIT 1`, [
        op.customerSerial,
        op.currency,
      ]);
      if (busy) refuse("IN_FLIGHT", `TranID ${busy.tran_id as string} is executed but not confirmed; the credit stays pending until it is`);
      await spendScrip(q, op.inSerial, op.customerSerial, op.inValue, op.now);
      const marks = op.refundIds.map(() => "?").join(", ");
      const sum = await q.get(
        `SELECT COUNT(*) AS n, COALESCE(SUM(amount), 0) AS total FROM refunds WHERE refund_id IN (${marks}) AND customer_serial = ? AND currency = ? AND folded_serial = 0`,
        [...op.refundIds, op.customerSerial, op.currency],
      );
      if (Number(sum!.n) !== op.refundIds.length || big(sum!.total) !== op.total) refuse("STATE_CHANGED", "the pending credits changed; read them again");
      await q.run(`UPDATE refunds SET folded_serial = ?, folded_at = ? WHERE refund_id IN (${marks}) AND folded_serial = 0`, [op.out.serial, op.now, ...op.refundIds]);
      await insertScrip(q, op.out, op.now);
      await transfer(q, "credit-fold", `fold/${op.out.serial}`, creditAccount(op.customerSerial, op.currency), account.customer(op.customerSerial, op.currency), op.total, op.currency, op.now);
      return { status: "done" };
    }),
  );
  return r as FoldResult;
}

/** Refund and credit checks for the audit; runs inside the audit's read transaction. */
export async function auditRefunds(q: SqlTx): Promise<string[]> {
  const problems: string[] = [];
  const credit = await q.all(
    `SELECT a.account_id, a.balance,
       COALESCE((SELECT SUM(r.amount) FROM refunds r WHERE 'credit/' || CAST(r.customer_serial AS TEXT) || '/' || r.currency = a.account_id AND r.folded_serial = 0), 0) AS pending
     FROM accounts a WHERE a.kind = 'credit'`,
  );
  for (const c of credit) {
    if (big(c.balance) !== big(c.pending)) problems.push(`account ${c.account_id}: balance ${c.balance} but pending refunds sum to ${c.pending}`);
  }
  const orphan = await q.all(
    `SELECT r.refund_id FROM refunds r LEFT JOIN accounts a ON a.account_id = 'credit/' || CAST(r.customer_serial AS TEXT) || '/' || r.currency
     WHERE r.folded_serial = 0 AND a.account_id IS NULL LIMIT 10`,
  );
  for (const o of orphan) problems.push(`refund ${o.refund_id} is pending but its credit account is missing`);
  const bad = await q.all(
    `SELECT r.refund_id, r.amount, r.paid, t.amount AS tx_amount, t.state, t.kind, t.customer_serial AS tx_customer, r.customer_serial
     FROM refunds r LEFT JOIN transactions t ON t.vendor_id = r.vendor_id AND t.tran_id = r.tran_id
     WHERE t.tran_id IS NULL OR t.kind <> 'pay' OR t.state <> 'confirmed' OR r.amount > t.amount OR r.paid <> t.amount OR r.amount <= 0
        OR t.customer_serial <> r.customer_serial LIMIT 10`,
  );
  for (const b of bad) problems.push(`refund ${b.refund_id} does not fit its payment (refunded ${b.amount}, paid ${b.tx_amount ?? "?"}, ${b.kind ?? "no"} ${b.state ?? "transaction"})`);
  const unsettled = await q.all(
    `SELECT r.refund_id FROM refunds r LEFT JOIN settlements s ON s.sequence = r.settlement_sequence
     WHERE s.sequence IS NULL OR s.kind <> 'refund' OR s.amount <> -r.amount OR s.vendor_id <> r.vendor_id OR s.tran_id <> r.tran_id LIMIT 10`,
  );
  for (const u of unsettled) problems.push(`refund ${u.refund_id} has no matching negative settlement entry`);
  const journal = await q.all(
    `SELECT r.refund_id FROM refunds r WHERE NOT EXISTS (
       SELECT 1 FROM transfers t WHERE t.kind = 'refund' AND t.ref = r.vendor_id || '/' || r.tran_id AND t.amount = r.amount)
     LIMIT 10`,
  );
  for (const j of journal) problems.push(`refund ${j.refund_id} has no refund transfer in the journal`);
  const folded = await q.all(
    `SELECT r.refund_id, r.folded_serial FROM refunds r LEFT JOIN scrips s ON s.serial = r.folded_serial
     WHERE r.folded_serial <> 0 AND (s.serial IS NULL OR s.customer_serial <> r.customer_serial OR s.currency <> r.currency) LIMIT 10`,
  );
  for (const f of folded) problems.push(`refund ${f.refund_id} says it was folded into scrip ${f.folded_serial}, which is not the customer's`);
  return problems;
}

export { u8 };
