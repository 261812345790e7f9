"""Scripwire canonical encoding, MACs and registration sealing, in Python.

An independent implementation of docs/canonical-encoding.md (v1). It shares
no code with the TypeScript reference: every byte is produced here from the
byte-level spec with the standard library (struct, hashlib, hmac) and, for
registration only, python3-cryptography (X25519, HKDF-SHA-256, the IETF
ChaCha20-Poly1305 AEAD). XChaCha20-Poly1305 is built on top of that with a
pure-Python HChaCha20 (draft-irtf-cfrg-xchacha-03 section 2.2).

Inputs may be either
  * protobuf messages generated from proto/scripwire/v1 (field names as in
    the proto), or
  * plain dicts shaped like the inputs of testdata/vectors.json: proto field
    names, integers as ints or decimal strings, bytes as `<field>_hex`
    strings (or `<field>` bytes), None for an absent nested message.
An absent nested message encodes exactly like one with every field at its
default (doc section 2).
"""

from __future__ import annotations

import hashlib
import hmac as _hmac
import os
import re
import struct
from typing import Any, Optional

__all__ = [
    "TAG_CERTIFICATE", "TAG_OFFER", "TAG_RECEIPT", "TAG_SETTLEMENTS", "TAG_CUSTOM_SECRET",
    "TAG_R1", "TAG_R2", "TAG_MESSAGE_PREFIX",
    "HMAC_SHA256", "SHA256_SUFFIX", "MAC_BYTES",
    "Writer", "mac", "verify_mac",
    "certificate_input", "message_input", "offer_input", "receipt_input",
    "settlements_input", "custom_secret_input",
    "compute_certificate", "message_hash", "offer_mac", "receipt_mac", "settlements_mac",
    "derive_custom_secret",
    "hchacha20", "xchacha20poly1305_encrypt", "xchacha20poly1305_decrypt",
    "seal_session_key", "open_session_key", "encrypt_custom_secret", "decrypt_custom_secret",
    "seal_aad", "custom_secret_aad", "x25519_public_key",
]

# ---------------------------------------------------------------- section 3: domain tags

TAG_CERTIFICATE = "scripwire/v1/certificate"
TAG_OFFER = "scripwire/v1/offer"
TAG_RECEIPT = "scripwire/v1/receipt"
TAG_SETTLEMENTS = "scripwire/v1/settlements"
TAG_CUSTOM_SECRET = "scripwire/v1/custom-secret"
TAG_R1 = "scripwire/v1/R1"
TAG_R2 = "scripwire/v1/R2"
TAG_MESSAGE_PREFIX = "scripwire/v1/msg/"
TAG_SYNC_REQUEST = "scripwire/v1/sync-request"
TAG_SYNC_REPLY = "scripwire/v1/sync-reply"
TAG_REFUND = "scripwire/v1/refund"
TAG_RECOVERY_CODE = "scripwire/v1/recovery-code"

# Codes allowed in a message tag (section 3). Anything else is refused so a
# typo can't silently produce a hash no center will ever verify.
MESSAGE_CODES = frozenset(
    "GM4_1 GM4_2 GM5_1 GM5_2 GM5_3 GM5_4 GM6_1 GM6_2 GM6_3 GM7_1 "
    "PM4_1 PM4_2 PM5_1 PM5_2 PM5_3 PM6_1 PM6_2 PM6_3 PM7_1 RN1 RN2 RD1 RD2".split()
)

# ---------------------------------------------------------------- section 4: algorithms

HMAC_SHA256 = 1      # HASH_ALGORITHM_HMAC_SHA256
SHA256_SUFFIX = 2    # HASH_ALGORITHM_SHA256_SUFFIX
MAC_BYTES = 32

U32_MAX = (1 << 32) - 1
U64_MAX = (1 << 64) - 1
I64_MIN = -(1 << 63)
I64_MAX = (1 << 63) - 1


