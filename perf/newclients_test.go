package perf

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestNewClients: every forwarder forwards frames of never-seen clients; with the
// fast path a share of each client's frames goes through the pipeline (its first
// ones) and the rest through XDP_TX; without it, all through the pipeline; the
// section names every forwarder with a ratio against xdp_tx.
func TestNewClients(t *testing.T) {
	requireLab(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	res, err := RunNewClients(ctx, NewClientsConfig{Duration: time.Second, Repeats: 1, PerClient: 8, Window: 256})
	if err != nil {
		t.Fatal(err)
	}
	md := res.Markdown("medialb-perf --new-clients")
	t.Logf("%s", md)
	for _, p := range res.Points {
		if p.Arrived == 0 || p.CoreClients(8) == 0 {
			t.Errorf("%s: nothing forwarded (%+v)", p.Forwarder, p)
		}
		switch p.Forwarder {
		case FwdMedialbFastpath:
			if p.FastPath == 0 || p.Pipeline == 0 {
				t.Errorf("%s: fast path %d, pipeline %d frames: want both (first frames, then XDP_TX)", p.Forwarder, p.FastPath, p.Pipeline)
			}
		case FwdMedialb:
			if p.FastPath != 0 || p.Pipeline == 0 {
				t.Errorf("%s: fast path %d, pipeline %d frames: want the pipeline only", p.Forwarder, p.FastPath, p.Pipeline)
			}
		}
	}
	for _, f := range []string{FwdXDPTX, FwdMedialbFastpath, FwdMedialb} {
		if !strings.Contains(md, "| "+f+" | 1 |") {
			t.Errorf("section has no row for %s", f)
		}
	}
}
