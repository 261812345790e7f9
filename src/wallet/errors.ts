/**
 * Typed wallet errors: one base class, `ScripwireError`, that a caller can
 * switch on by subclass or by `code`, each carrying the machine-readable
 * `reason` (UPPER_SNAKE, the same strings the servers send), a `hint` that
 * says what to do, the underlying `cause`, and the CLI `exitCode`.
 *
 * Protocol refusals the patent spells as messages (GM2_2, GM5_2, GM5_3,
 * PM2_2, PM5_2) arrive as normal responses; the wallet turns them into a
 * `RefusedError` carrying that `cmdType`. Connect/gRPC errors are mapped by
 * status code in {@link fromConnectError}.
 */
import { Code, ConnectError } from "@connectrpc/connect";

/** Exit codes; the same numbers as `EXIT` in src/cli/options.ts (kept here so the library does not import the CLI). */
export const WALLET_EXIT = { FAILURE: 1, REFUSED: 3, UNAVAILABLE: 4 } as const;

/** Category of a wallet error; every subclass has exactly one. */
export type ScripwireErrorCode = "REFUSED" | "AUTHENTICATION" | "UNAVAILABLE" | "STATE" | "INTEGRITY" | "INVALID_ARGUMENT" | "INTERNAL";

export interface ScripwireErrorOptions {
  /** What the user or caller can do about it. */
  hint?: string;
  cause?: unknown;
}

/**
 * Base of every error the wallet library throws.
 *
 * @example
 * ```ts
 * try { await wallet.buy(sellerUrl, "/files/report.pdf", "SAVE"); }
 * catch (e) {
 *   if (e instanceof RefusedError && e.reason === "INSUFFICIENT_VALUE") console.log(e.hint);
 *   else throw e;
 * }
 * ```
 */
export class ScripwireError extends Error {
  /** Process exit code the CLI uses for this error. */
  readonly exitCode: number = WALLET_EXIT.FAILURE;

  constructor(
    readonly code: ScripwireErrorCode,
    /** Machine-readable reason, UPPER_SNAKE (e.g. "INSUFFICIENT_VALUE"). */
    readonly reason: string,
    message: string,
    opts: ScripwireErrorOptions = {},
  ) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = "ScripwireError";
    this.hint = opts.hint ?? "";
  }

  /** What to do about it; empty when there is nothing useful to say. */
  readonly hint: string;
}

/**
 * The protocol said no: a seller's GM2_2/PM2_2, a center's GM5_2/GM5_3/PM5_2,
 * or a FAILED_PRECONDITION from the center (expired offer, redemption below
 * the threshold...). Nothing moved: the wallet's scrip is unchanged.
 */
export class RefusedError extends ScripwireError {
  override readonly exitCode: number = WALLET_EXIT.REFUSED;

  constructor(
    /** The refusing message's cmdType code ("GM5_3", "PM2_2") or the request's code for a status error ("RD1"). */
    readonly cmdType: string,
    reason: string,
    message: string,
    opts: ScripwireErrorOptions & {
      /** The seller's HTML reason document (GM2_2, PM2_2). */
      document?: string;
    } = {},
  ) {
    super("REFUSED", reason, message, { hint: opts.hint ?? hintFor(reason), cause: opts.cause });
    this.name = "RefusedError";
    this.document = opts.document ?? "";
  }

  readonly document: string;
}

/** The server did not accept our credentials (a message hash, an offer MAC, a receipt), or a wallet passphrase is wrong. */
export class AuthenticationError extends ScripwireError {
  constructor(reason: string, message: string, opts: ScripwireErrorOptions = {}) {
    super("AUTHENTICATION", reason, message, opts);
    this.name = "AuthenticationError";
  }
}

/**
 * The server could not be reached, timed out, or kept failing (GM5_4/PM5_3
 * after every retransmission). Retrying later is safe: a half-finished
 * operation stays in the wallet's journal and is completed on the next open.
 */
export class UnavailableError extends ScripwireError {
  override readonly exitCode: number = WALLET_EXIT.UNAVAILABLE;
  readonly retryable = true;

  constructor(reason: string, message: string, opts: ScripwireErrorOptions = {}) {
    super("UNAVAILABLE", reason, message, { hint: opts.hint ?? "the server may be down or busy; try again later (any unfinished operation resumes automatically)", cause: opts.cause });
    this.name = "UnavailableError";
  }
}

/**
 * The server is rate-limiting this wallet (RESOURCE_EXHAUSTED with a
 * retry-after). `retryAfterMs` is the server's figure: the wallet waits that
 * long before it retries (src/wallet/steps.ts), instead of retrying blindly,
 * and a caller that gives up can tell the user when to come back.
 */
