#!/usr/bin/env bash
# nodewardctl's manners (issue "Health ... and a CLI with the manners of a
# Unix tool", point 4): --help at every level exits 0; an unknown option, a
# missing value, a missing required option or an unknown command is a usage
# error: a message, exit 64 (EX_USAGE), and nothing written; --version;
# keygen --role and dev-pki --server-san.
#   tests/e2e/ctl_cli_test.sh NODEWARDCTL
set -euo pipefail
ctl="$1"
t="$(mktemp -d)"
trap 'rm -rf "$t"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
expect_exit() {  # expect_exit CODE command...
  local want="$1"; shift
  local rc=0
  "$@" > "$t/out" 2> "$t/err" || rc=$?
  [ "$rc" -eq "$want" ] || { cat "$t/out" "$t/err"; fail "exit $rc, wanted $want: $*"; }
}

echo "== --help everywhere"
for cmd in "" status audit "audit verify" backup "backup keygen" "backup encrypt" \
           "backup decrypt" "backup inspect" keygen dev-pki send watch health wipe-receipt \
           "wipe-receipt verify"; do
  # shellcheck disable=SC2086
  expect_exit 0 "$ctl" $cmd --help
  grep -q '^Usage: nodewardctl' "$t/out" || fail "'$cmd --help' printed no usage"
done
expect_exit 0 "$ctl" --version
grep -qE '^nodewardctl [0-9]+\.[0-9]+' "$t/out" || fail "--version: $(cat "$t/out")"

echo "== usage errors exit 64 and write nothing"
"$ctl" backup keygen --out "$t/k" > /dev/null
head -c 1000 /dev/urandom > "$t/plain"
expect_exit 64 "$ctl" backup encrypt --public-key "$t/k.pub" --fromat v1 --in "$t/plain" --out "$t/x"
grep -q -- '--fromat' "$t/err" || fail "the unknown option is not named"
[ ! -e "$t/x" ] || fail "a refused command wrote its output"
expect_exit 64 "$ctl" backup encrypt --public-key "$t/k.pub" --chunk-sise 16 --in "$t/plain" --out "$t/x"
expect_exit 64 "$ctl" backup encrypt --public-key "$t/k.pub" --in "$t/plain" --out
expect_exit 64 "$ctl" backup encrypt --in "$t/plain" --out "$t/x"       # --public-key missing
expect_exit 64 "$ctl" backup encrypt --public-key "$t/k.pub" --format v1 --format v2 --in "$t/plain" --out "$t/x"
[ ! -e "$t/x" ] || fail "a refused command wrote its output"
expect_exit 64 "$ctl" backup
expect_exit 64 "$ctl" frobnicate
expect_exit 64 "$ctl"
expect_exit 64 "$ctl" audit verify
expect_exit 64 "$ctl" send --target 127.0.0.1:1 --ca a --cert b --key c --command '{}' --envelope e
expect_exit 64 "$ctl" status --jsno
expect_exit 64 "$ctl" health --jsno
expect_exit 64 "$ctl" watch --target 127.0.0.1:1 --ca a --cert b --key c --min-interval-ms
# Not a usage error: the command ran and failed.
expect_exit 1 "$ctl" status --socket "$t/none.sock"
expect_exit 1 "$ctl" health --socket "$t/none.sock"

echo "== keygen --role, dev-pki --server-san"
expect_exit 0 "$ctl" keygen --out "$t/dec" --role decommission --role auditor
grep -q '"roles": \["decommission", "auditor"\]' "$t/dec.pub.json" || fail "roles: $(cat "$t/dec.pub.json")"
expect_exit 0 "$ctl" keygen --out "$t/orch"
grep -q '"roles": \["orchestrator"\]' "$t/orch.pub.json" || fail "default role: $(cat "$t/orch.pub.json")"
expect_exit 0 "$ctl" dev-pki --out "$t/pki" --server-san db-7.internal --server-san 10.1.2.3
san="$(openssl x509 -in "$t/pki/server.pem" -noout -ext subjectAltName)"
for n in DNS:db-7.internal "IP Address:10.1.2.3" "IP Address:0:0:0:0:0:0:0:1"; do
  grep -q "$n" <<< "$san" || fail "server certificate lacks $n: $san"
done
grep -q localhost <<< "$san" && fail "--server-san replaces the defaults: $san"
expect_exit 1 "$ctl" dev-pki --out "$t/pki2" --server-san "a,b"
echo "ctl cli OK"
