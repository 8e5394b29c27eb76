package pipeline

import (
	"bytes"
	"net/netip"
	"testing"

	"github.com/medialb/medialb/tables"
)

var router4, router6 = netip.MustParseAddr("10.9.9.1"), netip.MustParseAddr("fd00:9::1")

// icmpError returns an ICMP (IPv4 quote) or ICMPv6 (IPv6 quote) error of type typ and
// code from a router to the quoted packet's source, quoting the IP packet of quoted (cut
// to quoteLen bytes when quoteLen > 0), as a router sends it.
func icmpError(typ, code uint8, quoted frameSpec, quoteLen int) []byte {
	q := quoted.withDefaults()
	f := buildFrame(q)
	l3 := ethHeaderLen + 4*len(q.vlans)
	in := f[l3:]
	if quoteLen > 0 && quoteLen < len(in) {
		in = in[:quoteLen]
	}
	msg := append([]byte{typ, code, 0, 0, 0, 0, 0x05, 0xdc}, in...) // MTU 1500
	outer := frameSpec{src: router4, dst: q.src, proto: protoICMP, noL4: true, raw: msg}
	if q.src.Is6() {
		outer.src, outer.proto = router6, protoICMPv6
	}
	return buildFrame(outer)
}

// reply is a media packet of the real server to the client, from VIP:sport.
func reply(proto uint8, vip, client netip.Addr, sport uint16) frameSpec {
	return frameSpec{src: vip, dst: client, proto: proto, sport: sport, dport: 40000, payload: 1400}
}

func TestParseICMPError(t *testing.T) {
	tcp4 := reply(protoTCP, vip4, client4, 1935)
	udp6 := reply(protoUDP, vip6, client6, 50000)
	tests := []struct {
		name  string
		frame []byte
		want  Reason
		kind  ICMPKind
		frag  Frag
		sport uint16
	}{
		{"frag needed", icmpError(3, 4, tcp4, 28), OK, ICMPFragNeeded, FragNone, 1935},
		{"port unreachable", icmpError(3, 3, reply(protoUDP, vip4, client4, 60000), 0), OK, ICMPUnreachable, FragNone, 60000},
		{"time exceeded", icmpError(11, 0, tcp4, 0), OK, ICMPTimeExceeded, FragNone, 1935},
		{"parameter problem", icmpError(12, 0, tcp4, 48), OK, ICMPParamProblem, FragNone, 1935},
		{"packet too big", icmpError(2, 0, udp6, 1232), OK, ICMPFragNeeded, FragNone, 50000},
		{"v6 unreachable", icmpError(1, 4, udp6, 48), OK, ICMPUnreachable, FragNone, 50000},
		{"v6 time exceeded ext", icmpError(3, 0, frameSpec{src: vip6, dst: client6, proto: protoTCP, sport: 554,
			ext: []v6ext{{protoHopByHop, 8}, {protoDestOpts, 16}}}, 0), OK, ICMPTimeExceeded, FragNone, 554},
		{"quoted later fragment", icmpError(11, 1, frameSpec{src: vip4, dst: client4, frag: FragLater, payload: 64}, 0),
			OK, ICMPTimeExceeded, FragLater, 0},
		{"quoted v6 later fragment", icmpError(3, 1, frameSpec{src: vip6, dst: client6, frag: FragLater, payload: 64}, 0),
			OK, ICMPTimeExceeded, FragLater, 0},
		{"echo request", buildFrame(frameSpec{src: router4, proto: protoICMP, noL4: true,
			raw: []byte{8, 0, 0, 0, 0, 1, 0, 1, 'p', 'i', 'n', 'g'}}), NotForUs, 0, 0, 0},
		{"v6 echo request", buildFrame(frameSpec{src: router6, dst: vip6, proto: protoICMPv6, noL4: true,
			raw: []byte{128, 0, 0, 0, 0, 1, 0, 1}}), NotForUs, 0, 0, 0},
		{"redirect", icmpError(5, 1, tcp4, 0), NotForUs, 0, 0, 0},
		{"icmp header cut", buildFrame(frameSpec{src: router4, proto: protoICMP, noL4: true, raw: []byte{3, 4, 0, 0}}),
			NotForUs, 0, 0, 0},
		{"quote from another source", mutate(icmpError(3, 4, reply(protoTCP, client4, vip4, 1935), 0), func(b []byte) []byte {
			copy(b[14+16:], vip4.AsSlice()) // sent to the VIP, quoting a packet of the client's
			return b
		}), NotForUs, 0, 0, 0},
		{"quoted icmp", icmpError(3, 4, frameSpec{src: vip4, dst: client4, proto: protoICMP, noL4: true, payload: 8}, 0),
			NotForUs, 0, 0, 0},
		{"quote without ports", icmpError(3, 4, tcp4, 20+7), MalformedICMP, 0, 0, 0},
		{"quote cut in IP header", icmpError(3, 4, tcp4, 19), MalformedICMP, 0, 0, 0},
		{"quoted IHL 4", mutate(icmpError(3, 4, tcp4, 28), func(b []byte) []byte { b[14+20+8] = 0x44; return b }),
			MalformedICMP, 0, 0, 0},
		{"quoted version 6 in ICMPv4", mutate(icmpError(3, 4, tcp4, 28), func(b []byte) []byte { b[14+20+8] = 0x65; return b }),
			MalformedICMP, 0, 0, 0},
		{"v6 quote cut in ext header", icmpError(1, 0, frameSpec{src: vip6, dst: client6, sport: 554,
			ext: []v6ext{{protoDestOpts, 64}}}, 40+32), MalformedICMP, 0, 0, 0},
		{"v6 quote cut in IP header", icmpError(2, 0, udp6, 39), MalformedICMP, 0, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var p Packet
			if r := Parse(tt.frame, &p); r != NotForUs {
				t.Fatalf("Parse = %v, want not_for_us (ICMP is ParseICMPError's)", r)
			}
			outerDst := p.Dst
			r := ParseICMPError(tt.frame, &p)
			if r != tt.want {
				t.Fatalf("ParseICMPError = %v, want %v", r, tt.want)
			}
			switch r {
			case OK:
				if p.ICMP != tt.kind || p.Frag != tt.frag || p.SrcPort != tt.sport || p.Src != outerDst ||
					(p.Dst != client4 && p.Dst != client6) {
					t.Errorf("got %+v, want kind %v frag %v sport %d from %v to a client", p, tt.kind, tt.frag, tt.sport, outerDst)
				}
			case MalformedICMP:
				if p.Dst != outerDst {
					t.Errorf("malformed: Dst %v, want the error's destination %v", p.Dst, outerDst)
				}
			}
		})
	}
}

