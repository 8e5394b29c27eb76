package config

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
	"golang.org/x/crypto/bcrypt"
)

// The keys each section knows.
var (
	topKeys         = []string{"node", "api", "ha", "virtual_services"}
	nodeKeys        = []string{"name", "interface", "hash_seed", "state_dir", "queues", "xdp_mode", "zero_copy", "xdp_fastpath"}
	apiKeys         = []string{"listen", "tls_cert", "tls_key", "users"}
	userKeys        = []string{"name", "password_hash"}
	haKeys          = []string{"peer", "priority", "router_id", "advert_interval", "secret", "preempt", "sync_port"}
	persistenceKeys = []string{"mode", "timeout", "capacity"}
	fallbackKeys    = []string{"name", "address", "port"}
	realServerKeys  = []string{"name", "address", "port", "weight", "max_connections"}
	healthKeys      = []string{"type", "port", "path", "expect", "expect_status", "host", "sni", "tls_verify", "ca_file", "interval", "timeout", "rise", "fall", "jitter"}
	serviceKeys     = []string{"name", "address", "ports", "layer", "forwarding", "protocol", "persistence", "maglev_size", "health_check", "fallback", "real_servers",
		"source_address", "proxy_protocol", "connect_timeout", "client_timeout", "server_timeout", "max_connections"}
	// layer7Keys are service keys that only the layer-7 proxy uses.
	layer7Keys = []string{"source_address", "proxy_protocol", "connect_timeout", "client_timeout", "server_timeout", "max_connections"}
)

const day = 24 * time.Hour

// topLevel names the file's top level in messages.
const topLevel = "top level"

var (
	nameRE          = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)
	interfaceNameRE = regexp.MustCompile(`^[^/\s:]{1,15}$`)
)

// config reads the whole file.
func (p *parser) config(root *yaml.Node, c *Config) {
	f, ok := p.mapping(root, topLevel, topKeys)
	if !ok {
		return
	}

	if n := f.get("node"); n != nil {
		p.node(n, &c.Node)
	} else {
		p.errorf(root, "node: missing (node.interface, the NIC that carries the VIPs, is required)")
	}
	if n := f.get("api"); n != nil {
		p.api(n, &c.API)
	}
	if n := f.get("ha"); n != nil {
		c.HA = p.ha(n)
	}
	p.localFile = p.file
	p.services(f, c)
	p.crossChecks(c)
}

// services reads the virtual_services of mapping f.
func (p *parser) services(f fields, c *Config) {
	items, isList := p.sequence(f.get("virtual_services"), "virtual_services")
	if isList && len(items) == 0 {
		p.errorf(f.at("virtual_services"), "virtual_services: none given (nothing to balance)")
	}
	for i, it := range items {
		c.Services = append(c.Services, p.service(it, fmt.Sprintf("virtual_services[%d]", i)))
	}
}

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
		// YAML reads on and off as words, but true/false as booleans.
		if v.Kind == yaml.ScalarNode && v.ShortTag() == "!!bool" {
			p.errorf(v, "node.zero_copy: write auto, on or off (not %s)", v.Value)
		} else if s, ok := p.oneOf(v, "node.zero_copy", []string{"auto", "on", "off"}); ok {
			nd.ZeroCopy = ZeroCopy(s)
		}
	}
	nd.XDPFastPath = FastPathAuto
	if v := f.get("xdp_fastpath"); v != nil {
		if v.Kind == yaml.ScalarNode && v.ShortTag() == "!!bool" {
			p.errorf(v, "node.xdp_fastpath: write auto, on or off (not %s)", v.Value)
		} else if s, ok := p.oneOf(v, "node.xdp_fastpath", []string{"auto", "on", "off"}); ok {
			nd.XDPFastPath = FastPath(s)
		}
	}
	if nd.Name == "" {
		nd.Name, _ = os.Hostname()
	}
}

