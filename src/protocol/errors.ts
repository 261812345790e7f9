/**
 * Errors for malformed or unauthenticated calls: a Connect/gRPC status code,
 * a machine-readable reason (UPPER_SNAKE) in the `scripwire-error-reason`
 * metadata, and a message that tells a person what to do. Protocol refusals
 * the patent spells as messages (GM5_2, PM5_2 ...) are NOT errors: they are
 * normal responses. The constructors live with the server stack; protocol
 * code imports them from here so it never depends on transport details.
 */
export {
  ERROR_REASON_KEY as REASON_HEADER,
  alreadyExists,
  errorReason,
  failedPrecondition,
  invalidArgument,
  notFound,
  permissionDenied,
  resourceExhausted,
  unauthenticated,
  unavailable,
} from "../server/errors.js";
