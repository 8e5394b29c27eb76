package lab

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// This file is the BGP ECMP lab: a router namespace running FRR (zebra and
// bgpd) between the clients and several load balancers, each of which
// announces the VIPs over BGP; the router spreads clients over them with ECMP.
//
//	client ──(own link)── router ──┐ bridge  lb1, lb2, lb3 … (AddLB)
//	192.168.95.x       .95.254    .94.1     real servers (replies go back
//	                                        through the router: DSR)
//
// AddRouter moves the lab's client namespace behind the router: the old client
// is deleted and rebuilt (same name, same source addresses) on a link of its
// own to the router, and every node on the bridge reaches the client subnet
// through the router instead of on-link. IPv4 only.

// Router paths: FRR's daemons, from Debian's frr package.
const (
	frrZebra = "/usr/lib/frr/zebra"
	frrBgpd  = "/usr/lib/frr/bgpd"
)

// RouterOptions configures AddRouter. Dir is required; the rest have defaults.
type RouterOptions struct {
	// Dir holds FRR's configuration, sockets, pid and log files (the machine's
	// /etc/frr and /run/frr are never touched). Default: a new directory in
	// os.TempDir(), removed by Router.Close. FRR's daemons run as Debian's frr
	// user (they refuse root outside the frrvty group), so every directory
	// above Dir must be searchable by it.
	Dir string
	// ASN is the router's AS (default 65000); PeerASN the load balancers' (default 65010).
	ASN, PeerASN uint32
	// HoldTime is the router's hold time for the sessions; default 3s (BGP's least).
	HoldTime time.Duration
	// MaxPaths is bgpd's maximum-paths: how many nodes share a VIP; default 8.
	MaxPaths int
}

// Router is the lab's FRR router.
type Router struct {
	NS         string
	Addr4      netip.Addr // on the bridge, the load balancers' BGP peer (192.168.94.1)
	ClientAddr netip.Addr // on the client link, the clients' gateway (192.168.95.254)
	ASN        uint32
	Dir        string
	lab        *Lab
	procs      []*exec.Cmd
	ownDir     bool // Dir made by AddRouter: Close removes it
}

// AddRouter builds the router, moves the client behind it and starts zebra and
// bgpd there, listening for the load balancers' sessions from anywhere in
// Subnet4 (bgpd's dynamic neighbours: a node added later needs no change).
func (l *Lab) AddRouter(o RouterOptions) (*Router, error) {
	if !l.Subnet4.IsValid() || !l.ClientSubnet4.IsValid() {
		return nil, errors.New("add router: the BGP lab is IPv4 only and needs Subnet4 and ClientSubnet4")
	}
	if o.ASN == 0 {
		o.ASN = 65000
	}
	if o.PeerASN == 0 {
		o.PeerASN = 65010
	}
	if o.HoldTime == 0 {
		o.HoldTime = 3 * time.Second
	}
	if o.MaxPaths == 0 {
		o.MaxPaths = 8
	}
	r := &Router{NS: l.Prefix + "rt", Addr4: hostAddr(l.Subnet4, 1), ClientAddr: hostAddr(l.ClientSubnet4, 254),
		ASN: o.ASN, Dir: o.Dir, lab: l}
	if slices.Contains(l.Client.Sources4, r.ClientAddr) {
		return nil, fmt.Errorf("add router: %s is a client source; use fewer clients (at most 253)", r.ClientAddr)
	}
	if r.Dir == "" {
		dir, err := os.MkdirTemp("", "medialb-frr-"+l.Prefix)
		if err != nil {
			return nil, fmt.Errorf("add router: %w", err)
		}
		r.Dir, r.ownDir = dir, true
	}
	if err := l.buildRouter(r); err != nil {
		return nil, fmt.Errorf("add router: %w", err)
	}
	for _, n := range append(slices.Clone(l.LBs), l.Servers...) {
		if err := r.routeClients(n); err != nil {
			return nil, fmt.Errorf("add router: %w", err)
		}
	}
	if err := r.startFRR(o); err != nil {
		return nil, fmt.Errorf("add router: %w", err)
	}
	return r, nil
}