func (p *parser) api(n *yaml.Node, a *API) {
	f, ok := p.mapping(n, "api", apiKeys)
	if !ok {
		return
	}
	a.Listen = DefaultAPIListen
	p.apiListen = n
	if v := f.get("listen"); v != nil {
		p.apiListen = v
		if s, ok := p.str(v, "api.listen"); ok {
			if err := checkListen(s); err != nil {
				p.errorf(v, "api.listen: %v", err)
			}
			a.Listen = s
		}
	}
	if v := f.get("tls_cert"); v != nil {
		a.TLSCert, _ = p.str(v, "api.tls_cert")
	}
	if v := f.get("tls_key"); v != nil {
		a.TLSKey, _ = p.str(v, "api.tls_key")
	}
	switch {
	case a.TLSCert != "" && a.TLSKey == "":
		p.errorf(f.at("tls_cert"), "api.tls_cert is given but api.tls_key is not (give both, or neither for a self-signed certificate)")
	case a.TLSCert == "" && a.TLSKey != "":
		p.errorf(f.at("tls_key"), "api.tls_key is given but api.tls_cert is not (give both, or neither for a self-signed certificate)")
	}
	users, _ := p.sequence(f.get("users"), "api.users")
	if len(users) == 0 {
		p.errorf(f.at("users"), "api.users: none given, nobody could log in (add one with a hash from `medialb passwd`)")
	}
	seen := map[string]int{}
	for i, un := range users {
		path := fmt.Sprintf("api.users[%d]", i)
		uf, ok := p.mapping(un, path, userKeys)
		if !ok {
			continue
		}
		var u User
		if v := uf.get("name"); v != nil {
			if s, ok := p.str(v, path+".name"); ok {
				switch {
				case s == "" || strings.ContainsAny(s, ": \t\r\n"):
					p.errorf(v, "%s.name: %q: a user name must be non-empty, without colon or white space", path, s)
				case seen[s] != 0:
					p.errorf(v, "%s.name: user %q is already defined on line %d", path, s, seen[s])
				default:
					seen[s] = v.Line
				}
				u.Name = s
			}
		} else {
			p.errorf(un, "%s: name is required", path)
		}
		if v := uf.get("password_hash"); v != nil {
			if s, ok := p.str(v, path+".password_hash"); ok {
				if err := checkBcrypt(s); err != nil {
					p.errorf(v, "%s.password_hash: %v", path, err)
				}
				u.PasswordHash = s
			}
		} else {
			p.errorf(un, "%s: password_hash is required (make one with `medialb passwd`)", path)
		}
		a.Users = append(a.Users, u)
	}
}

func checkListen(s string) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf("%q is not host:port (e.g. 0.0.0.0:9443 or [::]:9443)", s)
	}
	if host != "" && host != "localhost" {
		if a, err := netip.ParseAddr(host); err != nil || a.Zone() != "" {
			return fmt.Errorf("%q: the host must be an IP address, localhost or empty", s)
		}
	}
	if _, err := parsePort(port); err != nil {
		return fmt.Errorf("%q: %v", s, err)
	}
	return nil
}

