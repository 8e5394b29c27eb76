package daemon

import (
	"net/netip"

	"github.com/medialb/medialb/config"
)

// tunnelAddrs lists the real servers of forwarding: tunnel services (and their
// fallbacks): their next hops' MACs come from the routing table.
func tunnelAddrs(cfg *config.Config) []netip.Addr {
	var out []netip.Addr
	for _, s := range cfg.Services {
		if s.Layer != config.Layer4 || s.Forwarding != config.Tunnel {
			continue
		}
		for _, r := range s.RealServers {
			out = append(out, r.Address)
		}
		if s.Fallback != nil {
			out = append(out, s.Fallback.Address)
		}
	}
	return out
}

// wantTunnels looks up the routes to the tunnelled real servers and has the
// neighbour watcher keep their next hops' MACs; a server without a usable route
// is logged and not picked until a reload finds one.
func (d *Daemon) wantTunnels(cfg *config.Config) {
	for _, err := range d.neigh.WantTunnels(tunnelAddrs(cfg)) {
		d.log.Error().Err(err).Msg("tunnelled real server unreachable; not picked")
	}
}