_DECIMAL = re.compile(r"-?[0-9]+")


class CanonicalError(ValueError):
    """A value that has no canonical encoding (out of range, invalid UTF-8...)."""


class UnsupportedAlgorithm(CanonicalError):
    pass


# ---------------------------------------------------------------- section 1: primitives

class Writer:
    """Append-only canonical byte builder (big-endian, fixed width, no varints)."""

    __slots__ = ("_parts",)

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    @staticmethod
    def _int(v: Any, what: str) -> int:
        if isinstance(v, bool):
            raise CanonicalError(f"{what}: a bool is not an integer")
        if isinstance(v, int):
            return v
        if isinstance(v, str) and _DECIMAL.fullmatch(v):
            return int(v, 10)
        # protobuf enum values come back as plain ints; anything else is a bug
        raise CanonicalError(f"{what}: not an integer: {v!r}")

    def u8(self, v: Any) -> "Writer":
        n = self._int(v, "u8")
        if not 0 <= n <= 0xFF:
            raise CanonicalError(f"u8 out of range: {n}")
        self._parts.append(bytes((n,)))
        return self

    def u32(self, v: Any) -> "Writer":
        n = self._int(v, "u32")
        if not 0 <= n <= U32_MAX:
            raise CanonicalError(f"u32 out of range: {n}")
        self._parts.append(struct.pack(">I", n))
        return self

    def u64(self, v: Any) -> "Writer":
        n = self._int(v, "u64")
        if not 0 <= n <= U64_MAX:
            raise CanonicalError(f"u64 out of range: {n}")
        self._parts.append(struct.pack(">Q", n))
        return self

    def i64(self, v: Any) -> "Writer":
        n = self._int(v, "i64")
        if not I64_MIN <= n <= I64_MAX:
            raise CanonicalError(f"i64 out of range: {n}")
        self._parts.append(struct.pack(">q", n))
        return self

    def bytes(self, b: Any) -> "Writer":
        if b is None:
            b = b""
        if not isinstance(b, (bytes, bytearray, memoryview)):
            raise CanonicalError(f"bytes: expected bytes, got {type(b).__name__}")
        b = bytes(b)
        self.u32(len(b))
        self._parts.append(b)
        return self

    def str(self, s: Any) -> "Writer":
        if s is None:
            s = ""
        if not isinstance(s, str):
            raise CanonicalError(f"str: expected str, got {type(s).__name__}")
        try:
            # strict: a lone surrogate is invalid Unicode and is refused, never replaced
            raw = s.encode("utf-8", "strict")
        except UnicodeEncodeError as e:
            raise CanonicalError(f"str: not valid Unicode: {e}") from None
        self.u32(len(raw))
        self._parts.append(raw)
        return self

    def enum(self, v: Any) -> "Writer":
        n = self._int(v if v is not None else 0, "enum")
        if n < 0:
            raise CanonicalError(f"negative enum value {n} is not encodable")
        return self.u32(n)

    def raw(self, b: bytes) -> "Writer":
        self._parts.append(bytes(b))
        return self

    def finish(self) -> bytes:
        return b"".join(self._parts)


# ---------------------------------------------------------------- field access

def _get(obj: Any, name: str) -> Any:
    """Field `name` of a dict (vector input) or protobuf message; None if absent."""
    if obj is None:
        return None
    if isinstance(obj, dict):
        if name in obj:
            return obj[name]
        hx = obj.get(name + "_hex")
        if hx is not None:
            return bytes.fromhex(hx)
        return None
    return getattr(obj, name)


def _int(obj: Any, name: str) -> int:
    v = _get(obj, name)
    return 0 if v is None else Writer._int(v, name)


def _str(obj: Any, name: str) -> str:
    v = _get(obj, name)
    return "" if v is None else v


def _bytes(obj: Any, name: str) -> bytes:
    v = _get(obj, name)
    return b"" if v is None else bytes(v)


# ---------------------------------------------------------------- section 2: structures

