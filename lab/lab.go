// Package lab builds the namespace lab: a small Layer-2 network of Linux network
// namespaces in which medialb, its tests, the demo and the benchmarks run without touching
// the host's own network.
//
// The topology:
//
//	client ──┐                    one namespace, many source addresses (Client.Sources4/6)
//	lb1 ─────┤  bridge in the     one or two load balancers (nothing attached: the caller
//	lb2 ─────┤  switch namespace  runs medialb there, on LB.Link)
//	HM1 ─────┤                    real servers: own address on their link, every VIP on lo
//	…   ─────┘                    with arp_ignore=1 / arp_announce=2 (direct routing)
//
// Each node is a namespace with one veth; the other end of each veth is a port of the
// bridge in the switch namespace. Veth pairs are created inside the switch namespace with
// their peer placed straight into the node's namespace: no interface, address or route is
// ever created in the caller's (root) namespace. Every namespace and interface name starts
// with the caller's prefix, New removes leftovers of that prefix first, and Close removes
// everything (NewForTest registers Close with t.Cleanup). Programs defer Close and handle
// SIGINT/SIGTERM themselves so that the deferred Close runs.
//
// Default addressing (IPv4 and IPv6 both on by default):
//
//	load balancers and real servers  192.168.94.0/24, fd94::/64  (lb1 .2, lb2 .3; HM1 .105,
//	                                 HM2 .106, HT1 .115, HT2 .116; v6: fd94::2, fd94::105 …)
//	VIPs (on the real servers' lo)   192.168.94.100, 192.168.94.110, fd94::100, fd94::110
//	client sources                   192.168.95.1-100, fd95::1-fd95::64 (hex), same segment
//
// Client, load balancers and real servers have on-link routes to each other's subnet, so
// real servers answer clients directly, as direct routing wants. In IPv6 the host numbers
// of load balancers, servers and VIPs are written with the same digits as in IPv4
// (".105" is "::105"), and duplicate address detection is off so addresses work at once.
//
// Real servers run the simulated VOS server (package lab/vos, command cmd/vossim) once
// StartVOS is called. Do runs Go code inside a namespace, Exec runs a command there, and
// DialTCP, DialUDP, ListenUDP and HTTPClient open sockets from the client namespace.
//
// A Lab needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN), the `ip` command (iproute2) and the
// `ethtool` command. After New returns, its exported fields are read-only and its methods
// are safe for concurrent use.
package lab

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/rs/zerolog"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// MaxPrefixLen is the longest prefix New accepts: the longest interface name it makes is
// the prefix and 5 more characters ("srs64"), and Linux allows 15.
const MaxPrefixLen = 10

// MaxServers is the most real servers a lab can have.
const MaxServers = 64

// ServerSpec names one real server and its host number: its address is the host number in
// Options.Subnet4 (192.168.94.105 for 105) and, written with the same digits, in
// Options.Subnet6 (fd94::105).
type ServerSpec struct {
	Name string // [A-Za-z0-9], at most 16 characters, unique; not "sw", "client", "lb1", "lb2"
	Host int    // 4..254, not a load balancer's (2, 3) nor a VIP's host number
}

// DefaultServers returns n real servers: the guide's HM1 (.105), HM2 (.106), HT1 (.115),
// HT2 (.116), then RS5, RS6, … from .120 on.
func DefaultServers(n int) []ServerSpec {
	guide := []ServerSpec{{"HM1", 105}, {"HM2", 106}, {"HT1", 115}, {"HT2", 116}}
	out := make([]ServerSpec, 0, n)
	for i := range n {
		if i < len(guide) {
			out = append(out, guide[i])
		} else {
			out = append(out, ServerSpec{Name: "RS" + strconv.Itoa(i+1), Host: 120 + i - len(guide)})
		}
	}
	return out
}

