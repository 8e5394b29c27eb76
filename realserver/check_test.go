package realserver

import (
	"encoding/binary"
	"net/netip"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/medialb/medialb/netif"
)

// host is a simulated machine on the load balancer's segment.
type host struct {
	mac      [6]byte
	addrs    []netip.Addr // addresses it answers ARP/ND for
	local    []netip.Addr // addresses it accepts traffic for (its own and a VIP on lo)
	tcpPorts []uint16     // ports with a listener; others answer RST
}

// fakeLink is a segment of hosts that answer as Linux does.
type fakeLink struct {
	mac   [6]byte
	hosts []host
	queue [][]byte
}

func (l *fakeLink) MAC() [6]byte { return l.mac }

func (l *fakeLink) Recv(buf []byte, deadline time.Time) (int, error) {
	if len(l.queue) == 0 {
		return 0, syscall.EAGAIN
	}
	f := l.queue[0]
	l.queue = l.queue[1:]
	return copy(buf, f), nil
}

func (l *fakeLink) Send(f []byte) error {
	typ := binary.BigEndian.Uint16(f[12:])
	for _, h := range l.hosts {
		switch {
		case typ == etherARP:
			target := netip.AddrFrom4([4]byte(f[14+24 : 14+28]))
			for _, a := range h.addrs {
				if a == target {
					l.queue = append(l.queue, netif.GratuitousARP(h.mac, a, 2))
				}
			}
		case typ == etherIPv6 && f[14+6] == protoICMP6 && f[14+40] == 135:
			target := netip.AddrFrom16([16]byte(f[14+48 : 14+64]))
			for _, a := range h.addrs {
				if a == target {
					l.queue = append(l.queue, netif.UnsolicitedNA(h.mac, a))
				}
			}
		case [6]byte(f[0:6]) == h.mac && typ == etherIPv4 && f[14+9] == protoTCP:
			from, to := netip.AddrFrom4([4]byte(f[14+12:14+16])), netip.AddrFrom4([4]byte(f[14+16:14+20]))
			l.answerSYN(h, from, to, f[14+20:])
		case [6]byte(f[0:6]) == h.mac && typ == etherIPv4 && f[14+9] == protoICMP && f[14+20] == 8:
			from, to := netip.AddrFrom4([4]byte(f[14+12:14+16])), netip.AddrFrom4([4]byte(f[14+16:14+20]))
			if slices.Contains(h.local, to) {
				reply := slices.Clone(f[14+20:])
				reply[0] = 0 // echo reply
				l.queue = append(l.queue, ipv4Frame(l.mac, h.mac, to, from, protoICMP, reply))
			}
		case [6]byte(f[0:6]) == h.mac && typ == etherIPv6 && f[14+6] == protoTCP:
			from, to := netip.AddrFrom16([16]byte(f[14+8:14+24])), netip.AddrFrom16([16]byte(f[14+24:14+40]))
			l.answerSYN(h, from, to, f[14+40:])
		}
	}
	return nil
}

func (l *fakeLink) answerSYN(h host, from, to netip.Addr, syn []byte) {
	found := false
	for _, a := range h.local {
		found = found || a == to
	}
	if !found {
		return // not for this host: dropped
	}
	sport, dport := binary.BigEndian.Uint16(syn[0:]), binary.BigEndian.Uint16(syn[2:])
	t := make([]byte, 20)
	binary.BigEndian.PutUint16(t[0:], dport)
	binary.BigEndian.PutUint16(t[2:], sport)
	t[12], t[13] = 5<<4, 0x04|0x10 // RST-ACK: nothing listens
	for _, p := range h.tcpPorts {
		if p == dport {
			t[13] = 0x12
		}
	}
	if to.Is4() {
		l.queue = append(l.queue, ipv4Frame(l.mac, h.mac, to, from, protoTCP, t))
	} else {
		l.queue = append(l.queue, ipv6Frame(l.mac, h.mac, to, from, protoTCP, 64, t))
	}
}

