/**
 * Structured logging for Scripwire servers: one JSON object per line on
 * stderr, `{"level","time","msg",...fields}`.
 *
 * Two rules drive this module:
 * - Secrets never reach a log line. Scrip carries certificates and MACs, and
 *   headers carry authorization; fields pass through {@link redact} and the
 *   RPC interceptor logs only method, code and duration, never bodies or
 *   headers.
 * - Logging that is switched off costs nothing on the hot path: check
 *   {@link Logger.enabled} (or rely on the interceptor factory, which returns
 *   no interceptor at all when the level would drop every line).
 */
import { Code, ConnectError } from "@connectrpc/connect";
import type { ContextValues, Interceptor, StreamResponse } from "@connectrpc/connect";
import { REMOTE_ADDRESS } from "./limits.js";
import { codeToString } from "@connectrpc/connect/protocol-connect";

/** Log levels, from quietest to noisiest. */
export type LogLevel = "silent" | "error" | "info" | "debug";

/** Environment variable that sets the default level. */
export const LOG_LEVEL_ENV = "SCRIPWIRE_LOG";

/** Level used when neither the caller nor `SCRIPWIRE_LOG` chooses one. */
export const DEFAULT_LOG_LEVEL: LogLevel = "info";

const levelRank: Readonly<Record<LogLevel, number>> = {
  silent: 0,
  error: 1,
  info: 2,
  debug: 3,
};

/** Free-form structured fields attached to a line. Values are redacted. */
export type LogFields = Readonly<Record<string, unknown>>;

export interface Logger {
  /** The level this logger was created with. */
  readonly level: LogLevel;
  /** True when a line at `level` would be written; check before costly work. */
  enabled(level: Exclude<LogLevel, "silent">): boolean;
  error(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  debug(msg: string, fields?: LogFields): void;
  /** A logger that adds `fields` to every line (e.g. `{component: "center"}`). */
  child(fields: LogFields): Logger;
}

export interface LoggerOptions {
  /**
   * Lowest level written. Default: `SCRIPWIRE_LOG` from the environment, else
   * "info". Tests use "silent".
   */
  level?: LogLevel;
  /**
   * Where finished lines go (each without its trailing newline). Default:
   * `process.stderr`, so stdout stays free for CLI output a user may pipe.
   */
  write?: (line: string) => void;
  /** Fields added to every line. */
  fields?: LogFields;
}

/**
 * Parse a level name (case-insensitive). Throws on an unknown name rather than
 * guessing, so a typo in `SCRIPWIRE_LOG` is noticed at start-up.
 */
export function parseLogLevel(value: string): LogLevel {
  const v = value.trim().toLowerCase();
  if (v === "silent" || v === "error" || v === "info" || v === "debug") {
    return v;
  }
  throw new Error(
    `${LOG_LEVEL_ENV} must be one of silent, error, info, debug; got "${value}"`,
  );
}

/** The level from `SCRIPWIRE_LOG`, or {@link DEFAULT_LOG_LEVEL} if unset. */
export function logLevelFromEnv(
  env: Readonly<Record<string, string | undefined>> = process.env,
): LogLevel {
  const raw = env[LOG_LEVEL_ENV];
  return raw === undefined || raw === "" ? DEFAULT_LOG_LEVEL : parseLogLevel(raw);
}

const writeStderr = (line: string): void => {
  process.stderr.write(line + "\n");
};

/**
 * Create a JSON-lines logger.
 *
 * @example
 * const log = createLogger({ level: "debug" });
 * log.info("listening", { url: "http://127.0.0.1:8080" });
 * // {"level":"info","time":"2025-…Z","msg":"listening","url":"http://127.0.0.1:8080"}
 */
export function createLogger(options: LoggerOptions = {}): Logger {
  const level = options.level ?? logLevelFromEnv();
  const write = options.write ?? writeStderr;
  return makeLogger(level, write, options.fields);
}

function makeLogger(
  level: LogLevel,
  write: (line: string) => void,
  base: LogFields | undefined,
): Logger {
  const rank = levelRank[level];
  const emit = (lvl: "error" | "info" | "debug", msg: string, fields?: LogFields) => {
    if (levelRank[lvl] > rank) {
      return;
    }
    const line: Record<string, unknown> = {
      level: lvl,
      time: new Date().toISOString(),
      msg,
    };
    // Reserved keys win: a field cannot forge the level, time or message.
    if (base !== undefined) {
      copyFields(line, base);
    }
    if (fields !== undefined) {
      copyFields(line, fields);
    }
    let text: string;
    try {
      text = JSON.stringify(line, jsonReplacer);
    } catch {
      text = JSON.stringify({ level: lvl, time: line.time, msg, fields_error: "unserializable" });
    }
    write(text);
  };
  return {
    level,
    enabled: (lvl) => levelRank[lvl] <= rank,
    error: (msg, fields) => emit("error", msg, fields),
    info: (msg, fields) => emit("info", msg, fields),
    debug: (msg, fields) => emit("debug", msg, fields),
    child: (fields) => makeLogger(level, write, base === undefined ? fields : { ...base, ...fields }),
  };
}

function copyFields(line: Record<string, unknown>, fields: LogFields): void {
  const clean = redact(fields) as Record<string, unknown>;
  for (const k of Object.keys(clean)) {
    if (k !== "level" && k !== "time" && k !== "msg") {
      line[k] = clean[k];
    }
  }
}

function jsonReplacer(_key: string, value: unknown): unknown {
  return typeof value === "bigint" ? value.toString() : value;
}

/** What {@link redact} prints in place of a sensitive value. */
export const REDACTED = "[redacted]";

/**
 * Key names whose values are never printed: scrip certificates, MAC keys,
 * hashes that authenticate value, TLS keys and HTTP authorization. Matching is
 * by substring and case-insensitive, so `scripCertificate`, `mac_key` and
 * `Authorization` are all caught; a false positive only hides a value.
 */
const SENSITIVE_KEY = /secret|key|mac|hash|cert|authori[sz]ation|password|passphrase|token|cookie/i;

/** Nesting depth past which {@link redact} stops descending. */
const REDACT_DEPTH_MAX = 8;

/**
 * Return a copy of `value` safe to print: values under sensitive keys become
 * `"[redacted]"`, byte arrays become `"<N bytes>"` (bytes in this system are
 * hashes, MACs and keys more often than not), errors keep name and message,
 * and nesting stops at a fixed depth. The input is not modified.
 *
 * @example
 * redact({ scrip: { serial: 7, certificate: new Uint8Array(32) } })
 * // → { scrip: { serial: 7, certificate: "[redacted]" } }
 */
export function redact(value: unknown): unknown {
  return redactAt(value, 0, new WeakSet());
}

function redactAt(value: unknown, depth: number, seen: WeakSet<object>): unknown {
  if (value === null || typeof value !== "object") {
    return typeof value === "function" ? "[function]" : value;
  }
  if (value instanceof Uint8Array) {
    return `<${value.byteLength} bytes>`;
  }
  if (value instanceof Date) {
    return value.toISOString();
  }
  if (value instanceof Error) {
    const err: Record<string, unknown> = { name: value.name, message: value.message };
    if (value instanceof ConnectError) {
      err.code = codeToString(value.code);
    }
    return err;
  }
  if (depth >= REDACT_DEPTH_MAX) {
    return "[too deep]";
  }
  if (seen.has(value)) {
    return "[circular]";
  }
  seen.add(value);
  if (Array.isArray(value)) {
    return value.map((v) => redactAt(v, depth + 1, seen));
  }
  if (value instanceof Map) {
    const out: Record<string, unknown> = {};
    for (const [k, v] of value) {
      const key = String(k);
      out[key] = SENSITIVE_KEY.test(key) ? REDACTED : redactAt(v, depth + 1, seen);
    }
    return out;
  }
  if (typeof Headers !== "undefined" && value instanceof Headers) {
    // Headers carry authorization and MACs; print only their names.
    return { header_names: [...value.keys()] };
  }
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(value)) {
    const v = (value as Record<string, unknown>)[key];
    out[key] = SENSITIVE_KEY.test(key) ? REDACTED : redactAt(v, depth + 1, seen);
  }
  return out;
}

