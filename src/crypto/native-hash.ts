/**
 * node:crypto (OpenSSL) behind the HashBackend seam of ./hash.ts. Imported
 * only by Node entry points (CLI, servers, bench), never by the browser
 * bundle. The digests are returned as plain Uint8Array views: callers never
 * see a Buffer, whose `slice` shares memory where Uint8Array's copies.
 */
import { createHash, createHmac } from "node:crypto";
import { useHashBackend, type HashBackend } from "./hash.js";

function view(b: Buffer): Uint8Array {
  return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
}

export const nativeHashes: HashBackend = {
  name: "node:crypto",
  hmacSha256: (key, input) => view(createHmac("sha256", key).update(input).digest()),
  sha256: (...parts) => {
    const h = createHash("sha256");
    for (const p of parts) h.update(p);
    return view(h.digest());
  },
};

/** Make this process hash with OpenSSL. Idempotent. */
export function useNativeHashes(): void {
  useHashBackend(nativeHashes);
}