// buildRouter creates the router namespace on the bridge and the client's new
// link to it.
func (l *Lab) buildRouter(r *Router) error {
	b, closeSW, err := l.switchBuilder()
	if err != nil {
		return err
	}
	defer closeSW()
	rt := Node{Name: "rt", NS: r.NS, Link: l.Prefix + "rtb", SwitchPort: l.Prefix + "srt"}
	if err := b.node(&rt, []netlink.Addr{nlAddr(r.Addr4, l.Subnet4.Bits())}, netip.Prefix{}, netip.Prefix{}, false); err != nil {
		return err
	}
	if err := sysctls(r.NS, "net/ipv4/ip_forward", "1", "net/ipv4/conf/all/rp_filter", "0",
		"net/ipv4/conf/default/rp_filter", "0", "net/ipv4/fib_multipath_hash_policy", "0"); err != nil {
		return err
	}
	// The client again, on a link of its own to the router.
	if err := deleteNS(l.Client.NS); err != nil {
		return err
	}
	if err := newNS(l.Client.NS); err != nil {
		return err
	}
	cl, rl := l.Client.Link, l.Prefix+"rtc"
	err = inNS(r.NS, func(h *netlink.Handle, _ netns.NsHandle) error {
		return inNS(l.Client.NS, func(ch *netlink.Handle, cns netns.NsHandle) error {
			veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: rl}, PeerName: cl, PeerNamespace: netlink.NsFd(cns)}
			if err := h.LinkAdd(veth); err != nil {
				return fmt.Errorf("add veth %s/%s: %w", rl, cl, err)
			}
			if err := linkUp(h, rl, nlAddr(r.ClientAddr, l.ClientSubnet4.Bits())); err != nil {
				return err
			}
			var addrs []netlink.Addr
			for _, a := range l.Client.Sources4 {
				addrs = append(addrs, nlAddr(a, l.ClientSubnet4.Bits()))
			}
			if lo, err := ch.LinkByName("lo"); err == nil {
				ch.LinkSetUp(lo) //nolint:errcheck // lo is only needed for local sockets
			}
			if err := linkUp(ch, cl, addrs...); err != nil {
				return err
			}
			link, _ := ch.LinkByName(cl)
			l.Client.MAC = link.Attrs().HardwareAddr
			return ch.RouteAdd(&netlink.Route{LinkIndex: link.Attrs().Index, Dst: ipNet(l.Subnet4),
				Gw: r.ClientAddr.AsSlice(), Src: l.Client.Sources4[0].AsSlice()})
		})
	})
	if err != nil {
		return err
	}
	l.Client.SwitchPort = ""
	// Software checksums, as before: frames forwarded by AF_XDP must carry valid ones.
	return run(l.Client.NS, "ethtool", "-K", cl, "tx", "off")
}

// routeClients sends n's traffic to the client subnet through the router.
func (r *Router) routeClients(n Node) error {
	l := r.lab
	return inNS(n.NS, func(h *netlink.Handle, _ netns.NsHandle) error {
		link, err := h.LinkByName(n.Link)
		if err != nil {
			return fmt.Errorf("find %s in %s: %w", n.Link, n.NS, err)
		}
		rt := &netlink.Route{LinkIndex: link.Attrs().Index, Dst: ipNet(l.ClientSubnet4), Gw: r.Addr4.AsSlice()}
		if err := h.RouteReplace(rt); err != nil {
			return fmt.Errorf("route %s via %s in %s: %w", l.ClientSubnet4, r.Addr4, n.NS, err)
		}
		return nil
	})
}

// AddLB adds a load balancer namespace "lbN" (N the next free number) on the
// bridge with host number host in Subnet4, routed to the clients through r.
func (r *Router) AddLB(host int) (Node, error) {
	l := r.lab
	l.mu.Lock()
	role := "lb" + strconv.Itoa(len(l.LBs)+1)
	l.mu.Unlock()
	a := hostAddr(l.Subnet4, host)
	for _, n := range append(slices.Clone(l.LBs), l.Servers...) {
		if n.Addr4 == a {
			return Node{}, fmt.Errorf("add load balancer %s: %s is %s's address", role, a, n.Name)
		}
	}
	b, closeSW, err := l.switchBuilder()
	if err != nil {
		return Node{}, err
	}
	defer closeSW()
	n := Node{Name: role, NS: l.Prefix + role, Link: l.Prefix + role, SwitchPort: l.Prefix + "s" + role}
	if err := b.node(&n, []netlink.Addr{nlAddr(a, l.Subnet4.Bits())}, netip.Prefix{}, netip.Prefix{}, false); err != nil {
		return Node{}, fmt.Errorf("add load balancer %s: %w", role, err)
	}
	if err := r.routeClients(n); err != nil {
		return Node{}, err
	}
	l.mu.Lock()
	l.LBs = append(l.LBs, n)
	l.mu.Unlock()
	return n, nil
}

