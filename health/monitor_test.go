package health

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/medialb/medialb/tables"
)

// switchServer answers Healthy or Unhealthy as told, and counts the
// answers since the last switch.
type switchServer struct {
	mu      sync.Mutex
	healthy bool
	served  int
}

func newSwitchServer(t *testing.T, healthy bool) (*switchServer, netip.AddrPort) {
	s := &switchServer{healthy: healthy}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		s.mu.Lock()
		s.served++
		healthy := s.healthy
		s.mu.Unlock()
		if healthy {
			fmt.Fprint(w, "Healthy")
		} else {
			fmt.Fprint(w, "Unhealthy")
		}
	}))
	t.Cleanup(srv.Close)
	return s, netip.MustParseAddrPort(srv.Listener.Addr().String())
}

func (s *switchServer) set(healthy bool) {
	s.mu.Lock()
	s.healthy, s.served = healthy, 0
	s.mu.Unlock()
}

func (s *switchServer) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.served
}

// seen is a transition and how many answers the server had given since
// its last switch when the transition was reported.
type seen struct {
	Transition
	served int
}

func fastSpec() Spec {
	return Spec{Type: TypeHTTPGet, Expect: "Healthy", Interval: 10 * time.Millisecond, Jitter: 5 * time.Millisecond, Timeout: testTimeout, Rise: 2, Fall: 3}
}

func wait(t *testing.T, ch <-chan seen) seen {
	t.Helper()
	select {
	case s := <-ch:
		return s
	case <-time.After(5 * time.Second):
		t.Fatal("no transition within 5s")
		return seen{}
	}
}

func TestRiseFall(t *testing.T) {
	for _, startHealthy := range []bool{true, false} {
		t.Run(fmt.Sprintf("healthy=%v", startHealthy), func(t *testing.T) {
			srv, addr := newSwitchServer(t, startHealthy)
			ch := make(chan seen, 16)
			m := NewMonitor(zerolog.New(zerolog.NewTestWriter(t)), func(tr Transition) { ch <- seen{tr, srv.count()} })
			defer m.Close()
			m.Set([]Target{{Key: tk("svc/a"), Addr: addr, Spec: fastSpec()}})
			if st, ok := m.Status(tk("svc/a")); !ok || !st.Up || st.Checked {
				t.Fatalf("status before the first check: %+v %v, want up and not checked", st, ok)
			}

			// The first result decides at once.
			s := wait(t, ch)
			if s.Up != startHealthy || s.served != 1 || s.Key != tk("svc/a") {
				t.Fatalf("first transition %+v after %d checks, want up=%v after 1", s.Transition, s.served, startHealthy)
			}
			// Then fall (3) failures take it down, rise (2) passes bring it up.
			for _, healthy := range []bool{!startHealthy, startHealthy, !startHealthy} {
				srv.set(healthy)
				s := wait(t, ch)
				want := 3
				if healthy {
					want = 2
				}
				if s.Up != healthy || s.served != want {
					t.Fatalf("transition %+v after %d checks, want up=%v after %d", s.Transition, s.served, healthy, want)
				}
				st, _ := m.Status(tk("svc/a"))
				if st.Up != healthy || !st.Checked || st.ConsecutiveOK+st.ConsecutiveFail < want || st.LastChange != s.At {
					t.Errorf("status %+v does not match transition %+v", st, s.Transition)
				}
				if !healthy && !strings.Contains(s.Result.Reason, `body "Unhealthy", want "Healthy"`) {
					t.Errorf("down transition's reason %q", s.Result.Reason)
				}
			}
			// No transition while nothing changes.
			select {
			case s := <-ch:
				t.Errorf("unexpected transition %+v", s.Transition)
			case <-time.After(100 * time.Millisecond):
			}
		})
	}
}

