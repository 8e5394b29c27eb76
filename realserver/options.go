package realserver

import (
	"fmt"
	"net"
	"net/netip"
	"slices"

	"github.com/medialb/medialb/config"
)

// OptionsFor returns the Options of cfg's node: node.interface, its own
// addresses (not a VIP, not link-local) as probe sources and the HA peer.
func OptionsFor(cfg *config.Config) (Options, error) {
	opt := Options{Interface: cfg.Node.Interface}
	if cfg.HA != nil {
		opt.Peer = cfg.HA.Peer
	}
	ifi, err := net.InterfaceByName(cfg.Node.Interface)
	if err != nil {
		return opt, fmt.Errorf("real-server check: find node.interface %s: %w", cfg.Node.Interface, err)
	}
	addrs, err := ifi.Addrs()
	if err != nil {
		return opt, fmt.Errorf("real-server check: addresses of %s: %w", cfg.Node.Interface, err)
	}
	var vips []netip.Addr
	for _, s := range cfg.Services {
		vips = append(vips, s.Address)
	}
	for _, a := range addrs {
		p, err := netip.ParsePrefix(a.String())
		if err != nil {
			continue
		}
		ip := p.Addr().Unmap()
		if slices.Contains(vips, ip) || ip.IsLinkLocalUnicast() {
			continue
		}
		if ip.Is4() && !opt.Source4.IsValid() {
			opt.Source4 = ip
		} else if ip.Is6() && !opt.Source6.IsValid() {
			opt.Source6 = ip
		}
	}
	return opt, nil
}
