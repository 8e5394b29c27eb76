// Package netif manages what medialb changes on node.interface outside the dataplane:
// the VIP addresses it brings up and takes down, their announcement (gratuitous ARP,
// unsolicited neighbour advertisement), and the real servers' MAC addresses learned from
// the kernel's neighbour table. Everything goes through netlink
// (github.com/vishvananda/netlink), except the announcement frames, which are written
// to an AF_PACKET socket.
package netif

import (
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"

	"github.com/vishvananda/netlink"

	"github.com/medialb/medialb/internal/atomicfile"
)

// VIPs brings virtual addresses up on one interface and takes down, on Close, exactly
// those it added. An address that was already on the interface when medialb started is
// left there on Close (someone else owns it), unless the record file says an earlier
// medialb added it (a run that was killed before it could clean up). VIPs is safe for
// concurrent use.
type VIPs struct {
	link   netlink.Link
	record string // file listing the addresses we added; "" for none

	mu    sync.Mutex
	added map[netip.Addr]bool // address -> added by us (true) or found present (false)
}

// OpenVIPs looks up the interface by name. stateDir, if not empty, keeps a record of
// the addresses added, so that a restart after a crash takes its own leftovers back.
func OpenVIPs(ifname, stateDir string) (*VIPs, error) {
	link, err := netlink.LinkByName(ifname)
	if err != nil {
		return nil, fmt.Errorf("find interface %s: %w (check node.interface)", ifname, err)
	}
	v := &VIPs{link: link, added: make(map[netip.Addr]bool)}
	if stateDir != "" {
		v.record = filepath.Join(stateDir, "vips-"+ifname)
		if data, err := os.ReadFile(v.record); err == nil {
			for _, f := range strings.Fields(string(data)) {
				if a, err := netip.ParseAddr(f); err == nil {
					v.added[a] = true // ours from an earlier run; present() decides if still there
				}
			}
		}
	}
	return v, nil
}

// save writes the record of the addresses we added.
func (v *VIPs) save() error {
	if v.record == "" {
		return nil
	}
	var b strings.Builder
	for a, ours := range v.added {
		if ours {
			b.WriteString(a.String() + "\n")
		}
	}
	if err := atomicfile.Write(v.record, []byte(b.String()), 0o640); err != nil {
		return fmt.Errorf("record VIPs: %w", err)
	}
	return nil
}

// Link returns the interface.
func (v *VIPs) Link() netlink.Link { return v.link }

// Set makes the set of VIPs on the interface equal to want: it adds the missing ones
// (a /32 or /128, without duplicate address detection so they are usable at once) and
// removes the ones it added earlier that are no longer wanted. It returns the addresses
// that were newly brought up, which the caller should announce.
func (v *VIPs) Set(want []netip.Addr) ([]netip.Addr, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	present, err := v.present()
	if err != nil {
		return nil, err
	}
	wantSet := make(map[netip.Addr]bool, len(want))
	var up []netip.Addr
	var errs []error
	for _, a := range want {
		a = a.Unmap()
		wantSet[a] = true
		if _, tracked := v.added[a]; tracked {
			if !present[a] { // removed behind our back: put it back
				if err := netlink.AddrAdd(v.link, vipAddr(a)); err != nil {
					errs = append(errs, fmt.Errorf("add VIP %s to %s: %w", a, v.link.Attrs().Name, err))
					continue
				}
				up = append(up, a)
			}
			continue
		}
		if present[a] {
			v.added[a] = false
			up = append(up, a) // announce it anyway: we are taking it over
			continue
		}
		if err := netlink.AddrAdd(v.link, vipAddr(a)); err != nil {
			errs = append(errs, fmt.Errorf("add VIP %s to %s: %w", a, v.link.Attrs().Name, err))
			continue
		}
		v.added[a] = true
		up = append(up, a)
	}
	for a, ours := range v.added {
		if wantSet[a] {
			continue
		}
		if ours && present[a] {
			if err := netlink.AddrDel(v.link, vipAddr(a)); err != nil && !errors.Is(err, syscall.EADDRNOTAVAIL) {
				errs = append(errs, fmt.Errorf("remove VIP %s from %s: %w", a, v.link.Attrs().Name, err))
				continue
			}
		}
		delete(v.added, a)
	}
	if err := v.save(); err != nil {
		errs = append(errs, err)
	}
	return up, errors.Join(errs...)
}

// Close removes every address this VIPs added.
func (v *VIPs) Close() error {
	_, err := v.Set(nil)
	return err
}

func (v *VIPs) present() (map[netip.Addr]bool, error) {
	addrs, err := netlink.AddrList(v.link, netlink.FAMILY_ALL)
	if err != nil {
		return nil, fmt.Errorf("list addresses of %s: %w", v.link.Attrs().Name, err)
	}
	m := make(map[netip.Addr]bool, len(addrs))
	for _, a := range addrs {
		if ip, ok := netip.AddrFromSlice(a.IP); ok {
			m[ip.Unmap()] = true
		}
	}
	return m, nil
}

// vipAddr is the netlink form of VIP a. An IPv6 VIP is added deprecated (preferred
// lifetime 0, valid forever): it still receives and accepts connections, but source
// address selection (RFC 6724 rule 3) avoids it. Without that the kernel picks the /128
// VIP as the source toward real servers in the same prefix (rule 8, longest match), and
// health checks and layer-7 connections leave from an address that direct-routing real
// servers hold on lo, so they never answer. IPv4 needs nothing: a /32 is never the
// preferred source of the subnet route.
func vipAddr(a netip.Addr) *netlink.Addr {
	addr := &netlink.Addr{IPNet: &net.IPNet{IP: a.AsSlice(), Mask: net.CIDRMask(32, 32)}}
	if a.Is6() {
		addr.IPNet.Mask = net.CIDRMask(128, 128)
		addr.Flags = syscall.IFA_F_NODAD
		addr.ValidLft = math.MaxUint32 // INFINITY_LIFE_TIME
		addr.PreferedLft = 0
	}
	return addr
}
