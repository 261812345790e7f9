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
export const invalidArgument = (reason: string, message: string, cause?: unknown) =>
  scripError(Code.InvalidArgument, reason, message, cause);

/** The request is well-formed but the system is not in the state it needs. */
export const failedPrecondition = (reason: string, message: string, cause?: unknown) =>
  scripError(Code.FailedPrecondition, reason, message, cause);

/** A named entity (account, scrip serial, seller) does not exist. */
export const notFound = (reason: string, message: string, cause?: unknown) =>
  scripError(Code.NotFound, reason, message, cause);

/** The entity the caller tried to create already exists. */
export const alreadyExists = (reason: string, message: string, cause?: unknown) =>
  scripError(Code.AlreadyExists, reason, message, cause);

/** The caller is known but not allowed to do this. */
export const permissionDenied = (reason: string, message: string, cause?: unknown) =>
  scripError(Code.PermissionDenied, reason, message, cause);

/** The caller's credentials (e.g. a MAC) did not verify. */
export const unauthenticated = (reason: string, message: string, cause?: unknown) =>
  scripError(Code.Unauthenticated, reason, message, cause);

/** A limit or quota was hit (message size, balance, rate). */
export const resourceExhausted = (reason: string, message: string, cause?: unknown) =>
  scripError(Code.ResourceExhausted, reason, message, cause);

/** A concurrency conflict (e.g. scrip already spent in a racing call); retry may help. */
export const aborted = (reason: string, message: string, cause?: unknown) =>
  scripError(Code.Aborted, reason, message, cause);

/** The server cannot serve now (shutting down, dependency down); retry later. */
export const unavailable = (reason: string, message: string, cause?: unknown) =>
  scripError(Code.Unavailable, reason, message, cause);

/** An invariant broke inside the server; the message must not leak internals. */
export const internal = (reason: string, message: string, cause?: unknown) =>
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
