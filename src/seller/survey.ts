/**
 * What a seller keeps of SURVEY answers, as an interface the seller's
 * protocol logic (seller.ts) uses without any storage engine: the SQLite store
 * beside a running seller is survey-store.ts; an embedder or a test that keeps
 * answers only in memory gets {@link MemorySurveyStore}, with the same rules
 * (one answer per customer and item, at most SURVEY_ANSWERS_PER_CUSTOMER_MAX
 * items per customer).
 */
/** Answers kept per customer id: a catalog with more survey items than this keeps the first this many per customer. */
export const SURVEY_ANSWERS_PER_CUSTOMER_MAX = 64;

export interface SurveyAnswer {
  campaignId: string;
  itemId: string;
  customerSerial: bigint;
  answer: string;
  at: number;
}

export interface SurveyStore {
  /** Keeps the answer; false when the customer is at {@link SURVEY_ANSWERS_PER_CUSTOMER_MAX} other items. */
  record(a: SurveyAnswer): boolean;
  list(limit?: number): SurveyAnswer[];
  count(): number;
  close(): void;
}

/** The same rules in memory: no storage engine, nothing kept across restarts. */
export class MemorySurveyStore implements SurveyStore {
  private readonly answers = new Map<string, SurveyAnswer>();
  private readonly perCustomer = new Map<bigint, number>();

  record(a: SurveyAnswer): boolean {
    const key = `${a.customerSerial}/${a.itemId}`;
    const had = this.answers.has(key);
    const n = this.perCustomer.get(a.customerSerial) ?? 0;
    if (!had && n >= SURVEY_ANSWERS_PER_CUSTOMER_MAX) return false;
    // Re-inserted so that list() keeps the order of the latest answers.
    this.answers.delete(key);
    this.answers.set(key, { ...a });
    if (!had) this.perCustomer.set(a.customerSerial, n + 1);
    return true;
  }

  list(limit = 1000): SurveyAnswer[] {
    return [...this.answers.values()].sort((x, y) => x.at - y.at || (x.customerSerial < y.customerSerial ? -1 : x.customerSerial > y.customerSerial ? 1 : x.itemId.localeCompare(y.itemId))).slice(0, limit);
  }

  count(): number {
    return this.answers.size;
  }

  close(): void {}
}
