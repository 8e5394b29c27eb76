package e2e

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/medialb/medialb/lab"
	"github.com/medialb/medialb/lab/lbproc"
)

var coldStarts = flag.Int("ha.coldstarts", 20, "cold starts of the pair in TestHAColdStart")

// TestHAColdStart starts both nodes of a pair without preemption together, in a
// random order up to 200 ms apart, as after a power cut of the rack: the primary
// (higher ha.priority, lb1) must become master every time. Then the secondary
// alone: it must still take the VIPs within a few seconds.
func TestHAColdStart(t *testing.T) {
	e := newEnv(t, "cs", lab.Options{LoadBalancers: 2, Clients: 2})
	p := newPair(e)
	// Layer 7 only: no dataplane to attach, so each start is quick; keepalived and
	// the sync channel are the same.
	for _, cfg := range p.cfgs {
		data, err := os.ReadFile(cfg)
		if err != nil {
			t.Fatal(err)
		}
		text, _, _ := strings.Cut(string(data), "  - name: Harmonic_Traffic\n")
		if err := os.WriteFile(cfg, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for trial := range *coldStarts {
		first := rand.IntN(2)
		gap := time.Duration(rand.IntN(201)) * time.Millisecond
		p.startBoth(first, gap)
		master := p.waitOneMaster(15 * time.Second)
		if master != 0 {
			t.Errorf("cold start %d (lb%d first, lb%d %s later): lb%d became master, want lb1 (priority 150)",
				trial, first+1, 2-first, gap, master+1)
		} else {
			t.Logf("cold start %d (lb%d first, lb%d %s later): lb1 master", trial, first+1, 2-first, gap)
		}
		p.stopBoth()
	}

	// The secondary alone.
	t0 := time.Now()
	p.startBoth(1, -1)
	p.waitHA(1, 10*time.Second, "master role of a lone secondary", func(o haOverview) bool { return o.HA.Role == "master" })
	took := time.Since(t0)
	t.Logf("a lone secondary became master %s after its start", took.Round(time.Millisecond))
	if took > 6*time.Second {
		t.Errorf("a lone secondary took %s to take the VIPs, want a few seconds", took)
	}
}

// startBoth starts medialb on node first, and gap later on the other one (gap
// < 0: only on first), without waiting in between.
func (p *pair) startBoth(first int, gap time.Duration) {
	t := p.e.t
	t.Helper()
	p.runs++
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i := range 2 {
		if i != first && gap < 0 {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if i != first {
				time.Sleep(gap)
			}
			log := filepath.Join(p.e.dir, fmt.Sprintf("lb%d-%d.log", i+1, p.runs))
			pr, err := lbproc.Start(p.e.lab, p.e.lab.LBs[i], filepath.Join(p.e.bin, "medialb"), p.cfgs[i], log, nil)
			if err == nil {
				p.procs[i] = pr
				err = pr.WaitStarted(context.Background(), 20*time.Second)
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("start lb%d: %v", i+1, err)
		}
	}
}

// waitOneMaster waits until one node is master and the other its backup, and
// returns the master's index.
func (p *pair) waitOneMaster(timeout time.Duration) int {
	t := p.e.t
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last [2]string
	for time.Now().Before(deadline) {
		for i := range 2 {
			if o, err := p.overview(i); err == nil {
				last[i] = o.HA.Role + "/" + o.HA.PeerState
			}
		}
		switch {
		case last[0] == "master/backup" && last[1] == "backup/master":
			return 0
		case last[1] == "master/backup" && last[0] == "backup/master":
			return 1
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("no master with a backup within %s (lb1 %s, lb2 %s)", timeout, last[0], last[1])
	return -1
}

// stopBoth stops both nodes at once.
func (p *pair) stopBoth() {
	var wg sync.WaitGroup
	for i, pr := range p.procs {
		if pr == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := pr.Stop(15 * time.Second); err != nil {
				p.e.t.Errorf("stop lb%d: %v", i+1, err)
			}
		}()
	}
	wg.Wait()
	p.procs = [2]*lbproc.Process{}
}
