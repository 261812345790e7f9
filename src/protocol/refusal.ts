/**
 * The protocol core's own refusals: every machine-readable `error_reason` a
 * Scripwire server can produce, with the one status class it has when it is
 * raised as an error rather than carried in a refusal message's header
 * (GM5_2, PM5_2 ...). No transport here: the center and seller logic throw
 * {@link ProtocolError} and return {@link Invalid} values; the server layer
 * (src/server/errors.ts, `toConnectError`) is the one place that turns a
 * status class into a Connect/gRPC code, for every service and for the unary
 * fast path alike.
 *
 * docs/protocol.md ("Reason catalogue") lists exactly these reasons;
 * test/reason-catalogue.test.ts fails when the two disagree or a reason here
 * is produced nowhere. Adding a reason: add it here, use it, document it.
 */

/** Status classes, named as gRPC names its codes. */
export type Status =
  | "INVALID_ARGUMENT"
  | "UNAUTHENTICATED"
  | "PERMISSION_DENIED"
  | "FAILED_PRECONDITION"
  | "NOT_FOUND"
  | "ALREADY_EXISTS"
  | "RESOURCE_EXHAUSTED"
  | "UNAVAILABLE"
  | "INTERNAL";

/** Every reason, with the status it is raised with. Refusal messages carry the same names in `header.error_reason`. */
export const REASONS = {
  // ---- shape of a request (nothing is looked up)
  WRONG_CMD_TYPE: "INVALID_ARGUMENT",
  UNSUPPORTED_PROTOCOL_VERSION: "INVALID_ARGUMENT",
  P_COUNT_TOO_HIGH: "INVALID_ARGUMENT",
  BAD_TRAN_ID: "INVALID_ARGUMENT",
  BAD_REQUEST_ID: "INVALID_ARGUMENT",
  BAD_WALLET_ID: "INVALID_ARGUMENT",
  BAD_VENDOR_ID: "INVALID_ARGUMENT",
  BAD_CAMPAIGN_ID: "INVALID_ARGUMENT",
  BAD_KEY_KIND: "INVALID_ARGUMENT",
  BAD_LENGTH: "INVALID_ARGUMENT",
  BAD_FIELD: "INVALID_ARGUMENT",
  FIELD_TOO_LONG: "INVALID_ARGUMENT",
  ANSWER_TOO_LONG: "INVALID_ARGUMENT",
  BAD_SEALED_KEY: "INVALID_ARGUMENT",
  BAD_NONCE: "INVALID_ARGUMENT",
  MISSING_SCRIP: "INVALID_ARGUMENT",
  MISSING_OFFER: "INVALID_ARGUMENT",
  MISSING_CUSTOM_ID: "INVALID_ARGUMENT",
  MISSING_RECEIPT: "INVALID_ARGUMENT",
  BAD_SCRIP: "INVALID_ARGUMENT",
  BAD_OFFER: "INVALID_ARGUMENT",
  BAD_AMOUNT: "INVALID_ARGUMENT",
  BAD_PAYOUT_ACCOUNT: "INVALID_ARGUMENT",
  LIMIT_TOO_HIGH: "INVALID_ARGUMENT",
  UNKNOWN_CURRENCY: "INVALID_ARGUMENT",
  ALGORITHM_NOT_ACCEPTED: "INVALID_ARGUMENT",
  NOT_SOLD_HERE: "INVALID_ARGUMENT",
  // ---- authentication
  BAD_HASH: "UNAUTHENTICATED",
  BAD_OFFER_MAC: "UNAUTHENTICATED",
  WRONG_OFFER_KIND: "UNAUTHENTICATED",
  VENDOR_MISMATCH: "UNAUTHENTICATED",
  BAD_RECEIPT: "UNAUTHENTICATED",
  BAD_VENDOR_MAC: "UNAUTHENTICATED",
  STALE_REQUEST: "UNAUTHENTICATED",
  ADMIN_TOKEN_MISSING: "UNAUTHENTICATED",
  ADMIN_TOKEN_WRONG: "PERMISSION_DENIED",
  ADMIN_BACKOFF: "RESOURCE_EXHAUSTED",
  REPLAYED_REQUEST: "UNAUTHENTICATED",
  // ---- scrip validity (GM5_2 / PM5_2 when in-band)
  FOREIGN_SCRIP: "FAILED_PRECONDITION",
  BAD_CERTIFICATE: "FAILED_PRECONDITION",
  EXPIRED: "FAILED_PRECONDITION",
  NOT_YET_VALID: "FAILED_PRECONDITION",
  SCRIP_NOT_LIVE: "FAILED_PRECONDITION",
  // ---- the transaction and the ledger's decision
  OFFER_EXPIRED: "FAILED_PRECONDITION",
  OFFER_MISMATCH: "FAILED_PRECONDITION",
  UNKNOWN_TRANSACTION: "FAILED_PRECONDITION",
  WRONG_CUSTOMER: "FAILED_PRECONDITION",
  TRANSACTION_STATE: "FAILED_PRECONDITION",
  TRANSACTION_EXPIRED: "FAILED_PRECONDITION",
  CURRENCY_MISMATCH: "FAILED_PRECONDITION",
  INSUFFICIENT_VALUE: "FAILED_PRECONDITION",
  OVERFLOW: "FAILED_PRECONDITION",
  BUDGET_EXHAUSTED: "FAILED_PRECONDITION",
  CAP_EXCEEDED: "FAILED_PRECONDITION",
  FUNDING_ACCOUNT_LIMIT: "FAILED_PRECONDITION",
  ALREADY_REWARDED: "FAILED_PRECONDITION",
  BELOW_THRESHOLD: "FAILED_PRECONDITION",
  NOT_A_PAYMENT: "FAILED_PRECONDITION",
  NOT_CONFIRMED: "FAILED_PRECONDITION",
  REFUND_EXCEEDS_PAYMENT: "FAILED_PRECONDITION",
  VENDOR_BALANCE_LOW: "FAILED_PRECONDITION",
  CANCELLED: "FAILED_PRECONDITION",
  // ---- seller refusals (GM2_2 / PM2_2, always in-band)
  ISSUE_REFUSED: "FAILED_PRECONDITION",
  NOT_FOR_SALE: "FAILED_PRECONDITION",
  // ---- administration
  UNKNOWN_VENDOR: "NOT_FOUND",
  UNKNOWN_CAMPAIGN: "NOT_FOUND",
  VENDOR_EXISTS: "ALREADY_EXISTS",
  ALREADY_REFUNDED: "ALREADY_EXISTS",
  CAMPAIGN_EXISTS: "ALREADY_EXISTS",
  WALLET_ID_TAKEN: "ALREADY_EXISTS",
  // ---- load and faults: retry
  RATE_LIMITED: "RESOURCE_EXHAUSTED",
  TOO_MANY_WATCHES: "RESOURCE_EXHAUSTED",
  CONTENT_TOO_LARGE: "RESOURCE_EXHAUSTED",
  UPSTREAM_FAILED: "UNAVAILABLE",
  CONTENDED: "UNAVAILABLE",
  SERIAL_COLLISION: "UNAVAILABLE",
  VENDOR_KEY_MISSING: "UNAVAILABLE",
  SERVER_ERROR: "UNAVAILABLE",
} as const satisfies Record<string, Status>;

export type Reason = keyof typeof REASONS;

export function isReason(s: string): s is Reason {
  return Object.hasOwn(REASONS, s);
}

/** A refusal decided by protocol logic: a reason from the catalogue and a message that says what to do. */
export interface Invalid {
  reason: Reason;
  message: string;
}

/**
 * Thrown by the protocol core for a call that cannot be answered with a
 * refusal message (malformed, unauthenticated, wrong state for M6/S6 ...).
 */
export class ProtocolError extends Error {
  override readonly name = "ProtocolError";
  constructor(
    readonly reason: Reason,
    message: string,
  ) {
    super(message);
  }

  get status(): Status {
    return REASONS[this.reason];
  }
}

/** `throw refusal("BAD_TRAN_ID", "...")`: a ProtocolError. */
export function refusal(reason: Reason, message: string): ProtocolError {
  return new ProtocolError(reason, message);
}

/** Raise a returned {@link Invalid} as an error. */
export function raise(i: Invalid): ProtocolError {
  return new ProtocolError(i.reason, i.message);
}

export function isProtocolError(e: unknown): e is ProtocolError {
  return e instanceof ProtocolError;
}
