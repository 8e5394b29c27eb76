package tables

import (
	"net/netip"
	"testing"
	"time"
)

func TestStateInService(t *testing.T) {
	for _, tc := range []struct {
		s    State
		want bool
	}{{StateOnline, true}, {StateDrain, true}, {StateHalt, false}, {StateDown, false}} {
		if got := tc.s.InService(); got != tc.want {
			t.Errorf("%v.InService() = %v, want %v", tc.s, got, tc.want)
		}
	}
}

func TestKeyString(t *testing.T) {
	if got := (Key{Service: "Harmonic_Traffic", Server: "HT1"}).String(); got != "Harmonic_Traffic/HT1" {
		t.Errorf("Key.String() = %q", got)
	}
}

// TestServiceServer: a real server by name, else the fallback of that name,
// else nil.
func TestServiceServer(t *testing.T) {
	ss := trafficService(time.Minute, nil, "HT1", "HT2")
	ss.Fallback = &ServerSpec{Name: "sorry", Addr: netip.MustParseAddr("192.168.94.200"), Weight: 1, HasMAC: true}
	svc := mustBuild(t, Spec{HashSeed: testSeed, Services: []ServiceSpec{ss}}, nil).Service("Harmonic_Traffic")
	for _, tc := range []struct {
		name string
		want *Server
	}{{"HT1", svc.Servers[0]}, {"HT2", svc.Servers[1]}, {"sorry", svc.Fallback}, {"HT3", nil}, {"", nil}} {
		if got := svc.Server(tc.name); got != tc.want {
			t.Errorf("Server(%q) = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestNow(t *testing.T) {
	if a := Now(); a < 1 || Now() < a {
		t.Errorf("Now() = %d: want at least 1 and never going back", a)
	}
}