// Close stops FRR's daemons and removes the directory AddRouter made. The lab's
// Close kills them too (every process in its namespaces).
func (r *Router) Close() error {
	for _, p := range r.procs {
		if p.Process != nil {
			p.Process.Kill() //nolint:errcheck // it may be gone already
		}
	}
	if r.ownDir {
		return os.RemoveAll(r.Dir)
	}
	return nil
}

// NextHops returns the gateways of the router's kernel route to vip: one per
// load balancer the router spreads it over (ECMP), none when no node announces it.
func (r *Router) NextHops(vip netip.Addr) ([]netip.Addr, error) {
	var out []netip.Addr
	err := inNS(r.NS, func(h *netlink.Handle, _ netns.NsHandle) error {
		routes, err := h.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Dst: ipNet(netip.PrefixFrom(vip, 32))}, netlink.RT_FILTER_DST)
		if err != nil {
			return fmt.Errorf("list routes to %s in %s: %w", vip, r.NS, err)
		}
		for _, rt := range routes {
			if rt.Gw != nil {
				a, _ := netip.AddrFromSlice(rt.Gw)
				out = append(out, a.Unmap())
			}
			for _, nh := range rt.MultiPath {
				a, _ := netip.AddrFromSlice(nh.Gw)
				out = append(out, a.Unmap())
			}
		}
		return nil
	})
	slices.SortFunc(out, netip.Addr.Compare)
	return out, err
}

