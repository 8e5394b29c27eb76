package ha

import (
	"fmt"
	"reflect"

	"github.com/medialb/medialb/config"
)

// ComparePair lists every way two nodes' configurations disagree where a pair
// must agree: both have an ha section with the same router_id, secret,
// sync_port, advert_interval and preempt, different priorities, each other's
// peer not the same address, the same node.hash_seed, and identical
// virtual_services (file line numbers aside). Node-local settings (node
// name, interface, state_dir, api, ha.peer, ha.priority) may differ. An empty
// result means the pair agrees.
func ComparePair(a, b *config.Config) []string {
	var out []string
	add := func(format string, args ...any) { out = append(out, fmt.Sprintf(format, args...)) }
	switch {
	case a.HA == nil && b.HA == nil:
		add("neither configuration has an ha section")
	case a.HA == nil:
		add("%s has no ha section", a.File)
	case b.HA == nil:
		add("%s has no ha section", b.File)
	default:
		x, y := a.HA, b.HA
		if x.RouterID != y.RouterID {
			add("ha.router_id: %d vs %d (must be the same)", x.RouterID, y.RouterID)
		}
		if x.Secret != y.Secret {
			add("ha.secret differs (must be the same)")
		}
		if x.SyncPort != y.SyncPort {
			add("ha.sync_port: %d vs %d (must be the same)", x.SyncPort, y.SyncPort)
		}
		if x.AdvertInterval != y.AdvertInterval {
			add("ha.advert_interval: %s vs %s (must be the same)", x.AdvertInterval, y.AdvertInterval)
		}
		if x.Preempt != y.Preempt {
			add("ha.preempt: %v vs %v (must be the same)", x.Preempt, y.Preempt)
		}
		if x.Priority == y.Priority {
			add("ha.priority: both %d (give the primary the higher one)", x.Priority)
		}
		if x.Peer == y.Peer {
			add("ha.peer: both %s (each names the other node)", x.Peer)
		}
	}
	if a.Node.HashSeed != b.Node.HashSeed {
		add("node.hash_seed: %#x vs %#x (must be the same, or the nodes pick different servers)", a.Node.HashSeed, b.Node.HashSeed)
	}
	bs := map[string]*config.Service{}
	for i := range b.Services {
		bs[b.Services[i].Name] = &b.Services[i]
	}
	for i := range a.Services {
		sa := &a.Services[i]
		sb, ok := bs[sa.Name]
		if !ok {
			add("virtual service %q: only in %s", sa.Name, a.File)
			continue
		}
		delete(bs, sa.Name)
		out = append(out, compareService(normalize(*sa), normalize(*sb))...)
	}
	for i := range b.Services {
		if _, ok := bs[b.Services[i].Name]; ok {
			add("virtual service %q: only in %s", b.Services[i].Name, b.File)
		}
	}
	return out
}

// normalize drops what may differ between equal services: file line numbers.
func normalize(s config.Service) config.Service {
	s.Line = 0
	s.RealServers = append([]config.RealServer(nil), s.RealServers...)
	for i := range s.RealServers {
		s.RealServers[i].Line = 0
	}
	if s.Fallback != nil {
		f := *s.Fallback
		f.Line = 0
		s.Fallback = &f
	}
	return s
}

// compareService names the fields of two normalized services that differ.
func compareService(a, b config.Service) []string {
	var out []string
	va, vb := reflect.ValueOf(a), reflect.ValueOf(b)
	for i := range va.NumField() {
		f := va.Type().Field(i)
		x, y := va.Field(i).Interface(), vb.Field(i).Interface()
		if reflect.DeepEqual(x, y) {
			continue
		}
		if f.Name == "RealServers" {
			out = append(out, compareServers(a.Name, a.RealServers, b.RealServers)...)
			continue
		}
		out = append(out, fmt.Sprintf("virtual service %q: %s differs: %v vs %v", a.Name, f.Name, show(va.Field(i)), show(vb.Field(i))))
	}
	return out
}

func compareServers(svc string, a, b []config.RealServer) []string {
	var out []string
	for i := range max(len(a), len(b)) {
		switch {
		case i >= len(a):
			out = append(out, fmt.Sprintf("virtual service %q: real server %q only in the second", svc, b[i].Name))
		case i >= len(b):
			out = append(out, fmt.Sprintf("virtual service %q: real server %q only in the first", svc, a[i].Name))
		case a[i] != b[i]:
			out = append(out, fmt.Sprintf("virtual service %q: real server #%d differs: %+v vs %+v", svc, i+1, a[i], b[i]))
		}
	}
	return out
}

func show(v reflect.Value) any {
	if v.Kind() == reflect.Pointer && !v.IsNil() {
		return fmt.Sprintf("%+v", v.Elem().Interface())
	}
	if s, ok := v.Interface().(fmt.Stringer); ok {
		return s.String()
	}
	return fmt.Sprintf("%+v", v.Interface())
}