def write_server(w: Writer, s: Any) -> None:
    """ServerType: dns_name str, ip_addr str, server_name str, port u32."""
    w.str(_str(s, "dns_name"))
    w.str(_str(s, "ip_addr"))
    w.str(_str(s, "server_name"))
    w.u32(_int(s, "port"))


def write_id(w: Writer, i: Any) -> None:
    """IdType: secret_id u32, serial_number u64."""
    w.u32(_int(i, "secret_id"))
    w.u64(_int(i, "serial_number"))


def write_scrip_body(w: Writer, b: Any) -> None:
    """ScripBodyType, fields 1..7."""
    w.str(_str(b, "currency"))
    w.i64(_int(b, "value"))
    write_server(w, _get(b, "vendor_id"))
    write_id(w, _get(b, "scrip_id"))
    write_id(w, _get(b, "custom_id"))
    w.str(_str(b, "ad"))
    w.i64(_int(b, "expiration_date_unix"))


def write_scrip(w: Writer, s: Any) -> None:
    """ScripType: hash_algorithm u32, ScripBodyType inline, certificate bytes."""
    w.enum(_int(s, "hash_algorithm"))
    write_scrip_body(w, _get(s, "scrip"))
    w.bytes(_bytes(s, "certificate"))


def write_offer_fields(w: Writer, o: Any) -> None:
    """Offer fields 1..13 (all but mac)."""
    write_server(w, _get(o, "vendor"))
    w.str(_str(o, "vendor_id"))
    w.str(_str(o, "tran_id"))
    w.enum(_int(o, "kind"))
    w.i64(_int(o, "amount"))
    w.str(_str(o, "currency"))
    w.str(_str(o, "item"))
    w.str(_str(o, "campaign_id"))
    w.enum(_int(o, "delivery_method"))
    write_id(w, _get(o, "custom_id"))
    w.i64(_int(o, "expires_at_unix"))
    w.u32(_int(o, "vendor_key_id"))
    w.enum(_int(o, "hash_algorithm"))


def write_receipt_fields(w: Writer, r: Any) -> None:
    """Receipt fields 1..10 (all but mac)."""
    w.str(_str(r, "vendor_id"))
    w.str(_str(r, "tran_id"))
    w.str(_str(r, "request_url"))
    w.i64(_int(r, "price"))
    w.str(_str(r, "currency"))
    w.enum(_int(r, "delivery_method"))
    write_id(w, _get(r, "custom_id"))
    w.i64(_int(r, "paid_at_unix"))
    w.u32(_int(r, "vendor_key_id"))
    w.enum(_int(r, "hash_algorithm"))


# ---------------------------------------------------------------- section 4: MACs

def mac(alg: int, key: bytes, data: bytes) -> bytes:
    """HMAC-SHA-256 (1) or SHA-256(data || key) (2); anything else is refused."""
    alg = int(alg)
    key = bytes(key)
    if alg == HMAC_SHA256:
        return _hmac.new(key, data, hashlib.sha256).digest()
    if alg == SHA256_SUFFIX:
        return hashlib.sha256(data + key).digest()
    raise UnsupportedAlgorithm(f"hash algorithm {alg} is not supported")


def verify_mac(alg: int, key: bytes, data: bytes, tag: Optional[bytes]) -> bool:
    """Length check first, then a constant-time comparison."""
    if tag is None or len(tag) != MAC_BYTES:
        return False
    return _hmac.compare_digest(mac(alg, key, data), bytes(tag))


# ---------------------------------------------------------------- section 5: constructions

def certificate_input(body: Any) -> bytes:
    w = Writer().str(TAG_CERTIFICATE)
    write_scrip_body(w, body)
    return w.finish()


def compute_certificate(alg: int, cert_key: bytes, body: Any) -> bytes:
    return mac(alg, cert_key, certificate_input(body))