func checkBcrypt(h string) error {
	if !strings.HasPrefix(h, "$2a$") && !strings.HasPrefix(h, "$2b$") && !strings.HasPrefix(h, "$2y$") {
		return fmt.Errorf("not a bcrypt hash: it must start with $2a$, $2b$ or $2y$ (make one with `medialb passwd`)")
	}
	if _, err := bcrypt.Cost([]byte(h)); err != nil || len(h) != 60 {
		return fmt.Errorf("not a valid bcrypt hash (60 characters expected, got %d; make one with `medialb passwd`)", len(h))
	}
	return nil
}

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
			if strings.TrimSpace(s) == "" {
				p.errorf(v, "ha.secret: must not be empty")
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

// service reads one virtual service. Fields that fail to parse stay zero;
// the problems are reported and Parse returns no Config.
func (p *parser) service(n *yaml.Node, path string) Service {
	s := Service{Line: n.Line}
	f, ok := p.mapping(n, path, serviceKeys)
	if !ok {
		return s
	}

	if v := f.get("name"); v != nil {
		if name, ok := p.str(v, path+".name"); ok {
			if !nameRE.MatchString(name) {
				p.errorf(v, "%s.name: %q: use letters, digits, _ . - (at most 64; it appears in API paths)", path, name)
			}
			s.Name = name
		}
	} else {
		p.errorf(n, "%s: name is required", path)
	}
	if v := f.get("address"); v != nil {
		s.Address, _ = p.addr(v, path+".address")
	} else {
		p.errorf(n, "%s: address is required (the VIP)", path)
	}
	if v := f.get("ports"); v != nil {
		s.Ports = p.ports(v, f.at("ports"), path+".ports")
	} else {
		p.errorf(n, "%s: ports is required (e.g. \"8080,8443\" or \"1935,554,50000-65535\")", path)
	}

	layerOK := false
	if v := f.get("layer"); v != nil {
		if x, ok := p.integer(v, path+".layer", 0, 255); ok {
			if x == 4 || x == 7 {
				s.Layer, layerOK = Layer(x), true
			} else {
				p.errorf(v, "%s.layer: %d is not a layer medialb balances at: 4 (direct routing) or 7 (SNAT proxy)", path, x)
			}
		}
	} else {
		p.errorf(n, "%s: layer is required: 4 (direct routing) or 7 (SNAT proxy)", path)
	}

	s.Protocol = TCP
	if v := f.get("protocol"); v != nil {
		if str, ok := p.str(v, path+".protocol"); ok {
			switch strings.ToLower(strings.TrimSpace(str)) {
			case "tcp":
				s.Protocol = TCP
			case "udp":
				s.Protocol = UDP
			case "tcp+udp", "udp+tcp":
				s.Protocol = TCPAndUDP
			case "tcp/udp", "tcpudp", "both", "tcp,udp", "udp/tcp":
				p.errorf(v, "%s.protocol: %q is not one of tcp, udp, tcp+udp (did you mean \"tcp+udp\"?)", path, str)
			default:
				p.oneOf(v, path+".protocol", []string{"tcp", "udp", "tcp+udp"})
			}
		}
	}

	p.forwarding(f, path, &s, layerOK)
	if layerOK && s.Layer == Layer7 && s.Protocol.Has(UDP) {
		p.errorf(f.at("protocol"), "%s.protocol: %s: layer 7 proxies TCP only (use layer 4 for UDP)", path, s.Protocol)
	}

	s.Persistence = p.persistence(f.get("persistence"), path+".persistence")

	s.MaglevSize = DefaultMaglevSize
	if v := f.get("maglev_size"); v != nil {
		if x, ok := p.integer(v, path+".maglev_size", 2, MaxMaglevSize); ok {
			s.MaglevSize = int(x)
			if !isPrime(x) {
				p.errorf(v, "%s.maglev_size: %d is not a prime (the Maglev table size must be; e.g. %d)", path, x, nextPrime(x))
			}
		}
	}

	if v := f.get("fallback"); v != nil {
		s.Fallback = p.fallback(v, path+".fallback", s.Layer)
	}
	p.realServers(f, path, &s)
	if len(s.RealServers) == 0 && s.Fallback == nil && f.has("real_servers") && f.get("real_servers").Kind == yaml.SequenceNode {
		p.errorf(f.at("real_servers"), "%s.real_servers: none given (and no fallback)", path)
	} else if !f.has("real_servers") && s.Fallback == nil {
		p.errorf(n, "%s: real_servers is required (or a fallback)", path)
	}
	if least := 2 * len(s.RealServers); f.has("maglev_size") && s.MaglevSize < least {
		p.errorf(f.get("maglev_size"), "%s.maglev_size: %d is too small for %d real servers (a prime of at least %d)",
			path, s.MaglevSize, len(s.RealServers), least)
	} else if !f.has("maglev_size") && s.MaglevSize < least {
		p.errorf(f.at("real_servers"), "%s: %d real servers need a larger maglev_size than the default %d (a prime of at least %d)", path, len(s.RealServers), DefaultMaglevSize, least)
	}

	s.HealthCheck = p.healthCheck(f.get("health_check"), path+".health_check", &s)
	p.layer7Options(f, path, &s, layerOK)
	p.families(f, path, &s)
	return s
}

func (p *parser) forwarding(f fields, path string, s *Service, layerOK bool) {
	v := f.get("forwarding")
	var fw string
	if v != nil {
		var ok bool
		if fw, ok = p.str(v, path+".forwarding"); !ok {
			return
		}
		fw = strings.ToLower(strings.TrimSpace(fw))
	}
	if !layerOK {
		return
	}
	switch s.Layer {
	case Layer4:
		switch fw {
		case "", string(DirectRouting):
			s.Forwarding = DirectRouting
		case "nat", "snat", "tun", "tunnel":
			p.errorf(v, "%s.forwarding: %q at layer 4 is not supported yet (use direct-routing, or layer 7 for SNAT)", path, fw)
		case "dr", "direct", "direct_routing", "directrouting", "dsr":
			p.errorf(v, "%s.forwarding: %q is not a forwarding method (did you mean \"direct-routing\"?)", path, fw)
		default:
			msg := fmt.Sprintf("%s.forwarding: %q is not a forwarding method at layer 4 (direct-routing)", path, fw)
			if c := closest(fw, []string{string(DirectRouting)}); c != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", c)
			}
			p.errorf(v, "%s", msg)
		}
	case Layer7:
		switch fw {
		case "", string(SNAT):
			s.Forwarding = SNAT
		case string(DirectRouting):
			p.errorf(v, "%s.forwarding: layer 7 always uses snat (direct-routing is layer 4)", path)
		default:
			p.errorf(v, "%s.forwarding: %q: layer 7 always uses snat (leave forwarding out)", path, fw)
		}
	}
}

