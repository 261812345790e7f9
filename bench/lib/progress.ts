/**
 * Progress on stderr: one line per step, with elapsed time since start, so
 * stdout carries only the final table (pipe-friendly) and a CI log shows
 * where the minutes went.
 */
const started = Date.now();
const tty = process.stderr.isTTY === true;
let live = false;

function stamp(): string {
  const s = (Date.now() - started) / 1000;
  return `[${s.toFixed(1).padStart(6)}s]`;
}

/** A finished step: printed on its own line. */
export function step(msg: string): void {
  if (live) process.stderr.write("\r\x1b[2K");
  live = false;
  process.stderr.write(`${stamp()} ${msg}\n`);
}

/** A transient status (overwritten in a terminal, throttled to one line per second otherwise). */
let lastPlain = 0;
export function status(msg: string): void {
  if (tty) {
    process.stderr.write(`\r\x1b[2K${stamp()} ${msg}`);
    live = true;
  } else if (Date.now() - lastPlain >= 1000) {
    lastPlain = Date.now();
    process.stderr.write(`${stamp()} ${msg}\n`);
  }
}

export function elapsedSeconds(): number {
  return (Date.now() - started) / 1000;
}
