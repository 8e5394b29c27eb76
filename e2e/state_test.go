package e2e

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/medialb/medialb/lab"
	"github.com/medialb/medialb/lab/lbproc"
)

// readOnly makes dirs read-only even for root (the immutable attribute) until the
// test ends; it skips when the file system cannot do that.
func readOnly(t *testing.T, dirs ...string) {
	t.Helper()
	for _, d := range dirs {
		if out, err := exec.Command("chattr", "+i", d).CombinedOutput(); err != nil {
			t.Skipf("chattr +i %s: %v %s (the file system has no immutable attribute)", d, err, out)
		}
		t.Cleanup(func() {
			if out, err := exec.Command("chattr", "-i", d).CombinedOutput(); err != nil {
				t.Errorf("chattr -i %s: %v %s", d, err, out)
			}
		})
	}
}

// TestHAUnhealthyReadOnlyStateDir: the master's state_dir turns read-only (a full
// or remounted disk), then its XDP program is detached. medialb cannot write the
// health file keepalived follows, so it stops keepalived: the VIPs go to the
// backup all the same, and the unhealthy node holds none.
func TestHAUnhealthyReadOnlyStateDir(t *testing.T) {
	e, p := startedPair(t, 4)
	lb := e.lab.LBs[0]
	state := filepath.Join(e.dir, lb.Name)
	readOnly(t, state, filepath.Join(state, "ha"))
	mark := p.procs[0].Mark()
	detachXDP(t, lb)
	ctx := context.Background()
	if _, err := p.procs[0].WaitFor(ctx, mark, 5*time.Second, "health file not written", func(ev lbproc.Event) bool {
		return strings.HasPrefix(ev.Msg(), "HA: health not passed to keepalived")
	}); err != nil {
		t.Fatal(err)
	}
	p.waitHA(1, 10*time.Second, "master role after the unhealthy master could not write its health file", func(o haOverview) bool {
		return o.HA.Role == "master"
	})
	deadline := time.Now().Add(5 * time.Second)
	for p.hasVIP(0, haVIP4) {
		if time.Now().After(deadline) {
			t.Fatalf("the unhealthy lb1 keeps %s with its state_dir read-only", haVIP4)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !p.hasVIP(1, haVIP4) {
		t.Errorf("lb2 became master but does not hold %s", haVIP4)
	}
}

// TestStateDirLocked: a second medialb on the same state_dir exits at once with a
// message naming the first; after kill -9 of the first, a new one starts.
func TestStateDirLocked(t *testing.T) {
	e := newEnv(t, "sl", lab.Options{})
	first := e.start(config(l7Service))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cmd := lab.Exec(e.lab.LBs[0].NS, filepath.Join(e.bin, "medialb"), "run", "--config", e.cfg)
	t0 := time.Now()
	out, err := exec.CommandContext(ctx, cmd.Path, cmd.Args[1:]...).CombinedOutput()
	want := fmt.Sprintf("state_dir %s is in use by medialb pid %d (node lb1)", filepath.Join(e.dir, "state"), first.Cmd.Process.Pid)
	if err == nil || ctx.Err() != nil || !strings.Contains(string(out), want) {
		t.Fatalf("second medialb on the state_dir: %v after %s, output:\n%s\nwant an exit saying %q", err, time.Since(t0), out, want)
	}
	if ok, err := first.Exited(); ok {
		t.Fatalf("the first medialb exited: %v", err)
	}
	first.Kill()
	again, err := lbproc.Start(e.lab, e.lab.LBs[0], filepath.Join(e.bin, "medialb"), e.cfg, filepath.Join(e.dir, "again.log"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := again.Stop(15 * time.Second); err != nil {
			t.Errorf("medialb after the restart: %v", err)
		}
	}()
	if err := again.WaitStarted(context.Background(), 20*time.Second); err != nil {
		t.Fatalf("restart after kill -9: %v\n%s", err, again.Log())
	}
}

// TestSignalsTermAfterHUPs: 50 SIGHUPs and then a SIGTERM: medialb exits cleanly
// within its timeout (SIGTERM was lost behind the queued SIGHUPs once).
func TestSignalsTermAfterHUPs(t *testing.T) {
	e := newEnv(t, "sg", lab.Options{})
	p := e.start(config(l7Service))
	for range 50 {
		if err := p.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
	}
	t0 := time.Now()
	if err := p.Stop(15 * time.Second); err != nil {
		t.Fatalf("after 50 SIGHUPs and a SIGTERM: %v", err)
	}
	if ev, err := p.WaitFor(context.Background(), 0, time.Second, "clean stop", func(ev lbproc.Event) bool {
		return ev.Msg() == "stopped; interface left as it was"
	}); err != nil {
		t.Errorf("%v (last %v)", err, ev)
	}
	t.Logf("exited %s after SIGTERM", time.Since(t0).Round(time.Millisecond))
}

// A second SIGTERM while medialb shuts down (a service manager or a script that
// repeats itself) does not cut the shutdown short: medialb still takes its VIPs
// down and exits cleanly.
func TestSignalsSecondTermDuringShutdown(t *testing.T) {
	e := newEnv(t, "s2", lab.Options{})
	p := e.start(config(l7Service))
	lb := e.lab.LBs[0]
	hasVIP := func() bool {
		out, err := lab.Exec(lb.NS, "ip", "-br", "addr", "show", "dev", lb.Link).CombinedOutput()
		if err != nil {
			t.Fatalf("ip addr on %s: %v %s", lb.Name, err, out)
		}
		return strings.Contains(string(out), vip7.String()+"/")
	}
	if !hasVIP() {
		t.Fatalf("VIP %s not up on %s after start", vip7, lb.Link)
	}
	for range 2 {
		if err := p.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Millisecond)
	}
	if err := p.Stop(15 * time.Second); err != nil {
		t.Fatalf("after two SIGTERMs: %v", err)
	}
	if ev, err := p.WaitFor(context.Background(), 0, time.Second, "clean stop", func(ev lbproc.Event) bool {
		return ev.Msg() == "stopped; interface left as it was"
	}); err != nil {
		t.Errorf("%v (last %v)", err, ev)
	}
	if hasVIP() {
		t.Errorf("VIP %s still on %s after the shutdown", vip7, lb.Link)
	}
}
