package tables

import (
	"net/netip"
	"testing"
	"time"
)

func TestPickLeast(t *testing.T) {
	server := func(name string, weight uint32, st State) ServerSpec {
		return ServerSpec{Name: name, Addr: netip.MustParseAddr("192.0.2." + name[1:]), Weight: weight, State: st}
	}
	for _, tc := range []struct {
		name    string
		servers []ServerSpec
		load    map[string]int64
		want    string
	}{
		{"fewest connections", []ServerSpec{server("s1", 100, StateOnline), server("s2", 100, StateOnline)}, map[string]int64{"s1": 5, "s2": 2}, "s2"},
		{"per unit of weight", []ServerSpec{server("s1", 100, StateOnline), server("s2", 300, StateOnline)}, map[string]int64{"s1": 2, "s2": 5}, "s2"},
		{"drained server skipped", []ServerSpec{server("s1", 100, StateDrain), server("s2", 100, StateOnline)}, map[string]int64{"s1": 0, "s2": 50}, "s2"},
		{"weight 0 skipped", []ServerSpec{server("s1", 0, StateOnline), server("s2", 100, StateOnline)}, map[string]int64{"s1": 0, "s2": 50}, "s2"},
		{"down server skipped", []ServerSpec{server("s1", 100, StateOnline), server("s2", 100, StateDown)}, map[string]int64{"s1": 9, "s2": 0}, "s1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			snap := mustBuild(t, pickSpec(ServiceSpec{Name: "web", VIP: netip.MustParseAddr("192.0.2.100"), TCP: true, Layer: Layer7,
				Ports: []PortRange{{80, 80}}, MaglevSize: 251, Servers: tc.servers}), nil)
			svc := snap.Service("web")
			for i := range 20 { // every client, whatever its hash
				srv, v := svc.PickLeast(clientAddr(i, false), 100, func(s *Server) int64 { return tc.load[s.Name] })
				if srv == nil || srv.Name != tc.want || v != VerdictNew {
					t.Fatalf("client %d: %v %v, want %s", i, srv, v, tc.want)
				}
			}
		})
	}
}

// TestPickLeastPersistence: a persistent client keeps its server however
// loaded it is; ties spread new clients over the servers.
func TestPickLeastPersistence(t *testing.T) {
	snap := mustBuild(t, pickSpec(ServiceSpec{Name: "web", VIP: netip.MustParseAddr("192.0.2.100"), TCP: true, Layer: Layer7,
		Ports: []PortRange{{80, 80}}, MaglevSize: 251, PersistTimeout: time.Minute, AffinityCap: 1024,
		Servers: []ServerSpec{{Name: "a", Addr: netip.MustParseAddr("192.0.2.1"), Weight: 100}, {Name: "b", Addr: netip.MustParseAddr("192.0.2.2"), Weight: 100}}}), nil)
	svc := snap.Service("web")
	load := map[string]int64{}
	count := func(s *Server) int64 { return load[s.Name] }
	first, _ := svc.PickLeast(clientAddr(1, false), 100, count)
	load[first.Name] = 1000
	if srv, v := svc.PickLeast(clientAddr(1, false), 101, count); srv != first || v != VerdictPersist {
		t.Fatalf("persistent client moved to %v (%v)", srv, v)
	}
	load = map[string]int64{} // all idle: ties
	seen := map[string]int{}
	for i := 2; i < 200; i++ {
		srv, _ := svc.PickLeast(clientAddr(i, false), 100, count)
		seen[srv.Name]++
	}
	if seen["a"] < 50 || seen["b"] < 50 {
		t.Errorf("ties went %v, want them spread", seen)
	}
}
