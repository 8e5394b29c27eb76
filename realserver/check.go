// Package realserver finds the direct-routing "ARP problem" on real servers
// and prints the setup that avoids it.
//
// A real server behind a direct-routing VIP must hold the VIP on a
// non-ARPing loopback: without it, it drops the traffic forwarded to it;
// with the VIP on a network interface, it answers ARP (IPv6: neighbour
// solicitations) for the VIP and takes the VIP's traffic from the load
// balancer. [Check] finds both from the load balancer: it asks who has each
// VIP and each real server's address, and sends each real server a probe
// addressed to the VIP with the server's MAC as destination, as forwarded
// traffic is; [Setup] prints the commands that configure a server right.
package realserver

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"syscall"
	"time"
)

// Link sends and receives whole Ethernet frames on the load balancer's
// interface (netif.PacketSocket).
type Link interface {
	MAC() [6]byte
	Send(frame []byte) error
	// Recv reads one received frame; at deadline it returns syscall.EAGAIN.
	Recv(buf []byte, deadline time.Time) (int, error)
}

// Target is one real server of one direct-routing virtual service.
type Target struct {
	Service string
	VIP     netip.Addr
	// Port is a TCP port of the service: the path probe is a SYN to VIP:Port
	// (answered by a SYN-ACK or a RST alike). 0: an ICMP echo to the VIP.
	Port   uint16
	Server string
	Addr   netip.Addr
}

// Options are what Check needs to know about the load balancer.
type Options struct {
	// Interface names node.interface in messages.
	Interface string
	// Source4 and Source6 are this node's addresses on the interface: the
	// probes' source. A family without one is not path-checked.
	Source4, Source6 netip.Addr
	// Ignore are MACs that may answer for a VIP; Peer is the HA peer's
	// address, whose MAC Check finds and ignores too.
	Ignore [][6]byte
	Peer   netip.Addr
	// Wait is how long each of the two phases waits for answers. Default 500ms.
	Wait time.Duration
}

// Result is what Check found about one Target.
type Result struct {
	Target
	MAC    [6]byte // the server's MAC, when it answered ARP/ND for its address
	HasMAC bool
	// Problems say what is wrong and how to fix it; empty when nothing is.
	Problems []string
}

// Stranger is a host that is no real server of the VIP (nor this node or
// its peer) and answered for a VIP.
type Stranger struct {
	VIP netip.Addr
	MAC [6]byte
}

// Report is the outcome of one Check.
type Report struct {
	Results   []Result // in the order of the targets
	Strangers []Stranger
	// Allowed are the MACs that may answer for a VIP: Options.Ignore and
	// the HA peer's, as found.
	Allowed [][6]byte
}

// The beginnings of the problems, for scripts and tests.
const (
	ProblemNoVIP       = "VIP not configured on the real server"
	ProblemAnswersARP  = "real server answers ARP for the VIP"
	ProblemAnswersND   = "real server answers neighbour solicitations for the VIP"
	ProblemUnreachable = "real server not reachable on the load balancer's network"
)

// Check runs the ARP/ND and path checks once and reports per target. It
// takes about 2*opt.Wait and fails only when the link fails.
func Check(link Link, targets []Target, opt Options) (Report, error) {
	if opt.Wait <= 0 {
		opt.Wait = 500 * time.Millisecond
	}
	mac := link.MAC()
	claims := map[netip.Addr][][6]byte{}
	answered := make([]bool, len(targets))
	sport := func(i int) uint16 { return uint16(40000 + i%20000) }
	listen := func(until time.Time) error {
		buf := make([]byte, 2048)
		for {
			n, err := link.Recv(buf, until)
			if errors.Is(err, syscall.EAGAIN) {
				return nil
			}
			if err != nil {
				return err
			}
			s, ok := parse(buf[:n])
			switch {
			case !ok:
			case s.claim && s.mac != mac && !slices.Contains(claims[s.addr], s.mac):
				claims[s.addr] = append(claims[s.addr], s.mac)
			case s.reply:
				for i, t := range targets {
					if s.from == t.VIP && (s.to == opt.Source4 || s.to == opt.Source6) && s.id == sport(i) && s.sport == t.Port {
						answered[i] = true
					}
				}
			}
		}
	}

	// Only what the checks read, and nothing left from before this round:
	// a receive buffer full of old frames would drop the answers.
	if f, ok := link.(filterer); ok {
		vips := make([]netip.Addr, 0, len(targets))
		for _, t := range targets {
			if t.VIP.IsValid() && !slices.Contains(vips, t.VIP) {
				vips = append(vips, t.VIP)
			}
		}
		if err := f.Filter(opt.Source4, opt.Source6, vips); err != nil {
			return Report{}, fmt.Errorf("check real servers on %s: %w", opt.Interface, err)
		}
	}
	if err := drain(link); err != nil {
		return Report{}, err
	}

	// Phase 1: who has each real server's address, each VIP and the peer?
	var asked []netip.Addr
	for _, t := range append(targets, Target{Addr: opt.Peer}) {
		for _, a := range []netip.Addr{t.Addr, t.VIP} {
			if !a.IsValid() {
				continue
			}
			if slices.Contains(asked, a) {
				continue
			}
			asked = append(asked, a)
			var f []byte
			if a.Is4() {
				f = arpRequest(mac, opt.Source4, a)
			} else {
				src := opt.Source6
				if !src.IsValid() {
					src = netip.IPv6Unspecified()
				}
				f = neighborSolicitation(mac, src, a)
			}
			if err := link.Send(f); err != nil {
				return Report{}, fmt.Errorf("ask who has %s on %s: %w", a, opt.Interface, err)
			}
		}
	}
	if err := listen(time.Now().Add(opt.Wait)); err != nil {
		return Report{}, err
	}
	if opt.Peer.IsValid() {
		opt.Ignore = append(slices.Clone(opt.Ignore), claims[opt.Peer]...)
	}

	// Phase 2: a probe to the VIP, with each server's MAC as destination.
	for i, t := range targets {
		macs := claims[t.Addr]
		src := opt.Source4
		if t.VIP.Is6() {
			src = opt.Source6
		}
		if len(macs) == 0 || !src.IsValid() {
			continue
		}
		var f []byte
		switch {
		case t.Port != 0 && t.VIP.Is4():
			f = ipv4Frame(macs[0], mac, src, t.VIP, protoTCP, tcpSYN(sport(i), t.Port, uint32(i)*7919+1))
		case t.Port != 0:
			f = ipv6Frame(macs[0], mac, src, t.VIP, protoTCP, 64, tcpSYN(sport(i), t.Port, uint32(i)*7919+1))
		case t.VIP.Is4():
			f = ipv4Frame(macs[0], mac, src, t.VIP, protoICMP, icmpEcho(false, sport(i), 1))
		default:
			f = ipv6Frame(macs[0], mac, src, t.VIP, protoICMP6, 64, icmpEcho(true, sport(i), 1))
		}
		if err := link.Send(f); err != nil {
			return Report{}, fmt.Errorf("probe %s through %s on %s: %w", t.VIP, t.Addr, opt.Interface, err)
		}
	}
	if err := listen(time.Now().Add(opt.Wait)); err != nil {
		return Report{}, err
	}
	return report(targets, claims, answered, opt), nil
}

