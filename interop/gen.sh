#!/usr/bin/env bash
# Generates the Python protobuf + gRPC stubs for the Scripwire protos into
# interop/python/gen/ (gitignored). Uses Debian's protoc and grpc_python_plugin
# (apt-get install protobuf-compiler protobuf-compiler-grpc), not buf, so the
# Python side shares no generated code with the TypeScript side.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
out="$here/python/gen"
PROTOC="${PROTOC:-/usr/bin/protoc}"
PLUGIN="${GRPC_PYTHON_PLUGIN:-/usr/bin/grpc_python_plugin}"

for tool in "$PROTOC" "$PLUGIN"; do
  if [[ ! -x "$tool" ]]; then
    echo "gen.sh: $tool not found; install it with: apt-get install -y protobuf-compiler protobuf-compiler-grpc" >&2
    exit 2
  fi
done

# Well-known types (google/protobuf/*.proto) ship with protobuf-compiler in
# /usr/include; add them to the include path in case a proto imports one.
includes=(-I "$root/proto")
[[ -d /usr/include/google/protobuf ]] && includes+=(-I /usr/include)

rm -rf "$out"
mkdir -p "$out"
mapfile -t protos < <(cd "$root/proto" && find scripwire -name '*.proto' | sort)
"$PROTOC" "${includes[@]}" \
  --plugin=protoc-gen-grpc_python="$PLUGIN" \
  --python_out="$out" \
  --grpc_python_out="$out" \
  "${protos[@]}"
# Make the generated tree regular packages (imports are "from scripwire.v1 import ...").
find "$out" -type d -exec touch {}/__init__.py \;
echo "gen.sh: generated $(find "$out" -name '*_pb2*.py' | wc -l) modules in ${out#$root/}"
