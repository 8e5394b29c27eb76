#!/usr/bin/env bash
# deps.sh TARGET...: installs the Debian packages that scripts/packages.list names for the
# given Makefile targets (demo, test, bench, gen), and nothing else. Quick when everything
# is present (dpkg query only); otherwise apt-get update once, then apt-get install -y.
# Used by every Makefile target, so a fresh Debian machine needs no manual step.
set -euo pipefail
list="$(dirname "$0")/packages.list"
[ $# -gt 0 ] || { echo "usage: deps.sh TARGET... (demo, test, bench, gen)" >&2; exit 2; }
want=()
for target in "$@"; do
	found=0
	while read -r _prog pkg targets _; do
		case "$_prog" in ''|'#'*) continue ;; esac
		case ",$targets," in *",$target,"*) found=1; [ "$pkg" != - ] && want+=("$pkg") ;; esac
	done <"$list"
	[ $found -eq 1 ] || { echo "deps: $list names no package for target $target" >&2; exit 2; }
done
missing=()
for p in $(printf '%s\n' "${want[@]}" | sort -u); do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
	echo "deps: missing Debian packages ${missing[*]}; run as root or install them" >&2
	exit 1
fi
echo "deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
# Packages such as nginx and keepalived start their system service on install. medialb
# only ever runs them itself, inside lab namespaces, so keep the services from starting
# (Debian's policy-rc.d convention) unless the machine already has a policy of its own.
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
	printf '#!/bin/sh\nexit 101\n' >"$policy"
	chmod +x "$policy"
	trap 'rm -f "$policy"' EXIT
fi
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
# Even with policy-rc.d, packages enable their units for the next boot: medialb runs
# keepalived and nginx itself, so keep the packaged services off.
if command -v systemctl >/dev/null 2>&1; then
	for svc in keepalived nginx frr; do
		case " ${missing[*]} " in *" $svc "*) systemctl disable --now "$svc" >/dev/null 2>&1 || true ;; esac
	done
fi