func TestCheck(t *testing.T) {
	ip := netip.MustParseAddr
	vip, vip6 := ip("192.168.94.110"), ip("fd94::110")
	lb := [6]byte{2, 0, 0, 0, 0, 2}
	mac := func(b byte) [6]byte { return [6]byte{2, 0, 0, 0, 0, b} }
	link := &fakeLink{mac: lb, hosts: []host{
		{mac: mac(15), addrs: []netip.Addr{ip("192.168.94.115"), ip("fd94::115")}, local: []netip.Addr{ip("192.168.94.115"), vip, vip6}, tcpPorts: []uint16{1935}},
		{mac: mac(16), addrs: []netip.Addr{ip("192.168.94.116"), vip, ip("fd94::116"), vip6}, local: []netip.Addr{ip("192.168.94.116"), vip, vip6}},
		{mac: mac(17), addrs: []netip.Addr{ip("192.168.94.117"), ip("fd94::117")}, local: []netip.Addr{ip("192.168.94.117")}},
		{mac: mac(3), addrs: []netip.Addr{vip}}, // the HA peer
		{mac: mac(99), addrs: []netip.Addr{vip6}},
	}}
	var targets []Target
	for _, s := range []struct {
		name string
		last byte
	}{{"good", 115}, {"on-eth0", 116}, {"no-vip", 117}, {"gone", 118}} {
		targets = append(targets,
			Target{Service: "T", VIP: vip, Port: 1935, Server: s.name, Addr: netip.AddrFrom4([4]byte{192, 168, 94, s.last})},
			Target{Service: "T6", VIP: vip6, Port: 554, Server: s.name, Addr: ip("fd94::" + string("0123456789"[s.last/100]) + string("0123456789"[s.last/10%10]) + string("0123456789"[s.last%10]))})
	}
	rep, err := Check(link, targets, Options{Interface: "eth0", Source4: ip("192.168.94.2"), Source6: ip("fd94::2"), Ignore: [][6]byte{mac(3)}, Wait: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{ // server/family -> problem start, "" none
		"good/4": "", "good/6": "",
		"on-eth0/4": ProblemAnswersARP + " 192.168.94.110 (from 02:00:00:00:00:10)", "on-eth0/6": ProblemAnswersND + " fd94::110",
		"no-vip/4": ProblemNoVIP + " (192.168.94.110): a TCP SYN to 192.168.94.110 port 1935", "no-vip/6": ProblemNoVIP + " (fd94::110): a TCP SYN to fd94::110 port 554",
		"gone/4": ProblemUnreachable + ": no answer to ARP for 192.168.94.118 on eth0", "gone/6": ProblemUnreachable + ": no answer to neighbour solicitation for fd94::118",
	}
	for _, r := range rep.Results {
		fam := "4"
		if r.VIP.Is6() {
			fam = "6"
		}
		w := want[r.Server+"/"+fam]
		switch {
		case w == "" && len(r.Problems) != 0:
			t.Errorf("%s/%s: problems %q, want none", r.Server, fam, r.Problems)
		case w != "" && (len(r.Problems) != 1 || !strings.HasPrefix(r.Problems[0], w)):
			t.Errorf("%s/%s: problems %q, want one starting %q", r.Server, fam, r.Problems, w)
		}
		if r.Server != "gone" && !r.HasMAC {
			t.Errorf("%s/%s: MAC not found", r.Server, fam)
		}
	}
	if len(rep.Strangers) != 1 || rep.Strangers[0].VIP != vip6 || rep.Strangers[0].MAC != mac(99) {
		t.Errorf("strangers %+v, want the host with MAC %v answering for %s (and not the HA peer)", rep.Strangers, mac(99), vip6)
	}
}

func FuzzParse(f *testing.F) {
	lb, rs := [6]byte{2, 0, 0, 0, 0, 2}, [6]byte{2, 0, 0, 0, 0, 15}
	a, b := netip.MustParseAddr("192.168.94.2"), netip.MustParseAddr("192.168.94.110")
	f.Add(netif.GratuitousARP(rs, b, 2))
	f.Add(netif.UnsolicitedNA(rs, netip.MustParseAddr("fd94::110")))
	f.Add(ipv4Frame(lb, rs, b, a, protoTCP, tcpSYN(1935, 40000, 1)))
	f.Add(ipv4Frame(lb, rs, b, a, protoICMP, icmpEcho(false, 1, 1)))
	f.Add(neighborSolicitation(lb, netip.MustParseAddr("fd94::2"), netip.MustParseAddr("fd94::110")))
	f.Fuzz(func(t *testing.T, frame []byte) {
		s, ok := parse(frame)
		if ok && s.claim == s.reply {
			t.Fatalf("parse(%x) = %+v: a claim or a reply, exactly one", frame, s)
		}
	})
}

// A UDP-only service is path-checked with an ICMP echo to the VIP.
func TestCheckICMP(t *testing.T) {
	ip := netip.MustParseAddr
	vip := ip("192.168.94.110")
	link := &fakeLink{mac: [6]byte{2, 0, 0, 0, 0, 2}, hosts: []host{
		{mac: [6]byte{2, 0, 0, 0, 0, 15}, addrs: []netip.Addr{ip("192.168.94.115")}, local: []netip.Addr{ip("192.168.94.115"), vip}},
		{mac: [6]byte{2, 0, 0, 0, 0, 16}, addrs: []netip.Addr{ip("192.168.94.116")}, local: []netip.Addr{ip("192.168.94.116")}},
	}}
	rep, err := Check(link, []Target{
		{Service: "U", VIP: vip, Server: "good", Addr: ip("192.168.94.115")},
		{Service: "U", VIP: vip, Server: "no-vip", Addr: ip("192.168.94.116")},
	}, Options{Interface: "eth0", Source4: ip("192.168.94.2"), Wait: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if p := rep.Results[0].Problems; len(p) != 0 {
		t.Errorf("good: %q", p)
	}
	if p := rep.Results[1].Problems; len(p) != 1 || !strings.HasPrefix(p[0], ProblemNoVIP+" (192.168.94.110): an ICMP echo to 192.168.94.110 sent to its MAC went unanswered") {
		t.Errorf("no-vip: %q", p)
	}
}