func TestSetReconciles(t *testing.T) {
	_, addrA := newSwitchServer(t, true)
	_, addrB := newSwitchServer(t, true)
	down := refused(t)
	var mu sync.Mutex
	var trs []Transition
	m := NewMonitor(zerolog.New(zerolog.NewTestWriter(t)), func(tr Transition) {
		mu.Lock()
		trs = append(trs, tr)
		mu.Unlock()
	})
	defer m.Close()

	spec := fastSpec()
	a := Target{Key: tk("svc/a"), Addr: addrA, Spec: spec}
	d := Target{Key: tk("svc/d"), Addr: down, Spec: spec}
	m.Set([]Target{a, {Key: tk("svc/b"), Addr: addrB, Spec: spec}, d})
	waitFor(t, func() bool {
		sa, _ := m.Status(tk("svc/a"))
		sd, _ := m.Status(tk("svc/d"))
		return sa.ConsecutiveOK >= 3 && sd.Checked && !sd.Up
	})
	before, _ := m.Status(tk("svc/a"))
	if all := m.Statuses(); len(all) != 3 || all[tk("svc/a")].ConsecutiveOK < 3 || !all[tk("svc/d")].Checked || all[tk("svc/d")].Up {
		t.Errorf("Statuses() = %v, want svc/a up, svc/b, and svc/d checked down", all)
	}
	m.mu.Lock()
	probeA := m.probes[tk("svc/a")]
	m.mu.Unlock()

	// Unchanged a keeps its state, b goes, c comes, d changes its spec but
	// not its address: it stays down until its next check.
	slowD := d
	slowD.Spec.Interval, slowD.Spec.Jitter = time.Hour, time.Hour
	m.Set([]Target{a, {Key: tk("svc/c"), Addr: addrB, Spec: spec}, slowD})
	after, _ := m.Status(tk("svc/a"))
	m.mu.Lock()
	same := m.probes[tk("svc/a")] == probeA
	m.mu.Unlock()
	if !same || !after.Checked || after.LastChange != before.LastChange || after.ConsecutiveOK < before.ConsecutiveOK {
		t.Errorf("unchanged target lost its state: before %+v, after %+v (same probe %v)", before, after, same)
	}
	if _, ok := m.Status(tk("svc/b")); ok {
		t.Error("removed target still has a status")
	}
	if _, ok := m.Status(tk("svc/c")); !ok {
		t.Error("new target has no status")
	}
	if st, _ := m.Status(tk("svc/d")); st.Up || st.Checked {
		t.Errorf("target with a new spec: %+v, want still down, not checked", st)
	}

	// A new address is a new server: up, pending its first check.
	moved := slowD
	moved.Addr = addrA
	m.Set([]Target{moved})
	if st, _ := m.Status(tk("svc/d")); !st.Up || st.Checked || !st.LastChange.IsZero() {
		t.Errorf("target with a new address: %+v, want up, not checked", st)
	}
	for _, k := range []tables.Key{tk("svc/a"), tk("svc/c")} {
		if _, ok := m.Status(k); ok {
			t.Errorf("%s still has a status after Set without it", k)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	for _, tr := range trs {
		if tr.Key == tk("svc/b") && !tr.Up {
			t.Errorf("removed target reported down: %+v", tr)
		}
	}
}

func TestNoneAndInvalid(t *testing.T) {
	m := NewMonitor(zerolog.New(zerolog.NewTestWriter(t)), func(tr Transition) { t.Errorf("unexpected transition %+v", tr) })
	defer m.Close()
	addr := netip.MustParseAddrPort("127.0.0.1:1")
	m.Set([]Target{
		{Key: tk("udp/a"), Addr: addr, Spec: Spec{Type: TypeNone}},
		{Key: tk("bad/a"), Addr: addr, Spec: Spec{Type: "ping"}},
	})
	if st, _ := m.Status(tk("udp/a")); !st.Up || !st.Checked || !st.LastResult.OK {
		t.Errorf("none target: %+v, want up and checked", st)
	}
	if st, _ := m.Status(tk("bad/a")); st.Up || !st.Checked || !strings.Contains(st.LastResult.Reason, `unknown type "ping"`) {
		t.Errorf("invalid target: %+v, want down with the error", st)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for k, p := range m.probes {
		if p.cancel != nil {
			t.Errorf("%s has a goroutine", k)
		}
	}
}

// TestSlowTarget checks that a target whose checks time out does not delay
// the checks of another, and that Close does not wait for its check.
func TestSlowTarget(t *testing.T) {
	slowAddr := startRaw(t, nil, silent)
	_, fastAddr := newSwitchServer(t, true)
	var mu sync.Mutex
	results := map[tables.Key]int{}
	m := NewMonitor(zerolog.New(zerolog.NewTestWriter(t)), nil)
	m.OnResult(func(key tables.Key, r Result) {
		mu.Lock()
		results[key]++
		mu.Unlock()
		if r.Duration <= 0 {
			t.Errorf("%s: result without duration: %+v", key, r)
		}
	})
	slowSpec := fastSpec()
	slowSpec.Timeout = 10 * time.Second
	m.Set([]Target{{Key: tk("slow"), Addr: slowAddr, Spec: slowSpec}, {Key: tk("fast"), Addr: fastAddr, Spec: fastSpec()}})
	time.Sleep(400 * time.Millisecond)
	mu.Lock()
	fast, slow := results[tk("fast")], results[tk("slow")]
	mu.Unlock()
	if fast < 10 || slow != 0 {
		t.Errorf("in 400ms: %d results of the fast target (want >= 10), %d of the slow one (want 0)", fast, slow)
	}
	start := time.Now()
	m.Close()
	if d := time.Since(start); d > slack {
		t.Errorf("Close took %v with a check in flight", d)
	}
	m.Set([]Target{{Key: tk("fast"), Addr: fastAddr, Spec: fastSpec()}}) // ignored after Close
	if _, ok := m.Status(tk("fast")); ok {
		t.Error("Set after Close added a target")
	}
}

// TestJitter checks that the first checks of many targets spread over the
// jitter.
func TestJitter(t *testing.T) {
	_, addr := newSwitchServer(t, true)
	const n, jit = 20, 300 * time.Millisecond
	var mu sync.Mutex
	var first []time.Time
	seen := map[tables.Key]bool{}
	m := NewMonitor(zerolog.Nop(), nil)
	defer m.Close()
	m.OnResult(func(key tables.Key, _ Result) {
		mu.Lock()
		defer mu.Unlock()
		if !seen[key] {
			seen[key] = true
			first = append(first, time.Now())
		}
	})
	spec := fastSpec()
	spec.Interval, spec.Jitter = time.Hour, jit
	var targets []Target
	for i := range n {
		targets = append(targets, Target{Key: tk(fmt.Sprint("t", i)), Addr: addr, Spec: spec})
	}
	start := time.Now()
	m.Set(targets)
	waitFor(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(first) == n
	})
	lo, hi := first[0], first[0]
	for _, f := range first {
		if f.Before(lo) {
			lo = f
		}
		if f.After(hi) {
			hi = f
		}
	}
	if spread := hi.Sub(lo); spread < jit/4 || hi.Sub(start) > jit+slack {
		t.Errorf("first checks spread over %v, last after %v; want over %v at least and all within %v", spread, hi.Sub(start), jit/4, jit+slack)
	}
}

// waitFor polls cond for up to 5 seconds.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatal("condition not met within 5s")
}

// tk is the key of a test target: "service/server", or a service alone.
func tk(s string) tables.Key {
	svc, srv, _ := strings.Cut(s, "/")
	return tables.Key{Service: svc, Server: srv}
}
