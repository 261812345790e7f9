/**
 * R1/R2 registration crypto (docs/canonical-encoding.md §7): KUcenter[KS]
 * and KS[Custom_Secret]. Round trips, and every way a sealed value can be
 * wrong (other key, any altered byte, other wallet or customer id, wrong
 * length) must throw, never return bytes.
 */
import test from "ava";
import { x25519 } from "@noble/curves/ed25519.js";
import {
  CUSTOM_SECRET_BYTES,
  ENCRYPTED_CUSTOM_SECRET_BYTES,
  SEALED_SESSION_KEY_BYTES,
  SESSION_KEY_BYTES,
  centerPublicKey,
  decryptCustomSecret,
  encryptCustomSecret,
  generateCenterKeyPair,
  openSessionKey,
  sealSessionKey,
  type CenterKeyPair,
} from "../src/crypto/registration.js";

const seq = (start: number, n: number) => Uint8Array.from({ length: n }, (_, i) => (start + i) & 0xff);
const WALLET = "3f1c9a7e5b2d4c6e8f0a1b2c3d4e5f60";
const CUSTOMER = { secretId: 1, serialNumber: 42n };
const center: CenterKeyPair = (() => {
  const secretKey = seq(0x80, 32);
  return { secretKey, publicKey: x25519.getPublicKey(secretKey) };
})();
const KS = seq(0xc0, 32);
const CUSTOM_SECRET = seq(0x10, 32);

test("layout constants match the spec (104 and 72 bytes)", (t) => {
  t.is(SESSION_KEY_BYTES, 32);
  t.is(CUSTOM_SECRET_BYTES, 32);
  t.is(SEALED_SESSION_KEY_BYTES, 104);
  t.is(ENCRYPTED_CUSTOM_SECRET_BYTES, 72);
});

test("center key pair: generated keys are consistent and distinct", (t) => {
  const a = generateCenterKeyPair();
  const b = generateCenterKeyPair();
  t.is(a.publicKey.length, 32);
  t.deepEqual(centerPublicKey(a.secretKey), a.publicKey);
  t.notDeepEqual(a.secretKey, b.secretKey);
});

// ---------------------------------------------------------------------- R1

test("R1 seal/open round trip, with random and with fixed ephemeral key and nonce", (t) => {
  const sealed = sealSessionKey(center.publicKey, WALLET, KS);
  t.is(sealed.length, SEALED_SESSION_KEY_BYTES);
  t.deepEqual(openSessionKey(center, WALLET, sealed), KS);

  const eph = seq(0xa0, 32);
  const nonce = seq(0xe0, 24);
  const fixed = sealSessionKey(center.publicKey, WALLET, KS, eph, nonce);
  t.deepEqual(fixed.subarray(0, 32), x25519.getPublicKey(eph), "bytes 0..32 are the ephemeral public key");
  t.deepEqual(fixed.subarray(32, 56), nonce, "bytes 32..56 are the nonce");
  t.deepEqual(openSessionKey(center, WALLET, fixed), KS);
  t.deepEqual(sealSessionKey(center.publicKey, WALLET, KS, eph, nonce), fixed, "deterministic given ephemeral key and nonce");

  for (const walletId of ["", "지갑-🎉", "x".repeat(1000)]) {
    t.deepEqual(openSessionKey(center, walletId, sealSessionKey(center.publicKey, walletId, KS)), KS, `walletId ${walletId.slice(0, 10)}`);
  }
});

test("R1 uses a fresh ephemeral key and nonce per seal", (t) => {
  const a = sealSessionKey(center.publicKey, WALLET, KS);
  const b = sealSessionKey(center.publicKey, WALLET, KS);
  t.notDeepEqual(a.subarray(0, 32), b.subarray(0, 32));
  t.notDeepEqual(a.subarray(32, 56), b.subarray(32, 56));
  t.notDeepEqual(a.subarray(56), b.subarray(56));
});

