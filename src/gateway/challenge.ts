/**
 * The HTTP side of a Scripwire payment: the `WWW-Authenticate: Scrip`
 * challenge a 402 carries and the `Authorization: Scrip <receipt>` credential
 * of the paid retry. Grammar (docs/gateway.md), in RFC 9110 terms:
 *
 *   challenge  = "Scrip" 1*SP auth-param *( OWS "," OWS auth-param )
 *   auth-param = token "=" quoted-string
 *   credential = "Scrip" 1*SP token68      ; base64url of the protobuf Receipt
 *
 * Platform-neutral (no Buffer, no node:*): the Node wallet, the browser
 * paywall script and the gateway all use this file.
 */

/** What a client needs to pay: the PM2_1 payment information, announced over HTTP. */
export interface ScripChallenge {
  /** Human-readable name of the seller. */
  realm: string;
  /** The vendor id receipts must name. */
  vendor: string;
  /** Base URL of the SellerService that signs the offer (S1/S2). */
  seller: string;
  /** The request URL to buy (PM1_1 request_url), canonical form. */
  item: string;
  /** Price in the currency's smallest unit. */
  price: bigint;
  currency: string;
  /** Delivery method to ask for: VIEW or SAVE. */
  method: "VIEW" | "SAVE";
  /** The route a receipt for `item` opens (a receipt is a bearer credential for its route). */
  route: string;
  /** How long after payment the receipt is accepted, seconds. */
  lifetime: number;
  /** Set when a credential was presented and refused: why (UPPER_SNAKE, see docs/gateway.md). */
  reason?: string;
  /** The payment center whose browser wallet can pay (paywall pages). */
  center?: string;
}

/** Longest credential accepted, in characters: a receipt is ~200; this keeps garbage from costing anything. */
export const CREDENTIAL_CHARS_MAX = 1024;

function quote(v: string): string {
  return `"${v.replace(/[\\"]/g, (c) => `\\${c}`)}"`;
}

/** Formats the challenge; parameters in a fixed order so the header is byte-stable. */
export function formatChallenge(c: ScripChallenge): string {
  const params: [string, string][] = [
    ["realm", c.realm],
    ["vendor", c.vendor],
    ["seller", c.seller],
    ["item", c.item],
    ["price", c.price.toString()],
    ["currency", c.currency],
    ["method", c.method],
    ["route", c.route],
    ["lifetime", String(c.lifetime)],
  ];
  if (c.center) params.push(["center", c.center]);
  if (c.reason) params.push(["reason", c.reason]);
  return "Scrip " + params.map(([k, v]) => `${k}=${quote(v)}`).join(", ");
}

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+/;

/**
 * Parses the Scrip challenge out of a WWW-Authenticate value, which may hold
 * several challenges (`Basic realm="x", Scrip realm="y", ...`). Returns
 * undefined when there is none or it lacks a required parameter.
 */
