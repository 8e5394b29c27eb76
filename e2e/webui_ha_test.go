package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/medialb/medialb/api"
	"github.com/medialb/medialb/lab"
	"github.com/medialb/medialb/lab/lbproc"
)

// TestHAApplyAndRestartKeepalived: a change applied through the config API on
// the primary runs on the secondary too; Maintenance's "restart keepalived" on the
// master of a pair stops its keepalived, which medialb starts again; the peer
// takes the VIPs over, and the old master's alert mail reports the failover.
func TestHAApplyAndRestartKeepalived(t *testing.T) {
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

	// A change applied on the primary reaches the secondary as every reload's does.
	call := func(method, path, body string) (int, string) {
		req, _ := http.NewRequestWithContext(ctx, method, "https://"+e.lab.LBs[0].Addr4.String()+":9443"+path, strings.NewReader(body))
		req.SetBasicAuth(apUser, apPass)
		resp, err := e.lab.HTTPClient(e.lab.Client.Sources4[0]).Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := call("PUT", "/api/v1/config/services/Harmonic_Traffic/real-servers/HT2", `{"name": "HT2", "address": "192.168.94.116", "weight": 50}`); code != 200 {
		t.Fatalf("stage HT2's weight: %d %s", code, body)
	}
	if code, body := call("POST", "/api/v1/config/apply", ""); code != 200 {
		t.Fatalf("apply: %d %s", code, body)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		_, body, err := p.procs[1].API(ctx, "GET", "9443", "/api/v1/overview", apUser, apPass)
		var ov api.Overview
		if err == nil && json.Unmarshal(body, &ov) == nil && realServer(t, ov, "Harmonic_Traffic", "HT2").Weight == 50 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("lb2 does not run HT2 with weight 50 15 s after the apply on lb1: %s %v", body, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("HT2's weight applied on lb1 runs on lb2")

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
