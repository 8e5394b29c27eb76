package lab

import (
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
)

// TestProvisionApply provisions a namespace as medialb-lab provision provisions a VM:
// a real server (twice: it must be idempotent), then a client.
func TestProvisionApply(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("provision: needs root to create a network namespace")
	}
	ns := "mlbpv-" + strconv.Itoa(os.Getpid())
	if err := newNS(ns); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { deleteNS(ns) })
	err := Do(ns, func() error {
		la := netlink.NewLinkAttrs()
		la.Name = "eth1"
		// A veth pair (this kernel may have no dummy driver); eth1 is the VM's NIC.
		if err := netlink.LinkAdd(&netlink.Veth{LinkAttrs: la, PeerName: "peer1"}); err != nil {
			return err
		}
		l, err := netlink.LinkByName("eth1")
		if err != nil {
			return err
		}
		a := &netlink.Addr{IPNet: &net.IPNet{IP: net.ParseIP("192.168.94.115"), Mask: net.CIDRMask(24, 32)}}
		return netlink.AddrAdd(l, a)
	})
	if err != nil {
		t.Fatal(err)
	}
	rs := Provision{Role: RoleRealServer, Address: netip.MustParsePrefix("192.168.94.115/24"),
		VIPs: []netip.Addr{netip.MustParseAddr("192.168.94.110"), netip.MustParseAddr("fd94::110")}}
	for i := range 2 {
		var iface string
		err := Do(ns, func() error {
			var err error
			iface, err = rs.Apply()
			return err
		})
		if err != nil {
			t.Fatalf("apply %d: %v", i+1, err)
		}
		if iface != "eth1" {
			t.Errorf("apply %d: used %s, want eth1 (the interface holding the address)", i+1, iface)
		}
	}
	var sysv []string
	var loAddrs []string
	err = Do(ns, func() error {
		for _, k := range []string{"all/arp_ignore", "all/arp_announce", "eth1/arp_ignore", "eth1/arp_announce"} {
			b, err := os.ReadFile("/proc/sys/net/ipv4/conf/" + k)
			if err != nil {
				return err
			}
			sysv = append(sysv, k+"="+strings.TrimSpace(string(b)))
		}
		lo, err := netlink.LinkByName("lo")
		if err != nil {
			return err
		}
		as, err := netlink.AddrList(lo, netlink.FAMILY_ALL)
		for _, a := range as {
			loAddrs = append(loAddrs, a.IPNet.String())
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(sysv, " "), "all/arp_ignore=1 all/arp_announce=2 eth1/arp_ignore=1 eth1/arp_announce=2"; got != want {
		t.Errorf("sysctls: got %s, want %s", got, want)
	}
	for _, want := range []string{"192.168.94.110/32", "fd94::110/128"} {
		if !strings.Contains(strings.Join(loAddrs, " "), want) {
			t.Errorf("lo has %v, want %s", loAddrs, want)
		}
	}

	cl := Provision{Role: RoleClient, Interface: "eth1", Sources: []netip.Prefix{netip.MustParsePrefix("192.168.94.51/24"), netip.MustParsePrefix("192.168.94.52/24")}}
	if err := Do(ns, func() error { _, err := cl.Apply(); return err }); err != nil {
		t.Fatal(err)
	}
	if err := Do(ns, func() error { _, err := (Provision{Role: "router", Interface: "eth1"}).Apply(); return err }); err == nil {
		t.Error("unknown role: want an error")
	}
}
