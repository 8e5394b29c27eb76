package lab

import (
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"sync"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

var extraNameRE = regexp.MustCompile(`^[a-z][a-z0-9]{0,3}$`)

var reservedExtra = regexp.MustCompile(`^(sw|br|cl|client|lb[0-9]*|rs[0-9]*)$`)

// addClientMu serializes AddClient: the address bookkeeping and the switch's ports.
var addClientMu sync.Mutex

// AddClient adds one more client host to a running lab: a namespace of its own (Prefix +
// name) with one veth into the switch, the given source addresses on it (the first of
// each family primary), and routes like Client's: on-link to the servers' subnets, TX
// checksum offload off. A program that cannot choose its source address (ffmpeg over TCP,
// say) then simply runs there, and each such client is a host of its own, as on a real
// network. name is 1 to 4 characters of [a-z0-9] starting with a letter, not one of the
// lab's own ("cl", "sw", "lb1", "rs1", …); every address must be in ClientSubnet4 or
// ClientSubnet6 and not in use (Client.Sources4/6 nor an earlier AddClient). Close
// removes the namespace with the others.
func (l *Lab) AddClient(name string, addrs ...netip.Addr) (Client, error) {
	addClientMu.Lock()
	defer addClientMu.Unlock()
	if !extraNameRE.MatchString(name) || reservedExtra.MatchString(name) || len(l.Prefix)+1+len(name) > 15 {
		return Client{}, fmt.Errorf("add client %q: want 1 to 4 characters of [a-z0-9] starting with a letter, not a name the lab uses", name)
	}
	if len(addrs) == 0 {
		return Client{}, fmt.Errorf("add client %s: no address given", name)
	}
	c := Client{Node: Node{Name: name, NS: l.Prefix + name, Link: l.Prefix + name, SwitchPort: l.Prefix + "s" + name}}
	l.mu.Lock()
	closed, exists := l.closed, slices.Contains(l.nss, c.NS)
	l.mu.Unlock()
	if closed {
		return Client{}, errors.New("add client: lab is closed")
	}
	if exists {
		return Client{}, fmt.Errorf("add client %s: namespace %s exists already", name, c.NS)
	}
	var nl []netlink.Addr
	for _, a := range addrs {
		var subnet netip.Prefix
		switch {
		case l.ClientSubnet4.IsValid() && l.ClientSubnet4.Contains(a):
			subnet = l.ClientSubnet4
			c.Sources4 = append(c.Sources4, a)
		case l.ClientSubnet6.IsValid() && l.ClientSubnet6.Contains(a):
			subnet = l.ClientSubnet6
			c.Sources6 = append(c.Sources6, a)
		default:
			return Client{}, fmt.Errorf("add client %s: %s is not in a client subnet (%s, %s)", name, a, l.ClientSubnet4, l.ClientSubnet6)
		}
		if slices.Contains(l.Client.Sources4, a) || slices.Contains(l.Client.Sources6, a) || l.extraAddrs[a] {
			return Client{}, fmt.Errorf("add client %s: %s is in use by another client of the lab", name, a)
		}
		nl = append(nl, nlAddr(a, subnet.Bits()))
	}
	swNS, err := netns.GetFromName(l.Switch)
	if err != nil {
		return Client{}, fmt.Errorf("add client %s: open switch namespace: %w", name, err)
	}
	defer swNS.Close()
	sw, err := netlink.NewHandleAt(swNS)
	if err != nil {
		return Client{}, fmt.Errorf("add client %s: open netlink in switch namespace: %w", name, err)
	}
	defer sw.Close()
	link, err := sw.LinkByName(l.Bridge)
	if err != nil {
		return Client{}, fmt.Errorf("add client %s: find bridge %s: %w", name, l.Bridge, err)
	}
	br, ok := link.(*netlink.Bridge)
	if !ok {
		return Client{}, fmt.Errorf("add client %s: %s is a %s, not a bridge", name, l.Bridge, link.Type())
	}
	b := &builder{l: l, sw: sw, br: br}
	route4, route6 := l.Subnet4, l.Subnet6
	if len(c.Sources4) == 0 {
		route4 = netip.Prefix{}
	}
	if len(c.Sources6) == 0 {
		route6 = netip.Prefix{}
	}
	if err := b.node(&c.Node, nl, route4, route6, false); err != nil {
		return Client{}, fmt.Errorf("add client %s: %w", name, err)
	}
	// As for Client: software checksums, so frames forwarded by AF_XDP stay valid.
	if err := run(c.NS, "ethtool", "-K", c.Link, "tx", "off"); err != nil {
		return Client{}, fmt.Errorf("add client %s: switch tx checksum offload off: %w (is ethtool installed?)", name, err)
	}
	l.mu.Lock()
	if l.extraAddrs == nil {
		l.extraAddrs = map[netip.Addr]bool{}
	}
	for _, a := range addrs {
		l.extraAddrs[a] = true
	}
	l.mu.Unlock()
	return c, nil
}
