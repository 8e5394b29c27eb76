package tables

import (
	"testing"
	"time"
)

func TestTouch(t *testing.T) {
	const timeout = 300
	base := trafficService(timeout*time.Second, nil, "HT1", "HT2")
	tests := []struct {
		name       string
		spec       ServiceSpec
		server     string // Touch with this server
		seen, now  uint32
		want       bool
		wantServer string // then LastSeen gives this server ("" = no entry)
		wantSeen   uint32
	}{
		{"refresh own entry", base, "HT1", 200, 250, true, "HT1", 200},
		{"never back in time", base, "HT1", 5, 250, false, "HT1", 10},
		{"other server replaces", base, "HT2", 100, 150, true, "HT2", 100},
		{"expired seen ignored", base, "HT1", 10, 400, false, "", 0},
		{"unknown server", base, "HT9", 100, 150, false, "HT1", 10},
		{"halted server", withServer(base, "HT2", func(s *ServerSpec) { s.State = StateHalt }), "HT2", 100, 150, false, "HT1", 10},
		{"drained server keeps", withServer(base, "HT1", func(s *ServerSpec) { s.State = StateDrain }), "HT1", 100, 150, true, "HT1", 100},
		{"no persistence", trafficService(0, nil, "HT1", "HT2"), "HT1", 100, 150, false, "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s1 := mustBuild(t, pickSpec(trafficService(tt.spec.PersistTimeout, nil, "HT1", "HT2")), nil)
			svc := s1.Services()[0]
			src := clientOn(t, svc, "HT1", 0)
			svc.Pick(src, 10) // recorded at 10 on HT1 (with persistence)
			s2 := mustBuild(t, pickSpec(tt.spec), s1)
			svc2 := s2.Services()[0]
			if got := svc2.Touch(src, tt.server, tt.seen, tt.now); got != tt.want {
				t.Errorf("Touch = %v, want %v", got, tt.want)
			}
			seen, server, ok := svc2.LastSeen(src, tt.now)
			wantServer, wantSeen := tt.wantServer, tt.wantSeen
			if wantServer == "" {
				if ok {
					t.Errorf("LastSeen = %d %s, want no entry", seen, server)
				}
				return
			}
			if !ok || server != wantServer || seen != wantSeen {
				t.Errorf("LastSeen = %d %q %v, want %d %q", seen, server, ok, wantSeen, wantServer)
			}
		})
	}
}

func TestTouchAllocs(t *testing.T) {
	s := mustBuild(t, pickSpec(trafficService(300*time.Second, nil, "HT1", "HT2")), nil)
	svc := s.Services()[0]
	src := clientAddr(7, false)
	srv, _ := svc.Pick(src, 10)
	n := uint32(10)
	if a := testing.AllocsPerRun(100, func() { n++; svc.Touch(src, srv.Name, n, n) }); a != 0 {
		t.Errorf("Touch allocates %v times", a)
	}
}
