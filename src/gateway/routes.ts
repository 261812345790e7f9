/**
 * Route matching: first route (in config order) whose host and path pattern
 * match wins; inside it, a free path means "no payment". Matching runs on the
 * normalised key (path.ts), so case and trailing-slash variants of a priced
 * path are priced too. Pure functions.
 */
import type { GatewayRoute, PathPattern } from "./config.js";
import { isRefusal, normalizeHost, normalizeTarget } from "./path.js";

export function pathMatches(p: PathPattern, key: string): boolean {
  if (!p.prefix) return key === p.key;
  if (p.key === "/") return true;
  return key === p.key || key.startsWith(p.key + "/");
}

export function hostMatches(pattern: string, host: string): boolean {
  if (pattern === "*") return true;
  if (pattern.startsWith("*.")) return host.endsWith(pattern.slice(1)) && host.length > pattern.length - 1;
  return host === pattern;
}

export interface RouteMatch {
  route: GatewayRoute;
  /** The path is one of the route's free paths. */
  free: boolean;
}

export function matchRoute(routes: readonly GatewayRoute[], host: string, key: string): RouteMatch | undefined {
  for (const route of routes) {
    if (!hostMatches(route.host, host) || !pathMatches(route.path, key)) continue;
    return { route, free: route.free.some((f) => pathMatches(f, key)) };
  }
  return undefined;
}

/**
 * The item an offer and a receipt name for a request: the request URL in
 * canonical form, `scheme://authority/path` (no query: a route is priced by
 * path, and a receipt covers its whole route anyway).
 */
export function itemUrl(scheme: "http" | "https", authority: string, path: string): string {
  return `${scheme}://${authority}${path}`;
}

/**
 * Parses an item URL back into host and normalised path; undefined when it
 * is not an absolute http(s) URL or not in canonical form (so two spellings
 * of one item can never both be signed).
 */
export function parseItemUrl(item: string): { host: string; authority: string; path: string; key: string } | undefined {
  const m = /^(https?):\/\/([^/?#]+)(\/[^?#]*)$/.exec(item);
  if (!m) return undefined;
  const h = normalizeHost(m[2]);
  if (!h || h.authority !== m[2]) return undefined;
  const n = normalizeTarget(m[3]!);
  if (isRefusal(n) || n.path !== m[3]) return undefined;
  return { host: h.host, authority: h.authority, path: n.path, key: n.key };
}
