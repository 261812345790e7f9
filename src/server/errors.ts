/**
 * Errors a Scripwire server returns: a status code plus a machine-readable
 * reason a client can switch on, plus a human message that says what to do.
 *
 * The reason travels as the `scripwire-error-reason` metadata entry of the
 * ConnectError. Connect, gRPC and gRPC-Web all carry error metadata (as
 * response headers or trailers), so every client sees it — including plain
 * `@grpc/grpc-js` (in the status metadata) and `curl` (as a header). We do not
 * use a `google.rpc.ErrorInfo` detail because that would need the
 * google/rpc protos vendored and decoded by every client.
 *
 * @example
 * throw invalidArgument(
 *   "BAD_SCRIP",
 *   "scrip.certificate must be 32 bytes; resend the scrip exactly as the center issued it",
 * );
 * // client side:
 * if (errorReason(err) === "BAD_SCRIP") { … }
 */
import { Code, ConnectError } from "@connectrpc/connect";
import { UnsupportedAlgorithmError } from "../crypto/mac.js";
import { LedgerError } from "../ledger/ledger.js";
import { isReason, ProtocolError, REASONS, type Reason, type Status } from "../protocol/refusal.js";

/** Metadata key (header or trailer) that carries the machine-readable reason. */
export const ERROR_REASON_KEY = "scripwire-error-reason";

/** Reasons are UPPER_SNAKE, at most this many characters. */
export const ERROR_REASON_LENGTH_MAX = 64;

const REASON_PATTERN = /^[A-Z][A-Z0-9_]*$/;

/**
 * Build a ConnectError with `code`, `reason` and `message`. Return it so the
 * call site reads `throw scripError(…)` and TypeScript sees the throw.
 *
 * @throws TypeError if `reason` is not UPPER_SNAKE of at most
 *   {@link ERROR_REASON_LENGTH_MAX} characters (a bug at the call site).
 */
export function scripError(
  code: Code,
  reason: string,
  message: string,
  cause?: unknown,
): ConnectError {
  checkReason(reason);
  return new ConnectError(message, code, { [ERROR_REASON_KEY]: reason }, undefined, cause);
}

function checkReason(reason: string): void {
  if (reason.length > ERROR_REASON_LENGTH_MAX || !REASON_PATTERN.test(reason)) {
    throw new TypeError(
      `"reason" expected UPPER_SNAKE of at most ${ERROR_REASON_LENGTH_MAX} characters, got "${reason}"`,
    );
  }
}

/** The request is malformed, whatever the server's state (e.g. wrong length). */
export const invalidArgument = (reason: Reason, message: string, cause?: unknown) =>
  scripError(Code.InvalidArgument, reason, message, cause);

/** The request is well-formed but the system is not in the state it needs. */
export const failedPrecondition = (reason: Reason, message: string, cause?: unknown) =>
  scripError(Code.FailedPrecondition, reason, message, cause);

/** A named entity (account, scrip serial, seller) does not exist. */
export const notFound = (reason: Reason, message: string, cause?: unknown) =>
  scripError(Code.NotFound, reason, message, cause);

/** The entity the caller tried to create already exists. */
export const alreadyExists = (reason: Reason, message: string, cause?: unknown) =>
  scripError(Code.AlreadyExists, reason, message, cause);

/** The caller is known but not allowed to do this. */
export const permissionDenied = (reason: Reason, message: string, cause?: unknown) =>
  scripError(Code.PermissionDenied, reason, message, cause);

/** The caller's credentials (e.g. a MAC) did not verify. */
export const unauthenticated = (reason: Reason, message: string, cause?: unknown) =>
  scripError(Code.Unauthenticated, reason, message, cause);

/** A limit or quota was hit (message size, balance, rate). */
export const resourceExhausted = (reason: Reason, message: string, cause?: unknown) =>
  scripError(Code.ResourceExhausted, reason, message, cause);

/** A concurrency conflict (e.g. scrip already spent in a racing call); retry may help. */
export const aborted = (reason: Reason, message: string, cause?: unknown) =>
  scripError(Code.Aborted, reason, message, cause);

