/**
 * Ledger files are private to the user running the center, whatever the
 * umask: the directory 0700, the database file 0600. SQLite creates the -wal
 * and -shm files with the database file's own mode (it fchmods them to match),
 * so creating the database file ourselves, 0600, before SQLite opens it makes
 * all three private.
 */
import { chmodSync, closeSync, existsSync, mkdirSync, openSync } from "node:fs";
import { dirname } from "node:path";

export function preparePrivateDatabaseFile(path: string): void {
  if (path === ":memory:" || path.startsWith("file:")) return;
  const dir = dirname(path);
  if (!existsSync(dir)) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    chmodSync(dir, 0o700);
  }
  if (!existsSync(path)) {
    closeSync(openSync(path, "a", 0o600));
    chmodSync(path, 0o600);
  }
}
