package pipeline

import (
	"bytes"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/medialb/medialb/tables"
)

var (
	vipMgmt     = netip.MustParseAddr("192.168.94.100")
	vipNoServer = netip.MustParseAddr("192.168.94.120")
	vipNoMAC    = netip.MustParseAddr("192.168.94.121")
)

func serverMAC(i int) [6]byte { return [6]byte{0x02, 0x00, 0x5e, 0x00, 0x01, byte(i)} }

// testSpec is the contract's two VIPs (plus an IPv6 traffic VIP) and two broken ones.
func testSpec() tables.Spec {
	traffic := func(name string, vip netip.Addr, servers ...string) tables.ServiceSpec {
		ss := tables.ServiceSpec{
			Name:           name,
			VIP:            vip,
			Ports:          []tables.PortRange{{Lo: 1935, Hi: 1935}, {Lo: 554, Hi: 554}, {Lo: 50000, Hi: 65535}},
			TCP:            true,
			UDP:            true,
			Layer:          4,
			PersistTimeout: 300 * time.Second,
			AffinityCap:    4096,
		}
		for i, n := range servers {
			ss.Servers = append(ss.Servers, tables.ServerSpec{
				Name:   n,
				Addr:   netip.AddrFrom4([4]byte{192, 168, 94, byte(115 + i)}),
				Weight: 100,
				MAC:    serverMAC(i + 1),
				HasMAC: true,
			})
		}
		return ss
	}
	t4 := traffic("Harmonic_Traffic", vip4, "HT1", "HT2")
	t6 := traffic("Traffic6", vip6, "HT1", "HT2")
	noServer := traffic("NoServer", vipNoServer, "NS1")
	noServer.Servers[0].State = tables.StateDown
	noMAC := traffic("NoMAC", vipNoMAC, "NM1")
	noMAC.Servers[0].HasMAC = false
	noMAC.Fallback = &tables.ServerSpec{Name: "sorry", Addr: netip.MustParseAddr("192.168.94.200"), Weight: 1}
	mgmt := tables.ServiceSpec{
		Name:  "Harmonic_Management",
		VIP:   vipMgmt,
		Ports: []tables.PortRange{{Lo: 8080, Hi: 8080}, {Lo: 8443, Hi: 8443}},
		TCP:   true,
		Layer: 7,
		Servers: []tables.ServerSpec{
			{Name: "HM1", Addr: netip.MustParseAddr("192.168.94.105"), Weight: 100},
		},
	}
	return tables.Spec{HashSeed: 0x6d656469616c6231, Services: []tables.ServiceSpec{t4, t6, noServer, noMAC, mgmt}}
}

