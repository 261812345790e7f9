/**
 * PostgreSQL for tests. The URL comes from SCRIPWIRE_TEST_PG_URL (CI sets it
 * after `.ci/postgres.sh` starts a server); each test gets a throwaway
 * database of its own, so tests never see each other's rows.
 */
import type { ExecutionContext } from "ava";
import { randomBytes } from "node:crypto";
import pg from "pg";

export const PG_URL_ENV = "SCRIPWIRE_TEST_PG_URL";
export const PG_SKIP_REASON = `${PG_URL_ENV} not set: PostgreSQL contract tests skipped; .ci/run sets it`;

/** The test server's URL, or undefined when PostgreSQL tests should not run. */
export function pgTestUrl(): string | undefined {
  const url = process.env[PG_URL_ENV]?.trim();
  return url ? url : undefined;
}

/**
 * Returns the URL, or logs why PostgreSQL is not tested and returns
 * undefined. ava 7 cannot skip a test once it runs, so a test that gets
 * undefined should return (and pass) after this has logged the reason; a
 * file that registers whole suites should check pgTestUrl() at load time.
 */
export function pgUrlOrSkip(t: ExecutionContext): string | undefined {
  const url = pgTestUrl();
  if (!url) t.log(PG_SKIP_REASON);
  return url;
}

export interface FreshDatabase {
  /** URL of the new, empty database (same server, user and password). */
  url: string;
  name: string;
  /** Drops the database, closing any connection still open to it. */
  drop(): Promise<void>;
}

/** Creates an empty database with a random name; the role in `url` needs CREATEDB. */
export async function freshPgDatabase(url: string): Promise<FreshDatabase> {
  const name = `scripwire_test_${randomBytes(8).toString("hex")}`;
  await admin(url, `CREATE DATABASE ${name}`);
  const u = new URL(url);
  u.pathname = `/${name}`;
  return {
    url: u.toString(),
    name,
    drop: () => dropDatabase(url, name),
  };
}

/** Bounded: a database that cannot be dropped within ~10 s is reported. */
const DROP_ATTEMPTS_MAX = 50;

/**
 * DROP ... WITH (FORCE) terminates the test's leftover sessions, but it
 * refuses (42501) while a backend it may not signal is attached, such as an
 * autovacuum worker that just started on the new database or a session
 * still authenticating; and without the privilege it reports 55006 (in use).
 * Both pass within moments, so retry.
 */
export async function dropDatabase(url: string, name: string): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await admin(url, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      return;
    } catch (e) {
      const code = (e as { code?: string }).code;
      if ((code !== "42501" && code !== "55006") || attempt >= DROP_ATTEMPTS_MAX) throw e;
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}

async function admin(url: string, sql: string): Promise<void> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 10_000 });
  await client.connect();
  try {
    await client.query(sql);
  } finally {
    await client.end();
  }
}

/** One connection for raw SQL against a test database (e.g. to corrupt it on purpose). */
export async function pgRawClient(url: string): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 10_000 });
  await client.connect();
  return client;
}
