/**
 * Rate limits for Scripwire servers: token buckets per customer and per
 * remote address, as one Connect interceptor. A call over the limit fails
 * with RESOURCE_EXHAUSTED, reason `RATE_LIMITED`, a message that says when to
 * retry, and the same figure machine-readable in `retry-after` (whole seconds,
 * HTTP's header) and `scripwire-retry-after-ms` metadata.
 *
 * Why two keys:
 * - per address: the only identity an unauthenticated flood has. It is
 *   checked first, so garbage never reaches the crypto or the ledger at more
 *   than {@link RATE_PER_ADDRESS_PER_SECOND}. IPv4-mapped IPv6 addresses count
 *   as their IPv4 address, and IPv6 addresses by their /64, since one host
 *   usually owns a whole /64.
 * - per customer: a wallet (the `custom_id` serial of the scrip it presents)
 *   hammering the center from many addresses. The custom_id is not yet
 *   authenticated when the interceptor runs (the center checks the hash
 *   later), so anyone could name a victim's id to drain the victim's bucket.
 *   Hence: a token is taken up front and given back when the center answers
 *   UNAUTHENTICATED or INVALID_ARGUMENT, i.e. when the request did not prove
 *   it came from that customer. A forger can only hold a victim's tokens for
 *   the few milliseconds a refused request is in flight, and only at its own
 *   per-address rate.
 *
 * The remote address is not in Connect's HandlerContext (handlers never see
 * a socket); the Node adapter's `contextValues` hook puts it there:
 *
 * @example
 * createServerStack({
 *   ...,
 *   interceptors: [createRateLimitInterceptor()],
 *   adapter: { contextValues: remoteAddressContextValues },
 * });
 */
import { Code, ConnectError, createContextKey, createContextValues, type ContextValues, type HandlerContext, type Interceptor } from "@connectrpc/connect";
import type { DescService } from "@bufbuild/protobuf";
import type http from "node:http";
import type http2 from "node:http2";
import { isIPv6 } from "node:net";
import { ERROR_REASON_KEY } from "./errors.js";

/** Sustained calls per second one customer may make (a wallet pays a few times a second at most). */
export const RATE_PER_CUSTOMER_PER_SECOND = 20;
/** Calls a customer may make at once after being idle: one earn (M1..M7) and one purchase (S1..S7) with retransmissions. */
export const BURST_PER_CUSTOMER = 40;
/**
 * Sustained calls per second from one address (or IPv6 /64). Generous: many
 * wallets share an address behind NAT, and a seller polls settlements.
 */
export const RATE_PER_ADDRESS_PER_SECOND = 1_000;
/** Calls one address may make at once after being idle. */
export const BURST_PER_ADDRESS = 2_000;
/**
 * Buckets kept in memory per key kind; past this the least recently used one
 * is dropped (a dropped bucket comes back full, so this bounds memory, not
 * fairness: a flood from more keys than this is the per-address limit's job).
 */
export const BUCKETS_MAX = 100_000;
/**
 * Registrations per second from one address (burst {@link REGISTER_BURST_PER_ADDRESS}).
 * Register needs no proof of anything and each one stores a customer row
 * with its profile (~2 KB) for good: at the general 1 000/s an address could
 * add 218 customers a second. A person registers a wallet once; a NAT full of
 * new users does not register 2 a second for long.
 */
export const REGISTER_RATE_PER_ADDRESS_PER_SECOND = 2;
/** Registrations one address may make at once after being idle. */
export const REGISTER_BURST_PER_ADDRESS = 10;
/** The methods with their own, lower, per-address rate. */
const REGISTER_METHODS = ["scripwire.v1.PaymentCenterService/Register"];

/** Reason in the `scripwire-error-reason` metadata of a rate-limited call. */
export const RATE_LIMITED = "RATE_LIMITED";
/** Metadata key with the suggested wait in milliseconds. */
export const RETRY_AFTER_MS_KEY = "scripwire-retry-after-ms";

/** The caller's remote address, set per call by {@link remoteAddressContextValues}; undefined in process. */
export const REMOTE_ADDRESS = createContextKey<string | undefined>(undefined, { description: "scripwire remote address" });

/** For the Node adapter's `contextValues` option: records the socket's remote address. */
export function remoteAddressContextValues(req: http.IncomingMessage | http2.Http2ServerRequest): ContextValues {
  return createContextValues().set(REMOTE_ADDRESS, req.socket?.remoteAddress);
}

/** The bucket key of an address: IPv4 as is (also when IPv4-mapped), IPv6 by its /64. */
export function addressKey(address: string): string {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped) return mapped[1]!;
  if (!isIPv6(address)) return address;
  const [head, tail] = address.toLowerCase().split("::") as [string, string | undefined];
  const left = head ? head.split(":") : [];
  const right = tail ? tail.split(":") : [];
  const groups = tail === undefined ? left : [...left, ...Array(Math.max(0, 8 - left.length - right.length)).fill("0"), ...right];
  return `${groups.slice(0, 4).map((g) => g.replace(/^0+(?=.)/, "")).join(":")}::/64`;
}

