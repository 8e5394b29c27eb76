package lab

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// A routed real server (forwarding: tunnel): two hops from the load balancers. A
// router namespace with plain IP forwarding sits on the switch (host RouterHost of
// Subnet4) and on a link of its own to the far server's namespace (FarSubnet4). The
// load balancers reach FarSubnet4 through the router; the far server's default route
// is the router, so it answers clients through it (direct server return).
const (
	RouterHost = 250
)

// FarSubnet4 is the routed server's subnet behind the router: the router is .1, the
// server .5.
var FarSubnet4 = netip.MustParsePrefix("10.94.1.0/24")

// Routed is a routed real server and its router.
type Routed struct {
	Server Node       // the far server (also in Lab.Servers, so StartVOS serves it)
	Router Node       // the router's switch-side node
	Via    netip.Addr // the router's address on the switch (the load balancers' next hop)
}

// AddRoutedServer adds a router and a real server named name behind it (IPv4 only),
// with routes from every load balancer to FarSubnet4 through the router. The server
// gets no VIP and no tunnel device: its tunnel setup is the caller's (see StartDecap).
// The lab's Close removes both namespaces.
func (l *Lab) AddRoutedServer(name string) (*Routed, error) {
	if !serverNameRE.MatchString(name) || !l.Subnet4.IsValid() {
		return nil, fmt.Errorf("add routed server %q: want a name of [A-Za-z0-9] and an IPv4 lab", name)
	}
	swNS, err := netns.GetFromName(l.Switch)
	if err != nil {
		return nil, fmt.Errorf("open switch namespace: %w", err)
	}
	defer swNS.Close()
	sw, err := netlink.NewHandleAt(swNS)
	if err != nil {
		return nil, fmt.Errorf("open netlink in switch namespace: %w", err)
	}
	defer sw.Close()
	brl, err := sw.LinkByName(l.Bridge)
	if err != nil {
		return nil, fmt.Errorf("find bridge %s: %w", l.Bridge, err)
	}
	br, ok := brl.(*netlink.Bridge)
	if !ok {
		return nil, fmt.Errorf("%s is no bridge", l.Bridge)
	}
	b := &builder{l: l, sw: sw, br: br}
	r := &Routed{Via: hostAddr(l.Subnet4, RouterHost)}
	r.Router = Node{Name: "router", NS: l.Prefix + "rt", Link: l.Prefix + "rt", SwitchPort: l.Prefix + "srt"}
	addrs := []netlink.Addr{nlAddr(r.Via, l.Subnet4.Bits())}
	if err := b.node(&r.Router, addrs, l.ClientSubnet4, netip.Prefix{}, false); err != nil {
		return nil, err
	}
	if err := sysctls(r.Router.NS, "net/ipv4/ip_forward", "1", "net/ipv4/conf/all/rp_filter", "0"); err != nil {
		return nil, err
	}
	srv := Node{Name: name, NS: l.Prefix + name, Link: l.Prefix + "far", SwitchPort: l.Prefix + "rtf",
		Addr4: nthAddr(FarSubnet4, 5)}
	if err := l.addNS(srv.NS); err != nil {
		return nil, err
	}
	gw := nthAddr(FarSubnet4, 1)
	if err := l.pointToPoint(r.Router.NS, srv.SwitchPort, gw, srv.NS, srv.Link, srv.Addr4, FarSubnet4.Bits()); err != nil {
		return nil, err
	}
	if err := run(srv.NS, "ip", "link", "set", "lo", "up"); err != nil {
		return nil, err
	}
	if err := run(srv.NS, "ip", "route", "add", "default", "via", gw.String()); err != nil {
		return nil, err
	}
	for _, lb := range l.LBs {
		if err := run(lb.NS, "ip", "route", "add", FarSubnet4.String(), "via", r.Via.String()); err != nil {
			return nil, err
		}
	}
	link, err := netlinkIn(srv.NS, func(h *netlink.Handle) (netlink.Link, error) { return h.LinkByName(srv.Link) })
	if err != nil {
		return nil, err
	}
	srv.MAC = link.Attrs().HardwareAddr
	r.Server = srv
	l.mu.Lock()
	l.Servers = append(l.Servers, srv)
	l.mu.Unlock()
	l.log.Info().Str("server", name).Str("via", r.Via.String()).Str("addr", srv.Addr4.String()).Msg("routed server up")
	return r, nil
}

// pointToPoint links two namespaces with a veth: aIf in aNS with address a, bIf in bNS
// with address b, both in a /bits subnet.
func (l *Lab) pointToPoint(aNS, aIf string, a netip.Addr, bNS, bIf string, b netip.Addr, bits int) error {
	bh, err := netns.GetFromName(bNS)
	if err != nil {
		return fmt.Errorf("open namespace %s: %w", bNS, err)
	}
	defer bh.Close()
	return Do(aNS, func() error {
		veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: aIf}, PeerName: bIf, PeerNamespace: netlink.NsFd(bh)}
		if err := netlink.LinkAdd(veth); err != nil {
			return fmt.Errorf("add veth %s/%s: %w", aIf, bIf, err)
		}
		if err := addrUp(netlink.LinkByName, netlink.AddrAdd, netlink.LinkSetUp, aIf, a, bits); err != nil {
			return err
		}
		h, err := netlink.NewHandleAt(bh)
		if err != nil {
			return err
		}
		defer h.Close()
		return addrUp(h.LinkByName, h.AddrAdd, h.LinkSetUp, bIf, b, bits)
	})
}

