package config

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// BGP defaults.
const (
	// DefaultBGPHoldTime is a peer's hold time when none is given: short, so
	// that a router stops using a node that died without a word within
	// seconds (GoBGP has no BFD; the keepalive interval is a third of it).
	DefaultBGPHoldTime = 9 * time.Second
	// MinBGPHoldTime is the shortest hold time BGP allows (RFC 4271: 0 or >= 3s).
	MinBGPHoldTime = 3 * time.Second
	// DefaultBGPPort is the TCP port of BGP.
	DefaultBGPPort = 179
)

// BGP makes this node one of several active ones behind a router's ECMP: each
// VIP is announced as a host route (/32, /128) to every peer while the VIP has
// an eligible real server and the node is healthy. Per node, never replicated.
type BGP struct {
	// ASN is this node's autonomous system number. Required.
	ASN uint32
	// RouterID is this node's BGP identifier, an IPv4 address. Required.
	RouterID netip.Addr
	// ListenPort is the TCP port the speaker accepts sessions on; 0 (the
	// default) accepts none: the node connects to its peers.
	ListenPort uint16
	// Peers are the routers the VIPs are announced to. At least one.
	Peers []BGPPeer
	// Communities are added to every announced route, each as AS:VALUE.
	Communities []uint32
	// MED is the multi-exit discriminator of every announced route; a higher
	// one makes this node a backup path. Nil: none sent.
	MED *uint32
	// LocalPref is the LOCAL_PREF of routes to iBGP peers (same AS). Nil: none sent.
	LocalPref *uint32
	// Line is the line of the bgp key, for messages.
	Line int
}

// BGPPeer is one BGP neighbour.
type BGPPeer struct {
	// Address is the router's address; its family decides which VIPs it gets
	// (IPv4 VIPs to IPv4 peers, IPv6 VIPs to IPv6 peers).
	Address netip.Addr
	// ASN is the router's AS; equal to BGP.ASN makes the session iBGP.
	ASN uint32
	// Port is the router's BGP port. Default DefaultBGPPort.
	Port uint16
	// HoldTime is the proposed hold time, 3s..65535s. Default DefaultBGPHoldTime.
	HoldTime time.Duration
	// Password is the TCP MD5 (RFC 2385) secret; empty for none.
	Password string
	// Line is the line of the peer in the file, for messages.
	Line int
}

var (
	bgpKeys     = []string{"asn", "router_id", "listen_port", "peers", "communities", "med", "local_pref"}
	bgpPeerKeys = []string{"address", "asn", "port", "hold_time", "password"}
)

// bgp reads the bgp section.
func (p *parser) bgp(n *yaml.Node) *BGP {
	f, ok := p.mapping(n, "bgp", bgpKeys)
	if !ok {
		return nil
	}
	b := &BGP{Line: n.Line}
	if v := f.get("asn"); v != nil {
		b.ASN, _ = p.asn(v, "bgp.asn")
	} else {
		p.errorf(n, "bgp.asn is required (this node's AS, e.g. a private one 64512..65534)")
	}
	if v := f.get("router_id"); v != nil {
		if a, ok := p.addr(v, "bgp.router_id"); ok {
			if !a.Is4() {
				p.errorf(v, "bgp.router_id: %s is not an IPv4 address (a BGP identifier is 32 bits; give the node's own IPv4 address)", a)
			}
			b.RouterID = a
		}
	} else {
		p.errorf(n, "bgp.router_id is required (an IPv4 address, usually the node's own)")
	}
	if v := f.get("listen_port"); v != nil {
		if x, ok := p.integer(v, "bgp.listen_port", 0, 65535); ok {
			b.ListenPort = uint16(x)
		}
	}
	p.bgpPeers(n, f, b)
	if v := f.get("communities"); v != nil {
		items, _ := p.sequence(v, "bgp.communities")
		for i, it := range items {
			if c, ok := p.community(it, fmt.Sprintf("bgp.communities[%d]", i)); ok {
				b.Communities = append(b.Communities, c)
			}
		}
	}
	if v := f.get("med"); v != nil {
		if x, ok := p.integer(v, "bgp.med", 0, 1<<32-1); ok {
			m := uint32(x)
			b.MED = &m
		}
	}
	if v := f.get("local_pref"); v != nil {
		if x, ok := p.integer(v, "bgp.local_pref", 0, 1<<32-1); ok {
			lp := uint32(x)
			b.LocalPref = &lp
		}
	}
	return b
}

