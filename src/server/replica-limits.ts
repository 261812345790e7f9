/**
 * Rate limits across replicas. Buckets live in each center process (a
 * database round trip per call to share them would cost more than the calls
 * they limit), so N replicas behind a load balancer would allow N times the
 * rate. Instead the configured rate is the WHOLE deployment's and each
 * replica enforces its share:
 *
 *   per replica: rate = R / N per second, burst = floor(B / N) (at least 1)
 *   deployment:  at most N x R/N = R per second, and N x floor(B/N) <= B at once
 *
 * whatever replica each call lands on. A customer whose calls all land on one
 * replica gets 1/N of the rate: the price of not sharing state, and why N
 * should be the number of replicas actually serving (`--replicas`).
 */
import type { BucketOptions } from "./limits.js";

export function shareOfDeployment(total: BucketOptions | false, replicas: number): BucketOptions | false {
  if (!Number.isInteger(replicas) || replicas < 1) throw new RangeError(`"replicas" expected a positive integer, got ${replicas}`);
  if (total === false) return false;
  return { ratePerSecond: total.ratePerSecond / replicas, burst: Math.max(1, Math.floor(total.burst / replicas)) };
}
