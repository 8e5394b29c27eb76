package tables

import (
	"fmt"
	"net/netip"
	"testing"
	"time"
)

const testSeed = 0x6d656469616c6231 // "medialb1"

var (
	vipMgmt    = netip.MustParseAddr("192.168.94.100")
	vipTraffic = netip.MustParseAddr("192.168.94.110")
)

// trafficService is Harmonic_Traffic from the contract, with servers named
// by names and the given weights (all online, with MACs).
func trafficService(timeout time.Duration, weights map[string]uint32, names ...string) ServiceSpec {
	ss := ServiceSpec{
		Name:           "Harmonic_Traffic",
		VIP:            vipTraffic,
		Ports:          []PortRange{{1935, 1935}, {554, 554}, {50000, 65535}},
		TCP:            true,
		UDP:            true,
		Layer:          4,
		PersistTimeout: timeout,
	}
	for i, n := range names {
		w := uint32(100)
		if weights != nil {
			w = weights[n]
		}
		ss.Servers = append(ss.Servers, ServerSpec{
			Name:   n,
			Addr:   netip.AddrFrom4([4]byte{192, 168, 94, byte(115 + i)}),
			Weight: w,
			MAC:    [6]byte{0x02, 0, 0, 0, 0, byte(i + 1)},
			HasMAC: true,
		})
	}
	return ss
}

func mgmtService() ServiceSpec {
	return ServiceSpec{
		Name:           "Harmonic_Management",
		VIP:            vipMgmt,
		Ports:          []PortRange{{8080, 8080}, {8443, 8443}},
		TCP:            true,
		Layer:          7,
		PersistTimeout: 30 * time.Minute,
		Servers: []ServerSpec{
			{Name: "HM1", Addr: netip.MustParseAddr("192.168.94.105"), Weight: 100},
			{Name: "HM2", Addr: netip.MustParseAddr("192.168.94.106"), Weight: 100},
		},
	}
}

func mustBuild(t testing.TB, spec Spec, prev *Snapshot) *Snapshot {
	t.Helper()
	s, err := Build(spec, prev)
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	return s
}

// clientAddr returns the i-th test client: 10.0.0.0/8 for IPv4, or
// 2001:db8::/96 for IPv6.
func clientAddr(i int, v6 bool) netip.Addr {
	if v6 {
		var b [16]byte
		b[0], b[1], b[2], b[3] = 0x20, 0x01, 0x0d, 0xb8
		b[12], b[13], b[14], b[15] = byte(i>>24), byte(i>>16), byte(i>>8), byte(i)
		return netip.AddrFrom16(b)
	}
	return netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
}

func serverNames(n int) []string {
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("RS%04d", i)
	}
	return names
}

// withServer returns a copy of ss where the server named name is changed by f.
func withServer(ss ServiceSpec, name string, f func(*ServerSpec)) ServiceSpec {
	ss.Servers = append([]ServerSpec(nil), ss.Servers...)
	for i := range ss.Servers {
		if ss.Servers[i].Name == name {
			f(&ss.Servers[i])
		}
	}
	return ss
}