// Options configures a lab. Only Prefix is required; a zero field takes its default.
type Options struct {
	// Prefix starts every namespace and interface name: 2 to MaxPrefixLen characters of
	// [A-Za-z0-9_.-], ending in '-' (so "a1-" never matches names of "a12-"). Use Prefix
	// to make one unique per process. New deletes the namespaces already named with it.
	Prefix string
	// Clients is the number of client source addresses per family; default 100.
	Clients int
	// LoadBalancers is 1 or 2; default 1.
	LoadBalancers int
	// Servers are the real servers; default DefaultServers(4).
	Servers []ServerSpec
	// Subnet4 holds load balancers, real servers and VIPs; default 192.168.94.0/24.
	Subnet4 netip.Prefix
	// ClientSubnet4 holds the client sources; default 192.168.95.0/24.
	ClientSubnet4 netip.Prefix
	// Subnet6 and ClientSubnet6 are the IPv6 twins; default fd94::/64 and fd95::/64.
	Subnet6, ClientSubnet6 netip.Prefix
	// NoIPv4 and NoIPv6 leave a family out. Not both.
	NoIPv4, NoIPv6 bool
	// VIPs are put on every real server's lo; default host numbers 100 and 110 of each
	// enabled subnet. The load balancers do not get them: medialb brings VIPs up itself.
	VIPs []netip.Addr
	// MediaPorts are the extra media ports StartVOS passes to vossim (1935 and 554 are
	// always served); default 50000, 50001, 60000.
	MediaPorts []uint16
	// Logger receives what the lab does and the simulated servers' logs; default: none.
	Logger zerolog.Logger
}

// Node is one namespace of the lab with its link to the switch.
type Node struct {
	Name       string           // "client", "lb1", "lb2" or the real server's name
	NS         string           // network namespace name (prefix + Name)
	Link       string           // its interface inside NS, one end of a veth
	MAC        net.HardwareAddr // Link's MAC address
	Addr4      netip.Addr       // primary IPv4 address on Link; zero with NoIPv4
	Addr6      netip.Addr       // primary IPv6 address on Link; zero with NoIPv6
	SwitchPort string           // the veth's other end: a bridge port in the switch namespace
}

// Client is the client namespace. Its sources are all on its Link; the first of each
// family is the primary address (Addr4, Addr6).
type Client struct {
	Node
	Sources4 []netip.Addr
	Sources6 []netip.Addr
}

// Lab is a running namespace lab. Its exported fields are filled in by New and read-only.
type Lab struct {
	Prefix  string
	Switch  string // switch namespace name
	Bridge  string // the bridge's name inside Switch
	Client  Client
	LBs     []Node // one or two load balancers
	Servers []Node // the real servers, in Options.Servers order
	VIPs    []netip.Addr

	Subnet4, ClientSubnet4, Subnet6, ClientSubnet6 netip.Prefix // zero for a family left out
	MediaPorts                                     []uint16     // extra vossim media ports

	log        zerolog.Logger
	mu         sync.Mutex
	nss        []string            // namespaces created, in order
	vos        map[string]*vosProc // running vossim per server name
	extraAddrs map[netip.Addr]bool // addresses of clients added by AddClient
	closed     bool
}