func testSnapshot(t testing.TB) *tables.Snapshot {
	t.Helper()
	s, err := tables.Build(testSpec(), nil)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// checkRewrite checks a frame after Process: forwarded frames differ from orig in the
// MACs only (destination = one of the service's servers, source = ours) and re-parse
// as a packet to a VIP; dropped frames are untouched. It returns the destination MAC.
func checkRewrite(t *testing.T, snap *tables.Snapshot, orig, got []byte, r Reason) [6]byte {
	t.Helper()
	if r != Forwarded {
		if !bytes.Equal(orig, got) {
			t.Fatalf("dropped (%v) frame was modified:\n was %x\n now %x", r, orig, got)
		}
		return [6]byte{}
	}
	if len(got) != len(orig) || !bytes.Equal(got[12:], orig[12:]) {
		t.Fatalf("forwarded frame changed beyond the MACs:\n was %x\n now %x", orig, got)
	}
	if [6]byte(got[6:12]) != localMAC {
		t.Fatalf("source MAC %x, want ours %x", got[6:12], localMAC)
	}
	var p Packet
	if pr := Parse(got, &p); pr != OK {
		t.Fatalf("forwarded frame does not re-parse: %v\n%x", pr, got)
	}
	var svc *tables.Service
	if p.Frag == FragLater {
		svc = snap.LookupFragment(p.Dst, p.Proto)
	} else {
		svc = snap.Lookup(p.Dst, p.Proto, p.DstPort)
	}
	if svc == nil || svc.Layer != 4 {
		t.Fatalf("forwarded frame is not for a layer-4 VIP: %+v", p)
	}
	dst := [6]byte(got[0:6])
	for _, s := range svc.Servers {
		if s.HasMAC && s.MAC == dst {
			return dst
		}
	}
	t.Fatalf("destination MAC %x is none of %s's servers", dst, svc.Name)
	return dst
}

func TestProcess(t *testing.T) {
	tests := []struct {
		name  string
		frame []byte
		want  Reason
	}{
		{"udp4-64B", buildFrame(frameSpec{dport: 1935, payload: 18}), Forwarded},
		{"tcp4", buildFrame(frameSpec{proto: protoTCP, dport: 554, payload: 100}), Forwarded},
		{"udp4 range", buildFrame(frameSpec{dport: 65535}), Forwarded},
		{"udp6", buildFrame(frameSpec{src: client6, dport: 50000, payload: 100}), Forwarded},
		{"tcp6 ext headers", buildFrame(frameSpec{src: client6, proto: protoTCP, dport: 1935,
			ext: []v6ext{{protoHopByHop, 8}, {protoDestOpts, 8}}}), Forwarded},
		{"vlan", buildFrame(frameSpec{vlans: []uint16{100}, dport: 1935, payload: 64}), Forwarded},
		{"ipv4 options", buildFrame(frameSpec{proto: protoTCP, ipOptions: 12, dport: 554}), Forwarded},
		{"padded", buildFrame(frameSpec{dport: 1935, payload: 1, pad: 20}), Forwarded},
		{"udp4 first fragment", buildFrame(frameSpec{dport: 50000, payload: 1400, frag: FragFirst}), Forwarded},
		{"udp4 later fragment", buildFrame(frameSpec{payload: 600, frag: FragLater}), Forwarded},
		{"tcp6 later fragment", buildFrame(frameSpec{src: client6, proto: protoTCP, payload: 600, frag: FragLater}), Forwarded},
		{"other dst MAC", buildFrame(frameSpec{dstMAC: otherMAC, dport: 1935}), NotForUs},
		{"broadcast", buildFrame(frameSpec{dstMAC: [6]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, dport: 1935}), NotForUs},
		{"icmp to VIP", buildFrame(frameSpec{proto: 1, noL4: true, payload: 8}), NotForUs},
		{"port not in service", buildFrame(frameSpec{dport: 1936}), NoService},
		{"not a VIP", buildFrame(frameSpec{dst: netip.MustParseAddr("192.168.94.1"), dport: 1935}), NoService},
		{"later fragment not a VIP", buildFrame(frameSpec{dst: netip.MustParseAddr("192.168.94.1"), frag: FragLater}), FragmentNoService},
		{"layer-7 VIP", buildFrame(frameSpec{proto: protoTCP, dst: vipMgmt, dport: 8080}), NoService},
		{"udp to tcp-only VIP", buildFrame(frameSpec{dst: vipMgmt, dport: 8080}), NoService},
		{"all servers down", buildFrame(frameSpec{dst: vipNoServer, dport: 1935}), NoServer},
		{"fallback without MAC", buildFrame(frameSpec{dst: vipNoMAC, dport: 1935}), MACUnresolved},
		{"truncated udp", buildFrame(frameSpec{dport: 1935, payload: 10})[:14+20+4], MalformedIPv4},
		{"runt", []byte{1, 2, 3}, MalformedEthernet},
	}
	snap := testSnapshot(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			frame := append([]byte{}, tt.frame...)
			r := Process(snap, localMAC, 100, frame)
			if r != tt.want {
				t.Fatalf("Process = %v, want %v", r, tt.want)
			}
			dst := checkRewrite(t, snap, tt.frame, frame, r)
			if r != Forwarded {
				return
			}
			// The server is the one Pick gives this client (it is persistent now).
			var p Packet
			Parse(frame, &p)
			svc := snap.LookupFragment(p.Dst, p.Proto)
			srv, v := svc.Pick(p.Src, 100)
			if v != tables.VerdictPersist || srv.MAC != dst {
				t.Errorf("sent to %x; Pick now says %x (%v)", dst, srv.MAC, v)
			}
		})
	}
	t.Run("nil snapshot", func(t *testing.T) {
		f := buildFrame(frameSpec{dport: 1935})
		if r := Process(nil, localMAC, 1, f); r != NoService {
			t.Errorf("Process = %v, want no_service", r)
		}
	})
}

