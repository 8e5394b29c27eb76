package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/medialb/medialb/lab"
	"github.com/medialb/medialb/lab/lbproc"
)

// TestRestartKeepalivedFromTheAPI: Maintenance's "restart keepalived" on the
// master of a pair stops its keepalived, which medialb starts again; the peer
// takes the VIPs over, and the old master's alert mail reports the failover.
func TestRestartKeepalivedFromTheAPI(t *testing.T) {
	if _, err := exec.LookPath("keepalived"); err != nil && os.Geteuid() == 0 {
		t.Fatalf("keepalived is not installed (apt-get install keepalived; make test's deps install it): %v", err)
	}
	e := newEnv(t, "hk", lab.Options{LoadBalancers: 2, Clients: 4})
	mail, _ := alertSinks(t, e.lab)
	p := newPair(e)
	cfg, err := os.ReadFile(p.cfgs[0])
	if err != nil {
		t.Fatal(err)
	}
	a := e.lab.Client.Addr4
	os.WriteFile(p.cfgs[0], append(cfg, fmt.Sprintf(alertsSection, a, a)...), 0o600)
	p.start(0)
	p.start(1)
	p.waitHA(0, 15*time.Second, "master role with a backup peer", func(o haOverview) bool { return o.HA.Role == "master" && o.HA.PeerState == "backup" })

	ctx := context.Background()
	mark := p.procs[0].Mark()
	code, body, err := p.procs[0].API(ctx, "POST", "9443", "/api/v1/maintenance/restart-keepalived", apUser, apPass)
	if err != nil || code != 200 || !strings.Contains(string(body), "stopped") {
		t.Fatalf("restart keepalived: %d %s %v", code, body, err)
	}
	if _, err := p.procs[0].WaitFor(ctx, mark, 10*time.Second, "keepalived started again", func(ev lbproc.Event) bool {
		return ev.Msg() == "keepalived started"
	}); err != nil {
		t.Fatal(err)
	}
	p.waitHA(1, 10*time.Second, "lb2 master after lb1's keepalived restarted", func(o haOverview) bool { return o.HA.Role == "master" })

	want := "HA failover: this node is now stopped (was master): keepalived stopped"
	var got string
	for deadline := time.Now().Add(15 * time.Second); got == "" && time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		for _, m := range mail.Mails() {
			if strings.Contains(m.Data, want) {
				got = m.Data
			}
		}
	}
	if got == "" {
		t.Fatalf("no alert mail saying %q: %+v", want, mail.Mails())
	}
	t.Logf("alert mail:\n%s", got)
}