test("R1 open refuses another center key", (t) => {
  const sealed = sealSessionKey(center.publicKey, WALLET, KS);
  const other = generateCenterKeyPair();
  t.throws(() => openSessionKey(other, WALLET, sealed));
  // Right secret key but a wrong public key in the pair: the HKDF salt differs.
  t.throws(() => openSessionKey({ secretKey: center.secretKey, publicKey: other.publicKey }, WALLET, sealed));
});

test("R1 open refuses an altered byte in every position", (t) => {
  const sealed = sealSessionKey(center.publicKey, WALLET, KS, seq(0xa0, 32), seq(0xe0, 24));
  const accepted: number[] = [];
  for (let i = 0; i < sealed.length; i++) {
    for (const xor of [0x01, 0x80]) {
      const bad = sealed.slice();
      bad[i]! ^= xor;
      try {
        openSessionKey(center, WALLET, bad);
        accepted.push(i);
      } catch {
        // refused, as it must be
      }
    }
  }
  t.deepEqual(accepted, [], "positions whose alteration was accepted");
});

test("R1 open refuses another walletId", (t) => {
  const sealed = sealSessionKey(center.publicKey, WALLET, KS);
  for (const other of ["", WALLET.toUpperCase(), WALLET + " ", WALLET.slice(1), "other-wallet"]) {
    t.throws(() => openSessionKey(center, other, sealed), undefined, `walletId ${JSON.stringify(other)}`);
  }
});

test("R1 refuses wrong lengths with a named RangeError", (t) => {
  const sealed = sealSessionKey(center.publicKey, WALLET, KS);
  for (const len of [0, 1, 56, 103, 105, 200]) {
    const bad = new Uint8Array(len);
    bad.set(sealed.subarray(0, Math.min(len, sealed.length)));
    t.throws(() => openSessionKey(center, WALLET, bad), { instanceOf: RangeError, message: /sealed_session_key.*104/ }, `length ${len}`);
  }
  t.throws(() => sealSessionKey(new Uint8Array(31), WALLET, KS), { instanceOf: RangeError, message: /centerPub/ });
  t.throws(() => sealSessionKey(center.publicKey, WALLET, new Uint8Array(16)), { instanceOf: RangeError, message: /sessionKey/ });
  t.throws(() => sealSessionKey(center.publicKey, WALLET, KS, seq(0xa0, 32), new Uint8Array(12)), undefined, "12-byte nonce");
});

test("R1 open refuses a low-order ephemeral key (all-zero shared secret)", (t) => {
  const sealed = sealSessionKey(center.publicKey, WALLET, KS);
  const bad = sealed.slice();
  bad.fill(0, 0, 32); // u = 0: X25519 gives the all-zero output
  t.throws(() => openSessionKey(center, WALLET, bad));
  const one = sealed.slice();
  one.fill(0, 0, 32);
  one[0] = 1; // u = 1, order 1
  t.throws(() => openSessionKey(center, WALLET, one));
});

// ---------------------------------------------------------------------- R2

test("R2 encrypt/decrypt round trip", (t) => {
  const blob = encryptCustomSecret(KS, WALLET, CUSTOMER, CUSTOM_SECRET);
  t.is(blob.length, ENCRYPTED_CUSTOM_SECRET_BYTES);
  t.deepEqual(decryptCustomSecret(KS, WALLET, CUSTOMER, blob), CUSTOM_SECRET);

  const nonce = seq(0x33, 24);
  const fixed = encryptCustomSecret(KS, WALLET, CUSTOMER, CUSTOM_SECRET, nonce);
  t.deepEqual(fixed.subarray(0, 24), nonce, "bytes 0..24 are the nonce");
  t.deepEqual(encryptCustomSecret(KS, WALLET, CUSTOMER, CUSTOM_SECRET, nonce), fixed, "deterministic given the nonce");
  t.deepEqual(decryptCustomSecret(KS, WALLET, CUSTOMER, fixed), CUSTOM_SECRET);

  const extremes = { secretId: 0xffff_ffff, serialNumber: (1n << 64n) - 1n };
  t.deepEqual(decryptCustomSecret(KS, "", extremes, encryptCustomSecret(KS, "", extremes, CUSTOM_SECRET)), CUSTOM_SECRET);

  const a = encryptCustomSecret(KS, WALLET, CUSTOMER, CUSTOM_SECRET);
  t.notDeepEqual(a.subarray(0, 24), blob.subarray(0, 24), "a fresh nonce per encryption");
});

