#!/bin/sh
# vagrant/lab.sh up|status|down|run CMD...: a private libvirt for the Vagrantfile, on a machine
# whose own network and libvirt must stay untouched (see vagrant/README.md).
#
#   up    creates the network namespace medialb-vagrant and starts libvirtd inside it,
#         with its own configuration and state under $MEDIALB_VAGRANT_CACHE/libvirt
#         (bind-mounted over /etc/libvirt, /run/libvirt, /var/lib/libvirt, ... in a mount
#         namespace of its own): its bridges, dnsmasq and VMs never touch the root
#         namespace or the machine's libvirt. Writes $MEDIALB_VAGRANT_CACHE/env, which
#         `run` reads.
#   run   runs CMD (vagrant ...) inside the namespace with LIBVIRT_DEFAULT_URI on that
#         libvirtd, VAGRANT_HOME and the Vagrant state under the cache, the local box and
#         the domain type: qemu (TCG) when /dev/kvm cannot run a Linux guest, else kvm.
#   status  succeeds if a lab is up (its libvirtd running).
#   down  destroys the domains and networks, stops every process in the namespace, deletes
#         it and the private libvirt state. Safe to run again or after a failed up.
# Run as root.
set -eu
cache=${MEDIALB_VAGRANT_CACHE:-/var/tmp/medialb-vagrant}
ns=medialb-vagrant
state=$cache/libvirt
uri="qemu:///system?socket=$state/run/libvirt-sock"
box=$cache/medialb-bookworm.box

die() { echo "lab.sh: $*" >&2; exit 1; }

# kvm_usable: a Linux guest must run under KVM, not just open /dev/kvm (a software nested
# /dev/kvm here opens fine and hangs stock kernels): boot the box's kernel without a root
# file system and wait for its panic on the serial console.
kvm_usable() {
	[ -r /dev/kvm ] && [ -w /dev/kvm ] || return 1
	[ -f "${box%.box}.vmlinuz" ] || return 1
	timeout 30 qemu-system-x86_64 -accel kvm -m 256 -display none -serial stdio -no-reboot \
		-kernel "${box%.box}.vmlinuz" -append 'console=ttyS0 panic=-1' </dev/null 2>/dev/null |
		grep -q -m1 'Kernel panic\|VFS: Unable to mount'
}

live() {
	ip netns list | grep -qw "^$ns" && [ -f "$state/libvirtd.pid" ] && kill -0 "$(cat "$state/libvirtd.pid")" 2>/dev/null
}

