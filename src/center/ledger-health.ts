/**
 * grpc.health.v1 that means something: a center whose ledger is unreachable
 * cannot move value, so it says NOT_SERVING (load balancers take it out of
 * rotation) and SERVING again once the database answers. The database is
 * asked a trivial query every `intervalMs`; the pool (pg) reconnects by
 * itself, so recovery needs nothing but the next successful probe.
 */
import type { Ledger } from "../ledger/ledger.js";
import { OVERALL_SERVICE, ServingStatus, type HealthRegistry } from "../server/health.js";

export const LEDGER_HEALTH_INTERVAL_MS = 2_000;

export interface LedgerHealth {
  /** The last probe's verdict. */
  readonly healthy: boolean;
  /** Probe now (tests, and after a request saw the ledger fail). */
  probe(): Promise<boolean>;
  stop(): void;
}

export function watchLedgerHealth(
  ledger: Ledger,
  health: HealthRegistry,
  services: readonly string[],
  opts: { intervalMs?: number; onChange?: (healthy: boolean, error?: unknown) => void } = {},
): LedgerHealth {
  let healthy = true;
  let stopped = false;
  let inFlight: Promise<boolean> | undefined;
  const names = [OVERALL_SERVICE, ...services];
  const apply = (ok: boolean, error?: unknown) => {
    if (stopped || ok === healthy) return;
    healthy = ok;
    for (const n of names) health.set(n, ok ? ServingStatus.SERVING : ServingStatus.NOT_SERVING);
    opts.onChange?.(ok, error);
  };
  const probe = (): Promise<boolean> => {
    inFlight ??= ledger
      .ping()
      .then(
        () => (apply(true), true),
        (e: unknown) => (apply(false, e), false),
      )
      .finally(() => (inFlight = undefined));
    return inFlight;
  };
  const timer = setInterval(() => void probe(), opts.intervalMs ?? LEDGER_HEALTH_INTERVAL_MS);
  timer.unref();
  return {
    get healthy() {
      return healthy;
    },
    probe,
    stop() {
      // After this the stack's shutdown owns the statuses (NOT_SERVING for good).
      stopped = true;
      clearInterval(timer);
    },
  };
}