var prefixRE = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,9}-$`)
var serverNameRE = regexp.MustCompile(`^[A-Za-z0-9]{1,16}$`)

// Prefix returns a lab prefix unique to this process: tag, '-', the process id in base 36,
// '-' ("mlb-2ht8g-" for tag "mlb"). tag is 1 to 3 characters of [a-z0-9]. New also removes
// the namespaces of labs made by Prefix with the same tag whose process is gone (a test
// binary killed by its timeout runs no cleanup).
func Prefix(tag string) string {
	return tag + "-" + strconv.FormatInt(int64(os.Getpid()), 36) + "-"
}

var pidPrefixRE = regexp.MustCompile(`^([a-z0-9]{1,3})-([0-9a-z]{1,7})-`)

// TB is the part of testing.TB that NewForTest uses; *testing.T and *testing.B have
// it. An interface of its own keeps package testing out of the binaries that link lab
// (medialb-demo).
type TB interface {
	Helper()
	Skip(args ...any)
	Fatalf(format string, args ...any)
	Errorf(format string, args ...any)
	Cleanup(func())
}

// NewForTest builds a lab for a test and removes it in t.Cleanup, even when the test
// fails. It skips the test when not running as root and fails it when New fails.
// One prefix holds one lab at a time (New removes an older lab of the same prefix):
// tests that run in parallel need different prefixes, e.g. Prefix("la") and Prefix("lb").
func NewForTest(t TB, opts Options) *Lab {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("lab: needs root to create network namespaces (run the tests as root, e.g. make test)")
	}
	l, err := New(opts)
	if err != nil {
		t.Fatalf("lab: %v", err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Errorf("lab: %v", err)
		}
	})
	return l
}

// New builds a lab. It first removes what an earlier lab with the same prefix left behind
// (see Cleanup). On failure it removes what it made. The caller must Close the lab.
func New(opts Options) (_ *Lab, err error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	if os.Geteuid() != 0 {
		return nil, errors.New("build lab: needs root (network namespaces, netlink)")
	}
	if err := Cleanup(o.Prefix); err != nil {
		return nil, err
	}
	sweepStale(o.Prefix)
	l := &Lab{
		Prefix:     o.Prefix,
		Switch:     o.Prefix + "sw",
		Bridge:     o.Prefix + "br",
		VIPs:       o.VIPs,
		MediaPorts: o.MediaPorts,
		log:        o.Logger.With().Str("lab", o.Prefix).Logger(),
		vos:        map[string]*vosProc{},
	}
	if !o.NoIPv4 {
		l.Subnet4, l.ClientSubnet4 = o.Subnet4, o.ClientSubnet4
	}
	if !o.NoIPv6 {
		l.Subnet6, l.ClientSubnet6 = o.Subnet6, o.ClientSubnet6
	}
	defer func() {
		if err != nil {
			if cerr := l.Close(); cerr != nil {
				err = errors.Join(err, cerr)
			}
		}
	}()
	if err := l.build(o); err != nil {
		return nil, fmt.Errorf("build lab %s: %w", o.Prefix, err)
	}
	l.log.Info().Int("servers", len(l.Servers)).Int("lbs", len(l.LBs)).Msg("lab up")
	return l, nil
}

func (o Options) withDefaults() (Options, error) {
	if !prefixRE.MatchString(o.Prefix) || len(o.Prefix) > MaxPrefixLen || len(o.Prefix) < 2 {
		return o, fmt.Errorf("check lab prefix %q: want 2 to %d characters of [A-Za-z0-9_.-] ending in '-' (see lab.Prefix)", o.Prefix, MaxPrefixLen)
	}
	if o.NoIPv4 && o.NoIPv6 {
		return o, errors.New("check lab options: NoIPv4 and NoIPv6 leave no address family")
	}
	if o.Clients == 0 {
		o.Clients = 100
	}
	if o.LoadBalancers == 0 {
		o.LoadBalancers = 1
	}
	if o.LoadBalancers < 1 || o.LoadBalancers > 2 {
		return o, fmt.Errorf("check lab options: %d load balancers, want 1 or 2", o.LoadBalancers)
	}
	if o.Servers == nil {
		o.Servers = DefaultServers(4)
	}
	if len(o.Servers) > MaxServers {
		return o, fmt.Errorf("check lab options: %d real servers, at most %d", len(o.Servers), MaxServers)
	}
	def := func(p *netip.Prefix, s string) {
		if !p.IsValid() {
			*p = netip.MustParsePrefix(s)
		}
		*p = p.Masked()
	}
	def(&o.Subnet4, "192.168.94.0/24")
	def(&o.ClientSubnet4, "192.168.95.0/24")
	def(&o.Subnet6, "fd94::/64")
	def(&o.ClientSubnet6, "fd95::/64")
	if !o.Subnet4.Addr().Is4() || !o.ClientSubnet4.Addr().Is4() || !o.Subnet6.Addr().Is6() || !o.ClientSubnet6.Addr().Is6() {
		return o, errors.New("check lab options: Subnet4/ClientSubnet4 must be IPv4, Subnet6/ClientSubnet6 IPv6")
	}
	if o.Subnet4.Overlaps(o.ClientSubnet4) || o.Subnet6.Overlaps(o.ClientSubnet6) {
		return o, errors.New("check lab options: a client subnet overlaps the server subnet")
	}
	if o.VIPs == nil {
		for _, h := range []int{100, 110} {
			if !o.NoIPv4 {
				o.VIPs = append(o.VIPs, hostAddr(o.Subnet4, h))
			}
			if !o.NoIPv6 {
				o.VIPs = append(o.VIPs, hostAddr(o.Subnet6, h))
			}
		}
	}
	if o.MediaPorts == nil {
		o.MediaPorts = []uint16{50000, 50001, 60000}
	}
	if o.Clients < 1 {
		return o, fmt.Errorf("check lab options: %d clients, want at least 1", o.Clients)
	}
	// The highest address each subnet needs must be inside it (and, in IPv4, not the
	// broadcast address).
	for _, c := range []struct {
		off  bool
		p    netip.Prefix
		last netip.Addr
		what string
	}{
		{o.NoIPv4, o.Subnet4, nthAddr(o.Subnet4, 255), "Subnet4 (hosts up to 254)"},
		{o.NoIPv6, o.Subnet6, hostAddr(o.Subnet6, 254), "Subnet6 (hosts up to ::254)"},
		{o.NoIPv4, o.ClientSubnet4, nthAddr(o.ClientSubnet4, o.Clients+1), "ClientSubnet4"},
		{o.NoIPv6, o.ClientSubnet6, nthAddr(o.ClientSubnet6, o.Clients), "ClientSubnet6"},
	} {
		if !c.off && (!c.last.IsValid() || !c.p.Contains(c.last)) {
			return o, fmt.Errorf("check lab options: %s %s is too small for %d clients or the server host numbers", c.what, c.p, o.Clients)
		}
	}
	seen := map[string]bool{"sw": true, "client": true, "lb1": true, "lb2": true}
	hosts := map[int]bool{}
	for _, s := range o.Servers {
		if !serverNameRE.MatchString(s.Name) || seen[s.Name] {
			return o, fmt.Errorf("check lab options: real server name %q is invalid, reserved or repeated", s.Name)
		}
		seen[s.Name] = true
		if s.Host < 4 || s.Host > 254 || hosts[s.Host] ||
			slices.Contains(o.VIPs, hostAddr(o.Subnet4, s.Host)) || slices.Contains(o.VIPs, hostAddr(o.Subnet6, s.Host)) {
			return o, fmt.Errorf("check lab options: real server %s host number %d is out of 4..254, repeated or a VIP's", s.Name, s.Host)
		}
		hosts[s.Host] = true
	}
	return o, nil
}

// hostAddr returns host number h in p; in IPv6 the decimal digits of h are read as hex, so
// host 105 is ::105 as it is .105 in IPv4.
func hostAddr(p netip.Prefix, h int) netip.Addr {
	if p.Addr().Is6() {
		v, _ := strconv.ParseUint(strconv.Itoa(h), 16, 32)
		return nthAddr(p, int(v))
	}
	return nthAddr(p, h)
}

// nthAddr returns the network address of p plus n (invalid on overflow of the address).
func nthAddr(p netip.Prefix, n int) netip.Addr {
	b := p.Addr().As16()
	carry := uint64(n)
	for i := 15; i >= 0 && carry > 0; i-- {
		s := uint64(b[i]) + carry&0xff
		b[i] = byte(s)
		carry = carry>>8 + s>>8
	}
	if carry > 0 {
		return netip.Addr{}
	}
	a := netip.AddrFrom16(b)
	if p.Addr().Is4() {
		a = a.Unmap()
		if !a.Is4() {
			return netip.Addr{}
		}
	}
	return a
}

// Namespaces returns the names of the lab's namespaces.
func (l *Lab) Namespaces() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.nss)
}

// Server returns the real server named name.
func (l *Lab) Server(name string) (Node, error) {
	for _, s := range l.Servers {
		if s.Name == name {
			return s, nil
		}
	}
	return Node{}, fmt.Errorf("find real server %q: not in lab %s", name, l.Prefix)
}

// Close stops the simulated servers, kills any process left in the lab's namespaces and
// deletes the namespaces (their interfaces go with them). It may be called more than once.
func (l *Lab) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	nss := slices.Clone(l.nss)
	l.mu.Unlock()
	errs := []error{l.stopVOS()}
	// Nodes first, the switch last: deleting a node takes its veth and bridge port along.
	for _, ns := range slices.Backward(nss) {
		if err := deleteNS(ns); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("close lab %s: %w", l.Prefix, err)
	}
	l.log.Info().Msg("lab down")
	return nil
}

// Cleanup deletes every network namespace whose name starts with prefix, killing any
// process still inside first. New calls it; programs may call it after a crash.
func Cleanup(prefix string) error {
	if len(prefix) < 2 {
		return fmt.Errorf("clean up lab %q: prefix too short to be safe", prefix)
	}
	names, err := listNS()
	if err != nil {
		return err
	}
	var errs []error
	for _, n := range names {
		if strings.HasPrefix(n, prefix) {
			errs = append(errs, deleteNS(n))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("clean up lab %s: %w", prefix, err)
	}
	return nil
}

// sweepStale deletes the namespaces of labs made with Prefix(tag), tag as in prefix, whose
// process no longer exists. Errors are ignored: it is housekeeping for dead runs.
func sweepStale(prefix string) {
	m := pidPrefixRE.FindStringSubmatch(prefix)
	if m == nil || m[0] != prefix {
		return
	}
	names, _ := listNS()
	for _, n := range names {
		nm := pidPrefixRE.FindStringSubmatch(n)
		if nm == nil || nm[1] != m[1] || nm[0] == prefix {
			continue
		}
		pid, err := strconv.ParseInt(nm[2], 36, 64)
		if err != nil {
			continue
		}
		if _, err := os.Stat("/proc/" + strconv.FormatInt(pid, 10)); errors.Is(err, os.ErrNotExist) {
			deleteNS(n) //nolint:errcheck // best effort
		}
	}
}

// --- building ---

func (l *Lab) addNS(name string) error {
	if err := newNS(name); err != nil {
		return err
	}
	l.mu.Lock()
	l.nss = append(l.nss, name)
	l.mu.Unlock()
	return nil
}

func (l *Lab) build(o Options) error {
	if err := l.addNS(l.Switch); err != nil {
		return err
	}
	// The switch carries frames only: no IPv6 of its own (no router solicitations, MLD).
	if err := sysctls(l.Switch, "net/ipv6/conf/default/disable_ipv6", "1", "net/ipv6/conf/all/disable_ipv6", "1"); err != nil {
		return err
	}
	if err := Do(l.Switch, PlainSwitch); err != nil {
		return fmt.Errorf("in %s: %w", l.Switch, err)
	}
	swNS, err := netns.GetFromName(l.Switch)
	if err != nil {
		return fmt.Errorf("open switch namespace: %w", err)
	}
	defer swNS.Close()
	sw, err := netlink.NewHandleAt(swNS)
	if err != nil {
		return fmt.Errorf("open netlink in switch namespace: %w", err)
	}
	defer sw.Close()
	off := false
	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: l.Bridge}, MulticastSnooping: &off}
	if err := sw.LinkAdd(br); err != nil {
		return fmt.Errorf("add bridge %s: %w", l.Bridge, err)
	}
	if err := sw.LinkSetUp(br); err != nil {
		return fmt.Errorf("set bridge %s up: %w", l.Bridge, err)
	}
	b := &builder{l: l, o: o, sw: sw, br: br}

	// Client.
	c := Node{Name: "client", NS: l.Prefix + "client", Link: l.Prefix + "cl", SwitchPort: l.Prefix + "scl"}
	var addrs []netlink.Addr
	for i := 1; i <= o.Clients; i++ {
		if l.ClientSubnet4.IsValid() {
			a := nthAddr(l.ClientSubnet4, i)
			l.Client.Sources4 = append(l.Client.Sources4, a)
			addrs = append(addrs, nlAddr(a, l.ClientSubnet4.Bits()))
		}
		if l.ClientSubnet6.IsValid() {
			a := nthAddr(l.ClientSubnet6, i)
			l.Client.Sources6 = append(l.Client.Sources6, a)
			addrs = append(addrs, nlAddr(a, l.ClientSubnet6.Bits()))
		}
	}
	if err := b.node(&c, addrs, l.Subnet4, l.Subnet6, false); err != nil {
		return err
	}
	l.Client.Node = c
	// Frames leaving a veth carry partial checksums (checksum offload to a device that
	// never computes them): the receiving veth accepts them, but a forwarder that copies
	// raw frames (AF_XDP) would pass the broken checksum on to the real server, which drops
	// the packet. So the client computes checksums in software. `ethtool` (the Debian
	// package) rather than an ETHTOOL_STXCSUM ioctl: raw ioctls live only in afxdp/.
	if err := run(c.NS, "ethtool", "-K", c.Link, "tx", "off"); err != nil {
		return fmt.Errorf("switch tx checksum offload off on %s: %w (is ethtool installed?)", c.Link, err)
	}

	// Load balancers.
	for i := 1; i <= o.LoadBalancers; i++ {
		role := "lb" + strconv.Itoa(i)
		n := Node{Name: role, NS: l.Prefix + role, Link: l.Prefix + role, SwitchPort: l.Prefix + "s" + role}
		if err := b.node(&n, b.hostAddrs(1+i), l.ClientSubnet4, l.ClientSubnet6, false); err != nil {
			return err
		}
		l.LBs = append(l.LBs, n)
	}

	// Real servers.
	for i, s := range o.Servers {
		role := "rs" + strconv.Itoa(i+1)
		n := Node{Name: s.Name, NS: l.Prefix + s.Name, Link: l.Prefix + role, SwitchPort: l.Prefix + "s" + role}
		if err := b.node(&n, b.hostAddrs(s.Host), l.ClientSubnet4, l.ClientSubnet6, true); err != nil {
			return err
		}
		l.Servers = append(l.Servers, n)
	}
	return nil
}

type builder struct {
	l  *Lab
	o  Options
	sw *netlink.Handle
	br *netlink.Bridge
}

func (b *builder) hostAddrs(h int) []netlink.Addr {
	var out []netlink.Addr
	if b.l.Subnet4.IsValid() {
		out = append(out, nlAddr(hostAddr(b.l.Subnet4, h), b.l.Subnet4.Bits()))
	}
	if b.l.Subnet6.IsValid() {
		out = append(out, nlAddr(hostAddr(b.l.Subnet6, h), b.l.Subnet6.Bits()))
	}
	return out
}

func nlAddr(a netip.Addr, bits int) netlink.Addr {
	na := netlink.Addr{IPNet: &net.IPNet{IP: a.AsSlice(), Mask: net.CIDRMask(bits, a.BitLen())}}
	if a.Is6() {
		na.Flags = syscall.IFA_F_NODAD // usable at once, no duplicate address detection
	}
	return na
}

// node creates n's namespace and veth, puts addrs on its link (the first of each family is
// primary), adds on-link routes to the other side's subnets, and, for a real server, the
// VIPs on lo and the ARP sysctls of direct routing.
func (b *builder) node(n *Node, addrs []netlink.Addr, route4, route6 netip.Prefix, realServer bool) error {
	l := b.l
	if err := l.addNS(n.NS); err != nil {
		return err
	}
	kv := []string{
		"net/ipv6/conf/all/accept_dad", "0", "net/ipv6/conf/default/accept_dad", "0",
	}
	if realServer {
		// The guide's "ARP problem" (see DRSysctls; the VMs get the same).
		kv = append(kv, DRSysctls("")...)
	}
	if err := sysctls(n.NS, kv...); err != nil {
		return err
	}
	nsh, err := netns.GetFromName(n.NS)
	if err != nil {
		return fmt.Errorf("open namespace %s: %w", n.NS, err)
	}
	defer nsh.Close()
	h, err := netlink.NewHandleAt(nsh)
	if err != nil {
		return fmt.Errorf("open netlink in %s: %w", n.NS, err)
	}
	defer h.Close()
	lo, err := h.LinkByName("lo")
	if err == nil {
		err = h.LinkSetUp(lo)
	}
	if err != nil {
		return fmt.Errorf("set lo up in %s: %w", n.NS, err)
	}

	// The pair is made in the switch namespace, its peer created directly in the node's.
	veth := &netlink.Veth{
		LinkAttrs:     netlink.LinkAttrs{Name: n.SwitchPort},
		PeerName:      n.Link,
		PeerNamespace: netlink.NsFd(nsh),
	}
	if err := b.sw.LinkAdd(veth); err != nil {
		return fmt.Errorf("add veth %s/%s: %w", n.SwitchPort, n.Link, err)
	}
	port, err := b.sw.LinkByName(n.SwitchPort)
	if err != nil {
		return fmt.Errorf("find switch port %s: %w", n.SwitchPort, err)
	}
	if err := b.sw.LinkSetMaster(port, b.br); err != nil {
		return fmt.Errorf("attach %s to bridge: %w", n.SwitchPort, err)
	}
	if err := b.sw.LinkSetUp(port); err != nil {
		return fmt.Errorf("set %s up: %w", n.SwitchPort, err)
	}

	link, err := h.LinkByName(n.Link)
	if err != nil {
		return fmt.Errorf("find %s in %s: %w", n.Link, n.NS, err)
	}
	kv = []string{"net/ipv6/conf/" + n.Link + "/accept_dad", "0"}
	if realServer {
		kv = append(kv, drIfaceSysctls(n.Link)...)
	}
	if err := sysctls(n.NS, kv...); err != nil {
		return err
	}
	if err := h.LinkSetUp(link); err != nil {
		return fmt.Errorf("set %s up in %s: %w", n.Link, n.NS, err)
	}
	n.MAC = link.Attrs().HardwareAddr
	for i := range addrs {
		if err := h.AddrAdd(link, &addrs[i]); err != nil {
			return fmt.Errorf("add address %s to %s in %s: %w", addrs[i].IPNet, n.Link, n.NS, err)
		}
		a, _ := netip.AddrFromSlice(addrs[i].IP)
		a = a.Unmap()
		if a.Is4() && !n.Addr4.IsValid() {
			n.Addr4 = a
		}
		if a.Is6() && !n.Addr6.IsValid() {
			n.Addr6 = a
		}
	}
	// On-link routes to the other subnet: clients and servers talk directly (DR replies).
	for _, r := range []struct {
		dst netip.Prefix
		src netip.Addr
	}{{route4, n.Addr4}, {route6, n.Addr6}} {
		if !r.dst.IsValid() {
			continue
		}
		rt := &netlink.Route{
			LinkIndex: link.Attrs().Index,
			Dst:       &net.IPNet{IP: r.dst.Addr().AsSlice(), Mask: net.CIDRMask(r.dst.Bits(), r.dst.Addr().BitLen())},
			Src:       r.src.AsSlice(),
		}
		if r.dst.Addr().Is4() {
			rt.Scope = netlink.SCOPE_LINK
		}
		if err := h.RouteAdd(rt); err != nil {
			return fmt.Errorf("add route %s dev %s in %s: %w", r.dst, n.Link, n.NS, err)
		}
	}
	if realServer {
		if err := AddVIPsToLo(h, l.VIPs); err != nil {
			return fmt.Errorf("in %s: %w", n.NS, err)
		}
	}
	// A static FDB entry: the bridge never forgets the node's MAC, even when the node is
	// silent (a real server that only receives DR frames), so frames are never flooded.
	fdb := &netlink.Neigh{
		LinkIndex:    port.Attrs().Index,
		Family:       syscall.AF_BRIDGE,
		Flags:        netlink.NTF_MASTER,
		State:        netlink.NUD_NOARP, // "static" in bridge(8): not local, never ages
		HardwareAddr: n.MAC,
	}
	if err := b.sw.NeighSet(fdb); err != nil {
		return fmt.Errorf("add static fdb entry %s on %s: %w", n.MAC, n.SwitchPort, err)
	}
	l.log.Debug().Str("node", n.Name).Str("ns", n.NS).Str("link", n.Link).Str("mac", n.MAC.String()).Msg("node up")
	return nil
}
