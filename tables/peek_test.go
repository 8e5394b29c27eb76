package tables

import (
	"testing"
	"time"
)

// TestPickQuiet: an ICMP error's pick follows the client's persistence entry and
// otherwise Maglev, like Pick, but writes nothing: no entry for an unknown client,
// no refresh of a known one.
func TestPickQuiet(t *testing.T) {
	snap := mustBuild(t, pickSpec(trafficService(300*time.Second, nil, "HT1", "HT2")), nil)
	svc := snap.Services()[0]
	unknown := clientOn(t, svc, "HT1", 0)
	if srv, v := svc.PickQuiet(unknown, 100); srv == nil || srv.Name != "HT1" || v != VerdictNew {
		t.Fatalf("unknown client: %v %v, want Maglev's HT1, new", srv, v)
	}
	if _, _, ok := svc.LastSeen(unknown, 100); ok || svc.AffinityStats().Inserts != 0 {
		t.Errorf("unknown client: entry %v, stats %+v: want nothing recorded", ok, svc.AffinityStats())
	}
	known := clientOn(t, svc, "HT1", 1)
	if !svc.Touch(known, "HT2", 50, 50) { // pinned to HT2, against Maglev
		t.Fatal("Touch failed")
	}
	if srv, v := svc.PickQuiet(known, 100); srv == nil || srv.Name != "HT2" || v != VerdictPersist {
		t.Fatalf("known client: %v %v, want its entry's HT2, persist", srv, v)
	}
	if seen, _, _ := svc.LastSeen(known, 100); seen != 50 {
		t.Errorf("known client last seen %d after PickQuiet, want 50 (not refreshed)", seen)
	}
	// Without persistence: Maglev.
	snap = mustBuild(t, pickSpec(trafficService(0, nil, "HT1", "HT2")), nil)
	if srv, v := snap.Services()[0].PickQuiet(unknown, 100); srv == nil || srv.Name != "HT1" || v != VerdictNew {
		t.Errorf("no persistence: %v %v, want HT1, new", srv, v)
	}
}
