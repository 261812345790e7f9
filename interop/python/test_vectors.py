#!/usr/bin/python3
"""Reproduces every vector of testdata/vectors.json with the independent
Python implementation (scripwire_canonical.py), byte for byte.

For each vector: canonical_hex (the exact MAC input, or the AEAD associated
data for registration) and digest_hex (or output_hex, plus the registration
intermediates). Also checks the HChaCha20 / XChaCha20-Poly1305 known-answer
tests of draft-irtf-cfrg-xchacha-03, and that the hex blocks of the worked
examples in docs/canonical-encoding.md equal their vectors.

Prints `vectors: N/N ok` and exits 1 on any mismatch.

usage: /usr/bin/python3 interop/python/test_vectors.py [vectors.json] [canonical-encoding.md]
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, HERE)

import scripwire_canonical as sc  # noqa: E402


def h(b: bytes) -> str:
    return bytes(b).hex()


class Mismatch(Exception):
    pass


def expect(what: str, got: bytes, want_hex: str) -> None:
    if h(got) != want_hex.lower():
        raise Mismatch(f"{what}:\n      got  {h(got)}\n      want {want_hex.lower()}")


def run_vector(v: dict) -> None:
    c = v["construction"]
    inp = v["inputs"]
    key = bytes.fromhex(v["key_hex"])
    alg = v.get("algorithm_id")

    if c == "certificate":
        data = sc.certificate_input(inp["body"])
    elif c == "message":
        data = sc.message_input(inp["code"], inp["context_id"], int(inp["p_count"]), inp["scrip"],
                                inp.get("order"), int(inp.get("amount", "0")), inp.get("account", ""))
        scrip_alg = (inp["scrip"] or {}).get("hash_algorithm", 0)
        if inp["scrip"] is not None and scrip_alg != alg:
            raise Mismatch(f"vector algorithm_id {alg} differs from the scrip's hash_algorithm {scrip_alg}")
    elif c == "offer":
        data = sc.offer_input(inp["offer"])
        if inp["offer"]["hash_algorithm"] != alg:
            raise Mismatch("vector algorithm_id differs from offer.hash_algorithm")
    elif c == "receipt":
        data = sc.receipt_input(inp["receipt"])
        if inp["receipt"]["hash_algorithm"] != alg:
            raise Mismatch("vector algorithm_id differs from receipt.hash_algorithm")
    elif c == "settlements":
        data = sc.settlements_input(inp["vendor_id"], int(inp["after_sequence"]), int(inp["timestamp_unix_ms"]))
    elif c == "custom_secret":
        data = sc.custom_secret_input(int(inp["secret_id"]), int(inp["serial_number"]))
        if alg != sc.HMAC_SHA256:
            raise Mismatch("custom_secret derivation must be HMAC-SHA-256")
        expect("canonical_hex", data, v["canonical_hex"])
        expect("digest_hex (derive_custom_secret)", sc.derive_custom_secret(key, int(inp["secret_id"]), int(inp["serial_number"])), v["digest_hex"])
        return
    elif c == "seal_session_key":
        run_seal(v)
        return
    elif c == "encrypt_custom_secret":
        run_encrypt_cs(v)
        return
    elif c == "sync_request":
        data = sc.sync_request_input(inp["custom_id"], int(inp["timestamp_unix_ms"]), bytes.fromhex(inp["nonce_hex"]))
    elif c == "sync_reply":
        data = sc.sync_reply_input(inp["custom_id"], bytes.fromhex(inp["request_nonce_hex"]), int(inp["server_time_unix_ms"]),
                                   inp["scrips"], inp["in_flight"], inp["credits"])
    elif c == "refund_request":
        data = sc.refund_request_input(inp["vendor_id"], inp["tran_id"], int(inp["amount"]), inp["request_id"],
                                       inp["reason"], int(inp["timestamp_unix_ms"]))
    elif c == "recovery_code":
        secret = bytes.fromhex(inp["custom_secret_hex"])
        payload = bytes.fromhex(v["payload_hex"])
        data = sc.recovery_checksum_input(payload)
        expect("canonical_hex", data, v["canonical_hex"])
        expect("digest_hex (sha-256)", hashlib.sha256(data).digest(), v["digest_hex"])
        code = sc.recovery_code(int(inp["secret_id"]), int(inp["serial_number"]), secret)
        if code != v["output_text"]:
            raise Mismatch(f"recovery code:\n      got  {code}\n      want {v['output_text']}")
        if sc.read_recovery_code(code.lower()) != (int(inp["secret_id"]), int(inp["serial_number"]), secret):
            raise Mismatch("read_recovery_code did not give the inputs back")
        return
    else:
        raise Mismatch(f"unknown construction {c!r}")

    expect("canonical_hex", data, v["canonical_hex"])
    expect("digest_hex", sc.mac(alg, key, data), v["digest_hex"])
    # The typed helpers agree with the raw MAC.
    if c == "certificate":
        expect("compute_certificate", sc.compute_certificate(alg, key, inp["body"]), v["digest_hex"])
    elif c == "offer":
        expect("offer_mac", sc.offer_mac(key, inp["offer"]), v["digest_hex"])
    elif c == "receipt":
        expect("receipt_mac", sc.receipt_mac(key, inp["receipt"]), v["digest_hex"])
    if not sc.verify_mac(alg, key, data, bytes.fromhex(v["digest_hex"])):
        raise Mismatch("verify_mac refused the expected digest")


def run_seal(v: dict) -> None:
    inp, mid = v["inputs"], v["intermediate"]
    center_sk = bytes.fromhex(inp["center_secret_key_hex"])
    center_pk = bytes.fromhex(inp["center_public_key_hex"])
    eph_sk = bytes.fromhex(inp["ephemeral_secret_key_hex"])
    ks = bytes.fromhex(inp["session_key_hex"])
    nonce = bytes.fromhex(inp["nonce_hex"])
    wallet_id = inp["wallet_id"]

    expect("key_hex = center public key", center_pk, v["key_hex"])
    expect("X25519 public(center secret)", sc.x25519_public_key(center_sk), inp["center_public_key_hex"])
    eph_pk = sc.x25519_public_key(eph_sk)
    expect("intermediate.ephemeral_public_key_hex", eph_pk, mid["ephemeral_public_key_hex"])
    shared = sc._x25519(eph_sk, center_pk)
    expect("intermediate.shared_secret_hex", shared, mid["shared_secret_hex"])
    expect("intermediate.shared_secret_hex (center side)", sc._x25519(center_sk, eph_pk), mid["shared_secret_hex"])
    expect("intermediate.hkdf_salt_hex", eph_pk + center_pk, mid["hkdf_salt_hex"])
    expect("intermediate.hkdf_info_hex", sc.TAG_R1.encode("ascii"), mid["hkdf_info_hex"])
    expect("intermediate.aead_key_hex", sc.seal_key(shared, eph_pk, center_pk), mid["aead_key_hex"])
    expect("canonical_hex (AAD)", sc.seal_aad(wallet_id), v["canonical_hex"])
    sealed = sc.seal_session_key(center_pk, wallet_id, ks, ephemeral_secret=eph_sk, nonce=nonce)
    expect("output_hex", sealed, v["output_hex"])
    if len(sealed) != 104:
        raise Mismatch(f"sealed_session_key is {len(sealed)} bytes, not 104")
    # and back, as the center would
    expect("open_session_key(output)", sc.open_session_key(center_sk, wallet_id, sealed), inp["session_key_hex"])
    # tampering: a flipped byte or another wallet id must fail
    bad = bytearray(sealed)
    bad[60] ^= 1
    for what, args in (("flipped ciphertext byte", (center_sk, wallet_id, bytes(bad))),
                       ("other wallet_id", (center_sk, wallet_id + "x", sealed))):
        try:
            sc.open_session_key(*args)
        except Exception:
            continue
        raise Mismatch(f"open_session_key accepted a sealed key with {what}")


def run_encrypt_cs(v: dict) -> None:
    inp = v["inputs"]
    ks = bytes.fromhex(inp["session_key_hex"])
    wallet_id = inp["wallet_id"]
    sid, serial = int(inp["secret_id"]), int(inp["serial_number"])
    cs = bytes.fromhex(inp["custom_secret_hex"])
    nonce = bytes.fromhex(inp["nonce_hex"])
    expect("key_hex = KS", ks, v["key_hex"])
    expect("canonical_hex (AAD)", sc.custom_secret_aad(wallet_id, sid, serial), v["canonical_hex"])
    blob = sc.encrypt_custom_secret(ks, wallet_id, sid, serial, cs, nonce=nonce)
    expect("output_hex", blob, v["output_hex"])
    expect("decrypt_custom_secret(output)", sc.decrypt_custom_secret(ks, wallet_id, sid, serial, blob), inp["custom_secret_hex"])
    try:
        sc.decrypt_custom_secret(ks, wallet_id, sid, serial + 1, blob)
    except Exception:
        return
    raise Mismatch("decrypt_custom_secret accepted another customer id")


# ---------------------------------------------------------------- independent known-answer tests

def known_answer_tests() -> list[tuple[str, Exception | None]]:
    """draft-irtf-cfrg-xchacha-03 2.2.1 (HChaCha20) and A.3.1 (AEAD_XChaCha20_Poly1305)."""
    out = []
    try:
        expect("HChaCha20 (draft 2.2.1)",
               sc.hchacha20(bytes(range(32)), bytes.fromhex("000000090000004a0000000031415927")),
               "82413b4227b27bfed30e42508a877d73a0f9e4d58a74a853c12ec41326d3ecdc")
        out.append(("kat/hchacha20", None))
    except Exception as e:  # noqa: BLE001
        out.append(("kat/hchacha20", e))
    try:
        pt = (b"Ladies and Gentlemen of the class of '99: If I could offer you only one tip for "
              b"the future, sunscreen would be it.")
        aad = bytes.fromhex("50515253c0c1c2c3c4c5c6c7")
        key = bytes(range(0x80, 0xA0))
        iv = bytes.fromhex("404142434445464748494a4b4c4d4e4f5051525354555657")
        ct = sc.xchacha20poly1305_encrypt(key, iv, pt, aad)
        expect("XChaCha20-Poly1305 (draft A.3.1)", ct,
               "bd6d179d3e83d43b9576579493c0e939572a1700252bfaccbed2902c21396cbb"
               "731c7f1b0b4aa6440bf3a82f4eda7e39ae64c6708c54c216cb96b72e1213b452"
               "2f8c9ba40db5d945b11b69b982c1bb9e3f3fac2bc369488f76b2383565d3fff9"
               "21f9664c97637da9768812f615c68b13b52e"
               "c0875924c1c7987947deafd8780acf49")
        if sc.xchacha20poly1305_decrypt(key, iv, ct, aad) != pt:
            raise Mismatch("XChaCha20-Poly1305 round trip")
        out.append(("kat/xchacha20poly1305", None))
    except Exception as e:  # noqa: BLE001
        out.append(("kat/xchacha20poly1305", e))
    return out


def doc_checks(doc_path: str, by_name: dict) -> list[tuple[str, Exception | None]]:
    """The hex column of every `<!-- worked-example: NAME -->` block equals the
    vector's canonical_hex, and the section 3 tag table's hex matches str(tag)."""
    out = []
    if not os.path.exists(doc_path):
        return out
    text = open(doc_path, encoding="utf-8").read()
    for m in re.finditer(r"<!--\s*worked-example:\s*(\S+)\s*-->\s*```[^\n]*\n(.*?)```", text, re.S):
        name, block = m.group(1), m.group(2)
        hexes = "".join(line.split("#", 1)[0].replace(" ", "") for line in block.splitlines())
        try:
            if name not in by_name:
                raise Mismatch(f"the doc names vector {name!r}, which is not in vectors.json")
            if hexes.lower() != by_name[name]["canonical_hex"]:
                raise Mismatch(f"worked example hex differs from the vector:\n      doc    {hexes}\n      vector {by_name[name]['canonical_hex']}")
            out.append((f"doc/worked-example/{name}", None))
        except Exception as e:  # noqa: BLE001
            out.append((f"doc/worked-example/{name}", e))
    for m in re.finditer(r"^\|[^|\n]*\|\s*`(scripwire/v1/[^`]+)`\s*\|\s*([^|]+)\|\s*(?:e\.g\.\s*)?`([0-9a-f ]+)`(?:\s*for\s*`(\w+)`)?", text, re.M):
        tag, hx = m.group(1), m.group(3).replace(" ", "")
        if "<CODE>" in tag:
            tag = tag.replace("<CODE>", m.group(4) or "GM4_1")  # the table's example row
        try:
            expect(f"str({tag})", sc.Writer().str(tag).finish(), hx)
            out.append((f"doc/tag/{tag}", None))
        except Exception as e:  # noqa: BLE001
            out.append((f"doc/tag/{tag}", e))
    # Section 1 examples table: | value | type | `hex` |
    enc = {"u32": "u32", "u64": "u64", "i64": "i64", "str": "str", "bytes": "bytes"}
    for m in re.finditer(r"^\|\s*([^|\n]+?)\s*\|\s*(u32|u64|i64|str|bytes)\s*\|\s*`([0-9a-f ]+)`\s*\|\s*$", text, re.M):
        raw, typ, hx = m.group(1), m.group(2), m.group(3).replace(" ", "")
        name = f"doc/primitive/{typ}/{raw}"
        try:
            value: object
            if typ == "str":
                sm = re.match(r'`"(.*)"`', raw)
                if not sm:
                    raise Mismatch(f"cannot read the string example {raw!r}")
                value = sm.group(1)
            elif typ == "bytes":
                value = bytes(int(x, 16) for x in re.findall(r"0x([0-9a-fA-F]{2})", raw))
            else:
                r = raw.replace("−", "-").replace(" ", "")
                pm = re.fullmatch(r"(-?)2⁶³(−1|-1)?", r)
                if pm:
                    value = (-(1 << 63) if pm.group(1) else (1 << 63)) - (1 if pm.group(2) else 0)
                else:
                    value = int(r)
            w = sc.Writer()
            getattr(w, enc[typ])(value)
            expect(name, w.finish(), hx)
            out.append((name, None))
        except Exception as e:  # noqa: BLE001
            out.append((name, e))
    return out


def main() -> int:
    vpath = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "testdata", "vectors.json")
    dpath = sys.argv[2] if len(sys.argv) > 2 else os.path.join(ROOT, "docs", "canonical-encoding.md")
    with open(vpath, encoding="utf-8") as f:
        doc = json.load(f)
    vectors = doc["vectors"]
    verbose = os.environ.get("VERBOSE") == "1"
    failures = 0
    ok = 0
    names = set()
    for v in vectors:
        name = v.get("name", "?")
        if name in names:
            print(f"FAIL {name}: duplicate vector name")
            failures += 1
            continue
        names.add(name)
        try:
            run_vector(v)
            ok += 1
            if verbose:
                print(f"ok   {name}")
        except Exception as e:  # noqa: BLE001
            failures += 1
            print(f"FAIL {name}: {type(e).__name__}: {e}")
    if doc.get("count") != len(vectors):
        print(f"FAIL vectors.json count field {doc.get('count')} != {len(vectors)} vectors")
        failures += 1

    extra = known_answer_tests() + doc_checks(dpath, {v["name"]: v for v in vectors})
    extra_ok = 0
    for name, err in extra:
        if err is None:
            extra_ok += 1
            if verbose:
                print(f"ok   {name}")
        else:
            failures += 1
            print(f"FAIL {name}: {type(err).__name__}: {err}")

    print(f"vectors: {ok}/{len(vectors)} ok")
    print(f"extra checks (xchacha draft KATs; doc §1 examples, §3 tags, §8 worked examples): {extra_ok}/{len(extra)} ok")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
