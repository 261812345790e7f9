/**
 * The standard gRPC health service (`grpc.health.v1.Health`), so load
 * balancers, Kubernetes gRPC probes and `grpc_health_probe` can ask a
 * Scripwire server whether it is serving.
 *
 * Status is kept per service name; the empty name "" is the whole server.
 * The server stack flips everything to NOT_SERVING when shutdown begins, so
 * balancers drain traffic before connections close.
 */
import { create } from "@bufbuild/protobuf";
import type { DescService } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import type { ConnectRouter, HandlerContext } from "@connectrpc/connect";
import {
  Health,
  HealthCheckResponse_ServingStatus as ServingStatus,
  HealthCheckResponseSchema,
} from "../../gen/grpc/health/v1/health_pb.js";
import type { HealthCheckRequest, HealthCheckResponse } from "../../gen/grpc/health/v1/health_pb.js";

export { ServingStatus };

/** Name under which the status of the server as a whole is kept. */
export const OVERALL_SERVICE = "";

/** Upper bound on concurrent Watch streams, so probes cannot pin memory. */
export const HEALTH_WATCHERS_MAX = 1024;

/** Settable per-service health, shared by the Check and Watch handlers. */
export interface HealthRegistry {
  /** Current status of `service` ("" = whole server), or undefined if unknown. */
  get(service: string): ServingStatus | undefined;
  /** Set the status of one service ("" = whole server) and notify watchers. */
  set(service: string, status: ServingStatus): void;
  /** Set every known service (and the server) to NOT_SERVING; used by shutdown. */
  shutdown(): void;
  /** Set every known service (and the server) back to SERVING. */
  resume(): void;
  /** Register Health/Check and Health/Watch on a router. */
  register(router: ConnectRouter): void;
}

/**
 * Create a health registry. Every name in `services` (and the whole server,
 * "") starts as SERVING.
 */
export function createHealth(services: readonly (DescService | string)[] = []): HealthRegistry {
  const status = new Map<string, ServingStatus>();
  status.set(OVERALL_SERVICE, ServingStatus.SERVING);
  for (const s of services) {
    status.set(typeof s === "string" ? s : s.typeName, ServingStatus.SERVING);
  }
  // Watchers are woken on any change and re-read the status themselves;
  // `version` lets a watcher that was busy (suspended at a yield) notice a
  // change it was not waiting for.
  let version = 0;
  const watchers = new Set<() => void>();
  const wake = () => {
    version++;
    for (const w of [...watchers]) {
      w();
    }
  };

  const registry: HealthRegistry = {
    get: (service) => status.get(service),
    set(service, next) {
      if (status.get(service) !== next) {
        status.set(service, next);
        wake();
      }
    },
    shutdown() {
      for (const k of status.keys()) {
        status.set(k, ServingStatus.NOT_SERVING);
      }
      wake();
    },
    resume() {
      for (const k of status.keys()) {
        status.set(k, ServingStatus.SERVING);
      }
      wake();
    },
    register(router) {
      router.service(Health, {
        check(req: HealthCheckRequest): HealthCheckResponse {
          const s = status.get(req.service);
          if (s === undefined) {
            throw new ConnectError(`unknown service "${req.service}"`, Code.NotFound);
          }
          return create(HealthCheckResponseSchema, { status: s });
        },
        watch(req: HealthCheckRequest, ctx: HandlerContext) {
          return watch(req.service, ctx.signal);
        },
      });
    },
  };

  async function* watch(service: string, signal: AbortSignal): AsyncIterable<HealthCheckResponse> {
    if (watchers.size >= HEALTH_WATCHERS_MAX) {
      throw new ConnectError(
        `too many health watchers (limit ${HEALTH_WATCHERS_MAX}); use Check or retry later`,
        Code.ResourceExhausted,
      );
    }
    let wakeUp: (() => void) | undefined;
    const waker = () => wakeUp?.();
    const onAbort = () => wakeUp?.();
    watchers.add(waker);
    signal.addEventListener("abort", onAbort);
    try {
      let last: ServingStatus | undefined;
      for (;;) {
        const seen = version;
        const now = status.get(service) ?? ServingStatus.SERVICE_UNKNOWN;
        if (now !== last) {
          last = now;
          yield create(HealthCheckResponseSchema, { status: now });
        }
        // Re-check after the yield: the client may have gone away meanwhile.
        if (signal.aborted) {
          throw ConnectError.from(signal.reason);
        }
        if (seen === version) {
          await new Promise<void>((resolve) => {
            wakeUp = resolve;
          });
          wakeUp = undefined;
        }
        if (signal.aborted) {
          // Shutdown (UNAVAILABLE: clients retry elsewhere) or a gone client.
          throw ConnectError.from(signal.reason);
        }
      }
    } finally {
      watchers.delete(waker);
      signal.removeEventListener("abort", onAbort);
    }
  }

  return registry;
}
