package daemon

import (
	"github.com/medialb/medialb/afxdp"
	"github.com/medialb/medialb/pipeline"
)

// dropsByReason returns the layer-4 dataplane's drops by reason name, every
// reason present (0 until it happens), so that /metrics shows a series for each
// drop path (ICMP errors with a malformed quote or no service, fragments with no
// service, ...) before the first such frame and an alert can watch it.
func dropsByReason(c pipeline.Counters) map[string]uint64 {
	m := make(map[string]uint64, pipeline.NumReasons)
	for r, n := range c.ByReason {
		if pipeline.Reason(r) != pipeline.Forwarded {
			m[pipeline.Reason(r).String()] = n
		}
	}
	return m
}

// fastPathDecisions returns what became of the decisions the pipeline sent to
// the steering program's fast-path map, by result: "recorded" (written),
// "refused_full" (a new client while the map was full: it stays on the
// pipeline; the map never evicts a decision to make room) and "expired"
// (deleted by the ager: idle, of an older generation or of a removed service).
func fastPathDecisions(s afxdp.FastPathStats) map[string]uint64 {
	return map[string]uint64{"recorded": s.Entries, "refused_full": s.Refused, "expired": s.Expired}
}