// ports reads the string form "1935,554,50000-65535", a single number, or a
// list of numbers and "a-b" ranges.
func (p *parser) ports(n, key *yaml.Node, path string) PortRanges {
	if n.Kind == yaml.ScalarNode {
		key = n // keep problems with the list in the order written
	}
	var rs PortRanges
	switch {
	case n.Kind == yaml.ScalarNode && n.ShortTag() == "!!int":
		x, ok := p.integer(n, path, 1, 65535)
		if !ok {
			return nil
		}
		rs = PortRanges{{uint16(x), uint16(x)}}
	case n.Kind == yaml.ScalarNode:
		var probs []string
		rs, probs = parsePortString(n.Value)
		for _, pr := range probs {
			p.errorf(n, "%s: %s", path, pr)
		}
	case n.Kind == yaml.SequenceNode:
		items, _ := p.sequence(n, path)
		if len(items) == 0 {
			p.errorf(n, "%s: no ports given", path)
		}
		for i, it := range items {
			ipath := fmt.Sprintf("%s[%d]", path, i)
			switch {
			case it.Kind == yaml.ScalarNode && it.ShortTag() == "!!int":
				if x, ok := p.integer(it, ipath, 1, 65535); ok {
					rs = append(rs, PortRange{uint16(x), uint16(x)})
				}
			case it.Kind == yaml.ScalarNode && it.ShortTag() == "!!str":
				r, err := parsePortToken(it.Value)
				if err != nil {
					p.errorf(it, "%s: %v", ipath, err)
					continue
				}
				rs = append(rs, r)
			default:
				p.structf(it, "%s: want a port or a range \"a-b\", got %s", ipath, kindName(it))
			}
		}
	default:
		p.structf(n, "%s: want \"8080,8443\" or a list of ports and ranges, got %s", path, kindName(n))
		return nil
	}
	for _, pr := range checkPortRanges(rs) {
		p.errorf(key, "%s: %s", path, pr)
	}
	// Keep only well-formed ranges so later checks see sane values.
	out := rs[:0]
	for _, r := range rs {
		if r.Lo <= r.Hi {
			out = append(out, r)
		}
	}
	return out
}

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

