package main

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"github.com/medialb/medialb/lab"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// boot prepares the guest: file systems, modules, the lab interface.
func boot() error {
	for _, m := range []struct{ src, dst, fs string }{
		{"proc", "/proc", "proc"}, {"sysfs", "/sys", "sysfs"}, {"devtmpfs", "/dev", "devtmpfs"},
		{"tmpfs", "/tmp", "tmpfs"}, {"tmpfs", "/run", "tmpfs"}, {"bpf", "/sys/fs/bpf", "bpf"},
	} {
		os.MkdirAll(m.dst, 0o755)
		if err := unix.Mount(m.src, m.dst, m.fs, 0, ""); err != nil && !errors.Is(err, unix.EBUSY) {
			return fmt.Errorf("mount %s on %s: %w", m.fs, m.dst, err)
		}
	}
	p := cmdline()
	for _, m := range list(p["modules"]) {
		b, err := os.ReadFile(filepath.Join("/lib/modules", m))
		if err != nil {
			return fmt.Errorf("load module %s: %w", m, err)
		}
		if err := unix.InitModule(b, ""); err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("load module %s: %w", m, err)
		}
	}
	return network(p)
}

// network waits for eth0 and provisions it as the command line says.
func network(p map[string]string) error {
	const iface = "eth0"
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, err := net.InterfaceByName(iface); err == nil {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no %s after 20 s (virtio-net module loaded?)", iface)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if lo, err := netlink.LinkByName("lo"); err == nil {
		netlink.LinkSetUp(lo)
	}
	pv := lab.Provision{Role: lab.Role(p["role"]), Interface: iface}
	for i, s := range list(p["addr"]) {
		a, err := netip.ParsePrefix(s)
		if err != nil {
			return fmt.Errorf("medialb.addr: %w", err)
		}
		if i == 0 {
			pv.Address = a
		} else {
			pv.Sources = append(pv.Sources, a)
		}
	}
	for _, s := range list(p["vip"]) {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return fmt.Errorf("medialb.vip: %w", err)
		}
		pv.VIPs = append(pv.VIPs, a)
	}
	if pv.Role != lab.RoleClient {
		// Only a client's extra addresses go through Sources.
		for _, s := range pv.Sources {
			if err := addAddr(iface, s); err != nil {
				return err
			}
		}
		pv.Sources = nil
	}
	if _, err := pv.Apply(); err != nil {
		return err
	}
	link, err := netlink.LinkByName(iface)
	if err != nil {
		return err
	}
	for _, s := range list(p["onlink"]) {
		pf, err := netip.ParsePrefix(s)
		if err != nil {
			return fmt.Errorf("medialb.onlink: %w", err)
		}
		dst := &net.IPNet{IP: pf.Addr().AsSlice(), Mask: net.CIDRMask(pf.Bits(), pf.Addr().BitLen())}
		r := &netlink.Route{LinkIndex: link.Attrs().Index, Dst: dst, Scope: netlink.SCOPE_LINK}
		if err := netlink.RouteReplace(r); err != nil {
			return fmt.Errorf("route %s on-link via %s: %w", pf, iface, err)
		}
	}
	return nil
}

func addAddr(iface string, a netip.Prefix) error {
	l, err := netlink.LinkByName(iface)
	if err != nil {
		return err
	}
	na := &netlink.Addr{IPNet: &net.IPNet{IP: a.Addr().AsSlice(), Mask: net.CIDRMask(a.Bits(), a.Addr().BitLen())}}
	if err := netlink.AddrAdd(l, na); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("add %s to %s: %w", a, iface, err)
	}
	return nil
}