// TestProcessICMPError: an ICMP error about a client's flow goes to the client's real
// server (its persistent one, else Maglev's pick for the client, never the router's),
// unchanged but the MACs; errors that are not ours are counted by reason.
func TestProcessICMPError(t *testing.T) {
	snap := testSnapshot(t)
	svc := snap.Service("Harmonic_Traffic")
	// A client and a router that Maglev sends to different servers, so that picking
	// by the error's source would be seen.
	var client netip.Addr
	for i := 1; i < 255 && !client.IsValid(); i++ {
		c := netip.AddrFrom4([4]byte{10, 1, 7, byte(i)})
		a, _ := svc.Pick(c, 0)
		b, _ := svc.Pick(router4, 0)
		if a != b {
			client = c
		}
	}
	if !client.IsValid() {
		t.Fatal("no client maps to another server than the router")
	}
	want, _ := svc.Pick(client, 1)

	for _, tt := range []struct {
		name  string
		frame []byte
		want  Reason
	}{
		{"frag needed", icmpError(3, 4, reply(protoTCP, vip4, client, 1935), 0), Forwarded},
		{"unreachable udp", icmpError(3, 3, reply(protoUDP, vip4, client, 50000), 64), Forwarded},
		{"quoted later fragment", icmpError(11, 1, frameSpec{src: vip4, dst: client, frag: FragLater, payload: 64}, 0), Forwarded},
		{"port outside the service", icmpError(3, 4, reply(protoTCP, vip4, client, 22), 0), ICMPNoService},
		{"layer-7 service", icmpError(3, 4, reply(protoTCP, vipMgmt, client, 8080), 0), ICMPNoService},
		{"echo request", buildFrame(frameSpec{src: router4, proto: protoICMP, noL4: true, raw: []byte{8, 0, 0, 0, 0, 1, 0, 1}}), NotForUs},
		{"malformed to a VIP", icmpError(3, 4, reply(protoTCP, vip4, client, 1935), 20+4), MalformedICMP},
		{"malformed to a layer-7 VIP", icmpError(3, 4, reply(protoTCP, vipMgmt, client, 8080), 20+4), NotForUs},
		{"malformed to another address", icmpError(3, 4, reply(protoTCP, router6, client6, 1935), 40+4), NotForUs},
	} {
		t.Run(tt.name, func(t *testing.T) {
			frame := append([]byte{}, tt.frame...)
			var d decision
			r := process(snap, localMAC, 1, frame, &d)
			if r != tt.want {
				t.Fatalf("Process = %v, want %v", r, tt.want)
			}
			if r != Forwarded {
				if !bytes.Equal(frame, tt.frame) {
					t.Error("dropped frame was modified")
				}
				return
			}
			if [6]byte(frame[0:6]) != want.MAC || [6]byte(frame[6:12]) != localMAC {
				t.Errorf("sent to %x from %x, want the client's server %s (%x) from us", frame[0:6], frame[6:12], want.Name, want.MAC)
			}
			if !bytes.Equal(frame[12:], tt.frame[12:]) {
				t.Error("bytes beyond the MACs changed")
			}
			if d.icmp == ICMPNone || d.src != client || d.srv != want {
				t.Errorf("decision %+v, want an ICMP error for client %v to %s", d, client, want.Name)
			}
		})
	}

	// Persistence first: a client recorded on the other server (as after a server
	// was added) keeps it for its ICMP errors too.
	spec := testSpec()
	spec.Services = spec.Services[:1]
	spec.Services[0].Servers = spec.Services[0].Servers[:1]
	one, err := tables.Build(spec, nil)
	if err != nil {
		t.Fatal(err)
	}
	if r := Process(one, localMAC, 5, buildFrame(frameSpec{src: client, dport: 1935})); r != Forwarded {
		t.Fatalf("client's packet: %v", r)
	}
	two, err := tables.Build(testSpec(), one)
	if err != nil {
		t.Fatal(err)
	}
	frame := icmpError(3, 4, reply(protoTCP, vip4, client, 1935), 0)
	if r := Process(two, localMAC, 6, frame); r != Forwarded {
		t.Fatalf("ICMP error: %v", r)
	}
	if got, first := [6]byte(frame[0:6]), serverMAC(1); got != first {
		t.Errorf("ICMP error went to %x, want the client's persistent server %x", got, first)
	}

	// An error about a client the table does not know goes where Maglev says and
	// records nothing (a router's errors, or forged ones, are not the client's packets).
	svc2 := two.Service("Harmonic_Traffic")
	inserts := svc2.AffinityStats().Inserts
	stranger := netip.MustParseAddr("10.1.9.9")
	if r := Process(two, localMAC, 7, icmpError(3, 4, reply(protoTCP, vip4, stranger, 1935), 0)); r != Forwarded {
		t.Fatalf("ICMP error about an unknown client: %v", r)
	}
	if _, _, ok := svc2.LastSeen(stranger, 7); ok || svc2.AffinityStats().Inserts != inserts {
		t.Errorf("ICMP error about an unknown client created a persistence entry (%v, %+v)", ok, svc2.AffinityStats())
	}
}

