#!/usr/bin/python3
"""A Python client for the HTTP 402 gateway (docs/gateway.md), written from
the spec alone: it registers and earns scrip over grpcio like
client_flow.py, then fetches a priced page over plain HTTP (urllib), parses
the `WWW-Authenticate: Scrip` challenge, pays it (S1 at the challenge's
seller, S3..S6 at the center), and retries with
`Authorization: Scrip <base64url protobuf Receipt>`. A receipt with one
flipped MAC bit must come back as a fresh 402 with reason BAD_MAC.

usage:
  /usr/bin/python3 interop/python/gateway_flow.py CENTER_HOST:PORT SELLER_HOST:PORT GATEWAY_URL [--ad-item ITEM]

Exit status: 0 when every step passed, 1 on any failure, 2 on bad usage.
"""

from __future__ import annotations

import argparse
import base64
import os
import re
import secrets
import sys
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "gen"))

try:
    import grpc
    from scripwire.v1 import center_pb2, center_pb2_grpc, seller_pb2, seller_pb2_grpc, types_pb2
except ImportError as e:  # pragma: no cover
    sys.stderr.write(f"gateway_flow.py: {e}\n  run interop/gen.sh first, and use /usr/bin/python3\n")
    sys.exit(2)

import scripwire_canonical as sc  # noqa: E402

T = types_pb2
RPC_TIMEOUT = float(os.environ.get("SCRIPWIRE_RPC_TIMEOUT", "15"))


class FlowError(Exception):
    pass


def need(cond: bool, what: str) -> None:
    if not cond:
        raise FlowError(what)


def log(step: str, msg: str) -> None:
    print(f"[{step}] {msg}", flush=True)


def hdr(cmd: int) -> "T.HeaderType":
    return T.HeaderType(cmd_type=cmd, protocol_version="scripwire/1")


def expect_cmd(step: str, header, want: int) -> None:
    need(header.cmd_type == want, f"{step}: expected {T.CmdType.Name(want)}, got {T.CmdType.Name(header.cmd_type)} "
                                  f"({header.error_reason}: {header.error_message})")


# --- the challenge grammar of docs/gateway.md: "Scrip" 1*SP auth-param *( OWS "," OWS auth-param )
PARAM = re.compile(r'\s*,?\s*([!#$%&\'*+\-.^_`|~0-9A-Za-z]+)\s*=\s*"((?:[^"\\]|\\.)*)"')


def parse_challenge(value: str) -> dict:
    m = re.search(r'(?:^|,)\s*Scrip\s+', value)
    need(m is not None, f"no Scrip challenge in {value!r}")
    rest = value[m.end():]
    params = {}
    pos = 0
    while True:
        p = PARAM.match(rest, pos)
        if not p:
            break
        params[p.group(1).lower()] = re.sub(r"\\(.)", r"\1", p.group(2))
        pos = p.end()
    for k in ("vendor", "seller", "item", "price", "currency", "method", "route", "lifetime"):
        need(k in params, f"challenge lacks {k}: {value!r}")
    return params


def http_get(url: str, authorization: str | None = None):
    req = urllib.request.Request(url, headers={"accept": "application/json", **({"authorization": authorization} if authorization else {})})
    try:
        with urllib.request.urlopen(req, timeout=RPC_TIMEOUT) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def credential(receipt: "T.Receipt") -> str:
    return "Scrip " + base64.urlsafe_b64encode(receipt.SerializeToString()).decode().rstrip("=")


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("center")
    ap.add_argument("seller")
    ap.add_argument("gateway")
    ap.add_argument("--ad-item", default="ad-extra-5")
    args = ap.parse_args(argv)
    try:
        run(args)
    except FlowError as e:
        print(f"FAIL: {e}", flush=True)
        return 1
    print("gateway_flow: all steps passed", flush=True)
    return 0


