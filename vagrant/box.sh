#!/bin/sh
# vagrant/box.sh BOX: builds a Vagrant box for the libvirt provider from Debian packages
# (no box download needed): Debian 12 by mmdebstrap from the Debian mirror, the cloud
# kernel, sshd, the vagrant user with Vagrant's insecure key (Vagrant replaces it on the
# first `vagrant up`) and the packages vagrant/provision.sh installs, since the VMs of the
# lab reach no mirror. The disk is made without loop devices or mounts: mkfs.ext4 -d
# fills the root partition from the tree, GRUB's boot.img and a core.img made by
# grub-mkimage go in front of it. BOX is a tar of metadata.json and box.img (qcow2).
# Run as root. Takes ~5 minutes and ~1.5 GB in $TMPDIR (default /var/tmp) while it runs.
set -eu

if [ "${1:-}" = customize ]; then
	# The mmdebstrap customize hook: $2 is the tree, still with /dev, /proc mounted.
	root=$2
	ch() { chroot "$root" "$@"; }
	ch useradd -m -s /bin/bash -G sudo vagrant
	echo vagrant:vagrant | ch chpasswd
	echo 'vagrant ALL=(ALL) NOPASSWD:ALL' >"$root/etc/sudoers.d/vagrant"
	chmod 440 "$root/etc/sudoers.d/vagrant"
	install -d -m 700 "$root/home/vagrant/.ssh"
	install -m 600 "$VAGRANT_PUBKEY" "$root/home/vagrant/.ssh/authorized_keys"
	ch chown -R vagrant:vagrant /home/vagrant/.ssh
	echo debian >"$root/etc/hostname"
	printf '127.0.0.1 localhost\n127.0.1.1 debian\n' >"$root/etc/hosts"
	echo "UUID=$ROOT_UUID / ext4 errors=remount-ro 0 1" >"$root/etc/fstab"
	# The first NIC (Vagrant's management network) by DHCP; Vagrant configures the
	# others with ifupdown. net.ifnames=0 on the kernel command line: eth0, eth1.
	printf 'auto lo\niface lo inet loopback\n\nallow-hotplug eth0\niface eth0 inet dhcp\n' \
		>"$root/etc/network/interfaces"
	# Every VM gets host keys of its own at its first boot: ECDSA and Ed25519 only, as
	# an RSA key takes long to make on an emulated CPU.
	rm -f "$root"/etc/ssh/ssh_host_*
	cat >"$root/usr/local/sbin/ssh-hostkeys" <<-'EOF'
		#!/bin/sh
		for t in ecdsa ed25519; do
			f=/etc/ssh/ssh_host_${t}_key
			[ -f "$f" ] || ssh-keygen -q -N '' -t "$t" -f "$f"
		done
	EOF
	chmod 755 "$root/usr/local/sbin/ssh-hostkeys"
	mkdir -p "$root/etc/systemd/system/ssh.service.d"
	printf '[Service]\nExecStartPre=\nExecStartPre=/usr/local/sbin/ssh-hostkeys\nExecStartPre=/usr/sbin/sshd -t\n' \
		>"$root/etc/systemd/system/ssh.service.d/hostkeys.conf"
	printf 'UseDNS no\nHostKey /etc/ssh/ssh_host_ecdsa_key\nHostKey /etc/ssh/ssh_host_ed25519_key\n' \
		>"$root/etc/ssh/sshd_config.d/vagrant.conf"
	# No logind session (and systemd user instance) per SSH command Vagrant runs:
	# each costs seconds of emulated CPU.
	sed -i '/pam_systemd\.so/d' "$root/etc/pam.d/common-session"
	# The real servers' nginx is started by the lab, not at boot.
	ch systemctl disable nginx >/dev/null 2>&1 || true
	kernel=$(cd "$root/boot" && ls vmlinuz-* | tail -1)
	initrd=initrd.img-${kernel#vmlinuz-}
	[ -f "$root/boot/$initrd" ] || { echo "box: no $initrd in the tree (initramfs-tools failed?)" >&2; exit 1; }
	mkdir -p "$root/boot/grub"
	cat >"$root/boot/grub/grub.cfg" <<EOF
set default=0
set timeout=0
menuentry debian {
	linux /boot/$kernel root=UUID=$ROOT_UUID ro net.ifnames=0 console=tty0 console=ttyS0,115200
	initrd /boot/$initrd
}
EOF
	cp -r "$root/usr/lib/grub/i386-pc" "$root/boot/grub/"
	ch grub-mkimage -O i386-pc -o /boot/grub/core.img -p '(hd0,msdos1)/boot/grub' \
		biosdisk part_msdos ext2 normal linux boot configfile echo
	cp "$root/usr/lib/grub/i386-pc/boot.img" "$root/boot/grub/boot.img"
	ch apt-get clean
	rm -rf "$root"/var/lib/apt/lists/*
	exit 0
fi

box=${1:?usage: box.sh BOX}
[ "$(id -u)" -eq 0 ] || { echo "box: run as root (mmdebstrap, chroot)" >&2; exit 1; }
MIRROR=${MEDIALB_DEBIAN_MIRROR:-http://deb.debian.org/debian}
SECURITY=${MEDIALB_DEBIAN_SECURITY:-http://deb.debian.org/debian-security}
SIZE_MB=8192 # the disk Vagrant sees; sparse, only the files take room
VAGRANT_PUBKEY=$(ls /usr/share/rubygems-integration/all/gems/vagrant-*/keys/vagrant.pub 2>/dev/null | tail -1)
[ -n "$VAGRANT_PUBKEY" ] || { echo "box: Vagrant's insecure public key not found: install Debian's vagrant (make deps-vagrant)" >&2; exit 1; }
ROOT_UUID=$(cat /proc/sys/kernel/random/uuid)
export VAGRANT_PUBKEY ROOT_UUID

