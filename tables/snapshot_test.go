package tables

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestLookup(t *testing.T) {
	v6 := trafficService(0, nil, "A")
	v6.Name, v6.VIP = "v6", netip.MustParseAddr("2001:db8::110")
	udpOnly := trafficService(0, nil, "B")
	udpOnly.Name, udpOnly.VIP, udpOnly.TCP, udpOnly.Ports = "udp-only", vipMgmt, false, []PortRange{{8080, 8080}}
	snap := mustBuild(t, Spec{HashSeed: testSeed, Services: []ServiceSpec{
		mgmtService(), trafficService(0, nil, "HT1", "HT2"), v6, udpOnly,
	}}, nil)

	for _, tc := range []struct {
		dst   string
		proto uint8
		port  uint16
		want  string // "" = nil
	}{
		{"192.168.94.110", ProtoTCP, 1935, "Harmonic_Traffic"},
		{"192.168.94.110", ProtoUDP, 554, "Harmonic_Traffic"},
		{"192.168.94.110", ProtoTCP, 50000, "Harmonic_Traffic"},
		{"192.168.94.110", ProtoUDP, 65535, "Harmonic_Traffic"},
		{"192.168.94.110", ProtoTCP, 57777, "Harmonic_Traffic"},
		{"192.168.94.110", ProtoTCP, 49999, ""},
		{"192.168.94.110", ProtoTCP, 553, ""},
		{"192.168.94.110", ProtoTCP, 0, ""},
		{"192.168.94.110", 1, 1935, ""}, // ICMP
		{"::ffff:192.168.94.110", ProtoUDP, 1935, "Harmonic_Traffic"},
		{"192.168.94.100", ProtoTCP, 8080, "Harmonic_Management"},
		{"192.168.94.100", ProtoTCP, 8443, "Harmonic_Management"},
		{"192.168.94.100", ProtoUDP, 8443, ""},
		{"192.168.94.100", ProtoUDP, 8080, "udp-only"},
		{"192.168.94.100", ProtoTCP, 1935, ""},
		{"192.168.94.111", ProtoTCP, 1935, ""},
		{"2001:db8::110", ProtoUDP, 60000, "v6"},
		{"2001:db8::111", ProtoUDP, 60000, ""},
	} {
		svc := snap.Lookup(netip.MustParseAddr(tc.dst), tc.proto, tc.port)
		got := ""
		if svc != nil {
			got = svc.Name
		}
		if got != tc.want {
			t.Errorf("Lookup(%s, %d, %d) = %q, want %q", tc.dst, tc.proto, tc.port, got, tc.want)
		}
	}

	for _, tc := range []struct {
		dst   string
		proto uint8
		want  string
	}{
		{"192.168.94.110", ProtoUDP, "Harmonic_Traffic"},
		{"192.168.94.100", ProtoTCP, ""}, // layer 7: the kernel's
		{"192.168.94.100", ProtoUDP, "udp-only"},
		{"192.168.94.100", 1, ""},
		{"192.168.94.1", ProtoTCP, ""},
	} {
		svc := snap.LookupFragment(netip.MustParseAddr(tc.dst), tc.proto)
		got := ""
		if svc != nil {
			got = svc.Name
		}
		if got != tc.want {
			t.Errorf("LookupFragment(%s, %d) = %q, want %q", tc.dst, tc.proto, got, tc.want)
		}
	}

	if snap.Service("Harmonic_Traffic") == nil || snap.Service("nope") != nil || len(snap.Services()) != 4 {
		t.Error("Service/Services disagree with the spec")
	}
	if s := snap.Service("Harmonic_Traffic"); s.Servers[1].Name != "HT2" || s.Servers[1].Index != 1 {
		t.Errorf("Servers not in config order: %+v", s.Servers[1])
	}
}