func (p *parser) fallback(n *yaml.Node, path string, layer Layer) *Fallback {
	f, ok := p.mapping(n, path, fallbackKeys)
	if !ok {
		return nil
	}
	fb := &Fallback{Name: "fallback", Line: n.Line}
	if v := f.get("name"); v != nil {
		if s, ok := p.str(v, path+".name"); ok {
			if !nameRE.MatchString(s) {
				p.errorf(v, "%s.name: %q: use letters, digits, _ . - (at most 64)", path, s)
			}
			fb.Name = s
		}
	}
	if v := f.get("address"); v != nil {
		fb.Address, _ = p.addr(v, path+".address")
	} else {
		p.errorf(n, "%s: address is required", path)
	}
	if v := f.get("port"); v != nil {
		if x, ok := p.integer(v, path+".port", 1, 65535); ok {
			fb.Port = uint16(x)
			if layer == Layer4 {
				p.errorf(v, "%s.port: port translation is not possible in direct routing (remove port: the fallback answers on the client's port)", path)
			}
		}
	}
	return fb
}

func (p *parser) realServers(f fields, path string, s *Service) {
	items, _ := p.sequence(f.get("real_servers"), path+".real_servers")
	names := map[string]int{}
	type dest struct {
		a    netip.Addr
		port uint16
	}
	dests := map[dest]string{}
	for i, n := range items {
		rpath := fmt.Sprintf("%s.real_servers[%d]", path, i)
		rf, ok := p.mapping(n, rpath, realServerKeys)
		if !ok {
			continue
		}
		rs := RealServer{Line: n.Line, Weight: DefaultWeight}
		nameGiven := false
		if v := rf.get("name"); v != nil {
			if name, ok := p.str(v, rpath+".name"); ok {
				if !nameRE.MatchString(name) {
					p.errorf(v, "%s.name: %q: use letters, digits, _ . - (at most 64; it appears in API paths)", rpath, name)
				}
				rs.Name, nameGiven = name, true
			}
		}
		addrOK := false
		if v := rf.get("address"); v != nil {
			rs.Address, addrOK = p.addr(v, rpath+".address")
			if addrOK && s.Layer == Layer4 && rs.Address.IsLoopback() {
				p.errorf(v, "%s.address: %s is a loopback address; direct routing needs a server on node.interface's network", rpath, rs.Address)
			}
		} else {
			p.errorf(n, "%s: address is required", rpath)
		}
		if v := rf.get("port"); v != nil {
			if x, ok := p.integer(v, rpath+".port", 1, 65535); ok {
				if s.Layer == Layer4 {
					p.errorf(v, "%s.port: port translation is not possible in direct routing (remove port: the server answers on the port the client used)", rpath)
				} else {
					rs.Port = uint16(x)
				}
			}
		}
		if v := rf.get("weight"); v != nil {
			if x, ok := p.integer(v, rpath+".weight", 0, 65535); ok {
				rs.Weight = int(x)
			}
		}
		if v := rf.get("max_connections"); v != nil {
			if x, ok := p.integer(v, rpath+".max_connections", 0, 1<<31-1); ok {
				if s.Layer == Layer4 {
					p.errorf(v, "%s.max_connections: applies to layer 7 only (direct routing does not see connections end)", rpath)
				}
				rs.MaxConnections = int(x)
			}
		}
		if !nameGiven && addrOK {
			rs.Name = rs.Address.String()
		}
		if rs.Name != "" {
			if line, dup := names[rs.Name]; dup {
				at := rf.at("name")
				if !nameGiven {
					at = n
				}
				p.errorf(at, "%s: real server name %q is already used on line %d", rpath, rs.Name, line)
			} else {
				names[rs.Name] = n.Line
			}
		}
		if addrOK {
			d := dest{rs.Address, rs.Port}
			if other, dup := dests[d]; dup {
				p.errorf(rf.at("address"), "%s: %s is already real server %q", rpath, describeDest(rs.Address, rs.Port), other)
			} else {
				dests[d] = rs.Name
			}
			if rs.Address == s.Address && (s.Layer == Layer4 || rs.Port == 0 || s.Ports.Contains(rs.Port)) {
				p.errorf(rf.at("address"), "%s: %s is the service's own address (a forwarding loop)", rpath, rs.Address)
			}
		}
		s.RealServers = append(s.RealServers, rs)
	}
}