export function parseChallenge(header: string | null | undefined): ScripChallenge | undefined {
  if (!header) return undefined;
  let s = header;
  let inScrip = false;
  const params = new Map<string, string>();
  while (s.length > 0) {
    s = s.replace(/^[\s,]+/, "");
    const t = TOKEN.exec(s);
    if (!t) break;
    const name = t[0];
    s = s.slice(name.length);
    const eq = /^\s*=\s*/.exec(s);
    if (!eq) {
      // A new scheme starts (possibly followed by a token68 we skip).
      if (inScrip) break;
      inScrip = name.toLowerCase() === "scrip";
      const t68 = /^\s+[A-Za-z0-9\-._~+/]+=*\s*(?=,|$)/.exec(s);
      if (t68 && !/=\s*"/.test(t68[0])) s = s.slice(t68[0].length);
      continue;
    }
    s = s.slice(eq[0].length);
    let value: string;
    if (s.startsWith('"')) {
      let i = 1;
      value = "";
      for (; i < s.length && s[i] !== '"'; i++) {
        if (s[i] === "\\" && i + 1 < s.length) i++;
        value += s[i];
      }
      if (i >= s.length) return undefined; // unterminated quoted-string
      s = s.slice(i + 1);
    } else {
      const v = TOKEN.exec(s);
      value = v ? v[0] : "";
      s = s.slice(value.length);
    }
    if (inScrip) params.set(name.toLowerCase(), value);
  }
  const get = (k: string) => params.get(k);
  const price = get("price");
  const lifetime = get("lifetime");
  const method = get("method");
  if (!get("vendor") || !get("seller") || !get("item") || !price || !/^[0-9]{1,19}$/.test(price) || !get("currency")) return undefined;
  if (method !== "VIEW" && method !== "SAVE") return undefined;
  return {
    realm: get("realm") ?? "",
    vendor: get("vendor")!,
    seller: get("seller")!,
    item: get("item")!,
    price: BigInt(price),
    currency: get("currency")!,
    method,
    route: get("route") ?? "",
    lifetime: lifetime && /^[0-9]{1,10}$/.test(lifetime) ? Number(lifetime) : 0,
    reason: get("reason"),
    center: get("center"),
  };
}

const B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/** base64url without padding (RFC 4648 §5). */
export function toBase64Url(b: Uint8Array): string {
  let out = "";
  let i = 0;
  for (; i + 2 < b.length; i += 3) {
    const n = (b[i]! << 16) | (b[i + 1]! << 8) | b[i + 2]!;
    out += B64URL[n >> 18]! + B64URL[(n >> 12) & 63]! + B64URL[(n >> 6) & 63]! + B64URL[n & 63]!;
  }
  if (i < b.length) {
    const n = (b[i]! << 16) | ((b[i + 1] ?? 0) << 8);
    out += B64URL[n >> 18]! + B64URL[(n >> 12) & 63]!;
    if (i + 1 < b.length) out += B64URL[(n >> 6) & 63]!;
  }
  return out;
}

// Character -> 6-bit value, -1 for anything outside the base64url alphabet.
const B64URL_VALUE = new Int8Array(128).fill(-1);
for (let i = 0; i < B64URL.length; i++) B64URL_VALUE[B64URL.charCodeAt(i)] = i;

/** Strict base64url decoding (padding optional); undefined on any other character or an impossible length. */
export function fromBase64Url(s: string): Uint8Array | undefined {
  let len = s.length;
  if (len > 0 && s.charCodeAt(len - 1) === 0x3d) len--;
  if (len > 0 && s.charCodeAt(len - 1) === 0x3d) len--;
  if (len % 4 === 1) return undefined;
  const out = new Uint8Array((len * 3) >> 2);
  let o = 0;
  let acc = 0;
  let bits = 0;
  for (let i = 0; i < len; i++) {
    const c = s.charCodeAt(i);
    const v = c < 128 ? B64URL_VALUE[c]! : -1;
    if (v < 0) return undefined;
    acc = ((acc << 6) | v) & 0xffffff;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[o++] = (acc >> bits) & 0xff;
    }
  }
  return out;
}

/** `Authorization` value for a receipt's protobuf bytes. */
export function formatCredential(receiptBytes: Uint8Array): string {
  return `Scrip ${toBase64Url(receiptBytes)}`;
}

/** The token68 of an `Authorization: Scrip ...` value; undefined for another scheme or a malformed value. */
export function credentialToken(authorization: string | undefined): string | undefined | "MALFORMED" {
  if (!authorization) return undefined;
  const m = /^\s*([^\s]+)\s*(.*)$/s.exec(authorization);
  if (!m || m[1]!.toLowerCase() !== "scrip") return undefined;
  const token = m[2]!.trim();
  if (token.length === 0 || token.length > CREDENTIAL_CHARS_MAX || /\s/.test(token)) return "MALFORMED";
  return token;
}

/** Whether an Authorization value uses the Scrip scheme (and so must never reach the upstream). */
export function isScripAuthorization(authorization: string | undefined): boolean {
  return credentialToken(authorization) !== undefined;
}
