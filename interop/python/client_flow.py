#!/usr/bin/python3
"""A Python gRPC wallet that walks the whole Scripwire protocol against the
real TypeScript center and seller: register (R1/R2), earn (M1..M7), buy
(S1..S7), plus tamper checks. Every hash is computed in Python from
docs/canonical-encoding.md (scripwire_canonical.py); transport is grpcio over
an insecure HTTP/2 channel; stubs come from interop/gen.sh.

usage:
  /usr/bin/python3 interop/python/client_flow.py CENTER_HOST:PORT SELLER_HOST:PORT
      [--item ITEM_ID] [--answer QUIZ_ANSWER] [--vendor-secret HEX] [--vendor-key-id N]

  --answer / SCRIPWIRE_QUIZ_ANSWER   answer to a QUIZ item (earn by quiz); without
                                     it an AD item is used (no answer needed)
  --item / SCRIPWIRE_EARN_ITEM       campaign item to earn with (default: the first
                                     QUIZ item if an answer is given, else the first AD)
  --vendor-secret / SCRIPWIRE_VENDOR_SECRET
                                     optional (tests only): the seller's vendor secret,
                                     so the seller's offer MACs and the center's receipt
                                     MAC are verified in Python as well

Exit status: 0 when every step passed, 1 on any failure, 2 on bad usage.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "gen"))

try:
    import grpc
    from scripwire.v1 import center_pb2, center_pb2_grpc, seller_pb2, seller_pb2_grpc, types_pb2
except ImportError as e:  # pragma: no cover
    sys.stderr.write(f"client_flow.py: {e}\n  run interop/gen.sh first, and use /usr/bin/python3 "
                     "(Debian's python3-grpcio / python3-protobuf)\n")
    sys.exit(2)

import scripwire_canonical as sc  # noqa: E402

T = types_pb2
PROTOCOL_VERSION = "scripwire/1"
RPC_TIMEOUT = float(os.environ.get("SCRIPWIRE_RPC_TIMEOUT", "15"))


class FlowError(Exception):
    pass


def log(step: str, msg: str) -> None:
    print(f"[{step:>9}] {msg}", flush=True)


def need(cond: bool, what: str) -> None:
    if not cond:
        raise FlowError(what)


def hdr(cmd: int) -> "T.HeaderType":
    return T.HeaderType(cmd_type=cmd, protocol_version=PROTOCOL_VERSION,
                        server_date_unix_ms=int(time.time() * 1000))


def cmd_name(c: int) -> str:
    try:
        return T.CmdType.Name(c).removeprefix("CMD_TYPE_")
    except ValueError:
        return str(c)


def expect_cmd(step: str, header: "T.HeaderType", want: int) -> None:
    if header.cmd_type != want:
        raise FlowError(f"{step}: expected cmd_type {cmd_name(want)}, got {cmd_name(header.cmd_type)}"
                        f" ({header.error_reason}: {header.error_message})")


def rpc_error_reason(e: "grpc.RpcError") -> str:
    md = list(e.trailing_metadata() or []) + list(e.initial_metadata() or [])
    for k, v in md:
        if k == "scripwire-error-reason":
            return v
    return ""


def call(step: str, fn, req):
    try:
        return fn(req, timeout=RPC_TIMEOUT)
    except grpc.RpcError as e:
        raise FlowError(f"{step}: RPC failed: {e.code().name} {rpc_error_reason(e)}: {e.details()}") from None


def call_expect_error(step: str, fn, req, code: "grpc.StatusCode") -> "grpc.RpcError":
    try:
        resp = fn(req, timeout=RPC_TIMEOUT)
    except grpc.RpcError as e:
        if e.code() != code:
            raise FlowError(f"{step}: expected {code.name}, got {e.code().name}: {e.details()}") from None
        return e
    raise FlowError(f"{step}: expected RPC error {code.name}, got a response with cmd_type "
                    f"{cmd_name(resp.header.cmd_type)}")


def eq_hash(a: bytes, b: bytes) -> bool:
    return len(a) == sc.MAC_BYTES and sc._hmac.compare_digest(bytes(a), bytes(b))


def check_reply_hash(step: str, got: bytes, doc_rule: tuple[str, bytes], other_rules: list[tuple[str, bytes]] = ()) -> None:
    """A reply hash must follow docs/canonical-encoding.md section 6 exactly.
    `other_rules` are plausible wrong readings (e.g. an earlier draft of the
    doc); they only make the failure message say which one the center used."""
    if eq_hash(got, doc_rule[1]):
        log(step, f"reply hash verified in Python ({doc_rule[0]})")
        return
    for name, h in other_rules:
        if eq_hash(got, h):
            raise FlowError(f"{step}: DOC MISMATCH: the reply hash does not follow the doc ({doc_rule[0]}); it is {name}")
    raise FlowError(f"{step}: reply hash {bytes(got).hex()} does not verify ({doc_rule[0]})")


def check_new_scrip(step: str, s: "T.ScripType", center: "T.ServerType", custom_id: "T.IdType",
                    value: int, currency: str, accepted: list[int], old_serial: int) -> None:
    b = s.scrip
    need(s.HasField("scrip"), f"{step}: scrip body missing")
    need(s.hash_algorithm in accepted, f"{step}: scrip hash_algorithm {s.hash_algorithm} not in the center's accepted list")
    need(len(s.certificate) == sc.MAC_BYTES, f"{step}: certificate is {len(s.certificate)} bytes, not 32")
    need(b.value == value, f"{step}: scrip value {b.value}, expected {value}")
    need(b.currency == currency, f"{step}: scrip currency {b.currency!r}, expected {currency!r}")
    need(b.vendor_id == center, f"{step}: scrip vendor_id {b.vendor_id} is not the center {center}")
    need(b.custom_id == custom_id, f"{step}: scrip custom_id changed")
    need(b.scrip_id.serial_number != old_serial, f"{step}: re-issued scrip kept the old serial {old_serial}")
    need(b.expiration_date_unix > time.time(), f"{step}: new scrip already expired")


def tampered(s: "T.ScripType", delta: int) -> "T.ScripType":
    t = T.ScripType()
    t.CopyFrom(s)
    t.scrip.value = s.scrip.value + delta
    return t


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("center")
    ap.add_argument("seller")
    ap.add_argument("--item", default=os.environ.get("SCRIPWIRE_EARN_ITEM", ""))
    ap.add_argument("--answer", default=os.environ.get("SCRIPWIRE_QUIZ_ANSWER", ""))
    ap.add_argument("--vendor-secret", default=os.environ.get("SCRIPWIRE_VENDOR_SECRET", ""))
    ap.add_argument("--vendor-key-id", type=int, default=int(os.environ.get("SCRIPWIRE_VENDOR_KEY_ID", "1")))
    args = ap.parse_args(argv)
    vendor_secret = bytes.fromhex(args.vendor_secret) if args.vendor_secret else None

    try:
        run(args, vendor_secret)
    except FlowError as e:
        print(f"FAIL: {e}", flush=True)
        return 1
    print("client_flow: all steps passed", flush=True)
    return 0


def run(args, vendor_secret: bytes | None) -> None:
    cch = grpc.insecure_channel(args.center)
    sch = grpc.insecure_channel(args.seller)
    for name, ch in (("center", cch), ("seller", sch)):
        try:
            grpc.channel_ready_future(ch).result(timeout=RPC_TIMEOUT)
        except grpc.FutureTimeoutError:
            raise FlowError(f"cannot connect to the {name} at {args.center if name == 'center' else args.seller}") from None
    center = center_pb2_grpc.PaymentCenterServiceStub(cch)
    seller = seller_pb2_grpc.SellerServiceStub(sch)

    # ------------------------------------------------------------ GetCenterInfo
    info = call("info", center.GetCenterInfo, center_pb2.GetCenterInfoRequest())
    need(len(info.public_key) == 32, f"info: public_key is {len(info.public_key)} bytes")
    accepted = list(info.accepted_hash_algorithms)
    need(bool(accepted), "info: no accepted hash algorithms")
    need(all(a in (sc.HMAC_SHA256, sc.SHA256_SUFFIX) for a in accepted), f"info: unknown algorithms {accepted}")
    log("info", f"center {info.center.dns_name}:{info.center.port} pk={info.public_key.hex()[:16]}... "
                f"algs={[T.HashAlgorithm.Name(a) for a in accepted]} currencies={list(info.currencies)}")

    # ------------------------------------------------------------ R1 -> R2
    wallet_id = secrets.token_hex(16)
    ks = os.urandom(32)
    sealed = sc.seal_session_key(info.public_key, wallet_id, ks)
    log("R1", f"UM1 wallet_id={wallet_id} sealed_session_key={len(sealed)} bytes (X25519+HKDF+XChaCha20-Poly1305 in Python)")
    reg = call("R1", center.Register, center_pb2.RegisterRequest(
        header=hdr(T.CMD_TYPE_UM1), wallet_id=wallet_id, name="Python Interop", address="", email="py@interop.test",
        etc="client_flow.py", sealed_session_key=sealed))
    expect_cmd("R2", reg.header, T.CMD_TYPE_UM2)
    scrip = reg.scrip
    cid = scrip.scrip.custom_id
    need(len(reg.encrypted_custom_secret) == 72, f"R2: encrypted_custom_secret is {len(reg.encrypted_custom_secret)} bytes")
    try:
        cs = sc.decrypt_custom_secret(ks, wallet_id, cid.secret_id, cid.serial_number, reg.encrypted_custom_secret)
    except Exception as e:  # noqa: BLE001
        raise FlowError(f"R2: KS[Custom_Secret] does not decrypt in Python: {type(e).__name__}: {e}") from None
    need(len(cs) == 32, "R2: Custom_Secret is not 32 bytes")
    need(scrip.scrip.value == 0, f"R2: registration scrip value {scrip.scrip.value} != 0")
    need(scrip.scrip.vendor_id == info.center, "R2: scrip vendor_id is not the center")
    need(scrip.hash_algorithm == accepted[0], "R2: scrip algorithm is not the center's first accepted one")
    currency = scrip.scrip.currency
    log("R2", f"UM2 custom_id={cid.secret_id}/{cid.serial_number} zero-value scrip serial={scrip.scrip.scrip_id.serial_number} "
              f"{currency}; Custom_Secret decrypted ({len(cs)} bytes)")

    # a second Register with the same wallet_id but another KS is refused (wallet id binds to one key)
    other = sc.seal_session_key(info.public_key, wallet_id, os.urandom(32))
    e = call_expect_error("R1-dup", center.Register, center_pb2.RegisterRequest(
        header=hdr(T.CMD_TYPE_UM1), wallet_id=wallet_id, sealed_session_key=other), grpc.StatusCode.ALREADY_EXISTS)
    log("R1-dup", f"same wallet_id, other KS -> {e.code().name} ({rpc_error_reason(e)})")

    # ------------------------------------------------------------ catalog
    cat = call("catalog", seller.GetCatalog, seller_pb2.GetCatalogRequest())
    log("catalog", f"vendor {cat.vendor_id}: {len(cat.entries)} entries, {len(cat.campaign_items)} campaign items")
    items = list(cat.campaign_items)
    if args.item:
        item = next((i for i in items if i.item_id == args.item), None)
        need(item is not None, f"catalog: no campaign item {args.item!r}")
    elif args.answer:
        item = next((i for i in items if i.kind == seller_pb2.CAMPAIGN_ITEM_KIND_QUIZ), None)
        need(item is not None, "catalog: an answer was given but there is no QUIZ item")
    else:
        item = next((i for i in items if i.kind == seller_pb2.CAMPAIGN_ITEM_KIND_AD), None)
        need(item is not None, "catalog: no AD item; pass --answer for a quiz")
    need(item.currency == currency, f"catalog: item {item.item_id} pays {item.currency}, the wallet holds {currency}")
    answer = args.answer if item.kind == seller_pb2.CAMPAIGN_ITEM_KIND_QUIZ else ("read" if item.kind == seller_pb2.CAMPAIGN_ITEM_KIND_AD else (args.answer or "yes"))

    # ------------------------------------------------------------ M1 -> M2
    if item.kind == seller_pb2.CAMPAIGN_ITEM_KIND_QUIZ:
        wrong = call("M1-wrong", seller.RequestIssue, seller_pb2.RequestIssueRequest(
            header=hdr(T.CMD_TYPE_GM1_1), item=item.item_id, value=answer + " (wrong)", custom_id=cid))
        expect_cmd("M2-wrong", wrong.header, T.CMD_TYPE_GM2_2)
        need(not wrong.HasField("permit") and wrong.html_document != "", "M2-wrong: refusal must carry a reason document and no permit")
        log("M2-wrong", f"wrong quiz answer -> GM2_2 ({wrong.header.error_reason})")
    log("M1", f"GM1_1 item={item.item_id} ({seller_pb2.CampaignItemKind.Name(item.kind)}) reward={item.reward} {item.currency}")
    m2 = call("M1", seller.RequestIssue, seller_pb2.RequestIssueRequest(
        header=hdr(T.CMD_TYPE_GM1_1), item=item.item_id, value=answer, custom_id=cid))
    expect_cmd("M2", m2.header, T.CMD_TYPE_GM2_1)
    permit = m2.permit
    need(permit.kind == T.OFFER_KIND_ISSUE, "M2: permit kind is not ISSUE")
    need(permit.amount == item.reward and permit.currency == item.currency, "M2: permit amount/currency differ from the catalog")
    need(permit.custom_id == cid, "M2: permit is for another customer")
    need(len(permit.mac) == 32, "M2: permit mac is not 32 bytes")
    if vendor_secret is not None and permit.vendor_key_id == args.vendor_key_id:
        need(sc.verify_mac(permit.hash_algorithm, vendor_secret, sc.offer_input(permit), permit.mac),
             "M2: the permit's offer MAC does not verify in Python")
        log("M2", "offer MAC verified in Python with the vendor secret")
    tran = permit.tran_id
    log("M2", f"GM2_1 permit tran_id={tran} amount={permit.amount} {permit.currency}")

    # ------------------------------------------------------------ M3
    m3 = call("M3", center.InitIssue, center_pb2.InitIssueRequest(header=hdr(T.CMD_TYPE_GM3_1), permit=permit))
    expect_cmd("M3", m3.header, T.CMD_TYPE_GM3_1)
    need(m3.tran_id == tran and m3.state == center_pb2.TRANSACTION_STATE_INITIATED, f"M3: state {m3.state} tran {m3.tran_id}")
    log("M3", f"GM3_1 tran_id={tran} INITIATED")

    # ------------------------------------------------------------ M4 tamper checks
    bad = tampered(scrip, 1_000_000)
    r = call("M4-tamper", center.Issue, center_pb2.IssueRequest(
        header=hdr(T.CMD_TYPE_GM4_1), tran_id=tran, scrip=bad, p_count=0,
        scrip_hash=sc.message_hash(cs, "GM4_1", tran, 0, bad)))
    expect_cmd("M4-tamper", r.header, T.CMD_TYPE_GM5_2)
    need(r.scrip == bad and r.p_count == 1, "M4-tamper: GM5_2 must echo the scrip with p_count + 1")
    need(not r.HasField("new_scrip"), "M4-tamper: GM5_2 carried a new scrip")
    need(eq_hash(r.scrip_hash, sc.message_hash(cs, "GM5_2", tran, 1, bad)),
         "M4-tamper: the echoed GM5_2 scrip_hash does not verify (doc: code GM5_2, p_count = request + 1)")
    log("M4-tamper", f"scrip value +1000000 with a valid request hash -> GM5_2 validity error ({r.header.error_reason}); echo hash verified")
    e = call_expect_error("M4-badkey", center.Issue, center_pb2.IssueRequest(
        header=hdr(T.CMD_TYPE_GM4_1), tran_id=tran, scrip=scrip, p_count=0,
        scrip_hash=sc.message_hash(os.urandom(32), "GM4_1", tran, 0, scrip)), grpc.StatusCode.UNAUTHENTICATED)
    log("M4-badkey", f"request hash under a wrong secret -> {e.code().name} ({rpc_error_reason(e)})")
    e = call_expect_error("M4-badctx", center.Issue, center_pb2.IssueRequest(
        header=hdr(T.CMD_TYPE_GM4_1), tran_id=tran, scrip=scrip, p_count=0,
        scrip_hash=sc.message_hash(cs, "GM6_1", tran, 0, scrip)), grpc.StatusCode.UNAUTHENTICATED)
    log("M4-badctx", f"hash made for another code (GM6_1) -> {e.code().name}: domain separation holds")

    # ------------------------------------------------------------ M4 -> M5
    h4 = sc.message_hash(cs, "GM4_1", tran, 0, scrip)
    log("M4", f"GM4_1 tran_id={tran} p_count=0 scrip_hash={h4.hex()[:16]}...")
    m5 = call("M4", center.Issue, center_pb2.IssueRequest(header=hdr(T.CMD_TYPE_GM4_1), tran_id=tran, scrip=scrip,
                                                          scrip_hash=h4, p_count=0))
    expect_cmd("M5", m5.header, T.CMD_TYPE_GM5_1)
    new = m5.new_scrip
    need(m5.tran_id == tran, "M5: tran_id differs")
    need(eq_hash(m5.new_scrip_hash, sc.message_hash(cs, "GM5_1", tran, 0, new)),
         "M5: new_scrip_hash does not verify with Custom_Secret (code GM5_1, p_count 0)")
    check_new_scrip("M5", new, info.center, cid, scrip.scrip.value + permit.amount, currency, accepted,
                    scrip.scrip.scrip_id.serial_number)
    log("M5", f"GM5_1 new scrip value={new.scrip.value} serial={new.scrip.scrip_id.serial_number}; new_scrip_hash verified in Python")

    # retransmission of M4 (reply lost): same M5, nothing moves twice
    m5b = call("M4-retx", center.Issue, center_pb2.IssueRequest(
        header=hdr(T.CMD_TYPE_GM4_1), tran_id=tran, scrip=scrip, p_count=1,
        scrip_hash=sc.message_hash(cs, "GM4_1", tran, 1, scrip)))
    expect_cmd("M4-retx", m5b.header, T.CMD_TYPE_GM5_1)
    need(m5b.new_scrip == new, "M4-retx: a retransmitted M4 got a different scrip")
    log("M4-retx", "retransmitted M4 (p_count=1) -> the same GM5_1 scrip")

    # ------------------------------------------------------------ M6 -> M7
    h6 = sc.message_hash(cs, "GM6_1", tran, 0, new)
    log("M6", f"GM6_1 tran_id={tran} new_scrip_hash={h6.hex()[:16]}...")
    m7 = call("M6", center.ConfirmIssue, center_pb2.ConfirmIssueRequest(header=hdr(T.CMD_TYPE_GM6_1), tran_id=tran,
                                                                        new_scrip=new, new_scrip_hash=h6, p_count=0))
    expect_cmd("M7", m7.header, T.CMD_TYPE_GM7_1)
    need(m7.state == center_pb2.TRANSACTION_STATE_CONFIRMED, f"M7: state {m7.state}")
    need(m7.scrip == new, "M7: the confirmed scrip is not the M5 scrip")
    check_reply_hash("M7", m7.scrip_hash,
                     ("doc §6: GM7_1, p_count = request p_count + 1", sc.message_hash(cs, "GM7_1", tran, 1, m7.scrip)),
                     [("GM7_1 with p_count 0", sc.message_hash(cs, "GM7_1", tran, 0, m7.scrip))])
    log("M7", f"GM7_1 CONFIRMED balance={m7.scrip.scrip.value} {currency}")
    scrip = m7.scrip

    # ------------------------------------------------------------ S1 -> S2
    balance = scrip.scrip.value
    entries = [x for x in cat.entries if x.currency == currency and x.price <= balance]
    need(bool(entries), f"catalog: nothing costs <= {balance} {currency}")
    entry = entries[0]
    method = T.DELIVERY_METHOD_VIEW if T.DELIVERY_METHOD_VIEW in entry.delivery_methods else entry.delivery_methods[0]
    log("S1", f"PM1_1 {entry.request_url} ({entry.title}) price={entry.price} method={T.DeliveryMethod.Name(method)}")
    s2 = call("S1", seller.RequestService, seller_pb2.RequestServiceRequest(
        header=hdr(T.CMD_TYPE_PM1_1), request_url=entry.request_url, p_method=method, custom_id=cid))
    expect_cmd("S2", s2.header, T.CMD_TYPE_PM2_1)
    order = s2.order
    need(order.kind == T.OFFER_KIND_PAY and order.amount == entry.price and order.item == entry.request_url,
         "S2: pOder does not match the catalog entry")
    need(order.custom_id == cid and order.delivery_method == method, "S2: pOder customer/method differ")
    if vendor_secret is not None and order.vendor_key_id == args.vendor_key_id:
        need(sc.verify_mac(order.hash_algorithm, vendor_secret, sc.offer_input(order), order.mac),
             "S2: the pOder's offer MAC does not verify in Python")
        log("S2", "pOder MAC verified in Python with the vendor secret")
    ptran = order.tran_id
    log("S2", f"PM2_1 pOder tran_id={ptran} price={order.amount} {order.currency}")
    nfs = call("S1-nfs", seller.RequestService, seller_pb2.RequestServiceRequest(
        header=hdr(T.CMD_TYPE_PM1_1), request_url="/no/such/thing", p_method=method, custom_id=cid))
    expect_cmd("S2-nfs", nfs.header, T.CMD_TYPE_PM2_2)
    log("S2-nfs", f"unknown URL -> PM2_2 not for sale ({nfs.header.error_reason})")

    # ------------------------------------------------------------ S3
    s3 = call("S3", center.InitPayment, center_pb2.InitPaymentRequest(header=hdr(T.CMD_TYPE_PM3_1), order=order))
    expect_cmd("S3", s3.header, T.CMD_TYPE_PM3_1)
    need(s3.tran_id == ptran and s3.state == center_pb2.TRANSACTION_STATE_INITIATED, "S3: not INITIATED")
    log("S3", f"PM3_1 tran_id={ptran} INITIATED")

    # ------------------------------------------------------------ S4 tamper checks
    bad = tampered(scrip, 777)
    r = call("S4-tamper", center.Pay, center_pb2.PayRequest(
        header=hdr(T.CMD_TYPE_PM4_1), scrip=bad, order=order, p_count=0,
        hash=sc.message_hash(cs, "PM4_1", ptran, 0, bad, order)))
    expect_cmd("S4-tamper", r.header, T.CMD_TYPE_PM5_2)
    need(r.scrip == bad and r.order == order and r.p_count == 1, "S4-tamper: PM5_2 must echo scrip and pOder with p_count + 1")
    need(not r.HasField("new_scrip"), "S4-tamper: PM5_2 carried change")
    need(eq_hash(r.hash, sc.message_hash(cs, "PM5_2", ptran, 1, bad, order)),
         "S4-tamper: the echoed PM5_2 hash does not verify (doc: code PM5_2, order echoed, p_count = request + 1)")
    log("S4-tamper", f"scrip value +777 with a valid request hash -> PM5_2 validity error ({r.header.error_reason}); echo hash verified")
    # tampered price in the pOder, hash recomputed: the seller's MAC no longer verifies
    cheap = T.Offer()
    cheap.CopyFrom(order)
    cheap.amount = 1
    r = call("S4-price", center.Pay, center_pb2.PayRequest(
        header=hdr(T.CMD_TYPE_PM4_1), scrip=scrip, order=cheap, p_count=0,
        hash=sc.message_hash(cs, "PM4_1", ptran, 0, scrip, cheap)))
    expect_cmd("S4-price", r.header, T.CMD_TYPE_PM5_2)
    log("S4-price", f"pOder amount lowered to 1 (hash recomputed) -> PM5_2 ({r.header.error_reason})")
    e = call_expect_error("S4-badkey", center.Pay, center_pb2.PayRequest(
        header=hdr(T.CMD_TYPE_PM4_1), scrip=scrip, order=order, p_count=0,
        hash=sc.message_hash(os.urandom(32), "PM4_1", ptran, 0, scrip, order)), grpc.StatusCode.UNAUTHENTICATED)
    log("S4-badkey", f"request hash under a wrong secret -> {e.code().name} ({rpc_error_reason(e)})")
    e = call_expect_error("S4-noorder", center.Pay, center_pb2.PayRequest(
        header=hdr(T.CMD_TYPE_PM4_1), scrip=scrip, order=order, p_count=0,
        hash=sc.message_hash(cs, "PM4_1", ptran, 0, scrip)), grpc.StatusCode.UNAUTHENTICATED)
    log("S4-noorder", f"hash without the pOder -> {e.code().name}: the order is bound")

    # ------------------------------------------------------------ S4 -> S5
    h = sc.message_hash(cs, "PM4_1", ptran, 0, scrip, order)
    log("S4", f"PM4_1 tran_id={ptran} p_count=0 hash={h.hex()[:16]}...")
    s5 = call("S4", center.Pay, center_pb2.PayRequest(header=hdr(T.CMD_TYPE_PM4_1), scrip=scrip, order=order, hash=h, p_count=0))
    expect_cmd("S5", s5.header, T.CMD_TYPE_PM5_1)
    change = s5.new_scrip
    need(eq_hash(s5.new_scrip_hash, sc.message_hash(cs, "PM5_1", ptran, 0, change)),
         "S5: new_scrip_hash does not verify with Custom_Secret (code PM5_1, no order, p_count 0)")
    check_new_scrip("S5", change, info.center, cid, balance - order.amount, currency, accepted, scrip.scrip.scrip_id.serial_number)
    log("S5", f"PM5_1 change value={change.scrip.value} serial={change.scrip.scrip_id.serial_number}; new_scrip_hash verified in Python")

    s5b = call("S4-retx", center.Pay, center_pb2.PayRequest(
        header=hdr(T.CMD_TYPE_PM4_1), scrip=scrip, order=order, p_count=1,
        hash=sc.message_hash(cs, "PM4_1", ptran, 1, scrip, order)))
    expect_cmd("S4-retx", s5b.header, T.CMD_TYPE_PM5_1)
    need(s5b.new_scrip == change, "S4-retx: a retransmitted S4 got different change")
    log("S4-retx", "retransmitted S4 (p_count=1) -> the same PM5_1 change; paid once")

    # ------------------------------------------------------------ S6 -> receipt
    h6 = sc.message_hash(cs, "PM6_1", ptran, 0, change)
    log("S6", f"PM6_1 tran_id={ptran} new_scrip_hash={h6.hex()[:16]}...")
    s6 = call("S6", center.ConfirmPayment, center_pb2.ConfirmPaymentRequest(
        header=hdr(T.CMD_TYPE_PM6_1), tran_id=ptran, new_scrip=change, new_scrip_hash=h6, p_count=0))
    expect_cmd("S6", s6.header, T.CMD_TYPE_PM7_1)
    need(s6.state == center_pb2.TRANSACTION_STATE_CONFIRMED, f"S6: state {s6.state}")
    rc = s6.receipt
    need(rc.tran_id == ptran and rc.price == order.amount and rc.currency == currency and rc.vendor_id == order.vendor_id,
         "S6: receipt does not match the pOder")
    need(rc.request_url == entry.request_url and rc.delivery_method == method and rc.custom_id == cid, "S6: receipt item/method/customer differ")
    need(len(rc.mac) == 32, "S6: receipt mac is not 32 bytes")
    if vendor_secret is not None and rc.vendor_key_id == args.vendor_key_id:
        need(sc.verify_mac(rc.hash_algorithm, vendor_secret, sc.receipt_input(rc), rc.mac),
             "S6: the center's receipt MAC does not verify in Python")
        log("S6", "receipt MAC verified in Python with the vendor secret")
    if s6.HasField("scrip"):
        need(s6.scrip == change, "S6: the live scrip is not the change")
        check_reply_hash("S6", s6.scrip_hash,
                         ("doc §6: PM7_1, p_count = request p_count + 1", sc.message_hash(cs, "PM7_1", ptran, 1, s6.scrip)),
                         [("PM7_1 with p_count 0", sc.message_hash(cs, "PM7_1", ptran, 0, s6.scrip))])
    log("S6", f"PM7_1 CONFIRMED receipt tran_id={rc.tran_id} price={rc.price} {rc.currency} paid_at={rc.paid_at_unix}")

    # ------------------------------------------------------------ S7
    d = call("S7", seller.Deliver, seller_pb2.DeliverRequest(header=hdr(T.CMD_TYPE_PM8_1), receipt=rc))
    expect_cmd("S7", d.header, T.CMD_TYPE_PM8_1)
    need(len(d.content) > 0, "S7: empty content")
    need(d.delivery_method == method, "S7: delivery method differs from the receipt")
    log("S7", f"PM8_1 delivered {len(d.content)} bytes ({d.content_type}) via {T.DeliveryMethod.Name(d.delivery_method)}")
    print(f"content length: {len(d.content)}", flush=True)
    forged = T.Receipt()
    forged.CopyFrom(rc)
    forged.price = 0
    e = call_expect_error("S7-forged", seller.Deliver, seller_pb2.DeliverRequest(header=hdr(T.CMD_TYPE_PM8_1), receipt=forged),
                          grpc.StatusCode.UNAUTHENTICATED)
    log("S7-forged", f"receipt with price changed -> {e.code().name} ({rpc_error_reason(e)})")

    # the spent scrip is dead: paying with it again for a fresh order is refused
    s2b = call("S1b", seller.RequestService, seller_pb2.RequestServiceRequest(
        header=hdr(T.CMD_TYPE_PM1_1), request_url=entry.request_url, p_method=method, custom_id=cid))
    expect_cmd("S2b", s2b.header, T.CMD_TYPE_PM2_1)
    o2 = s2b.order
    call("S3b", center.InitPayment, center_pb2.InitPaymentRequest(header=hdr(T.CMD_TYPE_PM3_1), order=o2))
    r = call("S4-dead", center.Pay, center_pb2.PayRequest(
        header=hdr(T.CMD_TYPE_PM4_1), scrip=scrip, order=o2, p_count=0,
        hash=sc.message_hash(cs, "PM4_1", o2.tran_id, 0, scrip, o2)))
    need(r.header.cmd_type in (T.CMD_TYPE_PM5_2, T.CMD_TYPE_PM5_3), f"S4-dead: spent scrip accepted ({cmd_name(r.header.cmd_type)})")
    log("S4-dead", f"re-spending the old serial -> {cmd_name(r.header.cmd_type)} ({r.header.error_reason}): no double spend")
    scrip = change

    # ------------------------------------------------------------ GM5_3 variants: unknown TranID, cancel
    r = call("M4-unknown", center.Issue, center_pb2.IssueRequest(
        header=hdr(T.CMD_TYPE_GM4_1), tran_id="t_no_such_tran", scrip=scrip, p_count=2,
        scrip_hash=sc.message_hash(cs, "GM4_1", "t_no_such_tran", 2, scrip)))
    expect_cmd("M4-unknown", r.header, T.CMD_TYPE_GM5_3)
    need(r.p_count == 3 and eq_hash(r.scrip_hash, sc.message_hash(cs, "GM5_3", "t_no_such_tran", 3, scrip)),
         "M4-unknown: GM5_3 echo hash does not verify (code GM5_3, p_count = request + 1)")
    log("M4-unknown", f"unknown TranID, p_count=2 -> GM5_3 ({r.header.error_reason}) p_count=3; echo hash verified")
    m2c = call("M1c", seller.RequestIssue, seller_pb2.RequestIssueRequest(
        header=hdr(T.CMD_TYPE_GM1_1), item=item.item_id, value=answer, custom_id=cid))
    expect_cmd("M2c", m2c.header, T.CMD_TYPE_GM2_1)
    ctran = m2c.permit.tran_id
    call("M3c", center.InitIssue, center_pb2.InitIssueRequest(header=hdr(T.CMD_TYPE_GM3_1), permit=m2c.permit))
    r = call("M4-cancel", center.Issue, center_pb2.IssueRequest(
        header=hdr(T.CMD_TYPE_GM4_2), tran_id=ctran, scrip=scrip, p_count=0,
        scrip_hash=sc.message_hash(cs, "GM4_2", ctran, 0, scrip)))
    need(r.header.cmd_type in (T.CMD_TYPE_GM5_2, T.CMD_TYPE_GM5_3), f"M4-cancel: got {cmd_name(r.header.cmd_type)}")
    code = cmd_name(r.header.cmd_type)
    need(eq_hash(r.scrip_hash, sc.message_hash(cs, code, ctran, 1, scrip)), f"M4-cancel: {code} echo hash does not verify")
    log("M4-cancel", f"GM4_2 before execution -> {code} ({r.header.error_reason}); echo hash verified; nothing moved")

    # ------------------------------------------------------------ resend and cancel after execution (every §6 row)
    # A campaign item rewards a customer once, so each experiment earns with a fresh AD item.
    spare = [i for i in items if i.kind == seller_pb2.CAMPAIGN_ITEM_KIND_AD and i.item_id != item.item_id and i.currency == currency]
    if len(spare) < 3:
        log("extra", f"skipping the resend/cancel-after-execution checks: the seller has {len(spare)} spare AD items, they need 3")
        spare = []

    def earn_executed(tag: str):
        it = spare.pop(0)
        m2x = call(f"M1{tag}", seller.RequestIssue, seller_pb2.RequestIssueRequest(
            header=hdr(T.CMD_TYPE_GM1_1), item=it.item_id, value="read", custom_id=cid))
        expect_cmd(f"M2{tag}", m2x.header, T.CMD_TYPE_GM2_1)
        t = m2x.permit.tran_id
        call(f"M3{tag}", center.InitIssue, center_pb2.InitIssueRequest(header=hdr(T.CMD_TYPE_GM3_1), permit=m2x.permit))
        m5x = call(f"M4{tag}", center.Issue, center_pb2.IssueRequest(
            header=hdr(T.CMD_TYPE_GM4_1), tran_id=t, scrip=scrip, p_count=0, scrip_hash=sc.message_hash(cs, "GM4_1", t, 0, scrip)))
        expect_cmd(f"M5{tag}", m5x.header, T.CMD_TYPE_GM5_1)
        return t, m2x.permit, m5x.new_scrip

    if spare:
        # GM6_2 resend, then GM4_2 cancel of the executed issuance (restored scrip, "M5 after GM4_2")
        t, pm, n = earn_executed("r")
        m7r = call("M6-resend", center.ConfirmIssue, center_pb2.ConfirmIssueRequest(
            header=hdr(T.CMD_TYPE_GM6_2), tran_id=t, new_scrip=n, p_count=0, new_scrip_hash=sc.message_hash(cs, "GM6_2", t, 0, n)))
        expect_cmd("M6-resend", m7r.header, T.CMD_TYPE_GM7_1)
        need(m7r.scrip == n and m7r.state == center_pb2.TRANSACTION_STATE_EXECUTED, "M6-resend: GM6_2 must resend the M5 scrip, state EXECUTED")
        check_reply_hash("M6-resend", m7r.scrip_hash, ("doc §6: GM7_1, p_count = request p_count + 1", sc.message_hash(cs, "GM7_1", t, 1, n)))
        r = call("M4-undo", center.Issue, center_pb2.IssueRequest(
            header=hdr(T.CMD_TYPE_GM4_2), tran_id=t, scrip=scrip, p_count=0, scrip_hash=sc.message_hash(cs, "GM4_2", t, 0, scrip)))
        expect_cmd("M4-undo", r.header, T.CMD_TYPE_GM5_3)
        need(r.HasField("new_scrip") and r.new_scrip.scrip.value == scrip.scrip.value, "M4-undo: GM4_2 after execution must restore the value")
        check_reply_hash("M4-undo", r.new_scrip_hash, ("doc §6 'M5 after GM4_2': GM5_3, restored scrip, p_count + 1", sc.message_hash(cs, "GM5_3", t, 1, r.new_scrip)))
        need(eq_hash(r.scrip_hash, sc.message_hash(cs, "GM5_3", t, 1, scrip)), "M4-undo: echoed scrip_hash does not verify")
        check_new_scrip("M4-undo", r.new_scrip, info.center, cid, scrip.scrip.value, currency, accepted, n.scrip.scrip_id.serial_number)
        log("M4-undo", f"GM4_2 after execution -> GM5_3 {r.header.error_reason}; value {r.new_scrip.scrip.value} restored under a fresh serial")
        scrip = r.new_scrip

        # GM6_3: cancel at M6 (restored scrip carried by M7)
        t, pm, n = earn_executed("x")
        m7x = call("M6-cancel", center.ConfirmIssue, center_pb2.ConfirmIssueRequest(
            header=hdr(T.CMD_TYPE_GM6_3), tran_id=t, new_scrip=n, p_count=0, new_scrip_hash=sc.message_hash(cs, "GM6_3", t, 0, n)))
        expect_cmd("M6-cancel", m7x.header, T.CMD_TYPE_GM7_1)
        need(m7x.state == center_pb2.TRANSACTION_STATE_CANCELLED and m7x.scrip.scrip.value == scrip.scrip.value,
             "M6-cancel: GM6_3 must cancel and restore the value")
        check_reply_hash("M6-cancel", m7x.scrip_hash, ("doc §6: GM7_1 over the restored scrip, p_count + 1", sc.message_hash(cs, "GM7_1", t, 1, m7x.scrip)))
        log("M6-cancel", f"GM6_3 -> GM7_1 CANCELLED; value {m7x.scrip.scrip.value} restored")
        scrip = m7x.scrip

        # fund the payment experiments with one more confirmed issuance
        t, pm, n = earn_executed("f")
        m7f = call("M6f", center.ConfirmIssue, center_pb2.ConfirmIssueRequest(
            header=hdr(T.CMD_TYPE_GM6_1), tran_id=t, new_scrip=n, p_count=0, new_scrip_hash=sc.message_hash(cs, "GM6_1", t, 0, n)))
        expect_cmd("M7f", m7f.header, T.CMD_TYPE_GM7_1)
        scrip = m7f.scrip

        def pay_executed(tag: str):
            s2x = call(f"S1{tag}", seller.RequestService, seller_pb2.RequestServiceRequest(
                header=hdr(T.CMD_TYPE_PM1_1), request_url=entry.request_url, p_method=method, custom_id=cid))
            expect_cmd(f"S2{tag}", s2x.header, T.CMD_TYPE_PM2_1)
            o = s2x.order
            call(f"S3{tag}", center.InitPayment, center_pb2.InitPaymentRequest(header=hdr(T.CMD_TYPE_PM3_1), order=o))
            s5x = call(f"S4{tag}", center.Pay, center_pb2.PayRequest(
                header=hdr(T.CMD_TYPE_PM4_1), scrip=scrip, order=o, p_count=0, hash=sc.message_hash(cs, "PM4_1", o.tran_id, 0, scrip, o)))
            expect_cmd(f"S5{tag}", s5x.header, T.CMD_TYPE_PM5_1)
            return o, s5x.new_scrip

        if scrip.scrip.value >= entry.price:
            # PM6_2 resend, then PM4_2 cancel of the executed payment ("S5 after PM4_2")
            o, c = pay_executed("r")
            r6 = call("S6-resend", center.ConfirmPayment, center_pb2.ConfirmPaymentRequest(
                header=hdr(T.CMD_TYPE_PM6_2), tran_id=o.tran_id, new_scrip=c, p_count=0, new_scrip_hash=sc.message_hash(cs, "PM6_2", o.tran_id, 0, c)))
            expect_cmd("S6-resend", r6.header, T.CMD_TYPE_PM7_1)
            need(r6.scrip == c and not r6.HasField("receipt"), "S6-resend: PM6_2 must resend the change and no receipt")
            check_reply_hash("S6-resend", r6.scrip_hash, ("doc §6: PM7_1, p_count = request p_count + 1", sc.message_hash(cs, "PM7_1", o.tran_id, 1, c)))
            r = call("S4-undo", center.Pay, center_pb2.PayRequest(
                header=hdr(T.CMD_TYPE_PM4_2), scrip=scrip, order=o, p_count=0, hash=sc.message_hash(cs, "PM4_2", o.tran_id, 0, scrip, o)))
            expect_cmd("S4-undo", r.header, T.CMD_TYPE_PM5_2)
            need(r.HasField("new_scrip") and r.new_scrip.scrip.value == scrip.scrip.value, "S4-undo: PM4_2 after execution must restore the value")
            check_reply_hash("S4-undo", r.new_scrip_hash, ("doc §6 'S5 after PM4_2': PM5_2, restored scrip, no order, p_count + 1",
                                                           sc.message_hash(cs, "PM5_2", o.tran_id, 1, r.new_scrip)),
                             [("PM5_2 with the order", sc.message_hash(cs, "PM5_2", o.tran_id, 1, r.new_scrip, o))])
            need(eq_hash(r.hash, sc.message_hash(cs, "PM5_2", o.tran_id, 1, scrip, o)), "S4-undo: echoed hash (with order) does not verify")
            log("S4-undo", f"PM4_2 after execution -> PM5_2 {r.header.error_reason}; value {r.new_scrip.scrip.value} restored")
            scrip = r.new_scrip

            # PM6_3: payment failed at the wallet, undo (restored scrip carried by PM7_1)
            o, c = pay_executed("x")
            r6 = call("S6-fail", center.ConfirmPayment, center_pb2.ConfirmPaymentRequest(
                header=hdr(T.CMD_TYPE_PM6_3), tran_id=o.tran_id, new_scrip=c, p_count=0, new_scrip_hash=sc.message_hash(cs, "PM6_3", o.tran_id, 0, c)))
            expect_cmd("S6-fail", r6.header, T.CMD_TYPE_PM7_1)
            need(r6.state == center_pb2.TRANSACTION_STATE_CANCELLED and r6.scrip.scrip.value == scrip.scrip.value and not r6.HasField("receipt"),
                 "S6-fail: PM6_3 must undo the payment, restore the value and give no receipt")
            check_reply_hash("S6-fail", r6.scrip_hash, ("doc §6: PM7_1 over the restored scrip, p_count + 1", sc.message_hash(cs, "PM7_1", o.tran_id, 1, r6.scrip)))
            log("S6-fail", f"PM6_3 -> PM7_1 CANCELLED; value {r6.scrip.scrip.value} restored, no receipt")
            scrip = r6.scrip
        else:
            log("S4-undo", f"skipped: balance {scrip.scrip.value} < price {entry.price}")

    # ------------------------------------------------------------ renew (RN1 -> RN2)
    rid = "rn-" + secrets.token_hex(12)
    rn = call("RN1", center.Renew, center_pb2.RenewRequest(
        header=hdr(T.CMD_TYPE_RN1), request_id=rid, scrip=scrip, p_count=0,
        scrip_hash=sc.message_hash(cs, "RN1", rid, 0, scrip)))
    expect_cmd("RN2", rn.header, T.CMD_TYPE_RN2)
    need(eq_hash(rn.new_scrip_hash, sc.message_hash(cs, "RN2", rid, 0, rn.new_scrip)), "RN2: new_scrip_hash does not verify (RN2, p_count 0)")
    check_new_scrip("RN2", rn.new_scrip, info.center, cid, scrip.scrip.value, currency, accepted, scrip.scrip.scrip_id.serial_number)
    log("RN2", f"renewed: value={rn.new_scrip.scrip.value} new serial={rn.new_scrip.scrip.scrip_id.serial_number}; hash verified")
    scrip = rn.new_scrip

    # ------------------------------------------------------------ redeem (RD1 -> RD2), if the threshold allows
    threshold = info.redeem_threshold.get(currency, 0)
    if 0 < threshold <= scrip.scrip.value:
        rid = "rd-" + secrets.token_hex(12)
        account = "bank:interop/국민 🏦"
        e = call_expect_error("RD1-acct", center.Redeem, center_pb2.RedeemRequest(
            header=hdr(T.CMD_TYPE_RD1), request_id=rid, scrip=scrip, amount=threshold, payout_account=account + "x", p_count=0,
            scrip_hash=sc.message_hash(cs, "RD1", rid, 0, scrip, amount=threshold, account=account)), grpc.StatusCode.UNAUTHENTICATED)
        log("RD1-acct", f"payout_account changed after hashing -> {e.code().name}: the account is bound")
        rd = call("RD1", center.Redeem, center_pb2.RedeemRequest(
            header=hdr(T.CMD_TYPE_RD1), request_id=rid, scrip=scrip, amount=threshold, payout_account=account, p_count=0,
            scrip_hash=sc.message_hash(cs, "RD1", rid, 0, scrip, amount=threshold, account=account)))
        expect_cmd("RD2", rd.header, T.CMD_TYPE_RD2)
        need(rd.payout.amount == threshold and rd.payout.payout_account == account, "RD2: payout differs")
        check_new_scrip("RD2", rd.new_scrip, info.center, cid, scrip.scrip.value - threshold, currency, accepted, scrip.scrip.scrip_id.serial_number)
        check_reply_hash("RD2", rd.new_scrip_hash,
                         ("doc §6: RD2, p_count 0, amount = payout.amount, account = payout_account",
                          sc.message_hash(cs, "RD2", rid, 0, rd.new_scrip, amount=rd.payout.amount, account=account)),
                         [("RD2 with amount 0 and account empty", sc.message_hash(cs, "RD2", rid, 0, rd.new_scrip))])
        log("RD2", f"redeemed {threshold} {currency} to {account!r}; left {rd.new_scrip.scrip.value}")
        scrip = rd.new_scrip
        if scrip.scrip.value >= threshold:
            # amount 0 redeems everything: RD1 hashes amount 0, RD2 hashes the amount actually paid out
            rid = "rd-" + secrets.token_hex(12)
            rd = call("RD1-all", center.Redeem, center_pb2.RedeemRequest(
                header=hdr(T.CMD_TYPE_RD1), request_id=rid, scrip=scrip, amount=0, payout_account=account, p_count=0,
                scrip_hash=sc.message_hash(cs, "RD1", rid, 0, scrip, amount=0, account=account)))
            expect_cmd("RD2-all", rd.header, T.CMD_TYPE_RD2)
            need(rd.payout.amount == scrip.scrip.value and rd.new_scrip.scrip.value == 0, "RD2-all: amount 0 must redeem the whole value")
            check_reply_hash("RD2-all", rd.new_scrip_hash,
                             ("doc §6: RD2, amount = payout.amount (the whole value when the request said 0)",
                              sc.message_hash(cs, "RD2", rid, 0, rd.new_scrip, amount=rd.payout.amount, account=account)),
                             [("RD2 with the request's amount 0", sc.message_hash(cs, "RD2", rid, 0, rd.new_scrip, amount=0, account=account))])
            log("RD2-all", f"amount 0 redeemed the whole {rd.payout.amount} {currency}; left {rd.new_scrip.scrip.value}")
            scrip = rd.new_scrip
    else:
        log("RD1", f"skipped: balance {scrip.scrip.value} is below the redemption threshold {threshold}")

    # ------------------------------------------------------------ restore / sync (SY1 -> SY2), hashes per doc §5.7-5.8
    nonce = secrets.token_bytes(32)
    ts = int(time.time() * 1000)
    sy1 = center_pb2.SyncRequest(header=hdr(T.CMD_TYPE_SY1), custom_id=cid, timestamp_unix_ms=ts, nonce=nonce,
                                 hash=sc.mac(sc.HMAC_SHA256, cs, sc.sync_request_input(cid, ts, nonce)))
    sy2 = call("SY1", center.Sync, sy1)
    expect_cmd("SY2", sy2.header, T.CMD_TYPE_SY2)
    want = sc.mac(sc.HMAC_SHA256, cs, sc.sync_reply_input(cid, nonce, sy2.server_time_unix_ms, list(sy2.scrips), list(sy2.in_flight), list(sy2.credits)))
    need(eq_hash(sy2.hash, want), "SY2: the reply hash does not verify (doc §5.8)")
    live = [x for x in sy2.scrips if x.scrip.currency == currency]
    need(len(live) == 1 and live[0].scrip.scrip_id.serial_number == scrip.scrip.scrip_id.serial_number and live[0].scrip.value == scrip.scrip.value,
         "SY2: the live scrip is not the one this wallet holds")
    log("SY2", f"live scrip {live[0].scrip.value} {currency} (serial {live[0].scrip.scrip_id.serial_number}); reply hash verified in Python")
    e = call_expect_error("SY1-replay", center.Sync, sy1, grpc.StatusCode.UNAUTHENTICATED)
    log("SY1-replay", f"the same recorded request again -> {e.code().name} {rpc_error_reason(e)}")

    cch.close()
    sch.close()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