def message_input(code: str, context_id: str, p_count: int, scrip: Any,
                  order: Any = None, amount: int = 0, account: str = "") -> bytes:
    """Section 5.2. `order` None means no order (flag 00); otherwise flag 01,
    Offer fields 1..13 and the order's mac as `bytes`."""
    if code not in MESSAGE_CODES:
        raise CanonicalError(f"unknown message code {code!r}")
    w = Writer()
    w.str(TAG_MESSAGE_PREFIX + code)
    w.str(context_id)
    w.u32(p_count)
    write_scrip(w, scrip)
    if order is None:
        w.u8(0)
    else:
        w.u8(1)
        write_offer_fields(w, order)
        w.bytes(_bytes(order, "mac"))
    w.i64(amount)
    w.str(account)
    return w.finish()


def message_hash(custom_secret: bytes, code: str, context_id: str, p_count: int, scrip: Any,
                 order: Any = None, amount: int = 0, account: str = "", alg: Optional[int] = None) -> bytes:
    """MAC_alg(Custom_Secret, message_input); alg defaults to the scrip's own hash_algorithm."""
    if alg is None:
        alg = _int(scrip, "hash_algorithm")
    return mac(alg, custom_secret, message_input(code, context_id, p_count, scrip, order, amount, account))


def offer_input(offer: Any) -> bytes:
    w = Writer().str(TAG_OFFER)
    write_offer_fields(w, offer)
    return w.finish()


def offer_mac(vendor_secret: bytes, offer: Any) -> bytes:
    return mac(_int(offer, "hash_algorithm"), vendor_secret, offer_input(offer))


def receipt_input(receipt: Any) -> bytes:
    w = Writer().str(TAG_RECEIPT)
    write_receipt_fields(w, receipt)
    return w.finish()


def receipt_mac(vendor_secret: bytes, receipt: Any) -> bytes:
    return mac(_int(receipt, "hash_algorithm"), vendor_secret, receipt_input(receipt))


def settlements_input(vendor_id: str, after_sequence: int, timestamp_unix_ms: int) -> bytes:
    return Writer().str(TAG_SETTLEMENTS).str(vendor_id).u64(after_sequence).i64(timestamp_unix_ms).finish()


def settlements_mac(alg: int, vendor_secret: bytes, vendor_id: str, after_sequence: int, timestamp_unix_ms: int) -> bytes:
    return mac(alg, vendor_secret, settlements_input(vendor_id, after_sequence, timestamp_unix_ms))


def custom_secret_input(secret_id: int, serial_number: int) -> bytes:
    return Writer().str(TAG_CUSTOM_SECRET).u32(secret_id).u64(serial_number).finish()


def derive_custom_secret(master_key: bytes, secret_id: int, serial_number: int) -> bytes:
    """Always HMAC-SHA-256, whatever any scrip names (section 5.6)."""
    return mac(HMAC_SHA256, master_key, custom_secret_input(secret_id, serial_number))


# ---------------------------------------------------------------- sections 5.7-5.10: restore/sync, refunds, recovery code

def sync_request_input(custom_id: Any, timestamp_unix_ms: int, nonce: bytes) -> bytes:
    """SY1: str(tag) || IdType custom_id || i64 timestamp_unix_ms || bytes nonce (section 5.7)."""
    w = Writer().str(TAG_SYNC_REQUEST)
    write_id(w, custom_id)
    return w.i64(timestamp_unix_ms).bytes(nonce).finish()