func addrUp(find func(string) (netlink.Link, error), add func(netlink.Link, *netlink.Addr) error,
	up func(netlink.Link) error, name string, a netip.Addr, bits int) error {
	link, err := find(name)
	if err != nil {
		return fmt.Errorf("find %s: %w", name, err)
	}
	na := nlAddr(a, bits)
	if err := add(link, &na); err != nil {
		return fmt.Errorf("add %s to %s: %w", a, name, err)
	}
	if err := up(link); err != nil {
		return fmt.Errorf("set %s up: %w", name, err)
	}
	return nil
}

func netlinkIn[T any](ns string, fn func(h *netlink.Handle) (T, error)) (T, error) {
	var zero T
	nsh, err := netns.GetFromName(ns)
	if err != nil {
		return zero, fmt.Errorf("open namespace %s: %w", ns, err)
	}
	defer nsh.Close()
	h, err := netlink.NewHandleAt(nsh)
	if err != nil {
		return zero, fmt.Errorf("open netlink in %s: %w", ns, err)
	}
	defer h.Close()
	return fn(h)
}

// Decap decapsulates, in user space, what a kernel built without ipip and fou (this
// machine's: CONFIG_NET_IPIP and CONFIG_NET_FOU are off) would: IPIP packets (IP
// protocol 4, read from a raw socket) and GUE variant 1 datagrams (IP directly in UDP
// to a port) to the namespace's address; it writes the inner packet, untouched, to a
// TUN device, through which the kernel receives it as if from a tunnel device. The
// device's addresses (the VIPs), routes and rp_filter are the caller's, as on a real
// server (medialb realserver-setup). Close stops it.
type Decap struct {
	tun, raw int
	udp      *net.UDPConn
	wg       sync.WaitGroup
	closed   atomic.Bool

	IPIP, GUE atomic.Uint64 // packets decapsulated
	mu        sync.Mutex
	outerSrc  map[netip.Addr]bool
}

// StartDecap creates TUN device dev in namespace ns (up, no address) and starts
// decapsulating IPIP and, when guePort is not 0, GUE to it.
func StartDecap(ns, dev string, guePort uint16) (*Decap, error) {
	d := &Decap{tun: -1, raw: -1, outerSrc: map[netip.Addr]bool{}}
	err := Do(ns, func() error {
		fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("open /dev/net/tun: %w", err)
		}
		d.tun = fd
		ifr, err := unix.NewIfreq(dev)
		if err != nil {
			return err
		}
		ifr.SetUint16(unix.IFF_TUN | unix.IFF_NO_PI)
		if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
			return fmt.Errorf("create TUN device %s: %w", dev, err)
		}
		link, err := netlink.LinkByName(dev)
		if err != nil {
			return err
		}
		if err := netlink.LinkSetUp(link); err != nil {
			return fmt.Errorf("set %s up: %w", dev, err)
		}
		if d.raw, err = unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_IPIP); err != nil {
			return fmt.Errorf("open raw IPIP socket: %w", err)
		}
		// Close cannot wake a blocked raw read: the loop looks every 200ms.
		if err := unix.SetsockoptTimeval(d.raw, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Usec: 200000}); err != nil {
			return err
		}
		if guePort != 0 {
			if d.udp, err = net.ListenUDP("udp4", &net.UDPAddr{Port: int(guePort)}); err != nil {
				return fmt.Errorf("listen for GUE on %d: %w", guePort, err)
			}
		}
		return nil
	})
	if err != nil {
		d.Close()
		return nil, fmt.Errorf("start decapsulation in %s: %w", ns, err)
	}
	d.wg.Add(1)
	go d.ipipLoop()
	if d.udp != nil {
		d.wg.Add(1)
		go d.gueLoop()
	}
	return d, nil
}

func (d *Decap) ipipLoop() {
	defer d.wg.Done()
	buf := make([]byte, 65536)
	for {
		if d.closed.Load() {
			return
		}
		n, _, err := unix.Recvfrom(d.raw, buf, 0)
		if err != nil {
			if errors.Is(err, unix.EINTR) || errors.Is(err, unix.EAGAIN) {
				continue
			}
			return
		}
		if n < 20 || buf[0]>>4 != 4 {
			continue
		}
		ihl := int(buf[0]&0xf) * 4
		if n <= ihl {
			continue
		}
		d.seen(netip.AddrFrom4([4]byte(buf[12:16])))
		if _, err := unix.Write(d.tun, buf[ihl:n]); err == nil {
			d.IPIP.Add(1)
		}
	}
}

func (d *Decap) gueLoop() {
	defer d.wg.Done()
	buf := make([]byte, 65536)
	for {
		n, from, err := d.udp.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		if n == 0 || (buf[0]>>4 != 4 && buf[0]>>4 != 6) {
			continue // GUE variant 0 (with a header) is not what medialb sends
		}
		d.seen(from.Addr().Unmap())
		if _, err := unix.Write(d.tun, buf[:n]); err == nil {
			d.GUE.Add(1)
		}
	}
}

func (d *Decap) seen(a netip.Addr) {
	d.mu.Lock()
	d.outerSrc[a] = true
	d.mu.Unlock()
}

// OuterSources returns the outer source addresses seen, sorted as text.
func (d *Decap) OuterSources() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []string
	for a := range d.outerSrc {
		out = append(out, a.String())
	}
	return strings.Join(out, ",")
}

// Close stops decapsulating and removes the TUN device.
func (d *Decap) Close() error {
	d.closed.Store(true)
	if d.udp != nil {
		d.udp.Close()
	}
	d.wg.Wait()
	if d.raw >= 0 {
		unix.Close(d.raw)
	}
	if d.tun >= 0 {
		unix.Close(d.tun)
	}
	return nil
}
