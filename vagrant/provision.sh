#!/bin/sh
# provision.sh ROLE NAME ADDRESS/LEN VIPS LBS: run by the Vagrantfile inside each VM as
# root. The network part is `medialb-lab provision` (the namespace lab's own code); this
# script only installs packages and starts the programs.
set -eu
role=$1 name=$2 addr=$3 vips=$4 lbs=$5
bin=/vagrant/bin
for b in medialb medialb-lab vossim; do
	[ -x "$bin/$b" ] || { echo "provision: $bin/$b missing: run 'CGO_ENABLED=0 make build' on the host, then 'vagrant rsync'" >&2; exit 1; }
done
export DEBIAN_FRONTEND=noninteractive

# ensure_pkgs PKG...: installs the packages missing (the box vagrant/box.sh builds has them
# all, and the VMs of that lab reach no mirror).
ensure_pkgs() {
	missing=""
	for p in "$@"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
	done
	[ -z "$missing" ] && return 0
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends $missing >/dev/null
}

vipargs=""
for v in $(echo "$vips" | tr ',' ' '); do vipargs="$vipargs --vip $v"; done

case $role in
realserver)
	ensure_pkgs nginx libnginx-mod-rtmp ffmpeg
	"$bin/medialb-lab" provision --role realserver --name "$name" --address "$addr" $vipargs
	# /admin/status for the health checks (HTTPS 8443), HTTP 8080 for the management VIP,
	# and TCP+UDP on 1935, 554 and two ports of the range answering with the server's name
	# and the client address it saw (what `medialb-lab check` on the client reads). For
	# real RTMP, restart it with --no-media and run nginx-rtmp (see README.md).
	systemctl stop nginx 2>/dev/null || true
	systemctl stop vossim 2>/dev/null || true
	systemd-run --unit=vossim --collect --property=Restart=always "$bin/vossim" --name "$name" --media-ports 50000,60000 --log-format console
	;;
loadbalancer)
	ensure_pkgs ethtool iproute2
	iface=$("$bin/medialb-lab" provision --role loadbalancer --name "$name" --address "$addr" | sed -n 's/.* on \([^ ,]*\).*/\1/p')
	mkdir -p /etc/medialb /var/lib/medialb
	# The example, on this VM's lab NIC; two real servers serve both VIPs here, so the
	# management VIP's HM1/HM2 (.105/.106) are HT1/HT2's addresses.
	sed -e "s/^  interface: eth0 /  interface: $iface /" -e "s/^  name: lb1 /  name: $name /" \
		-e "s/192\.168\.94\.105\b/192.168.94.115/" -e "s/192\.168\.94\.106\b/192.168.94.116/" \
		/vagrant/examples/harmonic-vos.yaml > /etc/medialb/medialb.yaml
	"$bin/medialb" check --config /etc/medialb/medialb.yaml
	ethtool -l "$iface" || true
	systemctl stop medialb 2>/dev/null || true
	systemd-run --unit=medialb --collect "$bin/medialb" run --config /etc/medialb/medialb.yaml
	;;
client)
	ensure_pkgs ffmpeg curl iputils-ping
	"$bin/medialb-lab" provision --role client --name "$name" --address "$addr" --sources "${addr%.*}.51/24-20"
	;;
*)
	echo "provision: unknown role $role" >&2
	exit 1
	;;
esac