// bgpPeers reads bgp.peers.
func (p *parser) bgpPeers(n *yaml.Node, f fields, b *BGP) {
	items, _ := p.sequence(f.get("peers"), "bgp.peers")
	if len(items) == 0 {
		p.errorf(n, "bgp.peers: none given (the routers to announce the VIPs to, e.g. - { address: 192.168.94.1, asn: 65000 })")
		return
	}
	seen := map[netip.Addr]int{}
	for i, it := range items {
		path := fmt.Sprintf("bgp.peers[%d]", i)
		pf, ok := p.mapping(it, path, bgpPeerKeys)
		if !ok {
			continue
		}
		peer := BGPPeer{Port: DefaultBGPPort, HoldTime: DefaultBGPHoldTime, Line: it.Line}
		if v := pf.get("address"); v != nil {
			if a, ok := p.addr(v, path+".address"); ok {
				if line, dup := seen[a]; dup {
					p.errorf(v, "%s.address: %s is already a peer (line %d)", path, a, line)
				}
				seen[a] = it.Line
				peer.Address = a
			}
		} else {
			p.errorf(it, "%s.address is required (the router's address)", path)
		}
		if v := pf.get("asn"); v != nil {
			peer.ASN, _ = p.asn(v, path+".asn")
		} else {
			p.errorf(it, "%s.asn is required (the router's AS)", path)
		}
		if v := pf.get("port"); v != nil {
			if x, ok := p.integer(v, path+".port", 1, 65535); ok {
				peer.Port = uint16(x)
			}
		}
		if v := pf.get("hold_time"); v != nil {
			if d, ok := p.duration(v, path+".hold_time", MinBGPHoldTime, 65535*time.Second); ok {
				if d%time.Second != 0 {
					p.errorf(v, "%s.hold_time: %v is not whole seconds (BGP counts hold time in seconds)", path, d)
				}
				peer.HoldTime = d
			}
		}
		if v := pf.get("password"); v != nil {
			if s, ok := p.str(v, path+".password"); ok {
				if len(s) > 80 {
					p.errorf(v, "%s.password: %d bytes; TCP MD5 keys are at most 80", path, len(s))
				}
				peer.Password = s
			}
		}
		b.Peers = append(b.Peers, peer)
	}
}

// asn reads an AS number, 1..4294967294 (0 and 65535, 4294967295 are reserved).
func (p *parser) asn(n *yaml.Node, path string) (uint32, bool) {
	x, ok := p.integer(n, path, 1, 4294967294)
	if !ok {
		return 0, false
	}
	if x == 65535 || x == 23456 {
		p.errorf(n, "%s: %d is reserved (RFC 7300, RFC 6793); private ASes are 64512..65534 and 4200000000..4294967294", path, x)
		return 0, false
	}
	return uint32(x), true
}

// community reads a standard community "AS:VALUE", each half 0..65535.
func (p *parser) community(n *yaml.Node, path string) (uint32, bool) {
	s, ok := p.str(n, path)
	if !ok {
		return 0, false
	}
	hi, lo, found := strings.Cut(strings.TrimSpace(s), ":")
	a, errA := strconv.ParseUint(hi, 10, 16)
	b, errB := strconv.ParseUint(lo, 10, 16)
	if !found || errA != nil || errB != nil {
		p.errorf(n, "%s: %q is not a community (write AS:VALUE, each 0..65535, e.g. 65010:100)", path, s)
		return 0, false
	}
	return uint32(a)<<16 | uint32(b), true
}

// bgpChecks reports what the bgp section cannot do with the rest: a VRRP pair
// beside it (both would decide where a VIP lives), a peer on a VIP, a peer
// whose family no VIP or router id can reach.
func (p *parser) bgpChecks(c *Config, at *yaml.Node) {
	b := c.BGP
	if b == nil {
		return
	}
	if c.HA != nil {
		p.localErrorf(at, "bgp: together with ha is not supported: VRRP gives the VIPs to one node, BGP ECMP to all of them; keep one (bgp for N active nodes, ha for an active/backup pair)")
	}
	for _, peer := range b.Peers {
		for _, s := range c.Services {
			if s.Address == peer.Address {
				p.localErrorf(&yaml.Node{Line: peer.Line}, "bgp.peers: %s is the address of virtual service %q (line %d); give the router's own address", peer.Address, s.Name, s.Line)
			}
		}
	}
	if b.ListenPort != 0 {
		for _, s := range c.Services {
			if s.Layer == Layer7 && s.Protocol.Has(TCP) && s.Ports.Contains(b.ListenPort) {
				p.localErrorf(at, "bgp.listen_port: port %d is also a port of virtual service %q (line %d)", b.ListenPort, s.Name, s.Line)
			}
		}
	}
}