func describeDest(a netip.Addr, port uint16) string {
	if port == 0 {
		return a.String()
	}
	return netip.AddrPortFrom(a, port).String()
}

func (p *parser) healthCheck(n *yaml.Node, path string, s *Service) HealthCheck {
	hc := HealthCheck{}
	f, ok := p.mapping(n, path, healthKeys)
	if !ok {
		return hc
	}
	if v := f.get("type"); v != nil {
		if t, ok := p.oneOf(v, path+".type", []string{string(CheckHTTPSGet), string(CheckHTTPGet), string(CheckTCPConnect), string(CheckNone)}); ok {
			hc.Type = CheckType(t)
		}
	} else if s.Protocol.Has(TCP) || s.Protocol == 0 {
		hc.Type = CheckTCPConnect
	} else {
		hc.Type = CheckNone
	}

	// Keys that mean nothing for the chosen type are mistakes, not noise.
	var notFor []string
	switch hc.Type {
	case CheckNone:
		notFor = healthKeys[1:]
	case CheckTCPConnect:
		notFor = []string{"path", "expect", "expect_status", "host", "sni", "tls_verify", "ca_file"}
	case CheckHTTPGet:
		notFor = []string{"sni", "tls_verify", "ca_file"}
	}
	for _, k := range notFor {
		if f.has(k) {
			p.errorf(f.at(k), "%s.%s: has no effect with type %s", path, k, hc.Type)
		}
	}

	if v := f.get("port"); v != nil {
		if x, ok := p.integer(v, path+".port", 1, 65535); ok {
			hc.Port = uint16(x)
		}
	}
	if v := f.get("path"); v != nil {
		if s, ok := p.str(v, path+".path"); ok {
			if !strings.HasPrefix(s, "/") || strings.ContainsAny(s, " \t\r\n") {
				p.errorf(v, "%s.path: %q must start with / and contain no white space", path, s)
			}
			hc.Path = s
		}
	}
	if v := f.get("expect"); v != nil {
		hc.Expect, _ = p.str(v, path+".expect")
	}
	if v := f.get("expect_status"); v != nil {
		if x, ok := p.integer(v, path+".expect_status", 0, 599); ok {
			if x != 0 && x < 100 {
				p.errorf(v, "%s.expect_status: %d is not an HTTP status (100..599, or 0 for any 2xx)", path, x)
			}
			hc.ExpectStatus = int(x)
		}
	}
	if v := f.get("host"); v != nil {
		if h, ok := p.str(v, path+".host"); ok {
			if h == "" || strings.ContainsAny(h, " \t\r\n/") {
				p.errorf(v, "%s.host: %q is not a host name", path, h)
			}
			hc.Host = h
		}
	}
	if v := f.get("sni"); v != nil {
		if h, ok := p.str(v, path+".sni"); ok {
			if h == "" || strings.ContainsAny(h, " \t\r\n/:") {
				p.errorf(v, "%s.sni: %q is not a server name", path, h)
			}
			hc.SNI = h
		}
	}
	if v := f.get("tls_verify"); v != nil {
		hc.TLSVerify, _ = p.boolean(v, path+".tls_verify")
	}
	if v := f.get("ca_file"); v != nil {
		hc.CAFile, _ = p.str(v, path+".ca_file")
		if hc.Type == CheckHTTPSGet && !hc.TLSVerify {
			p.errorf(v, "%s.ca_file: has no effect without tls_verify: true", path)
		}
	}

	intervalOK, timeoutOK := true, true
	hc.Interval = DefaultCheckInterval
	if v := f.get("interval"); v != nil {
		hc.Interval, intervalOK = p.duration(v, path+".interval", 10*time.Millisecond, day)
	}
	if v := f.get("timeout"); v != nil {
		hc.Timeout, timeoutOK = p.duration(v, path+".timeout", time.Millisecond, day)
	} else if hc.Interval > DefaultCheckTimeout {
		hc.Timeout = DefaultCheckTimeout
	} else {
		hc.Timeout = hc.Interval / 2
	}
	if intervalOK && timeoutOK && f.has("timeout") && hc.Timeout >= hc.Interval && hc.Type != CheckNone {
		p.errorf(f.at("timeout"), "%s.timeout: %v must be less than the interval %v", path, hc.Timeout, hc.Interval)
	}
	hc.Rise, hc.Fall = DefaultCheckRise, DefaultCheckFall
	if v := f.get("rise"); v != nil {
		if x, ok := p.integer(v, path+".rise", 1, 1000); ok {
			hc.Rise = int(x)
		}
	}
	if v := f.get("fall"); v != nil {
		if x, ok := p.integer(v, path+".fall", 1, 1000); ok {
			hc.Fall = int(x)
		}
	}
	if v := f.get("jitter"); v != nil {
		if d, ok := p.duration(v, path+".jitter", 0, day); ok {
			if intervalOK && d >= hc.Interval {
				p.errorf(v, "%s.jitter: %v must be less than the interval %v", path, d, hc.Interval)
			}
			hc.Jitter = d
		}
	} else {
		hc.Jitter = hc.Interval / 10
	}

	if hc.Type == CheckHTTPGet || hc.Type == CheckHTTPSGet {
		if hc.Path == "" {
			hc.Path = DefaultCheckPath
		}
	}
	if hc.Type == CheckNone {
		hc.Port = 0
	} else {
		if hc.Port == 0 {
			hc.Port = s.Ports.First()
		}
		for i := range s.RealServers {
			rs := &s.RealServers[i]
			switch {
			case f.has("port"):
				rs.HealthPort = hc.Port
			case rs.Port != 0:
				rs.HealthPort = rs.Port
			default:
				rs.HealthPort = hc.Port
			}
		}
	}
	return hc
}

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
}