func TestBuildErrors(t *testing.T) {
	ok := trafficService(0, nil, "HT1", "HT2")
	for _, tc := range []struct {
		name    string
		mod     func(*Spec)
		wantErr string
	}{
		{"valid", func(*Spec) {}, ""},
		{"duplicate service", func(s *Spec) { s.Services = append(s.Services, s.Services[0]) }, "duplicate service name"},
		{"overlapping ports", func(s *Spec) {
			o := trafficService(0, nil, "X")
			o.Name, o.Ports, o.TCP = "other", []PortRange{{60000, 60010}}, false
			s.Services = append(s.Services, o)
		}, "udp port 60000: already used by service \"Harmonic_Traffic\""},
		{"same ports other protocol", func(s *Spec) {
			s.Services[0].UDP = false
			o := trafficService(0, nil, "X")
			o.Name, o.TCP = "other", false
			s.Services = append(s.Services, o)
		}, ""},
		{"no name", func(s *Spec) { s.Services[0].Name = "" }, "empty"},
		{"bad vip", func(s *Spec) { s.Services[0].VIP = netip.Addr{} }, "not a valid IP address"},
		{"layer", func(s *Spec) { s.Services[0].Layer = 3 }, "must be 4 or 7"},
		{"no proto", func(s *Spec) { s.Services[0].TCP, s.Services[0].UDP = false, false }, "neither tcp nor udp"},
		{"no ports", func(s *Spec) { s.Services[0].Ports = nil }, "none given"},
		{"reversed range", func(s *Spec) { s.Services[0].Ports = []PortRange{{10, 9}} }, "low end above high end"},
		{"not prime", func(s *Spec) { s.Services[0].MaglevSize = 65536 }, "not a prime"},
		{"too small", func(s *Spec) { s.Services[0].MaglevSize = 2 }, "not above the number of real servers"},
		{"negative timeout", func(s *Spec) { s.Services[0].PersistTimeout = -time.Second }, "negative"},
		{"affinity cap", func(s *Spec) { s.Services[0].AffinityCap = -1 }, "affinity capacity"},
		{"dup server", func(s *Spec) { s.Services[0].Servers[1].Name = "HT1" }, "duplicate name"},
		{"server no name", func(s *Spec) { s.Services[0].Servers[1].Name = "" }, "empty name"},
		{"server bad addr", func(s *Spec) { s.Services[0].Servers[1].Addr = netip.Addr{} }, "not a valid IP address"},
		{"weight", func(s *Spec) { s.Services[0].Servers[1].Weight = 65536 }, "weight 65536"},
		{"state", func(s *Spec) { s.Services[0].Servers[1].State = 9 }, "unknown state"},
		{"fallback", func(s *Spec) { s.Services[0].Fallback = &ServerSpec{Name: "fb"} }, "checking fallback"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spec := Spec{Services: []ServiceSpec{withServer(ok, "", nil)}}
			tc.mod(&spec)
			_, err := Build(spec, nil)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("Build: %v", err)
			case tc.wantErr != "" && err == nil:
				t.Fatalf("Build succeeded, want error containing %q", tc.wantErr)
			case tc.wantErr != "" && !strings.Contains(err.Error(), tc.wantErr):
				t.Fatalf("Build: %v, want error containing %q", err, tc.wantErr)
			}
		})
	}
}

func TestStateString(t *testing.T) {
	for s, want := range map[State]string{StateOnline: "online", StateDrain: "drain", StateHalt: "halt", StateDown: "down", 7: "unknown"} {
		if s.String() != want {
			t.Errorf("State(%d).String() = %q, want %q", s, s.String(), want)
		}
	}
}

func TestHolder(t *testing.T) {
	var h Holder
	if h.Load() != nil {
		t.Fatal("zero Holder holds a snapshot")
	}
	s := mustBuild(t, Spec{Services: []ServiceSpec{mgmtService()}}, nil)
	h.Store(s)
	if h.Load() != s {
		t.Fatal("Load did not return the stored snapshot")
	}
}

func TestLookupAllocs(t *testing.T) {
	snap := mustBuild(t, Spec{HashSeed: testSeed, Services: []ServiceSpec{mgmtService(), trafficService(0, nil, "HT1", "HT2")}}, nil)
	dst := vipTraffic
	port := uint16(50000)
	if n := testing.AllocsPerRun(1000, func() {
		port++
		if snap.Lookup(dst, ProtoUDP, port|0x8000) == nil {
			panic("miss")
		}
		snap.Lookup(netip.MustParseAddr("2001:db8::1"), ProtoTCP, port)
		snap.LookupFragment(dst, ProtoTCP)
	}); n != 0 {
		t.Errorf("Lookup: %v allocs per run, want 0", n)
	}
}