def run(args) -> None:
    center = center_pb2_grpc.PaymentCenterServiceStub(grpc.insecure_channel(args.center))
    mall = seller_pb2_grpc.SellerServiceStub(grpc.insecure_channel(args.seller))

    # R1 -> R2, then M1..M7 for an AD reward: a wallet with scrip to spend.
    info = center.GetCenterInfo(center_pb2.GetCenterInfoRequest(), timeout=RPC_TIMEOUT)
    wallet_id = secrets.token_hex(16)
    ks = os.urandom(32)
    reg = center.Register(center_pb2.RegisterRequest(header=hdr(T.CMD_TYPE_UM1), wallet_id=wallet_id, name="Python gateway client",
                                                     sealed_session_key=sc.seal_session_key(info.public_key, wallet_id, ks)), timeout=RPC_TIMEOUT)
    expect_cmd("R2", reg.header, T.CMD_TYPE_UM2)
    scrip = reg.scrip
    cid = scrip.scrip.custom_id
    cs = sc.decrypt_custom_secret(ks, wallet_id, cid.secret_id, cid.serial_number, reg.encrypted_custom_secret)
    m2 = mall.RequestIssue(seller_pb2.RequestIssueRequest(header=hdr(T.CMD_TYPE_GM1_1), item=args.ad_item, value="read", custom_id=cid), timeout=RPC_TIMEOUT)
    expect_cmd("M2", m2.header, T.CMD_TYPE_GM2_1)
    tran = m2.permit.tran_id
    center.InitIssue(center_pb2.InitIssueRequest(header=hdr(T.CMD_TYPE_GM3_1), permit=m2.permit), timeout=RPC_TIMEOUT)
    m5 = center.Issue(center_pb2.IssueRequest(header=hdr(T.CMD_TYPE_GM4_1), tran_id=tran, scrip=scrip, p_count=0,
                                              scrip_hash=sc.message_hash(cs, "GM4_1", tran, 0, scrip)), timeout=RPC_TIMEOUT)
    expect_cmd("M5", m5.header, T.CMD_TYPE_GM5_1)
    m7 = center.ConfirmIssue(center_pb2.ConfirmIssueRequest(header=hdr(T.CMD_TYPE_GM6_1), tran_id=tran, new_scrip=m5.new_scrip, p_count=0,
                                                            new_scrip_hash=sc.message_hash(cs, "GM6_1", tran, 0, m5.new_scrip)), timeout=RPC_TIMEOUT)
    expect_cmd("M7", m7.header, T.CMD_TYPE_GM7_1)
    scrip = m7.scrip
    log("setup", f"registered customer {cid.serial_number}, earned {scrip.scrip.value} {scrip.scrip.currency}")

    # The 402 exchange.
    url = args.gateway.rstrip("/") + "/articles/python"
    status, headers, body = http_get(url)
    need(status == 402, f"unpaid GET: expected 402, got {status}")
    h = {k.lower(): v for k, v in headers.items()}
    need(h.get("cache-control") == "no-store", "402 without Cache-Control: no-store")
    c = parse_challenge(h["www-authenticate"])
    log("402", f"challenge: vendor={c['vendor']} item={c['item']} price={c['price']} {c['currency']} method={c['method']} route={c['route']}")
    need(c["method"] == "VIEW", "expected a VIEW route")

    seller_target = re.sub(r"^https?://", "", c["seller"])
    gw = seller_pb2_grpc.SellerServiceStub(grpc.insecure_channel(seller_target))
    s2 = gw.RequestService(seller_pb2.RequestServiceRequest(header=hdr(T.CMD_TYPE_PM1_1), request_url=c["item"],
                                                            p_method=T.DELIVERY_METHOD_VIEW, custom_id=cid), timeout=RPC_TIMEOUT)
    expect_cmd("S2", s2.header, T.CMD_TYPE_PM2_1)
    order = s2.order
    need(order.amount == int(c["price"]) and order.item == c["item"] and order.vendor_id == c["vendor"], "S2: pOder differs from the challenge")
    ptran = order.tran_id
    center.InitPayment(center_pb2.InitPaymentRequest(header=hdr(T.CMD_TYPE_PM3_1), order=order), timeout=RPC_TIMEOUT)
    s5 = center.Pay(center_pb2.PayRequest(header=hdr(T.CMD_TYPE_PM4_1), scrip=scrip, order=order, p_count=0,
                                          hash=sc.message_hash(cs, "PM4_1", ptran, 0, scrip, order)), timeout=RPC_TIMEOUT)
    expect_cmd("S5", s5.header, T.CMD_TYPE_PM5_1)
    change = s5.new_scrip
    s6 = center.ConfirmPayment(center_pb2.ConfirmPaymentRequest(header=hdr(T.CMD_TYPE_PM6_1), tran_id=ptran, new_scrip=change, p_count=0,
                                                                new_scrip_hash=sc.message_hash(cs, "PM6_1", ptran, 0, change)), timeout=RPC_TIMEOUT)
    expect_cmd("S6", s6.header, T.CMD_TYPE_PM7_1)
    receipt = s6.receipt
    log("S1-S6", f"paid {order.amount} {order.currency}, TranID {ptran}; balance {change.scrip.value}")

    status, headers, body = http_get(url, credential(receipt))
    need(status == 200, f"paid GET: expected 200, got {status}: {body[:200]!r}")
    need(b"/articles/python" in body, f"paid GET: unexpected body {body[:200]!r}")
    log("200", f"content ({len(body)} bytes) with Authorization: Scrip <receipt>")
    status, _, _ = http_get(args.gateway.rstrip("/") + "/articles/another", credential(receipt))
    need(status == 200, f"same route, other page: expected 200, got {status}")
    log("200", "the same receipt opens another page of the route")

    bad = T.Receipt()
    bad.CopyFrom(receipt)
    bad.mac = bytes([bad.mac[0] ^ 1]) + bad.mac[1:]
    status, headers, _ = http_get(url, credential(bad))
    h = {k.lower(): v for k, v in headers.items()}
    need(status == 402, f"tampered receipt: expected 402, got {status}")
    need(parse_challenge(h["www-authenticate"]).get("reason") == "BAD_MAC", f"tampered receipt: reason {h.get('scripwire-error-reason')}")
    log("402", "a receipt with one flipped MAC bit -> fresh 402, reason BAD_MAC")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
