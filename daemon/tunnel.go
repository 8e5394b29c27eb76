package daemon

import (
	"net/netip"

	"github.com/medialb/medialb/afxdp"
	"github.com/medialb/medialb/config"
	"github.com/medialb/medialb/pipeline"
	"github.com/medialb/medialb/tables"
)

// tunnelAddrs lists the tunnelled real servers (and the fallbacks of tunnel
// services): their next hops' MACs come from the routing table.
func tunnelAddrs(cfg *config.Config) []netip.Addr {
	var out []netip.Addr
	for _, s := range cfg.Services {
		if s.Layer != config.Layer4 {
			continue
		}
		for _, r := range s.RealServers {
			if r.Forwarding == config.Tunnel {
				out = append(out, r.Address)
			}
		}
		if s.Fallback != nil && s.Forwarding == config.Tunnel {
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

// startTunnels keeps the steering program's tunnel map (counter slot -> outer
// addresses) equal to the snapshots', so that the fast path encapsulates what the
// pipeline would: now, before the workers start, and after every swap. A decision
// the pipeline records in the instant between a swap and this hook (a reload that
// turned a direct-routing server into a tunnelled one under the same name) can be
// forwarded without the tunnel until the generation bump that follows the hook
// makes it stale.
func (d *Daemon) startTunnels(mtu int) {
	t := d.dp.Tunnels()
	set := func(_, next *tables.Snapshot) {
		if err := t.Set(tunnelEntries(next, mtu)); err != nil {
			d.log.Error().Err(err).Msg("fast path tunnel map not updated; tunnelled clients may be forwarded by the pipeline only")
		}
	}
	set(nil, d.holder.Load())
	d.tunnels = t
	d.controller().OnSnapshot(set)
}

// tunnelEntries lists the tunnels of a snapshot's tunnelled servers by counter slot.
func tunnelEntries(s *tables.Snapshot, mtu int) map[uint32]afxdp.Tunnel {
	out := map[uint32]afxdp.Tunnel{}
	if s == nil {
		return out
	}
	for _, svc := range s.Services() {
		for _, srv := range svc.Servers {
			if srv.Encap == tables.EncapNone || srv.Slot == 0 || !srv.HasMAC {
				continue
			}
			kind := afxdp.TunnelIPIP
			if srv.Encap == tables.EncapGUE {
				kind = afxdp.TunnelGUE
			}
			out[srv.Slot] = afxdp.NewTunnel(kind, srv.TunnelSrc, srv.Addr, srv.GUEPort, mtu)
		}
	}
	return out
}

// tunnelMetrics is the api.Metrics' Tunnel map: the pipeline's counts and the fast
// path's (t nil: no dataplane).
func tunnelMetrics(c pipeline.Counters, t *afxdp.Tunnels) map[string]uint64 {
	m := map[string]uint64{"encapsulated": c.Tunnel.Encapsulated, "icmp_too_big_sent": c.Tunnel.TooBigSent}
	if t != nil {
		st := t.Stats()
		m["fastpath_encapsulated"] = st["tunnel_encap"]
		m["fastpath_too_big"] = st["tunnel_too_big"]
		m["fastpath_to_pipeline"] = st["tunnel_to_socket"]
	}
	return m
}
