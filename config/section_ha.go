package config

import (
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// haKeys are the keys of ha.
var haKeys = []string{"peer", "priority", "router_id", "advert_interval", "secret", "preempt", "sync_port"}

// ha reads the ha section: the peer, VRRP and the state-sync stream.
func (p *parser) ha(n *yaml.Node) *HA {
	f, ok := p.mapping(n, "ha", haKeys)
	if !ok {
		return nil
	}
	h := &HA{AdvertInterval: DefaultAdvertInterval, SyncPort: DefaultSyncPort}
	if v := f.get("peer"); v != nil {
		p.haPeer = v
		h.Peer, _ = p.addr(v, "ha.peer")
	} else {
		p.errorf(n, "ha.peer is required (the other node's address on node.interface)")
	}
	if v := f.get("priority"); v != nil {
		if x, ok := p.integer(v, "ha.priority", 1, 254); ok {
			h.Priority = uint8(x)
		}
	} else {
		p.errorf(n, "ha.priority is required (1..254; the primary gets the higher one)")
	}
	if v := f.get("router_id"); v != nil {
		if x, ok := p.integer(v, "ha.router_id", 1, 255); ok {
			h.RouterID = uint8(x)
		}
	} else {
		p.errorf(n, "ha.router_id is required (1..255, the same on both nodes)")
	}
	if v := f.get("advert_interval"); v != nil {
		if d, ok := p.duration(v, "ha.advert_interval", 10*time.Millisecond, 40950*time.Millisecond); ok {
			if d%(10*time.Millisecond) != 0 {
				p.errorf(v, "ha.advert_interval: %v is not a multiple of 10ms (VRRP counts in centiseconds)", d)
			}
			h.AdvertInterval = d
		}
	}
	if v := f.get("secret"); v != nil {
		if s, ok := p.str(v, "ha.secret"); ok {
			switch {
			case strings.TrimSpace(s) == "":
				p.errorf(v, "ha.secret: must not be empty")
			case len(s) < MinSecretLen:
				p.errorf(v, "ha.secret: %d bytes, at least %d wanted (it is all that authenticates the pair's traffic; make one with `medialb passwd --secret`)", len(s), MinSecretLen)
			}
			h.Secret = s
		}
	} else {
		p.errorf(n, "ha.secret is required (the same on both nodes; it authenticates their traffic)")
	}
	if v := f.get("preempt"); v != nil {
		h.Preempt, _ = p.boolean(v, "ha.preempt")
	}
	if v := f.get("sync_port"); v != nil {
		if x, ok := p.integer(v, "ha.sync_port", 1, 65535); ok {
			h.SyncPort = uint16(x)
		}
	}
	return h
}
