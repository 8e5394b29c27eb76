package api

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"
)

func TestSamplerRatesStatesAndRings(t *testing.T) {
	f := newFake()
	var sm sampler
	t0 := time.Unix(1_700_000_000, 0)
	for i := 0; i < ReportPoints+DayFactor; i++ {
		ov := f.Overview()
		ht1 := &ov.Services[1].RealServers[0]
		ht1.Packets = uint64(1000 * i) // 1000 packets per 5 s: 200 pps
		ht1.Bytes = uint64(125000 * i) // 1 Mbit per 5 s: 200 kbit/s
		if i == 10 {
			ht1.State = "down"
		}
		if i == 11 {
			ht1.Packets, ht1.Bytes = 0, 0 // counters reset (restart)
		}
		sm.take(ov, t0.Add(time.Duration(i)*5*time.Second))
	}
	ht1 := sm.series["Harmonic_Traffic/HT1"]
	hour := ht1.hour.points()
	if len(hour) != ReportPoints || hour[0].T != t0.Add(DayFactor*5*time.Second).Unix() {
		t.Fatalf("hour ring: %d points from %d; want %d, the oldest ones dropped", len(hour), hour[0].T, ReportPoints)
	}
	if p := hour[len(hour)-1]; p.PPS != 200 || p.BPS != 200000 || p.State != "online" || p.Clients != 4 {
		t.Errorf("last point %+v, want 200 pps, 200 kbit/s, online, 4 clients", p)
	}
	day := ht1.day.points()
	if len(day) != (ReportPoints+DayFactor)/DayFactor || day[0].State != "down" || day[1].State != "online" {
		t.Fatalf("day ring: %d points, states %s %s; want the first 2-minute point down (worst of its samples)", len(day), day[0].State, day[1].State)
	}
	// The reset gives no negative rate.
	for _, p := range hour {
		if p.PPS < 0 || p.BPS < 0 {
			t.Fatalf("negative rate %+v", p)
		}
	}
	if len(sm.series) != 6 {
		t.Errorf("%d series, want 2 services + 4 servers", len(sm.series))
	}

	// A server added between two samples: its traffic since it appeared counts.
	ov := f.Overview()
	ov.Services[1].RealServers = append(ov.Services[1].RealServers, RealServer{Name: "HT3", State: "online", Packets: 500, Bytes: 62500})
	sm.take(ov, t0.Add(time.Duration(ReportPoints+DayFactor)*5*time.Second))
	if p := sm.series["Harmonic_Traffic/HT3"].hour.points(); len(p) != 1 || p[0].PPS != 100 || p[0].BPS != 100000 {
		t.Errorf("the new server's first point %+v, want 100 pps, 100 kbit/s", p)
	}
}

func TestReportsEndpoint(t *testing.T) {
	f := newFake()
	s := newTestServer(t, f, nil)
	s.cfg.SampleEvery = 20 * time.Millisecond
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	deadline := time.Now().Add(5 * time.Second)
	var ans ReportsAnswer
	for time.Now().Before(deadline) {
		w := serve(s, "GET", "/api/v1/reports?service=Harmonic_Traffic", true)
		json.Unmarshal(w.Body.Bytes(), &ans)
		if len(ans.Series) == 3 && len(ans.Series[0].Points) >= 3 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if len(ans.Series) != 3 || ans.Series[0].Server != "" || ans.Series[1].Server != "HT1" || ans.Interval != 0.02 {
		t.Fatalf("reports: %+v", ans)
	}
	if w := serve(s, "GET", "/api/v1/reports?range=week", true); w.Code != 400 {
		t.Errorf("range=week: %d", w.Code)
	}
}

// TestPointSize keeps the memory the README and PointBytes state true.
func TestPointSize(t *testing.T) {
	if n := reflect.TypeOf(Point{}).Size(); n != PointBytes {
		t.Fatalf("a Point takes %d bytes, PointBytes says %d: update it and the README's figures", n, PointBytes)
	}
}
