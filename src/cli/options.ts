/**
 * Command-line plumbing shared by every `scripwire` command: flags, then
 * environment variables (SCRIPWIRE_<NAME>), then a JSON config file
 * (--config or SCRIPWIRE_CONFIG), then defaults — in that order of precedence.
 */
import { readFileSync } from "node:fs";
import { parseArgs as nodeParseArgs } from "node:util";

/** Exit codes: stable, so scripts can switch on them. */
export const EXIT = {
  OK: 0,
  FAILURE: 1,
  USAGE: 2,
  /** The protocol refused (validity error, not for sale, insufficient value...). */
  REFUSED: 3,
  /** The server could not be reached or is unavailable: retrying may help. */
  UNAVAILABLE: 4,
  /** The audit found a violation. */
  AUDIT_FAILED: 5,
} as const;

export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

export interface OptionSpec {
  name: string;
  description: string;
  /** Takes no value. */
  boolean?: boolean;
  default?: string;
  /** Environment variable; default SCRIPWIRE_<NAME_UPPER>. */
  env?: string;
  /** One-letter alias (`-o` for `--out`). */
  short?: string;
}

export interface ParsedArgs {
  positionals: string[];
  flags: Map<string, string | true>;
}

/**
 * Tokenizes a command's arguments with `node:util` parseArgs in strict mode,
 * against the command's declared options: boolean flags take no value (so
 * `--watch 5` is a stray word, not a value), a value option needs one (a
 * following `--flag` is not taken as its value), and words that are not
 * options are refused, since no command takes positional arguments.
 */
/**
 * @param positionalsMax words allowed besides options (a command's
 *   `positionals`); default 0: a stray word is a usage error.
 */
export function parseArgs(argv: string[], specs: OptionSpec[] = [], positionalsMax = 0): ParsedArgs {
  const options: Record<string, { type: "string" | "boolean"; short?: string }> = {
    help: { type: "boolean", short: "h" },
    json: { type: "boolean" },
    config: { type: "string" },
  };
  for (const s of specs) options[s.name] = { type: s.boolean ? "boolean" : "string", ...(s.short ? { short: s.short } : {}) };
  let values: Record<string, string | boolean | undefined>;
  let positionals: string[];
  try {
    ({ values, positionals } = nodeParseArgs({ args: argv, options, strict: true, allowPositionals: positionalsMax > 0 }) as {
      values: Record<string, string | boolean | undefined>;
      positionals: string[];
    });
  } catch (e) {
    throw new UsageError(parseArgsMessage(e as Error & { code?: string }));
  }
  if (positionals.length > positionalsMax) throw new UsageError(`unexpected word '${positionals[positionalsMax]}' (see --help)`);
  const flags = new Map<string, string | true>();
  for (const [k, v] of Object.entries(values)) {
    if (v === true) flags.set(k, true);
    else if (typeof v === "string") flags.set(k, v);
  }
  return { positionals, flags };
}

/** node:util's messages name its own API; say what the user did wrong in this CLI's terms. */
function parseArgsMessage(e: Error & { code?: string }): string {
  const quoted = /'([^']*)'/.exec(e.message)?.[1];
  switch (e.code) {
    case "ERR_PARSE_ARGS_UNKNOWN_OPTION":
      return `unknown option ${quoted ?? ""} (see --help)`;
    case "ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL":
      return `unexpected word '${quoted ?? ""}': this command takes only --options (a value goes right after its option; see --help)`;
    case "ERR_PARSE_ARGS_INVALID_OPTION_VALUE": {
      const name = /--[A-Za-z0-9-]+/.exec(e.message)?.[0] ?? "an option";
      if (/argument missing/.test(e.message)) return `${name} needs a value`;
      if (/ambiguous/.test(e.message)) return `${name} needs a value (to give one that starts with '-', write ${name}=-...)`;
      return /does not take an argument/.test(e.message) ? `${name} is a flag and takes no value` : `${name}: ${e.message}`;
    }
    default:
      return e.message;
  }
}

export class Options {
  private config: Record<string, unknown> = {};

  constructor(
    private readonly args: ParsedArgs,
    private readonly specs: OptionSpec[],
    private readonly env: NodeJS.ProcessEnv = process.env,
  ) {
    const known = new Set([...specs.map((s) => s.name), "help", "json", "config"]);
    for (const k of args.flags.keys()) if (!known.has(k)) throw new UsageError(`unknown option --${k} (see --help)`);
    const path = (args.flags.get("config") as string | undefined) ?? env.SCRIPWIRE_CONFIG;
    if (path) {
      try {
        this.config = JSON.parse(readFileSync(path, "utf8"));
      } catch (e) {
        throw new UsageError(`cannot read config file ${path}: ${(e as Error).message}`);
      }
    }
  }

