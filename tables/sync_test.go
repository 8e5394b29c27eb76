package tables

import (
	"net/netip"
	"testing"
	"time"
)

func exportAll(svc *Service, now, maxAge uint32) []Entry {
	var out []Entry
	svc.Export(now, maxAge, func(e Entry) bool {
		out = append(out, e)
		return true
	})
	return out
}

// TestSyncKeepsPicksAcrossNodes: clients whose server differs from the Maglev
// pick (a server was added after they arrived) keep it on the peer once the
// active node's entries are imported there, whatever the two clocks read.
func TestSyncKeepsPicksAcrossNodes(t *testing.T) {
	const timeout = 300
	three := trafficService(timeout*time.Second, nil, "HT1", "HT2", "HT3")
	four := trafficService(timeout*time.Second, nil, "HT1", "HT2", "HT3", "HT4")
	const nowA, nowB = 5000, 40 // the nodes booted at different times

	a := mustBuild(t, pickSpec(three), nil)
	b := mustBuild(t, pickSpec(three), nil)
	clients := make([]netip.Addr, 0, 400)
	for i := range 200 {
		clients = append(clients, clientAddr(i, false), clientAddr(i, true))
	}
	want := map[netip.Addr]string{}
	for _, c := range clients {
		srv, _ := a.Services()[0].Pick(c, nowA)
		want[c] = srv.Name
	}
	a = mustBuild(t, pickSpec(four), a)
	b = mustBuild(t, pickSpec(four), b)
	moved := 0
	for _, c := range clients {
		if srv, _ := b.Services()[0].pickNew(hashAddr(testSeed, c)); srv.Name != want[c] {
			moved++
		}
	}
	if moved == 0 {
		t.Fatal("adding HT4 moved no client's Maglev pick; the test shows nothing")
	}

	entries := exportAll(a.Services()[0], nowA+10, timeout)
	if len(entries) != len(clients) {
		t.Fatalf("exported %d entries, want %d", len(entries), len(clients))
	}
	for _, e := range entries {
		if e.Age != 10 {
			t.Fatalf("entry %+v: age %d, want 10", e, e.Age)
		}
		if want[e.Client] != e.Server {
			t.Fatalf("entry %+v: want server %s", e, want[e.Client])
		}
	}
	if n := b.Services()[0].Import(entries, nowB); n != len(entries) {
		t.Fatalf("imported %d of %d", n, len(entries))
	}
	for _, c := range clients {
		expectPick(t, b.Services()[0], c, nowB+1, want[c], VerdictPersist)
	}

	// Ages carry over: an entry imported at age 10 expires timeout-10 seconds later.
	c := clientAddr(500, false)
	b.Services()[0].Import([]Entry{{Client: c, Server: "HT1", Age: 10}}, nowB)
	got := exportAll(b.Services()[0], nowB+timeout-10, timeout)
	found := false
	for _, e := range got {
		found = found || e.Client == c
	}
	if !found {
		t.Errorf("imported entry gone before its timeout")
	}
	got = exportAll(b.Services()[0], nowB+timeout-9, timeout)
	for _, e := range got {
		if e.Client == c {
			t.Errorf("imported entry alive after its timeout: %+v", e)
		}
	}
}

func TestSyncImportRules(t *testing.T) {
	const timeout = 300
	spec := pickSpec(trafficService(timeout*time.Second, nil, "HT1", "HT2"))
	svc := mustBuild(t, spec, nil).Services()[0]
	c1 := clientOn(t, svc, "HT1", 0)
	c2 := clientOn(t, svc, "HT1", 1)
	const now = 1000

	tests := []struct {
		name  string
		prep  func()
		in    Entry
		n     int
		want  string
		wantV Verdict
	}{
		{"unknown server skipped", nil, Entry{Client: c1, Server: "HT9", Age: 1}, 0, "HT1", VerdictNew},
		{"too old skipped", nil, Entry{Client: c1, Server: "HT2", Age: timeout + 1}, 0, "HT1", VerdictNew},
		{"new client recorded", nil, Entry{Client: c1, Server: "HT2", Age: 1}, 1, "HT2", VerdictPersist},
		{"fresher local entry kept", func() { svc.Pick(c2, now) }, Entry{Client: c2, Server: "HT2", Age: 5}, 0, "HT1", VerdictPersist},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			svc = mustBuild(t, spec, nil).Services()[0]
			if tt.prep != nil {
				tt.prep()
			}
			if n := svc.Import([]Entry{tt.in}, now); n != tt.n {
				t.Errorf("Import = %d, want %d", n, tt.n)
			}
			expectPick(t, svc, tt.in.Client, now, tt.want, tt.wantV)
		})
	}

	// Without persistence there is nothing to export or import.
	none := mustBuild(t, pickSpec(trafficService(0, nil, "HT1")), nil).Services()[0]
	if n := none.Import([]Entry{{Client: c1, Server: "HT1"}}, now); n != 0 {
		t.Errorf("Import without persistence = %d", n)
	}
	if e := exportAll(none, now, timeout); len(e) != 0 {
		t.Errorf("Export without persistence: %v", e)
	}
	// A halted server's entries (older generation) are not exported.
	s := mustBuild(t, spec, nil)
	s.Services()[0].Pick(c1, now)
	s = mustBuild(t, pickSpec(withServer(spec.Services[0], "HT1", func(sp *ServerSpec) { sp.Generation++ })), s)
	if e := exportAll(s.Services()[0], now, timeout); len(e) != 0 {
		t.Errorf("exported entries of an older generation: %v", e)
	}
}

func BenchmarkExport(b *testing.B) {
	spec := pickSpec(trafficService(300*time.Second, nil, "HT1", "HT2"))
	svc := mustBuild(b, spec, nil).Services()[0]
	for i := range 10000 {
		svc.Pick(clientAddr(i, false), 10)
	}
	b.ReportAllocs()
	for b.Loop() {
		n := 0
		svc.Export(11, 300, func(Entry) bool { n++; return true })
	}
}
