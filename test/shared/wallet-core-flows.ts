/**
 * One walk through the wallet core's flows, written once and run on both
 * platforms: in Node (wallet-core-flows.test.ts: connect-node, a
 * MemoryWalletStore) and in headless Chromium (browser-core.test.ts: the
 * esbuild bundle, connect-web, IndexedDB). Platform-neutral: it sees only
 * WalletCore, a store factory and plain data, and reports every check as
 * [what, passed] so each side asserts them with its own test runner.
 *
 * Against test/helpers/world.ts: register, earn three rewards (80), buy an
 * article (VIEW, 30), renew, reopen (the journal replays), a purchase
 * interrupted right after S4 was answered and finished by the next open,
 * and a redemption below the threshold refused with nothing changed.
 */
import type { WalletCore, WalletCoreOptions } from "../../src/wallet/core.js";
import { RefusedError } from "../../src/wallet/errors.js";
import type { WalletStore } from "../../src/wallet/state.js";

export interface FlowsEnv {
  centerUrl: string;
  sellerUrl: string;
  quiz: { itemId: string; answer: string };
  survey: string;
  ad: string;
  article: string;
  viewOnly: string;
}

/** The walk's inputs from a test world (test/helpers/world.ts). */
export function flowsEnv(w: { centerUrl: string; sellerUrl: string; quiz: { itemId: string; answer: string }; survey: { itemId: string }; ad: { itemId: string }; catalog: { article: { requestUrl: string }; viewOnly: { requestUrl: string } } }): FlowsEnv {
  return { centerUrl: w.centerUrl, sellerUrl: w.sellerUrl, quiz: w.quiz, survey: w.survey.itemId, ad: w.ad.itemId, article: w.catalog.article.requestUrl, viewOnly: w.catalog.viewOnly.requestUrl };
}

export type Opener = (opts: Pick<WalletCoreOptions, "onStep" | "store">) => Promise<WalletCore>;

class Interrupted extends Error {}

export async function walletCoreFlows(open: Opener, newStore: () => WalletStore, env: FlowsEnv): Promise<[string, boolean][]> {
  const checks: [string, boolean][] = [];
  const check = (what: string, ok: boolean) => void checks.push([what, ok]);
  const store = newStore();

  let w = await open({ store });
  check("a new wallet is not registered", !w.registered);
  const reg = await w.register(env.centerUrl, { name: "Flows" });
  check("R2: a zero balance", w.balance().value === 0n && reg.currency === "KRW");
  const q = await w.earn(env.sellerUrl, env.quiz.itemId, env.quiz.answer);
  check("M1-M7: the quiz pays 50", q.amount === 50n && q.balance === 50n);
  await w.earn(env.sellerUrl, env.survey, "flows");
  const ad = await w.earn(env.sellerUrl, env.ad, "");
  check("survey and ad: balance 80", ad.balance === 80n);
  const bought = await w.buy(env.sellerUrl, env.article, "VIEW");
  check("S1-S7: the article costs 30 and is delivered", bought.price === 30n && bought.balance === 50n && new TextDecoder().decode(bought.delivery?.content).includes("Hash cash"));
  const serial = w.balance().serial;
  const renewed = await w.renew();
  check("renew: same value, new serial", renewed.value === 50n && renewed.serial !== serial);
  await w.close();

  w = await open({ store });
  check("reopened: the balance and history were kept", w.balance().value === 50n && w.history().length === 6);
  await w.close();

  // A purchase whose S5 never reached the wallet: the next open retransmits S4 with pCount + 1.
  w = await open({
    store,
    onStep: (s) => {
      if (s === "after-S4-sent") throw new Interrupted(s);
    },
  });
  const died = await w.buy(env.sellerUrl, env.viewOnly, "VIEW").then(
    () => false,
    (e) => e instanceof Interrupted,
  );
  check("interrupted right after S4", died && w.pending?.step === "S4");
  await w.close();
  w = await open({ store });
  check("the next open finished the purchase", w.recovery?.outcome === "completed" && w.balance().value === 40n && w.pending === null);
  check("the history says it was recovered", w.history().at(-1)?.recovered === true && w.receipts().length === 2);

  const refused = await w.redeem(0n, "KB 1").then(
    () => undefined,
    (e) => e,
  );
  check("redeeming 40 below the threshold of 50 is refused", refused instanceof RefusedError && refused.reason === "BELOW_THRESHOLD");
  check("the refusal changed nothing", w.balance().value === 40n && w.pending === null);
  await w.close();
  return checks;
}