work=$(mktemp -d "${TMPDIR:-/var/tmp}/medialb-box.XXXXXX")
trap 'rm -rf "$work"' EXIT
# What provision.sh installs (every role), then the box itself.
pkgs=nginx,libnginx-mod-rtmp,ffmpeg,curl,iputils-ping,ethtool,iproute2
pkgs=$pkgs,systemd-sysv,udev,dbus,linux-image-cloud-amd64,initramfs-tools,grub-pc-bin
pkgs=$pkgs,openssh-server,sudo,ifupdown,isc-dhcp-client,rsync,procps,kmod,netbase,ca-certificates,less
self=$(readlink -f "$0")
mmdebstrap --mode=root --variant=minbase --include="$pkgs" --skip=output/dev \
	--customize-hook="\"$self\" customize \"\$1\"" bookworm "$work/root" \
	"deb $MIRROR bookworm main" "deb $MIRROR bookworm-updates main" \
	"deb $SECURITY bookworm-security main"

# Disk: an MBR with one bootable partition from 1 MiB; GRUB's boot.img in the MBR's code
# area, core.img in the gap after it (boot.img loads sector 1, core.img's own blocklist
# the rest, as grub-mkimage writes it for this layout).
raw=$work/disk.raw
truncate -s ${SIZE_MB}M "$raw"
echo 'label: dos
start=2048, type=83, bootable' | sfdisk -q "$raw"
mkfs.ext4 -q -F -U "$ROOT_UUID" -L root -d "$work/root" -E offset=$((2048 * 512)) "$raw" $(((SIZE_MB - 1) * 1024))k
dd if="$work/root/boot/grub/boot.img" of="$raw" bs=440 count=1 conv=notrunc status=none
dd if="$work/root/boot/grub/core.img" of="$raw" bs=512 seek=1 conv=notrunc status=none
[ "$(stat -c %s "$work/root/boot/grub/core.img")" -lt $((2047 * 512)) ] || { echo "box: core.img does not fit before the partition" >&2; exit 1; }
cp "$(ls "$work"/root/boot/vmlinuz-* | tail -1)" "$work/vmlinuz"
rm -rf "$work/root"
qemu-img convert -c -O qcow2 "$raw" "$work/box.img"
rm -f "$raw"
printf '{"provider":"libvirt","format":"qcow2","virtual_size":%d}\n' $((SIZE_MB / 1024)) >"$work/metadata.json"
mkdir -p "$(dirname "$box")"
tar -C "$work" -cf "$box.tmp" metadata.json box.img
mv "$box.tmp" "$box"
# The kernel alone, for vagrant/lab.sh's test of whether KVM runs a Linux guest.
cp "$work/vmlinuz" "${box%.box}.vmlinuz"
echo "box: $box ($(du -h "$box" | cut -f1))"