/**
 * Codes that say the server, not the caller, is at fault; logged at "error".
 * Everything else that is not OK is the caller's problem and logged at "info".
 */
const serverFaultCodes: ReadonlySet<Code> = new Set([
  Code.Unknown,
  Code.Internal,
  Code.DataLoss,
  Code.Unimplemented,
]);

/**
 * A Connect interceptor that logs one line per call: `rpc` with `method`
 * (`pkg.Service/Method`), `code` ("ok" or a Connect code string) and
 * `duration_ms`. Successful calls log at "debug", caller errors at "info",
 * server faults at "error". It never logs messages, headers or trailers:
 * they carry scrip certificates and MACs.
 *
 * Returns `undefined` when the logger would drop every line, so the stack
 * installs nothing and silent servers pay nothing per call.
 */
export function createLoggingInterceptor(logger: Logger): Interceptor | undefined {
  if (!logger.enabled("error")) {
    return undefined;
  }
  const debug = logger.enabled("debug");
  const logCall = (req: { service: { typeName: string }; method: { name: string }; contextValues?: ContextValues }, start: number, err: unknown) => {
    if (err === undefined && !debug) {
      return; // the common case at "info": no string or object built
    }
    const duration_ms = Math.round((performance.now() - start) * 1000) / 1000;
    const method = `${req.service.typeName}/${req.method.name}`;
    if (err === undefined) {
      logger.debug("rpc", { method, code: "ok", duration_ms });
      return;
    }
    const ce = ConnectError.from(err);
    // The peer address, when the server records it (src/server/limits.ts): a
    // refused call is worth knowing the origin of.
    const peer = req.contextValues?.get(REMOTE_ADDRESS);
    const fields = peer === undefined ? { method, code: codeToString(ce.code), duration_ms } : { method, code: codeToString(ce.code), duration_ms, peer };
    if (serverFaultCodes.has(ce.code)) {
      logger.error("rpc", { ...fields, error: ce.rawMessage });
    } else {
      logger.info("rpc", fields);
    }
  };
  return (next) => async (req) => {
    const start = performance.now();
    let res;
    try {
      res = await next(req);
    } catch (err) {
      logCall(req, start, err);
      throw err;
    }
    if (!res.stream) {
      logCall(req, start, undefined);
      return res;
    }
    // Streaming response: the call ends when the handler's stream ends.
    return { ...res, message: logStream(res, start, logCall) } as StreamResponse;
  };
}

async function* logStream(
  res: StreamResponse,
  start: number,
  logCall: (req: StreamResponse, start: number, err: unknown) => void,
): AsyncIterable<unknown> {
  try {
    yield* res.message;
  } catch (err) {
    logCall(res, start, err);
    throw err;
  }
  logCall(res, start, undefined);
}
