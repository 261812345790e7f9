/**
 * Prometheus metrics of one gateway, in their own registry (several gateways
 * in one process, as in tests, must not share counters). Labels are bounded:
 * route ids come from the config, outcomes and reasons from fixed lists.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";

export type RequestOutcome =
  | "paid"
  | "free"
  | "unmatched"
  | "challenged"
  | "refused"
  | "rate_limited"
  | "method_not_allowed"
  | "bad_request"
  | "denied"
  | "upstream_error"
  | "aborted";

export interface GatewayMetrics {
  registry: Registry;
  requests: Counter<"route" | "outcome">;
  refusals: Counter<"route" | "reason">;
  upstreamSeconds: Histogram<"route">;
  inFlight: Gauge;
  sessions: Counter<"route">;
}

export function createGatewayMetrics(opts: { processMetrics?: boolean } = {}): GatewayMetrics {
  const registry = new Registry();
  if (opts.processMetrics) collectDefaultMetrics({ register: registry, prefix: "scripwire_gateway_" });
  return {
    registry,
    requests: new Counter({
      name: "scripwire_gateway_requests_total",
      help: "Requests by route and outcome (paid, free, challenged = 402 without credential, refused = 402 for a bad credential, upstream_error = 502/504, ...).",
      labelNames: ["route", "outcome"],
      registers: [registry],
    }),
    refusals: new Counter({
      name: "scripwire_gateway_credential_refusals_total",
      help: "Credentials refused, by machine-readable reason (EXPIRED, BAD_MAC, WRONG_ROUTE, ...).",
      labelNames: ["route", "reason"],
      registers: [registry],
    }),
    upstreamSeconds: new Histogram({
      name: "scripwire_gateway_upstream_seconds",
      help: "Time from forwarding a request to the upstream's response headers.",
      labelNames: ["route"],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers: [registry],
    }),
    inFlight: new Gauge({ name: "scripwire_gateway_in_flight", help: "Requests being proxied right now.", registers: [registry] }),
    sessions: new Counter({
      name: "scripwire_gateway_sessions_total",
      help: "Receipts exchanged for a route cookie at /.scripwire/session.",
      labelNames: ["route"],
      registers: [registry],
    }),
  };
}
