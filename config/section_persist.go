package config

import (
	"time"

	"go.yaml.in/yaml/v3"
)

// persistenceKeys are the keys of a service's persistence.
var persistenceKeys = []string{"mode", "timeout", "capacity"}

// persistence reads a service's persistence; none when n is nil.
func (p *parser) persistence(n *yaml.Node, path string) Persistence {
	ps := Persistence{Mode: PersistNone}
	if n == nil {
		return ps
	}
	f, ok := p.mapping(n, path, persistenceKeys)
	if !ok {
		return ps
	}
	modeOK := true
	if v := f.get("mode"); v != nil {
		var s string
		if s, modeOK = p.oneOf(v, path+".mode", []string{string(PersistSourceIP), string(PersistNone)}); modeOK {
			ps.Mode = PersistenceMode(s)
		}
	}
	if v := f.get("timeout"); v != nil {
		ps.Timeout, _ = p.duration(v, path+".timeout", time.Second, 30*day)
	}
	if v := f.get("capacity"); v != nil {
		if x, ok := p.integer(v, path+".capacity", 1, MaxPersistenceCapacity); ok {
			ps.Capacity = int(x)
		}
	}
	if !modeOK {
		return ps
	}
	if ps.Mode == PersistNone {
		for _, k := range []string{"timeout", "capacity"} {
			if f.has(k) {
				p.errorf(f.at(k), "%s.%s: has no effect with mode none (set mode: source-ip)", path, k)
			}
		}
		ps.Timeout, ps.Capacity = 0, 0
		return ps
	}
	if ps.Timeout == 0 {
		ps.Timeout = DefaultPersistenceTimeout
	}
	if ps.Capacity == 0 {
		ps.Capacity = DefaultPersistenceCapacity
	}
	return ps
}
