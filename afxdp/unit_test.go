package afxdp

import (
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
)

func TestVIPKeys(t *testing.T) {
	v4 := netip.MustParseAddr("192.0.2.10")
	v6 := netip.MustParseAddr("2001:db8::10")
	tests := []struct {
		name    string
		vips    []VIP
		want    int
		wantErr string
	}{
		{"one port", []VIP{{Addr: v4, Proto: ProtoUDP, Ports: []PortRange{{554, 554}}}}, 2, ""},
		{"media VIP", []VIP{
			{Addr: v4, Proto: ProtoTCP, Ports: []PortRange{{1935, 1935}, {554, 554}, {50000, 65535}}},
			{Addr: v4, Proto: ProtoUDP, Ports: []PortRange{{1935, 1935}, {554, 554}, {50000, 65535}}},
		}, 2 * (15536 + 2 + 1), ""},
		{"overlapping ranges counted once", []VIP{{Addr: v6, Proto: ProtoTCP, Ports: []PortRange{{10, 20}, {15, 25}}}}, 16 + 1, ""},
		{"v4 and v6 are distinct", []VIP{
			{Addr: v4, Proto: ProtoTCP, Ports: []PortRange{{80, 80}}},
			{Addr: v6, Proto: ProtoTCP, Ports: []PortRange{{80, 80}}},
		}, 4, ""},
		{"port 65535 does not wrap", []VIP{{Addr: v4, Proto: ProtoUDP, Ports: []PortRange{{65535, 65535}}}}, 2, ""},
		{"invalid address", []VIP{{Proto: ProtoUDP, Ports: []PortRange{{1, 1}}}}, 0, "invalid address"},
		{"ICMP", []VIP{{Addr: v4, Proto: 1, Ports: []PortRange{{1, 1}}}}, 0, "not TCP (6) or UDP (17)"},
		{"no ports", []VIP{{Addr: v4, Proto: ProtoTCP}}, 0, "no ports"},
		{"port 0", []VIP{{Addr: v4, Proto: ProtoTCP, Ports: []PortRange{{0, 10}}}}, 0, "bad port range 0-10"},
		{"reversed", []VIP{{Addr: v4, Proto: ProtoTCP, Ports: []PortRange{{10, 5}}}}, 0, "bad port range 10-5"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			keys, err := Keys(tt.vips)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(keys) != tt.want {
				t.Errorf("%d keys, want %d", len(keys), tt.want)
			}
		})
	}
}

func TestKeyOfIPv4Mapped(t *testing.T) {
	k := keyOf(netip.MustParseAddr("10.1.2.3"), ProtoUDP, 554)
	want := [16]byte{10: 0xff, 11: 0xff, 12: 10, 13: 1, 14: 2, 15: 3}
	if k.Addr != want || k.Proto != 17 || k.Port != 554 {
		t.Errorf("key %+v", k)
	}
	// An IPv4-mapped IPv6 VIP is the same key, as the program cannot tell them apart.
	if keyOf(netip.MustParseAddr("::ffff:10.1.2.3"), ProtoUDP, 554) != k {
		t.Error("::ffff:10.1.2.3 and 10.1.2.3 give different keys")
	}
}

func TestDiffKeys(t *testing.T) {
	a := netip.MustParseAddr("192.0.2.1")
	old, _ := Keys([]VIP{{Addr: a, Proto: ProtoUDP, Ports: []PortRange{{100, 109}}}})
	cur, _ := Keys([]VIP{{Addr: a, Proto: ProtoUDP, Ports: []PortRange{{105, 114}}}, {Addr: a, Proto: ProtoTCP, Ports: []PortRange{{1, 1}}}})
	add, del := diffKeys(old, cur)
	if len(add) != 5+2 || len(del) != 5 {
		t.Errorf("add %d del %d, want 7 and 5", len(add), len(del))
	}
	for _, k := range del {
		if k.Port < 100 || k.Port > 104 || k.Proto != ProtoUDP {
			t.Errorf("deleting %+v", k)
		}
	}
	if add, del := diffKeys(cur, cur); len(add)+len(del) != 0 {
		t.Error("diff of a set with itself is not empty")
	}
}

func TestConfigDefaults(t *testing.T) {
	tests := []struct {
		cfg     Config
		wantErr string
	}{
		{Config{Interface: "eth0"}, ""},
		{Config{}, "no interface"},
		{Config{Interface: "eth0", FrameSize: 3000}, "frame size 3000"},
		{Config{Interface: "eth0", RingSize: 1000}, "ring size 1000"},
		{Config{Interface: "eth0", NumFrames: 100}, "100 frames for rings of 2048"},
		{Config{Interface: "eth0", XDPMode: "hw"}, `XDP mode "hw"`},
		{Config{Interface: "eth0", ZeroCopy: "yes"}, `zero-copy "yes"`},
		{Config{Interface: "eth0", Queues: -1}, "queues -1"},
	}
	for _, tt := range tests {
		err := tt.cfg.setDefaults()
		if tt.wantErr == "" {
			if err != nil {
				t.Errorf("%+v: %v", tt.cfg, err)
			} else if tt.cfg.NumFrames != DefaultNumFrames || tt.cfg.RingSize != DefaultRingSize || tt.cfg.XDPMode != ModeAuto {
				t.Errorf("defaults not set: %+v", tt.cfg)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("%+v: error %v, want %q", tt.cfg, err, tt.wantErr)
		}
	}
}

// TestStatNames: the Go names cover exactly the program's counters (enum stat).
func TestStatNames(t *testing.T) {
	spec, err := loadSteer()
	if err != nil {
		t.Fatal(err)
	}
	if n := spec.Maps["stats"].MaxEntries; int(n) != len(statNames) {
		t.Errorf("stats map has %d entries, statNames %d", n, len(statNames))
	}
}

func atomicLoad(p *uint32) uint32 { return atomic.LoadUint32(p) }
