/**
 * Errors for malformed or unauthenticated calls: a Connect/gRPC status code,
 * a machine-readable reason (UPPER_SNAKE) in the `scripwire-error-reason`
 * trailer/header, and a message that tells a person what to do. Protocol
 * refusals the patent spells as messages (GM5_2, PM5_2 ...) are NOT errors:
 * they are normal responses.
 */
import { Code, ConnectError } from "@connectrpc/connect";

export const REASON_HEADER = "scripwire-error-reason";

export function protocolError(code: Code, reason: string, message: string): ConnectError {
  return new ConnectError(message, code, { [REASON_HEADER]: reason });
}

export const invalidArgument = (reason: string, message: string) => protocolError(Code.InvalidArgument, reason, message);
export const unauthenticated = (reason: string, message: string) => protocolError(Code.Unauthenticated, reason, message);
export const failedPrecondition = (reason: string, message: string) => protocolError(Code.FailedPrecondition, reason, message);
export const notFound = (reason: string, message: string) => protocolError(Code.NotFound, reason, message);
export const alreadyExists = (reason: string, message: string) => protocolError(Code.AlreadyExists, reason, message);
export const resourceExhausted = (reason: string, message: string) => protocolError(Code.ResourceExhausted, reason, message);
export const unavailable = (reason: string, message: string) => protocolError(Code.Unavailable, reason, message);
export const permissionDenied = (reason: string, message: string) => protocolError(Code.PermissionDenied, reason, message);

/** The machine-readable reason of an error from a Scripwire server, if any. */
export function errorReason(err: unknown): string | undefined {
  if (err instanceof ConnectError) return err.metadata.get(REASON_HEADER) ?? undefined;
  return undefined;
}