def sync_reply_input(custom_id: Any, request_nonce: bytes, server_time_unix_ms: int,
                     scrips: list, in_flight: list, credits: list) -> bytes:
    """SY2 (section 5.8): counted lists of ScripType, in-flight transactions and refund credits."""
    w = Writer().str(TAG_SYNC_REPLY)
    write_id(w, custom_id)
    w.bytes(request_nonce).i64(server_time_unix_ms)
    w.u32(len(scrips))
    for sc in scrips:
        write_scrip(w, sc)
    w.u32(len(in_flight))
    for t in in_flight:
        w.str(_str(t, "vendor_id")).str(_str(t, "tran_id")).enum(_int(t, "kind")).enum(_int(t, "state"))
        w.i64(_int(t, "amount")).str(_str(t, "currency")).str(_str(t, "item")).enum(_int(t, "delivery_method"))
        write_scrip(w, _get(t, "new_scrip"))
    w.u32(len(credits))
    for c in credits:
        w.str(_str(c, "refund_id")).str(_str(c, "vendor_id")).str(_str(c, "tran_id")).i64(_int(c, "amount"))
        w.str(_str(c, "currency")).i64(_int(c, "refunded_at_unix")).u64(_int(c, "folded_into_serial"))
    return w.finish()


def refund_request_input(vendor_id: str, tran_id: str, amount: int, request_id: str, reason: str, timestamp_unix_ms: int) -> bytes:
    """RF1 (section 5.9), MACed with the vendor secret, always HMAC-SHA-256."""
    return (Writer().str(TAG_REFUND).str(vendor_id).str(tran_id).i64(amount).str(request_id).str(reason)
            .i64(timestamp_unix_ms).finish())


CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def _luhn32(symbols: list) -> int:
    total, factor = 0, 2
    for v in reversed(symbols):
        a = factor * v
        total += a // 32 + a % 32
        factor = 1 if factor == 2 else 2
    return (32 - total % 32) % 32


def recovery_checksum_input(payload: bytes) -> bytes:
    return Writer().str(TAG_RECOVERY_CODE).bytes(payload).finish()


def recovery_code(secret_id: int, serial_number: int, custom_secret: bytes) -> str:
    """Section 5.10: "SW1-" + 71 data symbols, 3 hash symbols, 1 Luhn mod 32 symbol, in groups of 5."""
    if len(custom_secret) != 32:
        raise CanonicalError("Custom_Secret must be 32 bytes")
    payload = struct.pack(">IQ", secret_id, serial_number) + bytes(custom_secret)
    bits = int.from_bytes(payload, "big") << 3  # 352 bits + 3 zero bits = 71 symbols
    data = [(bits >> (5 * (70 - i))) & 31 for i in range(71)]
    top15 = int.from_bytes(hashlib.sha256(recovery_checksum_input(payload)).digest()[:2], "big") >> 1
    symbols = data + [(top15 >> 10) & 31, (top15 >> 5) & 31, top15 & 31]
    symbols.append(_luhn32(symbols))
    text = "".join(CROCKFORD[v] for v in symbols)
    return "SW1-" + "-".join(text[i:i + 5] for i in range(0, len(text), 5))


def read_recovery_code(code: str) -> tuple[int, int, bytes]:
    """Inverse of recovery_code; raises CanonicalError on a bad or mistyped code."""
    t = re.sub(r"[\s-]", "", code.upper()).replace("O", "0").replace("I", "1").replace("L", "1")
    if not t.startswith("SW1") or len(t) != 78:
        raise CanonicalError("not a recovery code")
    symbols = [CROCKFORD.index(ch) if ch in CROCKFORD else -1 for ch in t[3:]]
    if -1 in symbols or _luhn32(symbols[:-1]) != symbols[-1]:
        raise CanonicalError("mistyped recovery code")
    bits = 0
    for v in symbols[:71]:
        bits = (bits << 5) | v
    if bits & 7:
        raise CanonicalError("mistyped recovery code")
    payload = (bits >> 3).to_bytes(44, "big")
    if recovery_code(*struct.unpack(">IQ", payload[:12]), payload[12:]) != "SW1-" + "-".join(t[3:][i:i + 5] for i in range(0, 75, 5)):
        raise CanonicalError("mistyped recovery code")
    sid, serial = struct.unpack(">IQ", payload[:12])
    return sid, serial, payload[12:]


# ---------------------------------------------------------------- section 7: XChaCha20-Poly1305

