#!/usr/bin/env bash
# Writes the store fixture of an earlier release, for the upgrade test (tests/tests/upgrade.rs).
#
#   bash deploy/store-fixture.sh REV OUT.tar.gz
#
# REV is a tag or commit of this repository (v0.1.0: the release before store formats were
# recorded). The script builds lt-relay and lt-gateway of REV in a temporary git worktree (sharing
# this checkout's target folder, so only the project's own crates are compiled), then, with those
# binaries only:
#   - creates a development PKI (CA valid 10 years, node certificates valid 10 years, so the
#     fixture stays usable), for the province 000.00.00.H53 and its parent, the root 000.00.00.G22;
#   - starts the province relay with a parent that is not running, so everything it is given
#     stays queued;
#   - sends documents (one with an attachment) through its API with the old lt-gateway, which
#     numbers them in the province's outgoing register and writes audit records;
#   - stops it (SIGTERM: it flushes) and packs the node folder: config with @DIR@, @API@ and
#     @PARENT@ placeholders, the PKI, the store, and expected.json (envelope ids, register
#     numbers, audit record count) as read by the old binary itself.
set -euo pipefail
if [ $# -ne 2 ]; then
  echo "usage: bash deploy/store-fixture.sh REV OUT.tar.gz   (e.g. v0.1.0 tests/fixtures/store-v0.1.0.tar.gz)" >&2
  exit 2
fi
rev=$1
out=$(realpath -m "$2")
repo=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
tree="$work/src"
node="$work/node"
pid=""
cleanup() {
  if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; fi
  git -C "$repo" worktree remove --force "$tree" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

echo "store-fixture: building lt-relay and lt-gateway of $rev" >&2
git -C "$repo" worktree add --detach "$tree" "$rev" >/dev/null
(cd "$tree" && CARGO_TARGET_DIR="$repo/target/store-fixture" \
  cargo build -q -p lienthong-relay -p lienthong-gateway --bins)
mkdir -p "$work/bin"
cp "$repo/target/store-fixture/debug/lt-relay" "$repo/target/store-fixture/debug/lt-gateway" "$work/bin/"
relay="$work/bin/lt-relay"
gateway="$work/bin/lt-gateway"

mkdir -p "$node"
"$relay" pki init --dir "$node/pki" >/dev/null
"$relay" pki issue --dir "$node/pki" --agency 000.00.00.H53 --name "UBND tỉnh Tây Ninh" --days 3650 >/dev/null
"$relay" pki issue --dir "$node/pki" --agency 000.00.00.G22 --name "Văn phòng Chính phủ" --days 3650 >/dev/null

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
api_port=$(free_port)
parent_port=$(free_port)
cat >"$node/node.toml.in" <<'EOF'
# Province relay of the store fixture (written by deploy/store-fixture.sh).
[node]
agency = "000.00.00.H53"
name = "UBND tỉnh Tây Ninh"
data_dir = "@DIR@/data"

[listen]
api = "@API@"

[parent]
endpoint = "https://@PARENT@"
agency = "000.00.00.G22"

[tls]
ca = "@DIR@/pki/ca.pem"
cert = "@DIR@/pki/000.00.00.H53.pem"
key = "@DIR@/pki/000.00.00.H53.key"

[security]
level = 1
EOF
sed -e "s|@DIR@|$node|g" -e "s|@API@|127.0.0.1:$api_port|g" -e "s|@PARENT@|127.0.0.1:$parent_port|g" \
  "$node/node.toml.in" >"$node/node.toml"

LT_LOG=warn "$relay" serve --config "$node/node.toml" 2>"$work/relay.log" &
pid=$!
for _ in $(seq 1 100); do
  if curl -sf "http://127.0.0.1:$api_port/healthz" >/dev/null; then break; fi
  sleep 0.1
done
api="http://127.0.0.1:$api_port"
printf 'Phụ lục của công văn số 3\n' >"$work/phu-luc.txt"
ids=()
for n in 1 2 3; do
  files=()
  if [ "$n" = 3 ]; then files=(--file "$work/phu-luc.txt"); fi
  ids+=("$("$gateway" --api "$api" send --to 000.00.00.G22 --number "$n" --notation UBND-VP \
    --subject "Công văn số $n của tỉnh Tây Ninh" "${files[@]}")")
done
"$relay" register --config "$node/node.toml" --agency 000.00.00.H53 --direction out --format json \
  >"$work/register.json"
"$relay" audit export --config "$node/node.toml" >"$work/audit.jsonl"
kill -TERM "$pid"
wait "$pid" || true
pid=""

python3 - "$work" "${ids[@]}" >"$node/expected.json" <<'EOF'
import json, sys
work, ids = sys.argv[1], sys.argv[2:]
register = json.load(open(f"{work}/register.json"))
audit = [l for l in open(f"{work}/audit.jsonl") if l.strip()]
json.dump({"envelopes": ids, "register": register, "audit_records": len(audit)},
          sys.stdout, ensure_ascii=False, indent=2)
EOF
rm "$node/node.toml"
mkdir -p "$(dirname "$out")"
tar -C "$node" -czf "$out" .
echo "store-fixture: wrote $out ($(du -h "$out" | cut -f1)): ${#ids[@]} queued documents" >&2
