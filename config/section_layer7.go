package config

import (
	"time"
)

// layer7Keys are service keys that only the layer-7 proxy uses.
var layer7Keys = []string{"source_address", "proxy_protocol", "connect_timeout", "client_timeout", "server_timeout", "max_connections", "max_connections_per_source"}

// MaxLayer7Ports is the most ports a layer-7 service may have: each is a
// listening socket and an accept loop of its own (layer 4 takes ranges at no
// cost per port).
const MaxLayer7Ports = 64

// layer7Options reads the layer-7 proxy's keys of a service, and reports
// them at layer 4, where they mean nothing.
func (p *parser) layer7Options(f fields, path string, s *Service, layerOK bool) {
	if layerOK && s.Layer == Layer4 {
		for _, k := range layer7Keys {
			if f.has(k) {
				p.errorf(f.at(k), "%s.%s: applies to layer 7 only", path, k)
			}
		}
		return
	}
	if v := f.get("source_address"); v != nil {
		s.SourceAddress, _ = p.addr(v, path+".source_address")
	}
	s.ProxyProtocol = ProxyNone
	if v := f.get("proxy_protocol"); v != nil {
		if pp, ok := p.oneOf(v, path+".proxy_protocol", []string{string(ProxyNone), string(ProxyV2)}); ok {
			s.ProxyProtocol = ProxyProtocol(pp)
		}
	}
	s.ConnectTimeout, s.ClientTimeout, s.ServerTimeout = DefaultConnectTimeout, DefaultIdleTimeout, DefaultIdleTimeout
	if v := f.get("connect_timeout"); v != nil {
		s.ConnectTimeout, _ = p.duration(v, path+".connect_timeout", time.Millisecond, 10*time.Minute)
	}
	if v := f.get("client_timeout"); v != nil {
		s.ClientTimeout, _ = p.duration(v, path+".client_timeout", time.Second, 30*day)
	}
	if v := f.get("server_timeout"); v != nil {
		s.ServerTimeout, _ = p.duration(v, path+".server_timeout", time.Second, 30*day)
	}
	if v := f.get("max_connections"); v != nil {
		if x, ok := p.integer(v, path+".max_connections", 0, 1<<31-1); ok {
			s.MaxConnections = int(x)
		}
	}
	if v := f.get("max_connections_per_source"); v != nil {
		if x, ok := p.integer(v, path+".max_connections_per_source", 0, 1<<31-1); ok {
			s.MaxConnectionsPerSource = int(x)
		}
	}
	if n := s.Ports.Count(); layerOK && n > MaxLayer7Ports {
		p.errorf(f.at("ports"), "%s.ports: %d ports at layer 7, at most %d: each is a listening socket of its own (use layer 4 for port ranges)", path, n, MaxLayer7Ports)
	}
}