_MASK = 0xFFFFFFFF
_SIGMA = struct.unpack("<4I", b"expand 32-byte k")


def _rotl(v: int, c: int) -> int:
    return ((v << c) & _MASK) | (v >> (32 - c))


def _quarter(s: list, a: int, b: int, c: int, d: int) -> None:
    s[a] = (s[a] + s[b]) & _MASK; s[d] = _rotl(s[d] ^ s[a], 16)
    s[c] = (s[c] + s[d]) & _MASK; s[b] = _rotl(s[b] ^ s[c], 12)
    s[a] = (s[a] + s[b]) & _MASK; s[d] = _rotl(s[d] ^ s[a], 8)
    s[c] = (s[c] + s[d]) & _MASK; s[b] = _rotl(s[b] ^ s[c], 7)


def hchacha20(key: bytes, nonce16: bytes) -> bytes:
    """HChaCha20 (draft-irtf-cfrg-xchacha-03 2.2): the ChaCha20 block function
    on constants || key || 16-byte nonce, 20 rounds, no final addition;
    output words 0..3 and 12..15, little-endian."""
    if len(key) != 32 or len(nonce16) != 16:
        raise ValueError("hchacha20 needs a 32-byte key and a 16-byte nonce")
    s = list(_SIGMA) + list(struct.unpack("<8I", key)) + list(struct.unpack("<4I", nonce16))
    for _ in range(10):
        _quarter(s, 0, 4, 8, 12); _quarter(s, 1, 5, 9, 13)
        _quarter(s, 2, 6, 10, 14); _quarter(s, 3, 7, 11, 15)
        _quarter(s, 0, 5, 10, 15); _quarter(s, 1, 6, 11, 12)
        _quarter(s, 2, 7, 8, 13); _quarter(s, 3, 4, 9, 14)
    return struct.pack("<8I", *(s[0:4] + s[12:16]))


def _xchacha_parts(key: bytes, nonce: bytes):
    from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
    if len(key) != 32:
        raise ValueError("XChaCha20-Poly1305 key must be 32 bytes")
    if len(nonce) != 24:
        raise ValueError("XChaCha20-Poly1305 nonce must be 24 bytes")
    return ChaCha20Poly1305(hchacha20(key, nonce[:16])), b"\x00\x00\x00\x00" + nonce[16:24]


def xchacha20poly1305_encrypt(key: bytes, nonce: bytes, plaintext: bytes, aad: bytes) -> bytes:
    """Returns ciphertext || 16-byte tag."""
    aead, n12 = _xchacha_parts(bytes(key), bytes(nonce))
    return aead.encrypt(n12, bytes(plaintext), bytes(aad))


def xchacha20poly1305_decrypt(key: bytes, nonce: bytes, ct_and_tag: bytes, aad: bytes) -> bytes:
    """Raises cryptography.exceptions.InvalidTag if anything was altered."""
    aead, n12 = _xchacha_parts(bytes(key), bytes(nonce))
    return aead.decrypt(n12, bytes(ct_and_tag), bytes(aad))


# ---------------------------------------------------------------- section 7: R1 / R2

SEALED_SESSION_KEY_BYTES = 104
ENCRYPTED_CUSTOM_SECRET_BYTES = 72


def seal_aad(wallet_id: str) -> bytes:
    return Writer().str(TAG_R1).str(wallet_id).finish()


def custom_secret_aad(wallet_id: str, secret_id: int, serial_number: int) -> bytes:
    return Writer().str(TAG_R2).str(wallet_id).u32(secret_id).u64(serial_number).finish()