// filterer is a Link that can limit what it receives (netif.PacketSocket).
type filterer interface {
	Filter(src4, src6 netip.Addr, from []netip.Addr) error
}

// drain reads and drops what link has received so far (at most a
// buffer's worth: a steady stream does not keep it busy).
func drain(link Link) error {
	buf := make([]byte, 2048)
	for range 4096 {
		_, err := link.Recv(buf, time.Now().Add(time.Millisecond))
		if errors.Is(err, syscall.EAGAIN) {
			return nil
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// report turns what was seen into findings with their fixes.
func report(targets []Target, claims map[netip.Addr][][6]byte, answered []bool, opt Options) Report {
	rep := Report{Allowed: opt.Ignore}
	known := map[netip.Addr][][6]byte{} // VIP -> MACs of its real servers and the ignored
	for _, t := range targets {
		known[t.VIP] = append(known[t.VIP], claims[t.Addr]...)
		known[t.VIP] = append(known[t.VIP], opt.Ignore...)
	}
	for i, t := range targets {
		r := Result{Target: t}
		macs := claims[t.Addr]
		if len(macs) > 0 {
			r.MAC, r.HasMAC = macs[0], true
		}
		src := opt.Source4
		if t.VIP.Is6() {
			src = opt.Source6
		}
		stealing := r.HasMAC && slices.Contains(claims[t.VIP], r.MAC)
		switch {
		case !r.HasMAC:
			what := "ARP"
			if t.Addr.Is6() {
				what = "neighbour solicitation"
			}
			r.Problems = append(r.Problems, fmt.Sprintf("%s: no answer to %s for %s on %s; fix: direct routing needs the server in the same layer-2 network as node.interface (check cabling, VLAN and address)",
				ProblemUnreachable, what, t.Addr, opt.Interface))
		case stealing && t.VIP.Is4():
			r.Problems = append(r.Problems, fmt.Sprintf("%s %s (from %s): the VIP is on a network interface, so the server can take the VIP's traffic from the load balancer; fix: hold the VIP on lo instead and set net.ipv4.conf.all.arp_ignore=1 and arp_announce=2 (medialb realserver-setup prints the commands)",
				ProblemAnswersARP, t.VIP, net.HardwareAddr(r.MAC[:])))
		case stealing:
			r.Problems = append(r.Problems, fmt.Sprintf("%s %s (from %s): the VIP is on a network interface, so the server can take the VIP's traffic from the load balancer; fix: hold the VIP on lo instead (medialb realserver-setup prints the commands)",
				ProblemAnswersND, t.VIP, net.HardwareAddr(r.MAC[:])))
		case !src.IsValid():
			// No address of this family on the interface: no path probe.
		case !answered[i]:
			probe := fmt.Sprintf("a TCP SYN to %s port %d", t.VIP, t.Port)
			if t.Port == 0 {
				probe = "an ICMP echo to " + t.VIP.String()
			}
			fix := fmt.Sprintf("ip addr add %s/32 dev lo with arp_ignore=1 and arp_announce=2", t.VIP)
			if t.VIP.Is6() {
				fix = fmt.Sprintf("ip addr add %s/128 dev lo", t.VIP)
			}
			r.Problems = append(r.Problems, fmt.Sprintf("%s (%s): %s sent to its MAC went unanswered, so traffic forwarded to it is dropped; fix: %s (medialb realserver-setup prints the commands)",
				ProblemNoVIP, t.VIP, probe, fix))
		}
		rep.Results = append(rep.Results, r)
	}
	var vips []netip.Addr
	for _, t := range targets {
		if !slices.Contains(vips, t.VIP) {
			vips = append(vips, t.VIP)
		}
	}
	for _, v := range vips {
		for _, m := range claims[v] {
			if !slices.Contains(known[v], m) {
				rep.Strangers = append(rep.Strangers, Stranger{VIP: v, MAC: m})
			}
		}
	}
	return rep
}
