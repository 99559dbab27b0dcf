#!/usr/bin/env bash
# The docs conformance check (issue 14 point 3): walks the docs' recipes and
# examples through the real agent and nodewardctl, with a client written
# from docs/ alone (tests/e2e/docs_conformance.py: Python's standard library
# and Debian's python3-cryptography; no protobuf, no gRPC library).
#   tests/e2e/docs_conformance_test.sh AGENT NODEWARDCTL SOURCE_DIR
set -euo pipefail
agent="$1"; ctl="$2"; src="$3"
py=/usr/bin/python3   # Debian's, with python3-cryptography (scripts/install-deps)
docs="$src/tests/e2e/docs_conformance.py"
t="$(mktemp -d)"
agent_pid=""
cleanup() { [ -n "$agent_pid" ] && kill "$agent_pid" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$t"; }
trap cleanup EXIT
fail() { echo "FAIL: $*"; [ -f "$t/agent.log" ] && tail -20 "$t/agent.log"; exit 1; }

echo "== the reason and condition lists: proto, code and docs agree"
"$py" "$docs" sets "$src"
echo "== the byte-level PAE examples"
"$py" "$docs" pae "$src"
echo "== the docs' example audit line, by the recipe and by nodewardctl"
"$py" "$docs" audit-example "$src" "$t/example.jsonl"
"$ctl" audit verify "$t/example.jsonl"

echo "== an agent, configured as docs/ say"
"$ctl" dev-pki --out "$t/pki" > /dev/null
"$ctl" keygen --out "$t/orch" > /dev/null
boot="$(cat /proc/sys/kernel/random/boot_id)"
cat > "$t/agent.json" <<JSON
{
  "node_id": "docs-node",
  "listen_address": "127.0.0.1:0",
  "tls": {"server_cert_file": "$t/pki/server.pem", "server_key_file": "$t/pki/server.key",
          "client_ca_file": "$t/pki/ca.pem"},
  "state_dir": "$t/state",
  "status_socket": {"path": "$t/status.sock"},
  "trust": {
    "keys": [$(cat "$t/orch.pub.json")],
    "policies": [
      {"command_type": "ping", "allowed_roles": ["orchestrator"]},
      {"command_type": "wipe", "allowed_roles": ["orchestrator"]}]
  }
}
JSON
"$agent" --config "$t/agent.json" 2> "$t/agent.log" &
agent_pid=$!
for _ in $(seq 1 100); do
  grep -q "serving on" "$t/agent.log" 2>/dev/null && break
  kill -0 "$agent_pid" 2>/dev/null || fail "the agent did not start"
  sleep 0.1
done
target="$(grep -o 'serving on [^ ]*' "$t/agent.log" | head -1 | cut -d' ' -f3)"
[ -n "$target" ] || fail "no listen address in the log"
conn=(--target "$target" --ca "$t/pki/ca.pem" --cert "$t/pki/client.pem" --key "$t/pki/client.key")

echo "== the envelope recipe, sent as is"
"$py" "$docs" envelope "$t/orch.key" 1 0b7c6a4e-2f1d-4c3b-9a8e-1d2c3b4a5f60 docs-node "$boot" "$t/ping.json"
out="$("$ctl" send "${conn[@]}" --envelope "$t/ping.json" || true)"
grep -q '^APPLIED ' <<< "$out" || fail "the hand-made envelope was not applied: $out"
grep -q 'written from docs/protocol.md alone' <<< "$out" || fail "the result does not echo the note: $out"
out="$("$ctl" send "${conn[@]}" --envelope "$t/ping.json" || true)"
grep -q '^REPLAYED ' <<< "$out" || fail "the same envelope again is not a replay: $out"
"$py" "$docs" envelope "$t/orch.key" 1 1b7c6a4e-2f1d-4c3b-9a8e-1d2c3b4a5f61 docs-node "$boot" "$t/reuse.json"
out="$("$ctl" send "${conn[@]}" --envelope "$t/reuse.json" || true)"
grep -q 'REJECTED code=ALREADY_EXISTS reason=SEQUENCE_REPLAYED sequence_consumed=no' <<< "$out" ||
  fail "a new command with a used sequence: $out"

echo "== the status socket protocol, and the signing key pinned from health"
"$py" "$docs" status "$t/status.sock" "$t/health.json"

"$ctl" health --socket "$t/status.sock" --json > "$t/health-ctl.json" || fail "health exit $?"
"$py" -c 'import json,sys; h=json.load(open(sys.argv[1])); assert h["accepting_commands"] and h["state"]=="SERVING", h' \
  "$t/health-ctl.json" || fail "nodewardctl health --json: $(cat "$t/health-ctl.json")"
"$ctl" health "${conn[@]}" > "$t/health-remote.txt" || fail "health over mTLS exit $?"
grep -q '^state: *SERVING (accepting commands)' "$t/health-remote.txt" || fail "$(cat "$t/health-remote.txt")"

echo "== a wipe's receipt, verified by the recipe against the pinned key"
"$ctl" send "${conn[@]}" --signing-key "$t/orch.key" --boot-id-file /proc/sys/kernel/random/boot_id \
  --command '{"node_id": "docs-node", "sequence": 2, "wipe": {"reason": "docs conformance"}}' \
  > "$t/wipe.out" || fail "wipe: $(cat "$t/wipe.out")"
grep -q '^APPLIED ' "$t/wipe.out" || fail "wipe: $(cat "$t/wipe.out")"
"$py" "$docs" receipt "$t/wipe.out" "$t/health.json"

echo "== the agent's audit file, by the recipe and by nodewardctl"
"$py" "$docs" audit "$t/state/audit.jsonl"
"$ctl" audit verify "$t/state/audit.jsonl"
echo "docs conformance OK"
