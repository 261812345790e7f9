/**
 * Where a seller keeps SURVEY answers: a SQLite file next to the seller
 * (`<data-dir>/seller.sqlite`), not process memory.
 *
 * Before, every answer was pushed onto an array for ever, for any customer
 * id, checked or not: 18 057 answers of ~2 KB in 20 s from one address took
 * the seller from 86 to 237 MB, ~27 GB an hour at the address limit. Now:
 * - one answer per (customer, survey item): answering again replaces it;
 * - at most {@link SURVEY_ANSWERS_PER_CUSTOMER_MAX} answers per customer id
 *   (and never more than the catalog has survey items);
 * - answers are at most ANSWER_MAX characters (seller.ts);
 * - nothing is kept in memory, and a restart keeps every answer.
 * Storage therefore grows with (customers x survey items), not with requests.
 */
import Database from "better-sqlite3";
import { preparePrivateDatabaseFile } from "../ledger/private-file.js";

import { SURVEY_ANSWERS_PER_CUSTOMER_MAX, type SurveyAnswer, type SurveyStore } from "./survey.js";

export { SURVEY_ANSWERS_PER_CUSTOMER_MAX, type SurveyAnswer, type SurveyStore } from "./survey.js";

/** SQLite-backed store; `":memory:"` for tests and embedders that do not keep answers. */
export class SqliteSurveyStore implements SurveyStore {
  private readonly db: Database.Database;
  private readonly upsert: Database.Statement;
  private readonly exists: Database.Statement;
  private readonly perCustomer: Database.Statement;

  constructor(readonly path: string) {
    preparePrivateDatabaseFile(path);
    this.db = new Database(path);
    this.db.defaultSafeIntegers(true);
    if (path !== ":memory:") {
      this.db.pragma("journal_mode = WAL");
      // A process crash loses nothing (WAL); a power cut may lose the last
      // answers, which costs an advertiser a few survey rows, never money:
      // not worth an fsync per answer at the rate limit.
      this.db.pragma("synchronous = NORMAL");
    }
    this.db.exec(`CREATE TABLE IF NOT EXISTS survey_answers (
      customer_serial INTEGER NOT NULL, item_id TEXT NOT NULL, campaign_id TEXT NOT NULL,
      answer TEXT NOT NULL, at INTEGER NOT NULL, PRIMARY KEY (customer_serial, item_id))`);
    this.upsert = this.db.prepare(`INSERT INTO survey_answers (customer_serial, item_id, campaign_id, answer, at) VALUES (?, ?, ?, ?, ?)
      ON CONFLICT (customer_serial, item_id) DO UPDATE SET campaign_id = excluded.campaign_id, answer = excluded.answer, at = excluded.at`);
    this.exists = this.db.prepare(`SELECT 1 FROM survey_answers WHERE customer_serial = ? AND item_id = ?`);
    this.perCustomer = this.db.prepare(`SELECT COUNT(*) AS n FROM survey_answers WHERE customer_serial = ?`);
  }

  record(a: SurveyAnswer): boolean {
    const serial = BigInt.asIntN(64, a.customerSerial);
    return this.db.transaction(() => {
      if (!this.exists.get(serial, a.itemId) && Number((this.perCustomer.get(serial) as { n: bigint }).n) >= SURVEY_ANSWERS_PER_CUSTOMER_MAX) return false;
      this.upsert.run(serial, a.itemId, a.campaignId, a.answer, a.at);
      return true;
    })();
  }

  list(limit = 1000): SurveyAnswer[] {
    return (this.db.prepare(`SELECT * FROM survey_answers ORDER BY at, customer_serial, item_id LIMIT ?`).all(limit) as Record<string, unknown>[]).map((r) => ({
      campaignId: r.campaign_id as string,
      itemId: r.item_id as string,
      customerSerial: BigInt.asUintN(64, r.customer_serial as bigint),
      answer: r.answer as string,
      at: Number(r.at),
    }));
  }

  count(): number {
    return Number((this.db.prepare(`SELECT COUNT(*) AS n FROM survey_answers`).get() as { n: bigint }).n);
  }

  close(): void {
    this.db.close();
  }
}
