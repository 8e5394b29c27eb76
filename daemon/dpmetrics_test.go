package daemon

import (
	"testing"

	"github.com/medialb/medialb/afxdp"
	"github.com/medialb/medialb/pipeline"
)

// TestDropsByReason: every drop reason, the ICMP and fragment ones included, has a
// series from the start (0), and counts land under their own name.
func TestDropsByReason(t *testing.T) {
	var c pipeline.Counters
	c.ByReason[pipeline.Forwarded] = 100
	c.ByReason[pipeline.ICMPNoService] = 3
	m := dropsByReason(c)
	for _, name := range []string{"malformed_icmp", "icmp_no_service", "fragment_no_service", "no_service", "tx_full"} {
		if _, ok := m[name]; !ok {
			t.Errorf("drops: no %q series in %v", name, m)
		}
	}
	if m["icmp_no_service"] != 3 || m["malformed_icmp"] != 0 {
		t.Errorf("drops %v: want icmp_no_service 3, malformed_icmp 0", m)
	}
	if _, ok := m["forwarded"]; ok || len(m) != int(pipeline.NumReasons)-1 {
		t.Errorf("drops %v: want every reason but forwarded", m)
	}
}

func TestFastPathDecisions(t *testing.T) {
	m := fastPathDecisions(afxdp.FastPathStats{Entries: 10, Refused: 2, Expired: 5})
	if m["recorded"] != 10 || m["refused_full"] != 2 || m["expired"] != 5 || len(m) != 3 {
		t.Errorf("fast-path decisions %v", m)
	}
}