  private spec(name: string): OptionSpec {
    const s = this.specs.find((x) => x.name === name);
    if (!s) throw new Error(`option ${name} is not declared`);
    return s;
  }

  get(name: string): string | undefined {
    const s = this.spec(name);
    const flag = this.args.flags.get(name);
    if (flag !== undefined) {
      if (flag === true && !s.boolean) throw new UsageError(`--${name} needs a value`);
      return flag === true ? "true" : flag;
    }
    const envName = s.env ?? `SCRIPWIRE_${name.toUpperCase().replace(/-/g, "_")}`;
    if (this.env[envName] !== undefined) return this.env[envName];
    const camel = name.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
    const fromFile = this.config[name] ?? this.config[camel];
    if (fromFile !== undefined) return typeof fromFile === "string" ? fromFile : JSON.stringify(fromFile);
    return s.default;
  }

  /** Whether the command declares this option. */
  has(name: string): boolean {
    return this.specs.some((s) => s.name === name);
  }

  require(name: string): string {
    const v = this.get(name);
    if (v === undefined || v === "") throw new UsageError(`--${name} is required (or set ${this.spec(name).env ?? `SCRIPWIRE_${name.toUpperCase().replace(/-/g, "_")}`})`);
    return v;
  }

  bool(name: string): boolean {
    const v = this.get(name);
    return v === "true" || v === "1" || v === "yes";
  }

  int(name: string): number | undefined {
    const v = this.get(name);
    if (v === undefined) return undefined;
    if (!/^[0-9]+$/.test(v)) throw new UsageError(`--${name} must be a non-negative integer, got ${v}`);
    return Number(v);
  }

  get json(): boolean {
    return this.args.flags.get("json") === true || this.args.flags.get("json") === "true";
  }

  get help(): boolean {
    return this.args.flags.has("help");
  }

  /** The --config file (or SCRIPWIRE_CONFIG), for commands whose config file is more than flag defaults. */
  get configPath(): string | undefined {
    return (this.args.flags.get("config") as string | undefined) ?? this.env.SCRIPWIRE_CONFIG;
  }

  get positionals(): string[] {
    return this.args.positionals;
  }
}

export function helpText(usage: string, summary: string, specs: OptionSpec[]): string {
  const lines = [`Usage: ${usage}`, "", summary, ""];
  if (specs.length) {
    lines.push("Options:");
    for (const s of specs) {
      const env = s.env ?? `SCRIPWIRE_${s.name.toUpperCase().replace(/-/g, "_")}`;
      const def = s.default !== undefined ? ` (default: ${s.default})` : "";
      lines.push(`  ${s.short ? `-${s.short}, ` : ""}--${s.name}${s.boolean ? "" : " <value>"}`.padEnd(28) + `${s.description}${def} [env ${env}]`);
    }
  }
  lines.push("  --json".padEnd(28) + "machine-readable output");
  lines.push("  --config <file>".padEnd(28) + "JSON config file [env SCRIPWIRE_CONFIG]");
  lines.push("  --help".padEnd(28) + "show this help");
  return lines.join("\n");
}

/** Output for humans or, with --json, one JSON document on stdout. BigInts print as strings. */
export function print(json: boolean, value: unknown, human: string): void {
  if (json) process.stdout.write(JSON.stringify(value, (_k, v) => (typeof v === "bigint" ? v.toString() : v instanceof Uint8Array ? Buffer.from(v).toString("hex") : v)) + "\n");
  else process.stdout.write(human.endsWith("\n") ? human : human + "\n");
}

/** Progress goes to stderr so --json output stays parseable. */
export function progress(json: boolean, message: string): void {
  if (!json && process.stderr.isTTY) process.stderr.write(`\r\x1b[2K… ${message}`);
  else if (!json) process.stderr.write(`… ${message}\n`);
}

export function progressDone(json: boolean): void {
  if (!json && process.stderr.isTTY) process.stderr.write("\r\x1b[2K");
}

/** One `scripwire` command: its help and what it does. `run` returns the exit code. */
export interface Command {
  usage: string;
  summary: string;
  options: OptionSpec[];
  /** Words the command takes besides options (e.g. a URL); default 0. */
  positionals?: number;
  run(o: Options): Promise<number>;
}

/** Serve until SIGINT or SIGTERM, then close (every `serve` command). */
export async function waitForSignal(close: () => Promise<void>): Promise<void> {
  await new Promise<void>((resolve) => {
    const stop = () => {
      process.off("SIGINT", stop);
      process.off("SIGTERM", stop);
      resolve();
    };
    process.on("SIGINT", stop);
    process.on("SIGTERM", stop);
  });
  await close();
}
