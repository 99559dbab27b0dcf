#!/usr/bin/env bash
# The package tier: builds the .deb from this build tree with CPack and
# checks what a Debian admin would: lintian --pedantic reports no error and
# no warning (informational tags are listed and justified in
# packaging/README.md), the binaries are stripped with full RELRO and
# BIND_NOW and their debug information is in the -dbgsym package, the
# dependencies name what the agent runs, and both units, the man pages, the
# copyright and the changelog are where Debian wants them.
#   tests/package/package_test.sh BUILD_DIR
set -euo pipefail
build="$1"
out="$(mktemp -d /tmp/nodeward-pkg.XXXXXX)"
trap 'rm -rf "$out"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

(cd "$build" && cpack -G DEB -B "$out" >/dev/null)
deb="$(ls "$out"/nodeward_*.deb)"
ls "$out"/nodeward-dbgsym_*.ddeb >/dev/null || fail "no -dbgsym package"

tags="$(lintian --pedantic --display-info "$deb" 2>/dev/null || true)"
echo "$tags"
if echo "$tags" | grep -qE '^(E|W):'; then fail "lintian: errors or warnings above"; fi

contents="$(dpkg-deb -c "$deb")"
for f in usr/sbin/nodeward-agent usr/bin/nodewardctl \
         usr/lib/systemd/system/nodeward-agent.service \
         usr/lib/systemd/system/nodeward-firewall.service \
         usr/lib/systemd/system/nodeward-status.socket \
         usr/lib/sysusers.d/nodeward.conf usr/lib/modules-load.d/nodeward.conf \
         usr/share/man/man8/nodeward-agent.8.gz usr/share/man/man8/nodewardctl.8.gz \
         usr/share/doc/nodeward/copyright usr/share/doc/nodeward/changelog.gz; do
  echo "$contents" | grep -q " ./$f\$" || fail "missing $f"
done

x="$out/x"
dpkg-deb -x "$deb" "$x"
for b in usr/sbin/nodeward-agent usr/bin/nodewardctl; do
  file "$x/$b" | grep -q ', stripped' || fail "$b is not stripped"
  readelf -d "$x/$b" | grep -q 'BIND_NOW' || fail "$b has no BIND_NOW"
  readelf -lW "$x/$b" | grep -q 'GNU_RELRO' || fail "$b has no RELRO"
done

control="$(dpkg-deb -f "$deb" Depends Recommends Maintainer Description)"
echo "$control" | grep -q 'e2fsprogs' || fail "Depends lacks e2fsprogs (mkfs.ext4)"
echo "$control" | grep -q 'dmsetup' || fail "Depends lacks dmsetup (udev rules for /dev/mapper)"
echo "$control" | grep -q '^Recommends: xfsprogs' || fail "Recommends lacks xfsprogs"
echo "$control" | grep -qE '^Maintainer: .+ <[^>]+@[^>]+>$' || fail "Maintainer is not 'name <email>'"
for s in postinst prerm postrm; do
  dpkg-deb -I "$deb" "$s" | grep -q 'deb-systemd' || fail "$s does not use deb-systemd-*"
done
grep -q '^ConditionPathExists=/etc/nodeward/agent.json' "$x/usr/lib/systemd/system/nodeward-agent.service" \
  || fail "agent unit starts without a config"
grep -q '^RestartPreventExitStatus=78' "$x/usr/lib/systemd/system/nodeward-agent.service" \
  || fail "agent unit restarts a bad config for ever"
grep -q '^SocketGroup=nodeward' "$x/usr/lib/systemd/system/nodeward-status.socket" \
  || fail "status socket not readable by group nodeward"
grep -q '^ProtectSystem=strict' "$x/usr/lib/systemd/system/nodeward-agent.service" \
  || fail "agent unit without ProtectSystem=strict"
grep -q '^Before=network-pre.target' "$x/usr/lib/systemd/system/nodeward-firewall.service" \
  || fail "firewall unit is not before the network"
echo "package OK: $(basename "$deb") ($(stat -c %s "$deb") bytes), lintian clean"