test("R2 decrypt refuses an altered byte in every position", (t) => {
  const blob = encryptCustomSecret(KS, WALLET, CUSTOMER, CUSTOM_SECRET, seq(0x33, 24));
  const accepted: number[] = [];
  for (let i = 0; i < blob.length; i++) {
    for (const xor of [0x01, 0x80]) {
      const bad = blob.slice();
      bad[i]! ^= xor;
      try {
        decryptCustomSecret(KS, WALLET, CUSTOMER, bad);
        accepted.push(i);
      } catch {
        // refused
      }
    }
  }
  t.deepEqual(accepted, [], "positions whose alteration was accepted");
});

test("R2 decrypt refuses another session key, walletId or customer id", (t) => {
  const blob = encryptCustomSecret(KS, WALLET, CUSTOMER, CUSTOM_SECRET);
  const otherKs = KS.slice();
  otherKs[31]! ^= 1;
  t.throws(() => decryptCustomSecret(otherKs, WALLET, CUSTOMER, blob), undefined, "other KS");
  t.throws(() => decryptCustomSecret(KS, WALLET + "0", CUSTOMER, blob), undefined, "other walletId");
  t.throws(() => decryptCustomSecret(KS, "", CUSTOMER, blob), undefined, "empty walletId");
  t.throws(() => decryptCustomSecret(KS, WALLET, { secretId: 2, serialNumber: 42n }, blob), undefined, "other secretId");
  t.throws(() => decryptCustomSecret(KS, WALLET, { secretId: 1, serialNumber: 43n }, blob), undefined, "other serial");
  // A blob made for the R1 domain can't be replayed as R2, and vice versa: different AAD tags.
  const sealed = sealSessionKey(center.publicKey, WALLET, KS);
  t.throws(() => decryptCustomSecret(KS, WALLET, CUSTOMER, sealed.subarray(32)), undefined, "R1 bytes as R2");
});

test("R2 refuses wrong lengths with a named RangeError", (t) => {
  const blob = encryptCustomSecret(KS, WALLET, CUSTOMER, CUSTOM_SECRET);
  for (const len of [0, 24, 71, 73, 104]) {
    const bad = new Uint8Array(len);
    bad.set(blob.subarray(0, Math.min(len, blob.length)));
    t.throws(() => decryptCustomSecret(KS, WALLET, CUSTOMER, bad), { instanceOf: RangeError, message: /encrypted_custom_secret.*72/ }, `length ${len}`);
  }
  for (const len of [0, 16, 31, 33, 64]) {
    t.throws(() => encryptCustomSecret(KS, WALLET, CUSTOMER, new Uint8Array(len)), { instanceOf: RangeError, message: /customSecret/ }, `secret length ${len}`);
  }
  t.throws(() => encryptCustomSecret(new Uint8Array(16), WALLET, CUSTOMER, CUSTOM_SECRET), undefined, "16-byte KS");
  t.throws(() => encryptCustomSecret(KS, WALLET, CUSTOMER, CUSTOM_SECRET, new Uint8Array(12)), undefined, "12-byte nonce");
  t.throws(() => encryptCustomSecret(KS, WALLET, { secretId: -1, serialNumber: 0n }, CUSTOM_SECRET), { instanceOf: RangeError });
});

test("full registration: wallet seals KS, center opens it and returns KS[Custom_Secret], wallet decrypts", (t) => {
  const centerKeys = generateCenterKeyPair();
  const ks = crypto.getRandomValues(new Uint8Array(32));
  const sealed = sealSessionKey(centerKeys.publicKey, WALLET, ks); // R1, wallet
  const centerKs = openSessionKey(centerKeys, WALLET, sealed); // center
  const blob = encryptCustomSecret(centerKs, WALLET, CUSTOMER, CUSTOM_SECRET); // R2, center
  t.deepEqual(decryptCustomSecret(ks, WALLET, CUSTOMER, blob), CUSTOM_SECRET); // wallet
});
