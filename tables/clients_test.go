package tables

import (
	"slices"
	"testing"
	"time"
)

// TestActiveClientsByServer checks the one-scan count of every server against
// ActiveClients, one server at a time, and against the clients placed: fresh
// entries count, expired ones and those of an earlier Generation do not.
func TestActiveClientsByServer(t *testing.T) {
	const timeout = 60
	base := trafficService(timeout*time.Second, nil, "HT1", "HT2", "HT3")
	s1 := mustBuild(t, pickSpec(base), nil)
	svc1 := s1.Services()[0]
	placed := map[string]int{}
	for i := range 300 {
		now := uint32(1000)
		if i%3 == 0 {
			now = 900 // expired by 1000+timeout
		}
		srv, _ := svc1.Pick(clientAddr(i, i%2 == 0), now)
		if now == 1000 {
			placed[srv.Name]++
		}
	}
	// HT2 restarts (a new Generation): its entries no longer count.
	svc := mustBuild(t, pickSpec(withServer(base, "HT2", func(s *ServerSpec) { s.Generation++ })), s1).Services()[0]
	placed["HT2"] = 0

	now := uint32(1000 + timeout)
	got := svc.ActiveClientsByServer(now)
	if len(got) != len(svc.Servers) {
		t.Fatalf("%d counts for %d servers", len(got), len(svc.Servers))
	}
	for i, srv := range svc.Servers {
		if one := svc.ActiveClients(srv, now); got[i] != one || got[i] != placed[srv.Name] {
			t.Errorf("%s: ActiveClientsByServer %d, ActiveClients %d, placed %d", srv.Name, got[i], one, placed[srv.Name])
		}
	}
	if slices.Equal(got, make([]int, len(got))) {
		t.Fatal("no client counted at all")
	}
	if off := mustBuild(t, pickSpec(trafficService(0, nil, "HT1")), nil).Services()[0]; off.ActiveClientsByServer(now) != nil {
		t.Error("persistence off: want nil")
	}
}