/** The server cannot serve now (shutting down, dependency down); retry later. */
export const unavailable = (reason: Reason, message: string, cause?: unknown) =>
  scripError(Code.Unavailable, reason, message, cause);

/** An invariant broke inside the server; the message must not leak internals. */
export const internal = (reason: Reason, message: string, cause?: unknown) =>
  scripError(Code.Internal, reason, message, cause);

/**
 * The machine-readable reason of an error received from (or thrown by) a
 * Scripwire server, or `undefined` if it carries none.
 *
 * Accepts anything a client may catch: a ConnectError (any protocol), or a
 * `@grpc/grpc-js` ServiceError (its `metadata.get(key)` returns an array).
 */
export function errorReason(err: unknown): string | undefined {
  if (err instanceof ConnectError) {
    return err.metadata.get(ERROR_REASON_KEY) ?? undefined;
  }
  if (typeof err === "object" && err !== null && "metadata" in err) {
    const md = (err as { metadata?: unknown }).metadata;
    if (md instanceof Headers) {
      return md.get(ERROR_REASON_KEY) ?? undefined;
    }
    if (typeof md === "object" && md !== null && "get" in md && typeof md.get === "function") {
      // grpc-js Metadata: get() returns (string | Buffer)[].
      const values: unknown = (md.get as (k: string) => unknown).call(md, ERROR_REASON_KEY);
      const first = Array.isArray(values) ? values[0] : values;
      return first === undefined || first === null ? undefined : String(first);
    }
  }
  return undefined;
}

/** The one table from the core's status classes to Connect/gRPC codes. */
export const STATUS_CODES: Record<Status, Code> = {
  INVALID_ARGUMENT: Code.InvalidArgument,
  UNAUTHENTICATED: Code.Unauthenticated,
  PERMISSION_DENIED: Code.PermissionDenied,
  FAILED_PRECONDITION: Code.FailedPrecondition,
  NOT_FOUND: Code.NotFound,
  ALREADY_EXISTS: Code.AlreadyExists,
  RESOURCE_EXHAUSTED: Code.ResourceExhausted,
  UNAVAILABLE: Code.Unavailable,
  INTERNAL: Code.Internal,
};

/**
 * The one mapping from what the protocol core and the ledger throw to what
 * goes on the wire, used by every service adapter (center, admin, seller) and
 * by the unary fast path. A ProtocolError keeps its reason and takes the code
 * of its status; a LedgerError naming a catalogued reason likewise; values no
 * canonical encoding accepts (a negative enum, an unknown hash algorithm)
 * surface as RangeError / UnsupportedAlgorithmError deep in the crypto and are
 * the caller's malformed input. Anything else is returned unchanged (Connect
 * makes it INTERNAL without leaking its message).
 */
export function toConnectError(e: unknown): unknown {
  if (e instanceof ConnectError) return e;
  if (e instanceof ProtocolError) return scripError(STATUS_CODES[e.status], e.reason, e.message, e);
  if (e instanceof LedgerError && isReason(e.reason)) return scripError(STATUS_CODES[REASONS[e.reason]], e.reason, e.message, e);
  if (e instanceof RangeError || e instanceof UnsupportedAlgorithmError) {
    return scripError(Code.InvalidArgument, "BAD_FIELD", `a field is out of range: ${e.message}`, e);
  }
  return e;
}

/** Runs a handler body and maps what it throws with {@link toConnectError}. */
export async function mapErrors<T>(f: () => Promise<T> | T): Promise<T> {
  try {
    return await f();
  } catch (e) {
    throw toConnectError(e);
  }
}

/**
 * Every unary method of a service implementation, with what it throws mapped
 * by {@link toConnectError}: for services whose handlers call into the core
 * in many places (admin), so none can forget the mapping.
 */
export function mapServiceErrors<T extends object>(impl: T): T {
  const out: Record<string, unknown> = {};
  for (const [name, fn] of Object.entries(impl)) {
    out[name] =
      typeof fn === "function" && fn.constructor.name !== "AsyncGeneratorFunction"
        ? (...args: unknown[]) => mapErrors(() => (fn as (...a: unknown[]) => unknown).apply(impl, args))
        : fn;
  }
  return out as T;
}
