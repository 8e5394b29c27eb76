package api

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// The feedback agent's answers, the configured weight and the real-server
// problems reach /metrics.
func TestBalancingMetrics(t *testing.T) {
	f := newFake()
	hm := f.ov.Services[0].RealServers
	hm[0].Weight, hm[0].ConfiguredWeight = 10, 100
	hm[0].Feedback = &Feedback{Percent: 10, Answer: "10%", AnsweredAt: "2025-02-25T14:35:20Z"}
	hm[1].ConfiguredWeight = 100
	ht := f.ov.Services[1].RealServers
	ht[1].Problems = []string{"VIP not configured on the real server (192.168.94.110): ...", "another"}
	s := newTestServer(t, f, nil)
	want := `
# HELP medialb_real_server_feedback_percent Share of the configured weight the real server's feedback agent asked for and that is in force.
# TYPE medialb_real_server_feedback_percent gauge
medialb_real_server_feedback_percent{server="HM1",service="Harmonic_Management"} 10
# HELP medialb_real_server_feedback_last_answer_timestamp_seconds When the real server's feedback agent last answered, in seconds since the epoch.
# TYPE medialb_real_server_feedback_last_answer_timestamp_seconds gauge
medialb_real_server_feedback_last_answer_timestamp_seconds{server="HM1",service="Harmonic_Management"} 1.74049412e+09
# HELP medialb_real_server_configured_weight Configured weight of a real server.
# TYPE medialb_real_server_configured_weight gauge
medialb_real_server_configured_weight{server="HM1",service="Harmonic_Management"} 100
medialb_real_server_configured_weight{server="HM2",service="Harmonic_Management"} 100
medialb_real_server_configured_weight{server="HT1",service="Harmonic_Traffic"} 0
medialb_real_server_configured_weight{server="HT2",service="Harmonic_Traffic"} 0
# HELP medialb_real_server_problems Setup problems found on a real server (the direct-routing ARP problem, say); 0 when none.
# TYPE medialb_real_server_problems gauge
medialb_real_server_problems{server="HM1",service="Harmonic_Management"} 0
medialb_real_server_problems{server="HM2",service="Harmonic_Management"} 0
medialb_real_server_problems{server="HT1",service="Harmonic_Traffic"} 0
medialb_real_server_problems{server="HT2",service="Harmonic_Traffic"} 2
`
	if err := testutil.CollectAndCompare(s.collector, strings.NewReader(want),
		"medialb_real_server_feedback_percent", "medialb_real_server_feedback_last_answer_timestamp_seconds",
		"medialb_real_server_configured_weight", "medialb_real_server_problems"); err != nil {
		t.Error(err)
	}
}