export interface BucketOptions {
  /** Tokens added per second. */
  ratePerSecond: number;
  /** Bucket size: calls allowed at once after idling. */
  burst: number;
}

/**
 * Token buckets by key, refilled lazily on use. O(1) per call; at most
 * `maxBuckets` keys, least recently used dropped first.
 */
export class TokenBuckets {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();

  constructor(
    readonly opts: BucketOptions,
    private readonly clock: () => number = Date.now,
    private readonly maxBuckets = BUCKETS_MAX,
  ) {
    if (!(opts.ratePerSecond > 0) || !(opts.burst >= 1)) throw new RangeError(`"ratePerSecond" must be > 0 and "burst" >= 1, got ${opts.ratePerSecond} / ${opts.burst}`);
  }

  private refill(key: string): { tokens: number; at: number } {
    const now = this.clock();
    let b = this.buckets.get(key);
    if (b) {
      b.tokens = Math.min(this.opts.burst, b.tokens + ((now - b.at) * this.opts.ratePerSecond) / 1000);
      b.at = now;
      this.buckets.delete(key); // re-insert: Map order is our LRU order
    } else {
      b = { tokens: this.opts.burst, at: now };
      if (this.buckets.size >= this.maxBuckets) this.buckets.delete(this.buckets.keys().next().value!);
    }
    this.buckets.set(key, b);
    return b;
  }

  /** Takes one token; returns 0 if taken, else how many ms until one is available. */
  take(key: string): number {
    const b = this.refill(key);
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return 0;
    }
    return Math.ceil(((1 - b.tokens) * 1000) / this.opts.ratePerSecond);
  }

  /** Gives a token back (the call turned out not to be this key's). */
  refund(key: string): void {
    const b = this.buckets.get(key);
    if (b) b.tokens = Math.min(this.opts.burst, b.tokens + 1);
  }

  get size(): number {
    return this.buckets.size;
  }
}

export interface RateLimitOptions {
  /** Per-customer buckets; `false` turns them off. Default {@link RATE_PER_CUSTOMER_PER_SECOND} / {@link BURST_PER_CUSTOMER}. */
  perCustomer?: BucketOptions | false;
  /** Per-address buckets; `false` turns them off. Default {@link RATE_PER_ADDRESS_PER_SECOND} / {@link BURST_PER_ADDRESS}. */
  perAddress?: BucketOptions | false;
  /**
   * Calls never limited, by `service/Method` or `service/*`. Default: health
   * and reflection, which load balancers and tooling poll and which touch no
   * state.
   */
  exempt?: readonly string[];
  /** Milliseconds clock (tests). Default Date.now. */
  clock?: () => number;
  /** Bound on buckets per key kind. Default {@link BUCKETS_MAX}. */
  maxBuckets?: number;
}

const DEFAULT_EXEMPT = ["grpc.health.v1.Health/*", "grpc.reflection.v1.ServerReflection/*", "grpc.reflection.v1alpha.ServerReflection/*"];

/** Request fields that carry the presenting customer's scrip, in the order they are looked for. */
const SCRIP_FIELDS = ["scrip", "newScrip"] as const;

/**
 * The customer a request speaks for: the custom_id of the scrip it presents
 * (`scrip` or `new_scrip`), as "secretId/serial". Only scrip-bearing calls
 * have one; their hash, checked later by the center, proves it.
 */
export function customerOf(message: unknown): string | undefined {
  if (!message || typeof message !== "object") return undefined;
  for (const f of SCRIP_FIELDS) {
    const id = (message as Record<string, { scrip?: { customId?: { secretId: number; serialNumber: bigint } } } | undefined>)[f]?.scrip?.customId;
    if (id) return `${id.secretId}/${id.serialNumber}`;
  }
  return undefined;
}

function limited(who: string, waitMs: number): ConnectError {
  const seconds = (waitMs / 1000).toFixed(waitMs < 10_000 ? 2 : 0);
  return new ConnectError(`too many requests ${who}; retry in ${seconds} s`, Code.ResourceExhausted, {
    [ERROR_REASON_KEY]: RATE_LIMITED,
    [RETRY_AFTER_MS_KEY]: String(waitMs),
    "retry-after": String(Math.max(1, Math.ceil(waitMs / 1000))),
  });
}

/** Codes meaning "this request did not prove it came from the customer it names": its token goes back. */
const NOT_PROVEN = new Set([Code.Unauthenticated, Code.InvalidArgument]);

export interface RateLimiter {
  interceptor: Interceptor;
  customers: TokenBuckets | undefined;
  addresses: TokenBuckets | undefined;
}

