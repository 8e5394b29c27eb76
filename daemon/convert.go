package daemon

import (
	"net/netip"

	"github.com/medialb/medialb/afxdp"
	"github.com/medialb/medialb/config"
	"github.com/medialb/medialb/health"
	"github.com/medialb/medialb/l7"
	"github.com/medialb/medialb/tables"
)

// This file turns the configuration into what each part takes.

func hasLayer(cfg *config.Config, l config.Layer) bool {
	for _, s := range cfg.Services {
		if s.Layer == l {
			return true
		}
	}
	return false
}

// wantsDataplane says whether Start attaches the layer-4 dataplane: with layer-4
// services, and on a node started without any virtual service, so that the
// first ones, added through the WebUI, can be layer 4 without a restart.
func wantsDataplane(cfg *config.Config) bool {
	return hasLayer(cfg, config.Layer4) || len(cfg.Services) == 0
}

// vipAddrs lists every service address once.
func vipAddrs(cfg *config.Config) []netip.Addr {
	seen := map[netip.Addr]bool{}
	var out []netip.Addr
	for _, s := range cfg.Services {
		if !seen[s.Address] {
			seen[s.Address] = true
			out = append(out, s.Address)
		}
	}
	return out
}

// l4Addrs lists the addresses whose MACs the layer-4 dataplane needs (direct
// routing; tunnelled servers' next hops come from wantTunnels).
func l4Addrs(cfg *config.Config) []netip.Addr {
	var out []netip.Addr
	for _, s := range cfg.Services {
		if s.Layer != config.Layer4 {
			continue
		}
		for _, r := range s.RealServers {
			if r.Forwarding != config.Tunnel {
				out = append(out, r.Address)
			}
		}
		if s.Fallback != nil && s.Forwarding != config.Tunnel {
			out = append(out, s.Fallback.Address)
		}
	}
	return out
}

// steerVIPs is what the XDP steering program sends to the AF_XDP sockets: every
// layer-4 service's address, protocols and ports, and whether its decided clients
// take the fast path (see fastPath; canTX: the interface can send with XDP_TX unaided).
func steerVIPs(cfg *config.Config, canTX bool) []afxdp.VIP {
	var out []afxdp.VIP
	for _, s := range cfg.Services {
		if s.Layer != config.Layer4 {
			continue
		}
		var ports []afxdp.PortRange
		for _, r := range s.Ports {
			ports = append(ports, afxdp.PortRange{Lo: r.Lo, Hi: r.Hi})
		}
		fast := fastPath(cfg.Node.XDPFastPath, s, canTX)
		if s.Protocol.Has(config.TCP) {
			out = append(out, afxdp.VIP{Addr: s.Address, Proto: tables.ProtoTCP, Ports: ports, Service: s.Name, FastPath: fast})
		}
		if s.Protocol.Has(config.UDP) {
			out = append(out, afxdp.VIP{Addr: s.Address, Proto: tables.ProtoUDP, Ports: ports, Service: s.Name, FastPath: fast})
		}
	}
	return out
}

// fastPath decides node.xdp_fastpath for one layer-4 service: on for all, off for
// none, auto for those with source-IP persistence when the interface can send with
// XDP_TX unaided (canTX).
func fastPath(mode config.FastPath, s config.Service, canTX bool) bool {
	switch mode {
	case config.FastPathOn:
		return true
	case config.FastPathOff:
		return false
	}
	return canTX && s.Persistence.Mode == config.PersistSourceIP
}

// maxFastPathEntries bounds the fast-path map (about 100 bytes of kernel memory per
// entry, preallocated: 4 Mi entries are ~400 MiB).
const maxFastPathEntries = 1 << 22

// fastPathEntries sizes the steering program's fast-path map after the persistence
// tables it mirrors: the sum of persistence.capacity of the layer-4 services that may
// take the fast path (whether XDP_TX works is only known once the program is loaded,
// so auto counts as may), a service without persistence counting the program's
// default, bounded by maxFastPathEntries. 0 (the program's default) when no service
// may. The map is sized when the dataplane starts; a reload does not resize it.
func fastPathEntries(cfg *config.Config) int {
	n := 0
	for _, s := range cfg.Services {
		if s.Layer != config.Layer4 || !fastPath(cfg.Node.XDPFastPath, s, true) {
			continue
		}
		if c := s.Persistence.Capacity; c > 0 {
			n += c
		} else {
			n += afxdp.DefaultFastPathEntries
		}
	}
	return min(n, maxFastPathEntries)
}

// l7Options carries the proxy settings the snapshot does not. A service
// without max_connections gets l7.DefaultMaxConns of nofile, the process's
// file descriptor limit.
func l7Options(cfg *config.Config, nofile uint64) map[string]l7.ServiceOptions {
	out := map[string]l7.ServiceOptions{}
	n := 0
	for _, s := range cfg.Services {
		if s.Layer == config.Layer7 {
			n++
		}
	}
	for _, s := range cfg.Services {
		if s.Layer != config.Layer7 {
			continue
		}
		o := l7.ServiceOptions{
			SourceAddr:        s.SourceAddress,
			ProxyProtocol:     s.ProxyProtocol == config.ProxyV2,
			ConnectTimeout:    s.ConnectTimeout,
			ClientTimeout:     s.ClientTimeout,
			ServerTimeout:     s.ServerTimeout,
			MaxConns:          s.MaxConnections,
			MaxConnsPerSource: s.MaxConnectionsPerSource,
			LeastConn:         s.Scheduler == config.SchedulerWLC,
		}
		if o.MaxConns == 0 {
			o.MaxConns = l7.DefaultMaxConns(nofile, n)
		}
		for _, r := range s.RealServers {
			if r.MaxConnections > 0 {
				if o.ServerMaxConns == nil {
					o.ServerMaxConns = map[string]int{}
				}
				o.ServerMaxConns[r.Name] = r.MaxConnections
			}
		}
		out[s.Name] = o
	}
	return out
}

// healthTargets lists one health-check target per real server.
func healthTargets(cfg *config.Config) []health.Target {
	var out []health.Target
	for _, s := range cfg.Services {
		spec := healthSpec(s.HealthCheck)
		if len(s.MoreChecks) > 0 {
			more := make([]health.Spec, len(s.MoreChecks))
			for i, hc := range s.MoreChecks {
				more[i] = healthSpec(hc)
				more[i].Port = hc.Port
			}
			spec = spec.WithMore(string(s.HealthMode), more...)
		}
		for _, r := range s.RealServers {
			out = append(out, health.Target{
				Key:  tables.Key{Service: s.Name, Server: r.Name},
				Addr: netip.AddrPortFrom(r.Address, r.HealthPort),
				Spec: spec,
			})
		}
	}
	return out
}

// healthSpec is the health package's form of one configured check.
func healthSpec(hc config.HealthCheck) health.Spec {
	return health.Spec{
		Type: string(hc.Type), Path: hc.Path, Expect: hc.Expect, Host: hc.Host, SNI: hc.SNI,
		CAFile: hc.CAFile, ExpectStatus: hc.ExpectStatus, TLSVerify: hc.TLSVerify,
		Interval: hc.Interval, Timeout: hc.Timeout, Jitter: hc.Jitter, Rise: hc.Rise, Fall: hc.Fall,
		App: hc.Application, Send: hc.Send,
	}
}