// The same client reaches the same server on every port and protocol (and in
// fragments); different clients are spread over both servers.
func TestProcessPersistence(t *testing.T) {
	snap := testSnapshot(t)
	seen := map[[6]byte]int{}
	for c := range 64 {
		client := netip.AddrFrom4([4]byte{10, 9, byte(c >> 8), byte(c)})
		var first [6]byte
		specs := []frameSpec{
			{src: client, proto: protoTCP, dport: 554},
			{src: client, proto: protoUDP, dport: 1935},
			{src: client, proto: protoUDP, dport: 50000 + uint16(c), sport: 1},
			{src: client, proto: protoTCP, dport: 65000, sport: 2},
			{src: client, proto: protoUDP, frag: FragLater, payload: 100},
		}
		for i, s := range specs {
			f := buildFrame(s)
			orig := append([]byte{}, f...)
			r := Process(snap, localMAC, uint32(10+i), f)
			if r != Forwarded {
				t.Fatalf("client %v frame %d: Process = %v", client, i, r)
			}
			dst := checkRewrite(t, snap, orig, f, r)
			if i == 0 {
				first = dst
				seen[dst]++
			} else if dst != first {
				t.Fatalf("client %v: frame %d went to %x, frame 0 to %x", client, i, dst, first)
			}
		}
	}
	if len(seen) != 2 {
		t.Errorf("64 clients went to %d servers (%v), want both", len(seen), seen)
	}

	// A drained server keeps its clients, a halted one loses them.
	ht1Clients := []netip.Addr{}
	for c := range 64 {
		client := netip.AddrFrom4([4]byte{10, 9, byte(c >> 8), byte(c)})
		srv, _ := snap.Service("Harmonic_Traffic").Pick(client, 20)
		if srv.Name == "HT1" {
			ht1Clients = append(ht1Clients, client)
		}
	}
	for _, st := range []tables.State{tables.StateDrain, tables.StateHalt} {
		spec := testSpec()
		spec.Services[0].Servers[0].State = st
		if st == tables.StateHalt {
			spec.Services[0].Servers[0].Generation++
		}
		next, err := tables.Build(spec, snap)
		if err != nil {
			t.Fatal(err)
		}
		for _, client := range ht1Clients {
			f := buildFrame(frameSpec{src: client, dport: 1935})
			if r := Process(next, localMAC, 30, f); r != Forwarded {
				t.Fatalf("%v: Process = %v", st, r)
			}
			wantMAC := serverMAC(1)
			if st == tables.StateHalt {
				wantMAC = serverMAC(2)
			}
			if [6]byte(f[0:6]) != wantMAC {
				t.Errorf("HT1 %v: client %v sent to %x, want %x", st, client, f[0:6], wantMAC)
			}
		}
	}
}

func TestProcessAllocs(t *testing.T) {
	snap := testSnapshot(t)
	frames := [][]byte{
		buildFrame(frameSpec{dport: 1935}),
		buildFrame(frameSpec{src: client6, proto: protoTCP, dport: 554, ext: []v6ext{{0, 8}}}),
		buildFrame(frameSpec{frag: FragLater}),
		buildFrame(frameSpec{dport: 1}),
	}
	for i, f := range frames {
		allocs := testing.AllocsPerRun(100, func() {
			copy(f[0:6], localMAC[:])
			Process(snap, localMAC, 5, f)
		})
		if allocs != 0 {
			t.Errorf("frame %d: %v allocations per Process, want 0", i, allocs)
		}
	}
}

func ExampleProcess() {
	snap, err := tables.Build(testSpec(), nil)
	if err != nil {
		panic(err)
	}
	frame := buildFrame(frameSpec{src: netip.MustParseAddr("10.0.0.1"), dport: 1935})
	r := Process(snap, localMAC, tables.Now(), frame)
	fmt.Println(r, [6]byte(frame[6:12]) == localMAC)
	// Output: forwarded true
}