/** The limiter with its buckets exposed (tests, metrics). Most callers want {@link createRateLimitInterceptor}. */
export function createRateLimiter(opts: RateLimitOptions = {}): RateLimiter {
  const clock = opts.clock ?? Date.now;
  const max = opts.maxBuckets ?? BUCKETS_MAX;
  const customers =
    opts.perCustomer === false ? undefined : new TokenBuckets(opts.perCustomer ?? { ratePerSecond: RATE_PER_CUSTOMER_PER_SECOND, burst: BURST_PER_CUSTOMER }, clock, max);
  const addresses =
    opts.perAddress === false ? undefined : new TokenBuckets(opts.perAddress ?? { ratePerSecond: RATE_PER_ADDRESS_PER_SECOND, burst: BURST_PER_ADDRESS }, clock, max);
  const exempt = opts.exempt ?? DEFAULT_EXEMPT;
  const isExempt = (service: string, method: string) => exempt.includes(`${service}/${method}`) || exempt.includes(`${service}/*`);

  const interceptor: Interceptor = (next) => async (req) => {
    if (isExempt(req.service.typeName, req.method.name)) return next(req);
    const address = req.contextValues.get(REMOTE_ADDRESS);
    if (addresses && address) {
      const wait = addresses.take(addressKey(address));
      if (wait > 0) throw limited("from this address", wait);
    }
    const customer = customers && !req.stream ? customerOf(req.message) : undefined;
    if (customers && customer) {
      const wait = customers.take(customer);
      if (wait > 0) throw limited("for this customer", wait);
      try {
        return await next(req);
      } catch (e) {
        if (e instanceof ConnectError && NOT_PROVEN.has(e.code)) customers.refund(customer);
        throw e;
      }
    }
    return next(req);
  };
  return { interceptor, customers, addresses };
}

/** A Connect interceptor enforcing per-address and per-customer rate limits. */
export function createRateLimitInterceptor(opts: RateLimitOptions = {}): Interceptor {
  return createRateLimiter(opts).interceptor;
}

/**
 * The same limits applied around a service implementation instead of as an
 * interceptor. The stack's unary fast path runs no interceptors, so the
 * center wraps its handlers with this: both paths then enforce one set of
 * buckets (the remote address comes from the adapter's context values, which
 * the fast path provides too). Streaming methods are passed through.
 */
export function rateLimitService<T extends object>(service: DescService, impl: T, limiter: RateLimiterCore): T {
  const wrapped: Record<string, unknown> = { ...(impl as Record<string, unknown>) };
  for (const m of service.methods) {
    if (m.methodKind !== "unary") continue;
    const fn = (impl as Record<string, unknown>)[m.localName];
    if (typeof fn !== "function") continue;
    const exempt = limiter.isExempt(service.typeName, m.name);
    if (exempt) continue;
    const register = REGISTER_METHODS.includes(`${service.typeName}/${m.name}`);
    wrapped[m.localName] = async (req: unknown, ctx: HandlerContext) => {
      const address = ctx.values.get(REMOTE_ADDRESS);
      if (limiter.addresses && address) {
        const wait = limiter.addresses.take(addressKey(address));
        if (wait > 0) throw limited("from this address", wait);
      }
      if (register && limiter.registrations && address) {
        const wait = limiter.registrations.take(addressKey(address));
        if (wait > 0) throw limited("registering from this address", wait);
      }
      const customer = limiter.customers ? customerOf(req) : undefined;
      if (!customer) return (fn as (r: unknown, c: HandlerContext) => unknown).call(impl, req, ctx);
      const wait = limiter.customers!.take(customer);
      if (wait > 0) throw limited("for this customer", wait);
      try {
        return await (fn as (r: unknown, c: HandlerContext) => unknown).call(impl, req, ctx);
      } catch (e) {
        if (e instanceof ConnectError && NOT_PROVEN.has(e.code)) limiter.customers!.refund(customer);
        throw e;
      }
    };
  }
  return wrapped as T;
}

/** Buckets and exemptions, without the interceptor: what {@link rateLimitService} needs. */
export interface RateLimiterCore {
  customers: TokenBuckets | undefined;
  addresses: TokenBuckets | undefined;
  /** Per-address buckets of Register (set when per-address limits are on). */
  registrations?: TokenBuckets;
  isExempt(service: string, method: string): boolean;
}

export function createRateLimiterCore(opts: RateLimitOptions = {}): RateLimiterCore {
  const r = createRateLimiter(opts);
  const exempt = opts.exempt ?? DEFAULT_EXEMPT;
  return {
    customers: r.customers,
    addresses: r.addresses,
    registrations: r.addresses ? new TokenBuckets({ ratePerSecond: REGISTER_RATE_PER_ADDRESS_PER_SECOND, burst: REGISTER_BURST_PER_ADDRESS }, opts.clock ?? Date.now, opts.maxBuckets ?? BUCKETS_MAX) : undefined,
    isExempt: (service, method) => exempt.includes(`${service}/${method}`) || exempt.includes(`${service}/*`),
  };
}
