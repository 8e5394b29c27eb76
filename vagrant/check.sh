#!/bin/sh
# vagrant/check.sh (make vagrant-check): the Vagrant lab brought up on this machine and
# checked from its client VM, then taken down. Builds the box if missing
# (vagrant/box.sh), starts a private libvirtd in a network namespace (vagrant/lab.sh),
# `vagrant up` (client, lb1, HT1, HT2), runs `medialb-lab check` on the client (layer 7
# on the management VIP's 8080 and 8443, layer 4 direct routing on 1935, 554 and the
# range, TCP and UDP), `vagrant destroy -f`, and removes the namespace and libvirtd even
# when a step fails. Needs root and static binaries in bin/ (the Makefile builds them).
set -eu
cd "$(dirname "$0")/.."
cache=${MEDIALB_VAGRANT_CACHE:-/var/tmp/medialb-vagrant}
export MEDIALB_VAGRANT_CACHE=$cache
box=$cache/medialb-bookworm.box
t0=$(date +%s)
say() { echo "vagrant-check: +$(($(date +%s) - t0))s $*"; }

for b in medialb medialb-lab vossim; do
	[ -x "bin/$b" ] || { echo "vagrant-check: bin/$b missing: CGO_ENABLED=0 make build" >&2; exit 1; }
done
if [ ! -f "$box" ]; then
	say "building the box $box"
	vagrant/box.sh "$box"
fi
if vagrant/lab.sh status; then
	echo "vagrant-check: a Vagrant lab is up already (vagrant/lab.sh down takes it down)" >&2
	exit 1
fi
# From here the lab is this run's: taken down on any exit. A signal during a step ends
# the run when the step returns (Ctrl-C reaches Vagrant too).
trap 'say "taking the lab down"; vagrant/lab.sh run vagrant destroy -f >/dev/null 2>&1 || true; vagrant/lab.sh down' EXIT
trap 'exit 1' INT TERM
vagrant/lab.sh up # removes a stale lab of a killed run
V() { vagrant/lab.sh run vagrant "$@"; }
say "adding the box"
V box add --force --name medialb/bookworm-local "$box" >/dev/null
say "vagrant up"
V up
say "checks from the client VM"
V ssh client -c "sudo /vagrant/bin/medialb-lab check --sources 192.168.94.51/24-20 \
	--l7 192.168.94.100 --l4 192.168.94.110 --lb 192.168.94.2 --servers HT1,HT2 \
	--api https://192.168.94.2:9443 --api-user loadbalancer:loadbalancer"
say "vagrant destroy -f"
V destroy -f
say "passed"