up() {
	[ "$(id -u)" -eq 0 ] || die "run as root (network namespace, libvirtd)"
	if ip netns list | grep -qw "^$ns"; then
		if live; then
			die "a Vagrant lab is up (namespace $ns, libvirtd $(cat "$state/libvirtd.pid")): use it, or take it down with vagrant/lab.sh down"
		fi
		echo "lab.sh: removing a stale lab (namespace $ns without its libvirtd)"
		down
	fi
	# Whatever this function made is removed again if it fails.
	trap down EXIT
	rm -rf "$state"
	mkdir -p "$state/etc/qemu/networks" "$state/run" "$state/lib/images" "$state/cache" "$state/log"
	cat >"$state/etc/libvirtd.conf" <<-EOF
		unix_sock_rw_perms = "0700"
		auth_unix_rw = "none"
		auth_unix_ro = "none"
		log_outputs = "3:file:/var/log/libvirt/libvirtd.log"
	EOF
	# QEMU as root without cgroups, namespaces, virtlogd or a security driver: the lab
	# machine may lack systemd and AppArmor; the disks live under the cache.
	cat >"$state/etc/qemu.conf" <<-EOF
		user = "root"
		group = "root"
		dynamic_ownership = 0
		remember_owner = 0
		security_driver = "none"
		cgroup_controllers = [ ]
		namespaces = [ ]
		stdio_handler = "file"
	EOF
	ip netns add "$ns"
	ip -n "$ns" link set lo up
	ip netns exec "$ns" sysctl -qw net.ipv4.ip_forward=1
	mkdir -p /run/libvirt # mount point only; the files go to $state/run
	ip netns exec "$ns" unshare --mount --propagation private sh -c "
		mount --bind '$state/etc' /etc/libvirt &&
		mount --bind '$state/run' /run/libvirt &&
		mount --bind '$state/lib' /var/lib/libvirt &&
		mount --bind '$state/cache' /var/cache/libvirt &&
		mount --bind '$state/log' /var/log/libvirt &&
		exec libvirtd" >"$state/log/libvirtd.out" 2>&1 &
	echo $! >"$state/libvirtd.pid"
	i=0
	until virsh -q -c "$uri" version >/dev/null 2>&1; do
		i=$((i + 1))
		if [ $i -gt 60 ] || ! kill -0 "$(cat "$state/libvirtd.pid")" 2>/dev/null; then
			cat "$state/log/libvirtd.out" "$state/log/libvirtd.log" >&2 2>/dev/null || true
			die "libvirtd did not come up in namespace $ns (log above)"
		fi
		sleep 1
	done
	driver=qemu
	kvm_usable && driver=kvm
	cat >"$cache/env" <<-EOF
		LIBVIRT_DEFAULT_URI='$uri'
		VAGRANT_HOME='$cache/vagrant.d'
		VAGRANT_DOTFILE_PATH='$cache/dot'
		VAGRANT_CHECKPOINT_DISABLE=1
		VAGRANT_DEFAULT_PROVIDER=libvirt
		MEDIALB_BOX=medialb/bookworm-local
		MEDIALB_LIBVIRT_DRIVER=$driver
		export LIBVIRT_DEFAULT_URI VAGRANT_HOME VAGRANT_DOTFILE_PATH VAGRANT_CHECKPOINT_DISABLE VAGRANT_DEFAULT_PROVIDER MEDIALB_BOX MEDIALB_LIBVIRT_DRIVER
	EOF
	trap - EXIT
	echo "lab.sh: libvirtd up in namespace $ns, domain type $driver, socket $state/run/libvirt-sock"
}

run() {
	[ -f "$cache/env" ] || die "no lab up: vagrant/lab.sh up first"
	# shellcheck disable=SC1091
	. "$cache/env"
	exec ip netns exec "$ns" "$@"
}

down() {
	if virsh -q -c "$uri" version >/dev/null 2>&1; then
		for d in $(virsh -q -c "$uri" list --all --name); do
			virsh -q -c "$uri" destroy "$d" >/dev/null 2>&1 || true
			virsh -q -c "$uri" undefine "$d" --remove-all-storage >/dev/null 2>&1 || true
		done
		for n in $(virsh -q -c "$uri" net-list --all --name); do
			virsh -q -c "$uri" net-destroy "$n" >/dev/null 2>&1 || true
		done
	fi
	if ip netns list | grep -qw "^$ns"; then
		# Everything still in the namespace is the lab's: libvirtd, dnsmasq, QEMU.
		for sig in TERM KILL; do
			pids=$(ip netns pids "$ns")
			[ -z "$pids" ] && break
			kill -s $sig $pids 2>/dev/null || true
			i=0
			while [ -n "$(ip netns pids "$ns")" ] && [ $i -lt 10 ]; do sleep 1; i=$((i + 1)); done
		done
		ip netns del "$ns"
	fi
	# QEMU daemonizes: one that left the namespace's process list is still found by pid file.
	for f in "$state"/run/qemu/*.pid; do
		[ -f "$f" ] || continue
		pid=$(cat "$f")
		if tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q "qemu-system.*guest=$(basename "$f" .pid)"; then
			kill -9 "$pid" 2>/dev/null || true
		fi
	done
	rm -rf "$state" "$cache/env" "$cache/dot"
}

case ${1:-} in
up) up ;;
status) live ;;
down) down ;;
run) shift; [ $# -gt 0 ] || die "usage: lab.sh run CMD..."; run "$@" ;;
*) die "usage: lab.sh up|status|down|run CMD..." ;;
esac
