package feedback

import (
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in      string
		percent int
		state   Agent
		err     bool
	}{
		{in: "75%\n", percent: 75},
		{in: "75", percent: 75},          // Loadbalancer.org: the idle percentage
		{in: "  12.6 \r\n", percent: 13}, // rounded
		{in: "250%", percent: 100},       // clamped
		{in: "-5%", percent: 0},          // clamped
		{in: "drain", percent: -1, state: AgentDrain},
		{in: "maint", percent: -1, state: AgentMaint},
		{in: "up 50%", percent: 50, state: AgentReady},
		{in: "ready,30%", percent: 30, state: AgentReady},
		{in: "DOWN # disk full", percent: -1, state: AgentDown},
		{in: "stopped", percent: -1, state: AgentDown},
		{in: "maxconn:30 80%", percent: 80},
		{in: "", err: true},
		{in: "hello", err: true},
		{in: "# only a comment", err: true},
		{in: "NaN%", err: true},
		{in: "1e3", err: true},
	} {
		a, err := Parse(tc.in)
		if tc.err {
			if err == nil || !strings.Contains(err.Error(), "neither a percentage") {
				t.Errorf("Parse(%q) = %+v, %v; want an error", tc.in, a, err)
			}
			continue
		}
		if err != nil || a.Percent != tc.percent || a.State != tc.state {
			t.Errorf("Parse(%q) = %+v, %v; want percent %d state %v", tc.in, a, err, tc.percent, tc.state)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"75%", "75", "drain", "up 50%", "maxconn:3 # x", "", "\x00\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, err := Parse(s)
		if err == nil && a.Percent < 0 && a.State == AgentNone {
			t.Fatalf("Parse(%q) = %+v without an error", s, a)
		}
		if a.Percent > 100 || a.Percent < -1 || len(a.Text) > MaxAnswer {
			t.Fatalf("Parse(%q) = %+v out of range", s, a)
		}
	})
}