// TestWorkerCountsICMP: routed ICMP errors are counted by kind.
func TestWorkerCountsICMP(t *testing.T) {
	port := newFakePort(4)
	port.load(0,
		icmpError(3, 4, reply(protoTCP, vip4, client4, 1935), 0),
		icmpError(2, 0, reply(protoUDP, vip6, client6, 1935), 0),
		icmpError(3, 0, reply(protoUDP, vip6, client6, 1935), 0),
		icmpError(3, 4, reply(protoTCP, vip4, client4, 1935), 21))
	w := NewWorker(port, testHolder(t), localMAC, WorkerOptions{})
	w.poll()
	c := w.Counters()
	if c.ICMPRouted[ICMPFragNeeded] != 2 || c.ICMPRouted[ICMPTimeExceeded] != 1 ||
		c.ByReason[Forwarded] != 3 || c.ByReason[MalformedICMP] != 1 {
		t.Errorf("counters %+v: want 2 frag_needed, 1 time_exceeded routed, 1 malformed_icmp", c)
	}
}

// icmpSeeds are ICMP errors for the fuzz targets: valid ones of each kind and family,
// and cut ones.
func icmpSeeds() [][]byte {
	tcp4 := reply(protoTCP, vip4, client4, 1935)
	udp6 := reply(protoUDP, vip6, client6, 50000)
	return [][]byte{
		icmpError(3, 4, tcp4, 28),
		icmpError(11, 0, tcp4, 0),
		icmpError(3, 3, tcp4, 20+7),
		icmpError(2, 0, udp6, 48),
		icmpError(1, 0, frameSpec{src: vip6, dst: client6, sport: 554, ext: []v6ext{{protoDestOpts, 16}}}, 0),
		icmpError(3, 1, frameSpec{src: vip6, dst: client6, frag: FragLater, payload: 64}, 0),
		icmpError(2, 0, udp6, 39),
	}
}