def x25519_public_key(secret: bytes) -> bytes:
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
    return X25519PrivateKey.from_private_bytes(bytes(secret)).public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def _x25519(secret: bytes, peer_public: bytes) -> bytes:
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
    if len(peer_public) != 32:
        raise ValueError("X25519 public key must be 32 bytes")
    try:
        shared = X25519PrivateKey.from_private_bytes(bytes(secret)).exchange(X25519PublicKey.from_public_bytes(bytes(peer_public)))
    except ValueError as e:  # OpenSSL refuses an all-zero result itself
        raise ValueError("X25519 shared secret is all zero (low-order public key)") from e
    if shared == bytes(32):
        raise ValueError("X25519 shared secret is all zero (low-order public key)")
    return shared


def seal_key(shared: bytes, ephemeral_pub: bytes, center_pub: bytes) -> bytes:
    """HKDF-SHA-256(IKM=shared, salt=E||C, info=raw ASCII "scripwire/v1/R1", L=32)."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=bytes(ephemeral_pub) + bytes(center_pub),
                info=TAG_R1.encode("ascii")).derive(bytes(shared))


def seal_session_key(center_pub: bytes, wallet_id: str, session_key: bytes,
                     ephemeral_secret: Optional[bytes] = None, nonce: Optional[bytes] = None) -> bytes:
    """Wallet side of R1: E(32) || nonce(24) || ct(32) || tag(16) = 104 bytes.
    `ephemeral_secret` and `nonce` are for test vectors only."""
    if len(center_pub) != 32:
        raise ValueError("center public key must be 32 bytes")
    if len(session_key) != 32:
        raise ValueError("session key KS must be 32 bytes")
    eph = ephemeral_secret if ephemeral_secret is not None else os.urandom(32)
    nonce = nonce if nonce is not None else os.urandom(24)
    eph_pub = x25519_public_key(eph)
    key = seal_key(_x25519(eph, center_pub), eph_pub, center_pub)
    out = eph_pub + bytes(nonce) + xchacha20poly1305_encrypt(key, nonce, session_key, seal_aad(wallet_id))
    assert len(out) == SEALED_SESSION_KEY_BYTES
    return out


def open_session_key(center_secret: bytes, wallet_id: str, sealed: bytes) -> bytes:
    """Center side of R1 (for tests / an independent center)."""
    if len(sealed) != SEALED_SESSION_KEY_BYTES:
        raise ValueError(f"sealed_session_key must be {SEALED_SESSION_KEY_BYTES} bytes, got {len(sealed)}")
    eph_pub, nonce, ct = sealed[:32], sealed[32:56], sealed[56:]
    center_pub = x25519_public_key(center_secret)
    key = seal_key(_x25519(center_secret, eph_pub), eph_pub, center_pub)
    return xchacha20poly1305_decrypt(key, nonce, ct, seal_aad(wallet_id))


def encrypt_custom_secret(session_key: bytes, wallet_id: str, secret_id: int, serial_number: int,
                          custom_secret: bytes, nonce: Optional[bytes] = None) -> bytes:
    """Center side of R2: nonce(24) || ct(32) || tag(16) = 72 bytes."""
    if len(custom_secret) != 32:
        raise ValueError("Custom_Secret must be 32 bytes")
    nonce = nonce if nonce is not None else os.urandom(24)
    out = bytes(nonce) + xchacha20poly1305_encrypt(session_key, nonce, custom_secret,
                                                   custom_secret_aad(wallet_id, secret_id, serial_number))
    assert len(out) == ENCRYPTED_CUSTOM_SECRET_BYTES
    return out


def decrypt_custom_secret(session_key: bytes, wallet_id: str, secret_id: int, serial_number: int, blob: bytes) -> bytes:
    """Wallet side of R2. Raises on any alteration or on another wallet / customer id."""
    if len(blob) != ENCRYPTED_CUSTOM_SECRET_BYTES:
        raise ValueError(f"encrypted_custom_secret must be {ENCRYPTED_CUSTOM_SECRET_BYTES} bytes, got {len(blob)}")
    return xchacha20poly1305_decrypt(session_key, blob[:24], blob[24:],
                                     custom_secret_aad(wallet_id, secret_id, serial_number))
