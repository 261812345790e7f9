/**
 * Request-target normalisation for the 402 gateway. The gateway prices the
 * path it forwards, so the path is first brought to one canonical form and
 * that exact form is both matched against the routes and sent upstream:
 * whatever trick a client plays (`%2e%2e`, `//`, `/./`, mixed case, a
 * trailing slash), the upstream never sees a path the gateway did not price.
 * What cannot be made canonical safely is refused (400), never guessed at.
 *
 * Pure functions: no I/O. Grammar and rationale: docs/gateway.md.
 */

/** Longest request target accepted, in characters (path and query). Longer ones get 414. */
export const TARGET_CHARS_MAX = 8192;

/** Why a request target was refused; the gateway answers 400 (414 for TARGET_TOO_LONG) with this reason. */
export type PathRefusal =
  | "TARGET_TOO_LONG"
  | "NOT_ORIGIN_FORM"
  | "BAD_CHARACTER"
  | "BAD_PERCENT_ENCODING"
  | "ENCODED_SEPARATOR"
  | "DOUBLE_ENCODED"
  | "PATH_PARAMETER"
  | "ESCAPES_ROOT"
  | "TRAILING_DOT_OR_SPACE";

export interface NormalizedTarget {
  /** Canonical path: unreserved characters decoded, other escapes upper-case, no empty, `.` or `..` segments. Case is kept. */
  path: string;
  /** The raw query including its leading `?`, or "" (it is never priced, only forwarded). */
  query: string;
  /** Route-matching key: the path lower-cased and without a trailing slash ("/" stays "/"). */
  key: string;
}

const HEX = /^[0-9A-Fa-f]{2}$/;

function isUnreserved(c: number): boolean {
  return (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39) || c === 0x2d || c === 0x2e || c === 0x5f || c === 0x7e;
}

/**
 * Normalises an origin-form request target (`/a/b?q`). Returns the canonical
 * form or the reason it was refused.
 *
 * Refused, because upstream servers disagree on what they mean: a backslash
 * or an encoded `/`, `\` or NUL (Windows and some frameworks treat them as
 * separators), `;` path parameters (Tomcat and Jetty strip them before
 * routing, so `/paid;x/a` would route like `/paid/a`), `%25` followed by hex
 * (servers that decode twice), raw control, space or non-ASCII bytes, a
 * `..` above the root, and a segment ending in `.` or an encoded space (IIS
 * and Windows file serving strip them, so `/paid./a` would be served as
 * `/paid/a` while matching no priced route here).
 */
export function normalizeTarget(target: string): NormalizedTarget | PathRefusal {
  if (target.length > TARGET_CHARS_MAX) return "TARGET_TOO_LONG";
  if (!target.startsWith("/")) return "NOT_ORIGIN_FORM";
  const q = target.indexOf("?");
  const rawPath = q < 0 ? target : target.slice(0, q);
  const query = q < 0 ? "" : target.slice(q);
  for (let i = 0; i < query.length; i++) {
    const c = query.charCodeAt(i);
    if (c <= 0x20 || c >= 0x7f || c === 0x23) return "BAD_CHARACTER";
  }
  let decoded = "";
  for (let i = 0; i < rawPath.length; i++) {
    const c = rawPath.charCodeAt(i);
    if (c <= 0x20 || c >= 0x7f || c === 0x5c || c === 0x23) return "BAD_CHARACTER";
    if (c === 0x3b) return "PATH_PARAMETER";
    if (c !== 0x25) {
      decoded += rawPath[i];
      continue;
    }
    const hex = rawPath.slice(i + 1, i + 3);
    if (!HEX.test(hex)) return "BAD_PERCENT_ENCODING";
    const b = parseInt(hex, 16);
    i += 2;
    if (b === 0x2f || b === 0x5c || b < 0x20 || b === 0x7f) return "ENCODED_SEPARATOR";
    if (b === 0x25 && HEX.test(rawPath.slice(i + 1, i + 3))) return "DOUBLE_ENCODED";
    if (b === 0x3b) return "PATH_PARAMETER";
    decoded += isUnreserved(b) ? String.fromCharCode(b) : `%${hex.toUpperCase()}`;
  }
  const out: string[] = [];
  for (const seg of decoded.split("/")) {
    if (seg === "" || seg === ".") continue;
    if (seg === "..") {
      if (out.length === 0) return "ESCAPES_ROOT";
      out.pop();
      continue;
    }
    if (seg.endsWith(".") || seg.endsWith("%20")) return "TRAILING_DOT_OR_SPACE";
    out.push(seg);
  }
  // A trailing slash is kept for the upstream (directory index vs file) but
  // never changes which route a path belongs to.
  const trailing = out.length > 0 && /\/(\.{0,2})$/.test(decoded);
  const path = "/" + out.join("/") + (trailing ? "/" : "");
  const key = ("/" + out.join("/")).toLowerCase();
  return { path, query, key };
}

/** Whether a normalisation result is a refusal. */
export function isRefusal(r: NormalizedTarget | PathRefusal): r is PathRefusal {
  return typeof r === "string";
}

/**
 * The host a request names (`Host` or `:authority`), lower-cased, without
 * port and trailing dot; undefined when it is not a plausible host name or
 * address (then the request is refused).
 */
export function normalizeHost(authority: string | undefined): { host: string; authority: string } | undefined {
  if (!authority || authority.length > 255) return undefined;
  const a = authority.toLowerCase();
  const m = /^(\[[0-9a-f:.]+\]|[a-z0-9._-]+?)\.?(?::([0-9]{1,5}))?$/.exec(a);
  if (!m) return undefined;
  const host = m[1]!;
  return { host, authority: m[2] ? `${host}:${m[2]}` : host };
}
