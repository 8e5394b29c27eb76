package perf

import (
	"context"
	"testing"
	"time"
)

// TestFlood: while new, never repeated sources spray the media ports at the highest
// rate the generator reaches, every established client keeps its persistence entry
// on its server and its fast-path decision, though the spray overruns the persistence
// table and the fast-path map (capacity 2048) a hundred times. Frames the lab's veth
// drops before the XDP program runs (the load balancer's core saturated) are lost for
// established clients and new sources alike: the test logs them, BENCHMARKS.md
// reports them.
func TestFlood(t *testing.T) {
	requireLab(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	res, err := RunFlood(ctx, FloodConfig{Duration: 2 * time.Second, Established: 128, Capacity: 2048})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s", res.Markdown())
	if res.Spray < 10*uint64(res.Config.Capacity) {
		t.Errorf("only %d spray frames: the flood did not overrun the tables", res.Spray)
	}
	if res.EstKept != res.Config.Established {
		t.Errorf("%d of %d established clients kept their server and fast-path decision", res.EstKept, res.Config.Established)
	}
	if res.Affinity.Evictions < 10*uint64(res.Affinity.Capacity) {
		t.Errorf("persistence %+v: want the new sources overrunning the table many times, evicting each other", res.Affinity)
	}
	t.Logf("established frames not on the fast path: %d of %d (%.1f %%); all frames lost before the servers: %.1f %%",
		res.EstOffFastPath, res.EstSent, 100*float64(res.EstOffFastPath)/float64(max(res.EstSent, 1)),
		100-100*float64(res.Arrived)/float64(max(res.Sent, 1)))
}
