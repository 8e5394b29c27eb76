package lab

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"syscall"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// DRSysctls returns the sysctls (paths under /proc/sys, then values) a direct-routing real
// server needs so that only the load balancer answers ARP for the VIPs it holds on lo: the
// guide's "ARP problem". arp_ignore=1: answer only for addresses of the receiving
// interface; arp_announce=2: never use a VIP as the sender of an ARP request. The kernel
// uses the larger of "all" and the interface's value, so both are set, and "default" for
// interfaces made later; iface may be empty (all and default only).
func DRSysctls(iface string) []string {
	kv := []string{
		"net/ipv4/conf/all/arp_ignore", "1", "net/ipv4/conf/all/arp_announce", "2",
		"net/ipv4/conf/default/arp_ignore", "1", "net/ipv4/conf/default/arp_announce", "2",
	}
	if iface != "" {
		kv = append(kv, drIfaceSysctls(iface)...)
	}
	return kv
}

// drIfaceSysctls are DRSysctls' pair for one interface.
func drIfaceSysctls(iface string) []string {
	return []string{"net/ipv4/conf/" + iface + "/arp_ignore", "1", "net/ipv4/conf/" + iface + "/arp_announce", "2"}
}

// WriteSysctls writes /proc/sys files (paths relative to /proc/sys, then values) in the
// calling thread's network namespace: the lab calls it inside Do, medialb-lab provision
// on a machine of its own.
func WriteSysctls(kv ...string) error {
	if len(kv)%2 != 0 {
		return errors.New("write sysctls: want path, value pairs")
	}
	for i := 0; i+1 < len(kv); i += 2 {
		if err := os.WriteFile(filepath.Join("/proc/sys", kv[i]), []byte(kv[i+1]), 0o644); err != nil {
			return fmt.Errorf("set sysctl %s=%s: %w", kv[i], kv[i+1], err)
		}
	}
	return nil
}

// AddVIPsToLo puts each VIP on lo as a host address (/32, /128), as direct routing wants
// on a real server, with h (netlink.Handle for the namespace). An address already there
// is left alone, so provisioning can run again.
func AddVIPsToLo(h *netlink.Handle, vips []netip.Addr) error {
	lo, err := h.LinkByName("lo")
	if err != nil {
		return fmt.Errorf("find lo: %w", err)
	}
	if err := h.LinkSetUp(lo); err != nil {
		return fmt.Errorf("set lo up: %w", err)
	}
	for _, v := range vips {
		a := nlAddr(v, v.BitLen())
		if err := h.AddrAdd(lo, &a); err != nil && !errors.Is(err, syscall.EEXIST) {
			return fmt.Errorf("add VIP %s to lo: %w", v, err)
		}
	}
	return nil
}

// Role is what medialb-lab provision makes of a machine.
type Role string

// The roles of a machine in the lab's topology.
const (
	RoleRealServer   Role = "realserver"   // VIPs on lo, DR ARP sysctls
	RoleLoadBalancer Role = "loadbalancer" // nothing to change: medialb brings VIPs up itself
	RoleClient       Role = "client"       // extra source addresses on the interface
)

// Provision is what medialb-lab provision applies to the machine it runs on (a VM of
// the Vagrantfile), with the same functions the namespace lab uses for its nodes.
type Provision struct {
	Role Role
	// Interface is the NIC on the lab segment; empty: the one holding Address.
	Interface string
	// Address is the machine's own address on the segment (prefix length included); it
	// finds Interface and is added if missing.
	Address netip.Prefix
	VIPs    []netip.Addr   // real server: held on lo
	Sources []netip.Prefix // client: extra source addresses, as the lab's Client.Sources4
}

// Apply provisions the machine in the calling thread's network namespace and returns the
// interface it used. It can run again: what is there already is left alone.
func (p Provision) Apply() (string, error) {
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE) // route only: a guest without xfrm_user has no NETLINK_XFRM
	if err != nil {
		return "", fmt.Errorf("provision: open netlink: %w", err)
	}
	defer h.Close()
	iface := p.Interface
	if iface == "" {
		if iface, err = ifaceWith(h, p.Address.Addr()); err != nil {
			return "", err
		}
	}
	link, err := h.LinkByName(iface)
	if err != nil {
		return "", fmt.Errorf("provision: find interface %s: %w", iface, err)
	}
	if err := h.LinkSetUp(link); err != nil {
		return "", fmt.Errorf("provision: set %s up: %w", iface, err)
	}
	addrs := []netip.Prefix{}
	if p.Address.IsValid() {
		addrs = append(addrs, p.Address)
	}
	switch p.Role {
	case RoleRealServer:
		if len(p.VIPs) == 0 {
			return "", errors.New("provision real server: no VIP given")
		}
		if err := WriteSysctls(DRSysctls(iface)...); err != nil {
			return "", fmt.Errorf("provision real server: %w", err)
		}
		if err := AddVIPsToLo(h, p.VIPs); err != nil {
			return "", fmt.Errorf("provision real server: %w", err)
		}
	case RoleClient:
		addrs = append(addrs, p.Sources...)
	case RoleLoadBalancer:
	default:
		return "", fmt.Errorf("provision: unknown role %q (realserver, loadbalancer or client)", p.Role)
	}
	for _, a := range addrs {
		na := nlAddr(a.Addr(), a.Bits())
		if err := h.AddrAdd(link, &na); err != nil && !errors.Is(err, syscall.EEXIST) {
			return "", fmt.Errorf("provision: add %s to %s: %w", a, iface, err)
		}
	}
	return iface, nil
}

// ifaceWith returns the interface holding address a.
func ifaceWith(h *netlink.Handle, a netip.Addr) (string, error) {
	if !a.IsValid() {
		return "", errors.New("provision: give an interface or the machine's address on the lab segment")
	}
	links, err := h.LinkList()
	if err != nil {
		return "", fmt.Errorf("provision: list interfaces: %w", err)
	}
	for _, l := range links {
		as, err := h.AddrList(l, netlink.FAMILY_ALL)
		if err != nil {
			continue
		}
		if slices.ContainsFunc(as, func(x netlink.Addr) bool { return x.IP.Equal(net.IP(a.AsSlice())) }) {
			return l.Attrs().Name, nil
		}
	}
	return "", fmt.Errorf("provision: no interface holds %s (is the VM's private network up?)", a)
}
