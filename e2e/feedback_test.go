package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/medialb/medialb/api"
	"github.com/medialb/medialb/lab"
	"github.com/medialb/medialb/lab/probe"
)

// feedbackService is Harmonic_Management without persistence, with the
// vossim agents polled twice a second.
func feedbackService(protocol string) service {
	s := management().persist("")
	s.feedback = fmt.Sprintf("{ protocol: %s, interval: 500ms }", protocol)
	return s
}

// waitServer polls the overview until ok accepts the real server, and
// returns it; the test fails after timeout with the last one seen.
func (e *env) waitServer(service, server string, timeout time.Duration, what string, ok func(api.RealServer) bool) api.RealServer {
	e.t.Helper()
	deadline := time.Now().Add(timeout)
	var rs api.RealServer
	for {
		rs = realServer(e.t, e.overview(), service, server)
		if ok(rs) {
			return rs
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("%s/%s: not %s within %s: %+v feedback %+v", service, server, what, timeout, rs, rs.Feedback)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestFeedbackAgent: HM1's agent reports 90% busy; new clients go mostly to
// HM2. Its drain is shown as the agent's, and a silent agent leaves the weight.
func TestFeedbackAgent(t *testing.T) {
	e := newEnv(t, "fb", lab.Options{Clients: 100})
	if err := e.lab.SetAgent("HM1", "10%"); err != nil {
		t.Fatal(err)
	}
	e.start(config(feedbackService("agent")))
	e.waitChecked(15 * time.Second)
	const svc = "Harmonic_Management"
	hm1 := e.waitServer(svc, "HM1", 10*time.Second, "at 10% of its weight", func(r api.RealServer) bool {
		return r.Weight == 10 && r.Feedback != nil && r.Feedback.Answer == "10%"
	})
	if hm1.ConfiguredWeight != 100 || hm1.Problems == nil {
		t.Errorf("HM1 %+v", hm1)
	}
	ctx := context.Background()
	target := probe.Target{Proto: "http", Addr: netip.AddrPortFrom(l7VIP, 8080)}
	count := func() map[string]int {
		sum := probe.Summarize(probe.Sweep(ctx, e.lab, e.lab.Client.Sources4, []probe.Target{target}, 32))
		if sum.Failed > 0 {
			t.Fatalf("%d probes failed: %v", sum.Failed, sum.Errors)
		}
		return sum.ClientsOf
	}
	got := count()
	t.Logf("HM1 at 10%%: clients per server %v", got)
	if got["HM1"] > 25 || got["HM2"] < 75 {
		t.Errorf("HM1 reports 90%% busy but took %d of 100 clients (HM2 %d)", got["HM1"], got["HM2"])
	}

	// The agent drains HM1: the state is the agent's, the operator's stays online.
	if err := e.lab.SetAgent("HM1", "drain"); err != nil {
		t.Fatal(err)
	}
	hm1 = e.waitServer(svc, "HM1", 10*time.Second, "drained by its agent", func(r api.RealServer) bool { return r.State == "drain" })
	if hm1.Admin != "online" || hm1.Feedback.Agent != "drain" {
		t.Errorf("drained by the agent: admin %q agent %q", hm1.Admin, hm1.Feedback.Agent)
	}
	if got := count(); got["HM1"] != 0 {
		t.Errorf("HM1 drained by its agent took %d new clients", got["HM1"])
	}

	// Back, at full weight; then the agent goes silent: the weight stays.
	if err := e.lab.SetAgent("HM1", "ready 100%"); err != nil {
		t.Fatal(err)
	}
	e.waitServer(svc, "HM1", 10*time.Second, "back at full weight", func(r api.RealServer) bool { return r.State == "online" && r.Weight == 100 })
	if got := count(); got["HM1"] < 25 {
		t.Errorf("HM1 back at full weight took only %d of 100 clients", got["HM1"])
	}
	if err := e.lab.SetAgent("HM1", "40%"); err != nil {
		t.Fatal(err)
	}
	e.waitServer(svc, "HM1", 10*time.Second, "at 40%", func(r api.RealServer) bool { return r.Weight == 40 })
	if err := e.lab.SetAgent("HM1", ""); err != nil { // connections closed without a word
		t.Fatal(err)
	}
	hm1 = e.waitServer(svc, "HM1", 10*time.Second, "with a silent agent", func(r api.RealServer) bool {
		return r.Feedback.Error != ""
	})
	if hm1.Weight != 40 || !strings.Contains(hm1.Feedback.Error, "neither a percentage") || hm1.State != "online" {
		t.Errorf("silent agent: weight %d state %s (want 40 online, as it was), error %q", hm1.Weight, hm1.State, hm1.Feedback.Error)
	}
}

// TestSlowStartLab: HM1 back from halt ramps its weight up over slow_start
// instead of taking half of all new clients at once.
func TestSlowStartLab(t *testing.T) {
	e := newEnv(t, "ss", lab.Options{Clients: 2})
	s := management().persist("")
	s.extraYAML = "    slow_start: 5s\n"
	e.start(config(s))
	e.waitChecked(15 * time.Second)
	const svc = "Harmonic_Management"
	e.setState(svc, "HM1", "halt")
	e.setState(svc, "HM1", "online")
	back := time.Now()
	first := realServer(t, e.overview(), svc, "HM1")
	if first.State != "online" || first.Weight < 1 || first.Weight > 40 {
		t.Fatalf("HM1 right after coming back: %s weight %d, want online at a small weight", first.State, first.Weight)
	}
	seen := map[int]bool{first.Weight: true}
	rs := e.waitServer(svc, "HM1", 10*time.Second, "at full weight", func(r api.RealServer) bool {
		seen[r.Weight] = true
		return r.Weight == 100
	})
	took := time.Since(back)
	t.Logf("HM1 weights seen while ramping: %v; full weight after %v", seen, took.Round(100*time.Millisecond))
	if took < 4*time.Second || len(seen) < 4 || rs.ConfiguredWeight != 100 {
		t.Errorf("ramp: full weight after %v with %d steps seen, want about 5s in steps", took, len(seen))
	}
}