func BenchmarkLookup(b *testing.B) {
	snap := mustBuild(b, Spec{HashSeed: testSeed, Services: []ServiceSpec{mgmtService(), trafficService(0, nil, "HT1", "HT2")}}, nil)
	b.Run("1port", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if snap.Lookup(vipMgmt, ProtoTCP, 8080) == nil {
				b.Fatal("miss")
			}
		}
	})
	b.Run("range15536", func(b *testing.B) {
		b.ReportAllocs()
		port := uint16(50000)
		for b.Loop() {
			if snap.Lookup(vipTraffic, ProtoUDP, port) == nil {
				b.Fatal("miss")
			}
			if port++; port == 0 {
				port = 50000
			}
		}
	})
	b.Run("notVIP", func(b *testing.B) {
		b.ReportAllocs()
		other := netip.MustParseAddr("192.168.94.7")
		for b.Loop() {
			if snap.Lookup(other, ProtoTCP, 22) != nil {
				b.Fatal("hit")
			}
		}
	})
}

// TestLookupManyVIPs covers the map path (more than vipScanMax VIPs) and
// the scan path with the same services.
func TestLookupManyVIPs(t *testing.T) {
	for _, n := range []int{1, vipScanMax, vipScanMax + 1, 40} {
		var spec Spec
		for i := range n {
			ss := trafficService(0, nil, "A", "B")
			ss.Name = fmt.Sprintf("svc%d", i)
			ss.VIP = netip.AddrFrom4([4]byte{198, 51, 100, byte(i + 1)})
			if i%2 == 1 {
				ss.VIP = netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 15: byte(i + 1)})
			}
			spec.Services = append(spec.Services, ss)
		}
		snap := mustBuild(t, spec, nil)
		if (snap.vipList != nil) != (n <= vipScanMax) {
			t.Fatalf("%d VIPs: scan list %v", n, snap.vipList != nil)
		}
		for i, ss := range spec.Services {
			if got := snap.Lookup(ss.VIP, ProtoUDP, 60000+uint16(i)); got == nil || got.Name != ss.Name {
				t.Errorf("%d VIPs: Lookup(%s) = %v, want %s", n, ss.VIP, got, ss.Name)
			}
		}
		if got := snap.Lookup(netip.MustParseAddr("198.51.100.250"), ProtoUDP, 60000); got != nil {
			t.Errorf("%d VIPs: unknown address found %s", n, got.Name)
		}
	}
}

// Counter slots stay with a (service, server) name across snapshots, differ
// between servers, and layer 7 gets none.
func TestServerSlots(t *testing.T) {
	spec := Spec{HashSeed: testSeed, Services: []ServiceSpec{mgmtService(), trafficService(0, nil, "HT1", "HT2")}}
	a := mustBuild(t, spec, nil)
	ht := a.Service("Harmonic_Traffic")
	s1, s2 := ht.Servers[0].Slot, ht.Servers[1].Slot
	if s1 == 0 || s2 == 0 || s1 == s2 {
		t.Fatalf("slots %d %d: want two different non-zero ones", s1, s2)
	}
	if s := a.Service("Harmonic_Management").Servers[0].Slot; s != 0 {
		t.Errorf("layer-7 server has slot %d", s)
	}
	// HT1 removed, HT3 added: HT2 keeps its slot, HT3 gets a new one, HT1's is not reused.
	spec.Services[1] = trafficService(0, nil, "HT2", "HT3")
	b := mustBuild(t, spec, a)
	ht = b.Service("Harmonic_Traffic")
	if ht.Servers[0].Slot != s2 || ht.Servers[1].Slot == s1 || ht.Servers[1].Slot == s2 || ht.Servers[1].Slot == 0 {
		t.Errorf("after the change: HT2 %d (was %d), HT3 %d (HT1 had %d)", ht.Servers[0].Slot, s2, ht.Servers[1].Slot, s1)
	}
}
