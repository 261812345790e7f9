/**
 * Command-line plumbing shared by every `scripwire` command: flags, then
 * environment variables (SCRIPWIRE_<NAME>), then a JSON config file
 * (--config or SCRIPWIRE_CONFIG), then defaults — in that order of precedence.
 */
import { readFileSync } from "node:fs";

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
}

export interface ParsedArgs {
  positionals: string[];
  flags: Map<string, string | true>;
}

export function parseArgs(argv: string[]): ParsedArgs {
  const positionals: string[] = [];
  const flags = new Map<string, string | true>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === "--") {
      positionals.push(...argv.slice(i + 1));
      break;
    }
    if (a.startsWith("--")) {
      const eq = a.indexOf("=");
      if (eq > 0) flags.set(a.slice(2, eq), a.slice(eq + 1));
      else if (i + 1 < argv.length && !argv[i + 1]!.startsWith("--")) flags.set(a.slice(2), argv[++i]!);
      else flags.set(a.slice(2), true);
    } else if (a === "-h") {
      flags.set("help", true);
    } else {
      positionals.push(a);
    }
  }
  return { positionals, flags };
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
      lines.push(`  --${s.name}${s.boolean ? "" : " <value>"}`.padEnd(28) + `${s.description}${def} [env ${env}]`);
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
  run(o: Options): Promise<number>;
}