// families reports addresses of a service that are not in the VIP's family.
func (p *parser) families(f fields, path string, s *Service) {
	if !s.Address.IsValid() {
		return
	}
	fam := func(a netip.Addr) string {
		if a.Is4() {
			return "IPv4"
		}
		return "IPv6"
	}
	want := fam(s.Address)
	if s.Layer == Layer4 && s.Address.IsLoopback() {
		p.errorf(f.at("address"), "%s.address: %s is a loopback address; a layer-4 VIP must be reachable on node.interface", path, s.Address)
	}
	for i, rs := range s.RealServers {
		if rs.Address.IsValid() && fam(rs.Address) != want {
			p.errorf(&yaml.Node{Line: rs.Line}, "%s.real_servers[%d].address: %s is %s but the service address %s is %s (one family per service)",
				path, i, rs.Address, fam(rs.Address), s.Address, want)
		}
	}
	if fb := s.Fallback; fb != nil && fb.Address.IsValid() && fam(fb.Address) != want {
		p.errorf(&yaml.Node{Line: fb.Line}, "%s.fallback.address: %s is %s but the service address %s is %s (one family per service)",
			path, fb.Address, fam(fb.Address), s.Address, want)
	}
	if a := s.SourceAddress; a.IsValid() && fam(a) != want {
		p.errorf(f.at("source_address"), "%s.source_address: %s is %s but the service address %s is %s (one family per service)",
			path, a, fam(a), s.Address, want)
	}
}

