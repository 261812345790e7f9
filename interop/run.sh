#!/usr/bin/env bash
# Cross-language interop, end to end:
#   1. interop/gen.sh            Python protobuf + gRPC stubs from proto/ (Debian protoc)
#   2. test_vectors.py           every vector of testdata/vectors.json, reproduced in Python
#   3. start-servers.ts          a real TypeScript center + seller on free loopback ports
#   4. client_flow.py            Python grpcio wallet: register, earn, buy, tamper checks
#      gateway_flow.py           Python client of the HTTP 402 gateway (urllib + grpcio)
#   5. grpcjs-pay.ts             @grpc/grpc-js wallet (not Connect): register, earn, pay, deliver
#   6. tear the servers down
# Exit status: 0 only if every step passed.
#
# Needs (Debian): python3-grpcio python3-protobuf python3-cryptography
#                 protobuf-compiler protobuf-compiler-grpc
# Python is /usr/bin/python3 (Debian's, which sees dist-packages); override with PYTHON=.
set -uo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
cd "$root"
PY="${PYTHON:-/usr/bin/python3}"
NODE="${NODE:-node}"
START_TIMEOUT="${SCRIPWIRE_INTEROP_START_TIMEOUT:-90}"

declare -a results=()
failed=0
pass() { results+=("PASS  $1"); }
fail() { results+=("FAIL  $1"); failed=1; }
banner() { printf '\n=== %s ===\n' "$1"; }

summary() {
  printf '\n=== interop summary ===\n'
  printf '%s\n' "${results[@]}"
  if [[ $failed -eq 0 ]]; then echo "interop: all steps passed"; else echo "interop: FAILED"; fi
}