// VTY runs a vtysh command against the lab's bgpd and zebra ("show bgp summary").
func (r *Router) VTY(command string) (string, error) {
	out, err := Exec(r.NS, "vtysh", "--vty_socket", r.Dir, "-c", command).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("vtysh -c %q in %s: %w: %s", command, r.NS, err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// startFRR writes FRR's configuration into r.Dir and starts zebra and bgpd in
// the router namespace, as root, with every path under r.Dir.
func (r *Router) startFRR(o RouterOptions) error {
	l := r.lab
	if err := os.MkdirAll(r.Dir, 0o755); err != nil {
		return err
	}
	u, err := user.Lookup("frr")
	if err != nil {
		return fmt.Errorf("find FRR's user: %w (is Debian's frr installed?)", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	if err := os.Chmod(r.Dir, 0o755); err != nil {
		return err
	}
	if err := os.Chown(r.Dir, uid, gid); err != nil {
		return err
	}
	hold := int(o.HoldTime / time.Second)
	keep := max(hold/3, 1)
	bgpd := fmt.Sprintf(`hostname %[1]srt
log file %[2]s/bgpd.log
router bgp %[3]d
 bgp router-id %[4]s
 no bgp ebgp-requires-policy
 no bgp network import-check
 timers bgp %[5]d %[6]d
 neighbor LB peer-group
 neighbor LB remote-as %[7]d
 neighbor LB timers %[5]d %[6]d
 neighbor LB timers connect 1
 neighbor LB advertisement-interval 0
 bgp listen range %[8]s peer-group LB
 address-family ipv4 unicast
  maximum-paths %[9]d
 exit-address-family
`, l.Prefix, r.Dir, r.ASN, r.Addr4, keep, hold, o.PeerASN, l.Subnet4, o.MaxPaths)
	zebra := fmt.Sprintf("hostname %srt\nlog file %s/zebra.log\n", l.Prefix, r.Dir)
	for name, text := range map[string]string{"bgpd.conf": bgpd, "zebra.conf": zebra, "vtysh.conf": ""} {
		if err := os.WriteFile(filepath.Join(r.Dir, name), []byte(text), 0o644); err != nil {
			return err
		}
	}
	zsock := filepath.Join(r.Dir, "zserv.api")
	common := func(daemon string) []string {
		return []string{"-z", zsock, "--vty_socket", r.Dir,
			"-i", filepath.Join(r.Dir, daemon+".pid"), "-f", filepath.Join(r.Dir, daemon+".conf"), "-A", "127.0.0.1", "-P", "0"}
	}
	if err := r.start(frrZebra, "zebra", common("zebra")...); err != nil {
		return err
	}
	if err := waitFile(zsock, 10*time.Second); err != nil {
		return fmt.Errorf("zebra did not come up: %w (see %s/zebra.out)", err, r.Dir)
	}
	return r.start(frrBgpd, "bgpd", append(common("bgpd"), "-p", "179", "-l", r.Addr4.String())...)
}

func (r *Router) start(bin, name string, args ...string) error {
	out, err := os.Create(filepath.Join(r.Dir, name+".out"))
	if err != nil {
		return err
	}
	cmd := Exec(r.NS, bin, args...)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		out.Close()
		return fmt.Errorf("start %s in %s: %w (is Debian's frr installed?)", bin, r.NS, err)
	}
	go func() { cmd.Wait(); out.Close() }() //nolint:errcheck // its exit shows in the lab's checks
	r.procs = append(r.procs, cmd)
	return nil
}

func waitFile(path string, timeout time.Duration) error {
	for deadline := time.Now().Add(timeout); ; time.Sleep(50 * time.Millisecond) {
		if _, err := os.Stat(path); err == nil {
			return nil
		} else if time.Now().After(deadline) {
			return err
		}
	}
}

// switchBuilder opens the switch namespace for adding nodes to the bridge.
func (l *Lab) switchBuilder() (*builder, func(), error) {
	swNS, err := netns.GetFromName(l.Switch)
	if err != nil {
		return nil, nil, fmt.Errorf("open switch namespace: %w", err)
	}
	sw, err := netlink.NewHandleAt(swNS)
	if err != nil {
		swNS.Close()
		return nil, nil, fmt.Errorf("open netlink in switch namespace: %w", err)
	}
	closeAll := func() { sw.Close(); swNS.Close() }
	link, err := sw.LinkByName(l.Bridge)
	br, ok := link.(*netlink.Bridge)
	if err != nil || !ok {
		closeAll()
		return nil, nil, fmt.Errorf("find bridge %s: %v", l.Bridge, err)
	}
	return &builder{l: l, sw: sw, br: br}, closeAll, nil
}

// inNS runs fn with a netlink handle in namespace ns.
func inNS(ns string, fn func(*netlink.Handle, netns.NsHandle) error) error {
	nsh, err := netns.GetFromName(ns)
	if err != nil {
		return fmt.Errorf("open namespace %s: %w", ns, err)
	}
	defer nsh.Close()
	h, err := netlink.NewHandleAt(nsh)
	if err != nil {
		return fmt.Errorf("open netlink in %s: %w", ns, err)
	}
	defer h.Close()
	return fn(h, nsh)
}

// linkUp puts addrs on the named link and sets it up.
func linkUp(h *netlink.Handle, name string, addrs ...netlink.Addr) error {
	link, err := h.LinkByName(name)
	if err != nil {
		return fmt.Errorf("find %s: %w", name, err)
	}
	for i := range addrs {
		if err := h.AddrAdd(link, &addrs[i]); err != nil {
			return fmt.Errorf("add %s to %s: %w", addrs[i].IPNet, name, err)
		}
	}
	if err := h.LinkSetUp(link); err != nil {
		return fmt.Errorf("set %s up: %w", name, err)
	}
	return nil
}

func ipNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

// NodeFor returns the load balancer the router sends src's packets to vip to,
// as its kernel's ECMP hash picks it for a packet arriving from the client
// (`ip route get VIP from SRC iif LINK`); the zero Addr when no node announces vip.
func (r *Router) NodeFor(src, vip netip.Addr) (netip.Addr, error) {
	var out netip.Addr
	err := inNS(r.NS, func(h *netlink.Handle, _ netns.NsHandle) error {
		routes, err := h.RouteGetWithOptions(vip.AsSlice(), &netlink.RouteGetOptions{Iif: r.lab.Prefix + "rtc", SrcAddr: src.AsSlice()})
		if err != nil {
			if errors.Is(err, syscall.ENETUNREACH) || errors.Is(err, syscall.EHOSTUNREACH) {
				return nil
			}
			return fmt.Errorf("route get %s from %s in %s: %w", vip, src, r.NS, err)
		}
		for _, rt := range routes {
			if rt.Gw != nil {
				out, _ = netip.AddrFromSlice(rt.Gw)
				out = out.Unmap()
			}
		}
		return nil
	})
	return out, err
}
