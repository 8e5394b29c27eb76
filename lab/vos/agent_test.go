package vos

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/medialb/medialb/feedback"
)

// TestAgent polls the simulated agent the way medialb does, over TCP and
// HTTP, across answers set through the control listener.
func TestAgent(t *testing.T) {
	s := startTest(t)
	ctl := "http://" + s.ControlAddr().String()
	tcp := netip.MustParseAddrPort(s.AgentAddr().String())
	web := netip.MustParseAddrPort(s.HTTPAddr().String())
	poll := func(proto string, at netip.AddrPort) feedback.Result {
		return feedback.Poll(context.Background(), feedback.Target{Protocol: proto, Addr: at, Path: "/load", Timeout: time.Second})
	}
	for _, tc := range []struct {
		set     string // "" : the default
		percent int
		state   feedback.Agent
	}{
		{"", 100, feedback.AgentNone},
		{"10%25", 10, feedback.AgentNone},
		{"drain", -1, feedback.AgentDrain},
		{"up+50%25", 50, feedback.AgentReady},
	} {
		if tc.set != "" {
			if code, body := post(t, ctl+"/agent?answer="+tc.set); code != 200 {
				t.Fatalf("set %s: %d %s", tc.set, code, body)
			}
		}
		for _, r := range []feedback.Result{poll(feedback.ProtoAgent, tcp), poll(feedback.ProtoHTTP, web)} {
			if r.Err != nil || r.Answer.Percent != tc.percent || r.Answer.State != tc.state {
				t.Errorf("after %q: %+v, want %d %v", tc.set, r, tc.percent, tc.state)
			}
		}
	}
	if code, _ := post(t, ctl+"/agent?answer=busy"); code != 400 {
		t.Errorf("an unreadable answer was taken: %d", code)
	}
	post(t, ctl+"/agent?answer=")
	if r := poll(feedback.ProtoAgent, tcp); r.Err == nil || !strings.Contains(r.Err.Error(), "neither a percentage") {
		t.Errorf("silent agent: %+v", r)
	}
}
