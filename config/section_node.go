package config

import (
	"os"
	"path/filepath"
	"regexp"

	"go.yaml.in/yaml/v3"
)

// nodeKeys are the keys of node.
var nodeKeys = []string{"name", "interface", "hash_seed", "state_dir", "queues", "xdp_mode", "zero_copy", "xdp_fastpath", "rx_priority", "busy_poll"}

var interfaceNameRE = regexp.MustCompile(`^[^/\s:]{1,15}$`)

// node reads the node section: this machine's name, NIC and state.
func (p *parser) node(n *yaml.Node, nd *Node) {
	f, ok := p.mapping(n, "node", nodeKeys)
	if !ok {
		return
	}
	if v := f.get("name"); v != nil {
		if s, ok := p.str(v, "node.name"); ok {
			if !nameRE.MatchString(s) {
				p.errorf(v, "node.name: %q: use letters, digits, _ . - (at most 64)", s)
			}
			nd.Name = s
		}
	}
	if v := f.get("interface"); v != nil {
		if s, ok := p.str(v, "node.interface"); ok {
			if !interfaceNameRE.MatchString(s) || s == "." || s == ".." {
				p.errorf(v, "node.interface: %q is not a network interface name (at most 15 characters, no /, : or spaces)", s)
			}
			nd.Interface = s
		}
	} else {
		p.errorf(n, "node.interface is required (the NIC that carries the VIPs, e.g. eth0)")
	}
	nd.HashSeed = DefaultHashSeed
	if v := f.get("hash_seed"); v != nil {
		if s, ok := p.uint64Value(v, "node.hash_seed"); ok {
			if s == 0 {
				p.errorf(v, "node.hash_seed: must not be 0 (leave it out for the default)")
			}
			nd.HashSeed = s
		}
	}
	nd.StateDir = DefaultStateDir
	if v := f.get("state_dir"); v != nil {
		if s, ok := p.str(v, "node.state_dir"); ok {
			if !filepath.IsAbs(s) {
				p.errorf(v, "node.state_dir: %q is not an absolute path", s)
			}
			nd.StateDir = filepath.Clean(s)
		}
	}
	p.nodeDataplane(f, nd)
	if nd.Name == "" {
		nd.Name, _ = os.Hostname()
	}
}

// nodeDataplane reads node's XDP and AF_XDP settings.
func (p *parser) nodeDataplane(f fields, nd *Node) {
	if v := f.get("queues"); v != nil {
		if q, ok := p.integer(v, "node.queues", 0, 1024); ok {
			nd.Queues = int(q)
		}
	}
	nd.XDPMode = XDPAuto
	if v := f.get("xdp_mode"); v != nil {
		if s, ok := p.oneOf(v, "node.xdp_mode", []string{"auto", "native", "generic"}); ok {
			nd.XDPMode = XDPMode(s)
		}
	}
	nd.ZeroCopy = ZeroCopyAuto
	if v := f.get("zero_copy"); v != nil {
		if s, ok := p.autoOnOff(v, "node.zero_copy"); ok {
			nd.ZeroCopy = ZeroCopy(s)
		}
	}
	nd.XDPFastPath = FastPathAuto
	if v := f.get("xdp_fastpath"); v != nil {
		if s, ok := p.autoOnOff(v, "node.xdp_fastpath"); ok {
			nd.XDPFastPath = FastPath(s)
		}
	}
	nd.RXPriority = "auto"
	if v := f.get("rx_priority"); v != nil {
		if s, ok := p.autoOnOff(v, "node.rx_priority"); ok {
			nd.RXPriority = s
		}
	}
	if v := f.get("busy_poll"); v != nil {
		if v.Kind == yaml.ScalarNode && v.ShortTag() == "!!bool" {
			p.errorf(v, "node.busy_poll: write on or off (not %s)", v.Value)
		} else if s, ok := p.oneOf(v, "node.busy_poll", []string{"on", "off"}); ok {
			nd.BusyPoll = s == "on"
		}
	}
}

// autoOnOff reads one of the words auto, on and off.
func (p *parser) autoOnOff(v *yaml.Node, path string) (string, bool) {
	// YAML reads on and off as words, but true/false as booleans.
	if v.Kind == yaml.ScalarNode && v.ShortTag() == "!!bool" {
		p.errorf(v, "%s: write auto, on or off (not %s)", path, v.Value)
		return "", false
	}
	return p.oneOf(v, path, []string{"auto", "on", "off"})
}