// crossChecks finds problems between sections: duplicate service names, two
// services claiming the same VIP, protocol and port, and the API or HA sync
// listener on a VIP's port.
func (p *parser) crossChecks(c *Config) {
	names := map[string]int{}
	for i, s := range c.Services {
		if s.Name == "" {
			continue
		}
		if line, dup := names[s.Name]; dup {
			p.errorf(&yaml.Node{Line: s.Line}, "virtual_services[%d]: service name %q is already used on line %d", i, s.Name, line)
		} else {
			names[s.Name] = s.Line
		}
	}

	// Sweep each VIP's port ranges in order; a range that starts before the
	// furthest end seen so far (per protocol) overlaps the range that set it.
	type span struct {
		r   PortRange
		svc int
	}
	byAddr := map[netip.Addr][]span{}
	for i, s := range c.Services {
		if !s.Address.IsValid() {
			continue
		}
		for _, r := range s.Ports {
			byAddr[s.Address] = append(byAddr[s.Address], span{r, i})
		}
	}
	reported := map[[2]int]bool{}
	for _, spans := range byAddr {
		slices.SortFunc(spans, func(a, b span) int { return int(a.r.Lo) - int(b.r.Lo) })
		for _, proto := range []Protocol{TCP, UDP} {
			maxHi, owner := -1, -1
			for _, sp := range spans {
				s := c.Services[sp.svc]
				if !s.Protocol.Has(proto) {
					continue
				}
				if owner >= 0 && owner != sp.svc && int(sp.r.Lo) <= maxHi {
					a, b := min(owner, sp.svc), max(owner, sp.svc)
					if !reported[[2]int{a, b}] {
						reported[[2]int{a, b}] = true
						first, later := c.Services[a], c.Services[b]
						port := sp.r.Lo
						p.errorf(&yaml.Node{Line: later.Line}, "virtual_services[%d]: %s %s port %d is already claimed by virtual service %q (line %d)",
							b, later.Address, proto, port, first.Name, first.Line)
					}
				}
				if int(sp.r.Hi) > maxHi {
					maxHi, owner = int(sp.r.Hi), sp.svc
				}
			}
		}
	}

	// Listeners of our own that would collide with a VIP.
	// The API listener binds host:port; a layer-7 VIP listener on the same
	// port collides with a wildcard host, and XDP steers a layer-4 VIP's
	// ports away from the kernel.
	if host, port, err := net.SplitHostPort(c.API.Listen); err == nil && c.API.Listen != "" {
		pn, _ := parsePort(port)
		var la netip.Addr
		if host != "" && host != "localhost" {
			la, _ = netip.ParseAddr(host)
		}
		wildcard := host == "" || la.IsUnspecified()
		for _, s := range c.Services {
			if pn == 0 || !s.Protocol.Has(TCP) || !s.Ports.Contains(pn) {
				continue
			}
			if la == s.Address || (wildcard && s.Layer == Layer7) {
				p.localErrorf(p.apiListen, "api.listen: port %d is also a port of virtual service %q (line %d)", pn, s.Name, s.Line)
			}
		}
	}
	if c.HA != nil && c.HA.Peer.IsValid() {
		for _, s := range c.Services {
			if s.Address == c.HA.Peer {
				p.localErrorf(p.haPeer, "ha.peer: %s is the address of virtual service %q (line %d); give the other node's own address", c.HA.Peer, s.Name, s.Line)
			}
		}
	}
}

func isPrime(n int64) bool {
	if n < 2 {
		return false
	}
	if n%2 == 0 {
		return n == 2
	}
	for d := int64(3); d*d <= n; d += 2 {
		if n%d == 0 {
			return false
		}
	}
	return true
}

func nextPrime(n int64) int64 {
	for !isPrime(n) {
		n++
	}
	return n
}