server_pid=""
work="$(mktemp -d "${TMPDIR:-/tmp}/scripwire-interop-run.XXXXXX")"
cleanup() {
  if [[ -n "$server_pid" ]] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" 2>/dev/null
    for _ in $(seq 1 50); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$server_pid" 2>/dev/null && kill -KILL "$server_pid" 2>/dev/null
    wait "$server_pid" 2>/dev/null
  fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- 1. stubs
banner "1. gen.sh: Python stubs"
if bash "$here/gen.sh"; then pass "gen.sh"; else fail "gen.sh"; summary; exit 1; fi

# ---------------------------------------------------------------- 2. vectors
banner "2. test_vectors.py: testdata/vectors.json in Python"
if "$PY" "$here/python/test_vectors.py"; then pass "test_vectors.py"; else fail "test_vectors.py"; fi

# ---------------------------------------------------------------- 3. servers
banner "3. start-servers.ts: TypeScript center + seller"
if [[ ! -f "$root/src/server/stack.ts" ]]; then
  echo "src/server/stack.ts does not exist yet: the TypeScript servers cannot start" >&2
  fail "start-servers.ts (src/server/stack.ts missing)"
  summary; exit 1
fi
"$NODE" --import=tsx "$here/start-servers.ts" >"$work/servers.out" 2>"$work/servers.err" &
server_pid=$!
line=""
for _ in $(seq 1 $((START_TIMEOUT * 10))); do
  line="$(head -n 1 "$work/servers.out" 2>/dev/null || true)"
  [[ "$line" == \{* ]] && break
  kill -0 "$server_pid" 2>/dev/null || break
  sleep 0.1
done
if [[ "$line" != \{* ]]; then
  echo "servers did not start within ${START_TIMEOUT}s:" >&2
  sed 's/^/  servers: /' "$work/servers.err" >&2
  fail "start-servers.ts"
  summary; exit 1
fi
json() { "$PY" -c 'import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$line" "$1"; }
CENTER="$(json center)"; SELLER="$(json seller)"; GATEWAY="$(json gateway_url)"
QUIZ_ITEM="$(json quiz_item)"; QUIZ_ANSWER="$(json quiz_answer)"
VENDOR_SECRET="$(json vendor_secret_hex)"; VENDOR_KEY_ID="$(json vendor_key_id)"
echo "center at $CENTER, seller at $SELLER (server pid $server_pid)"
pass "start-servers.ts"

# ---------------------------------------------------------------- 4. Python client
banner "4. client_flow.py: Python grpcio wallet against the TypeScript servers"
if "$PY" "$here/python/client_flow.py" "$CENTER" "$SELLER" \
     --item "$QUIZ_ITEM" --answer "$QUIZ_ANSWER" \
     --vendor-secret "$VENDOR_SECRET" --vendor-key-id "$VENDOR_KEY_ID"; then
  pass "client_flow.py (quiz)"
else
  fail "client_flow.py (quiz)"
fi
# the same again, earning with an AD item (no answer needed)
if "$PY" "$here/python/client_flow.py" "$CENTER" "$SELLER"; then
  pass "client_flow.py (ad)"
else
  fail "client_flow.py (ad)"
fi

# the HTTP 402 gateway, paid from Python with the header grammar of docs/gateway.md
if "$PY" "$here/python/gateway_flow.py" "$CENTER" "$SELLER" "$GATEWAY"; then
  pass "gateway_flow.py (HTTP 402)"
else
  fail "gateway_flow.py (HTTP 402)"
fi

# ---------------------------------------------------------------- 4b. buf templates (Python, C++)
banner "4b. buf templates: interop/buf.gen.python.yaml and buf.gen.cpp.yaml"
if npx buf generate --template "$here/buf.gen.python.yaml" -o "$work/buf-py" >"$work/buf-py.log" 2>&1 \
   && "$PY" - "$work/buf-py/python" "$CENTER" <<'PYEOF'
import sys
sys.path.insert(0, sys.argv[1])
import grpc
from scripwire.v1 import center_pb2, center_pb2_grpc
stub = center_pb2_grpc.PaymentCenterServiceStub(grpc.insecure_channel(sys.argv[2]))
info = stub.GetCenterInfo(center_pb2.GetCenterInfoRequest(), timeout=10)
assert info.center.dns_name and len(info.public_key) == 32, info
print("buf python template: GetCenterInfo ->", info.center.dns_name, list(info.currencies))
PYEOF
then pass "buf.gen.python.yaml (generated, imported, called)"; else cat "$work/buf-py.log" 2>/dev/null; fail "buf.gen.python.yaml"; fi
if npx buf generate --template "$here/buf.gen.cpp.yaml" -o "$work/buf-cpp" >"$work/buf-cpp.log" 2>&1 \
   && grep -q "class PaymentCenterService" "$work/buf-cpp/cpp/scripwire/v1/center.grpc.pb.h" \
   && grep -q "GetCenterInfo" "$work/buf-cpp/cpp/scripwire/v1/center.grpc.pb.h" \
   && [[ -s "$work/buf-cpp/cpp/scripwire/v1/types.pb.cc" ]]; then
  pass "buf.gen.cpp.yaml (messages and service stubs generated)"
else
  cat "$work/buf-cpp.log" 2>/dev/null; fail "buf.gen.cpp.yaml"
fi

# ---------------------------------------------------------------- 4c. grpcurl
banner "4c. grpcurl (../shared/tools) through reflection: list, describe, a call, health, an admin call"
GRPCURL_GZ="$root/../shared/tools/grpcurl-1.9.1-linux-amd64.gz"
if [[ ! -f "$GRPCURL_GZ" ]]; then
  echo "grpcurl skipped: $GRPCURL_GZ is not here (it is provided beside the repository on the project's machines)"
  pass "grpcurl (skipped: tool not present)"
else
  gunzip -c "$GRPCURL_GZ" >"$work/grpcurl" && chmod +x "$work/grpcurl"
  G="$work/grpcurl"
  ADMIN_TOKEN="$(json admin_token)"
  if "$G" -plaintext "$CENTER" list | tee "$work/g-list" | grep -q "scripwire.v1.PaymentCenterService" \
     && grep -q "grpc.health.v1.Health" "$work/g-list" \
     && "$G" -plaintext "$CENTER" describe scripwire.v1.PaymentCenterService.Pay | grep -q "rpc Pay" \
     && "$G" -plaintext -d '{}' "$CENTER" scripwire.v1.PaymentCenterService/GetCenterInfo | grep -q '"publicKey"' \
     && "$G" -plaintext -d '{"service":""}' "$CENTER" grpc.health.v1.Health/Check | grep -q SERVING \
     && "$G" -plaintext -H "authorization: Bearer $ADMIN_TOKEN" -d '{}' "$CENTER" scripwire.v1.CenterAdminService/ListCampaigns | grep -q campaignId \
     && ! "$G" -plaintext -d '{}' "$CENTER" scripwire.v1.CenterAdminService/ListCampaigns >/dev/null 2>&1; then
    pass "grpcurl (list, describe, GetCenterInfo, health, admin with token; refused without)"
  else
    fail "grpcurl"
  fi
fi

# ---------------------------------------------------------------- 5. grpc-js client
banner "5. grpcjs-pay.ts: @grpc/grpc-js wallet against the Connect servers"
if "$NODE" --import=tsx "$here/grpcjs-pay.ts" "$CENTER" "$SELLER" --item "$QUIZ_ITEM" --answer "$QUIZ_ANSWER"; then
  pass "grpcjs-pay.ts"
else
  fail "grpcjs-pay.ts"
fi

# ---------------------------------------------------------------- 6. teardown
banner "6. teardown"
kill -TERM "$server_pid" 2>/dev/null
stopped=0
for _ in $(seq 1 100); do kill -0 "$server_pid" 2>/dev/null || { stopped=1; break; }; sleep 0.1; done
if [[ $stopped -eq 1 ]]; then
  wait "$server_pid"; rc=$?
  server_pid=""
  if [[ $rc -eq 0 ]]; then pass "servers stopped cleanly"; else fail "servers exited with status $rc"; fi
else
  fail "servers did not stop within 10s of SIGTERM"
fi
# The servers' call log is only interesting when something failed.
if [[ $failed -ne 0 && -s "$work/servers.err" ]]; then
  echo "server log (stderr):"; sed 's/^/  /' "$work/servers.err"
elif [[ -s "$work/servers.err" ]]; then
  echo "server log: $(wc -l <"$work/servers.err") lines (shown only on failure)"
fi

summary
exit $failed