export class RateLimitedError extends UnavailableError {
  constructor(
    reason: string,
    message: string,
    readonly retryAfterMs: number,
    opts: ScripwireErrorOptions = {},
  ) {
    super(reason, message, { ...opts, hint: opts.hint ?? `the server asks to wait ${(retryAfterMs / 1000).toFixed(retryAfterMs < 10_000 ? 1 : 0)} s before trying again` });
    this.name = "RateLimitedError";
  }
}

/** The server's wait, in ms, from `scripwire-retry-after-ms` or HTTP's `retry-after` (seconds); undefined if it sent none. */
export function retryAfterMsOf(metadata: Headers): number | undefined {
  const ms = Number(metadata.get("scripwire-retry-after-ms") ?? NaN);
  if (Number.isFinite(ms) && ms >= 0) return ms;
  const s = Number(metadata.get("retry-after") ?? NaN);
  return Number.isFinite(s) && s >= 0 ? s * 1000 : undefined;
}

/** The wallet is not in a state to do this: not registered, an operation pending, the center's key changed, the file locked. */
export class StateError extends ScripwireError {
  constructor(reason: string, message: string, opts: ScripwireErrorOptions = {}) {
    super("STATE", reason, message, opts);
    this.name = "StateError";
  }
}

/** A reply did not authenticate (a scrip hash did not verify under Custom_Secret) or did not match what was asked. Nothing was adopted. */
export class IntegrityError extends ScripwireError {
  constructor(reason: string, message: string, opts: ScripwireErrorOptions = {}) {
    super("INTEGRITY", reason, message, {
      hint: opts.hint ?? "the reply was altered or is not from your payment center; the wallet kept its journal and will retry on the next open",
      cause: opts.cause,
    });
    this.name = "IntegrityError";
  }
}

const HINTS: Record<string, string> = {
  INSUFFICIENT_VALUE: "earn more scrip first (scripwire wallet earn) or buy something cheaper",
  EXPIRED: "your scrip has expired; renew it (scripwire wallet renew) and try again",
  ALREADY_REWARDED: "each campaign item pays once per customer; try another item (scripwire wallet catalog)",
  BUDGET_EXHAUSTED: "the campaign has no budget left; try another campaign",
  ISSUE_REFUSED: "check the answer or the item id (scripwire wallet catalog)",
  NOT_FOR_SALE: "check the URL and the delivery method (scripwire wallet catalog)",
  OFFER_EXPIRED: "the seller's offer expired; ask again",
  TRANSACTION_EXPIRED: "the seller's offer expired; ask again",
  BELOW_THRESHOLD: "redeem at least the center's threshold (scripwire wallet info shows it)",
  BAD_CERTIFICATE: "the scrip was altered; restore the wallet file from a backup",
  SCRIP_NOT_LIVE: "the wallet's scrip is not the live one at the center; restore the wallet file that made the last payment",
  PRICE_TOO_HIGH: "raise --max-price or buy something cheaper",
};

function hintFor(reason: string): string | undefined {
  return HINTS[reason];
}

/** Reason the servers put in the `scripwire-error-reason` header/trailer (see src/protocol/errors.ts). */
const REASON_HEADER = "scripwire-error-reason";

/**
 * Maps an error from a Connect/gRPC call to a typed wallet error.
 * `cmd` names the request ("GM4_1", "RD1", "GetCenterInfo") for the refusal's cmdType.
 */
export function fromConnectError(e: unknown, cmd: string, server: string): ScripwireError {
  if (e instanceof ScripwireError) return e;
  const ce = ConnectError.from(e);
  const reason = ce.metadata.get(REASON_HEADER) ?? Code[ce.code]?.replace(/([a-z])([A-Z])/g, "$1_$2").toUpperCase() ?? "UNKNOWN";
  const message = `${server}: ${ce.rawMessage}`;
  switch (ce.code) {
    case Code.ResourceExhausted: {
      const wait = retryAfterMsOf(ce.metadata);
      if (wait !== undefined) return new RateLimitedError(reason, message, wait, { cause: e });
      return new UnavailableError(reason, message, { cause: e });
    }
    case Code.Unavailable:
    case Code.DeadlineExceeded:
    case Code.Aborted:
    case Code.Canceled:
      return new UnavailableError(reason, message, { cause: e });
    case Code.Unauthenticated:
    case Code.PermissionDenied:
      return new AuthenticationError(reason, message, { cause: e, hint: "the server did not accept the request's credentials; check that this wallet belongs to this center" });
    case Code.FailedPrecondition:
    case Code.NotFound:
    case Code.AlreadyExists:
    case Code.OutOfRange:
      return new RefusedError(cmd, reason, message, { cause: e });
    case Code.InvalidArgument:
      return new ScripwireError("INVALID_ARGUMENT", reason, message, { cause: e, hint: "the request was malformed; this is a bug in the wallet or a version mismatch with the server" });
    default:
      return new ScripwireError("INTERNAL", reason, message, { cause: e });
  }
}
