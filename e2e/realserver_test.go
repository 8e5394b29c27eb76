package e2e

import (
	"bytes"
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/medialb/medialb/api"
	"github.com/medialb/medialb/lab"
	"github.com/medialb/medialb/realserver"
)

// TestRealServerARPProblem: HT2 holds the VIPs on eth0 instead of lo (it
// answers ARP and neighbour solicitations for them), HT3 holds none. The
// realserver-check command and a running medialb's overview both find
// them, with the right fix; HT1, set up as the guide says, is ok.
func TestRealServerARPProblem(t *testing.T) {
	e := newEnv(t, "rs", lab.Options{Clients: 2, Servers: []lab.ServerSpec{{Name: "HT1", Host: 115}, {Name: "HT2", Host: 116}, {Name: "HT3", Host: 117}}})
	if err := e.lab.MisplaceVIPs("HT2", true); err != nil {
		t.Fatal(err)
	}
	if err := e.lab.MisplaceVIPs("HT3", false); err != nil {
		t.Fatal(err)
	}
	servers := []string{"{ name: HT1, address: 192.168.94.115 }", "{ name: HT2, address: 192.168.94.116 }", "{ name: HT3, address: 192.168.94.117 }"}
	servers6 := []string{`{ name: HT1, address: "fd94::115" }`, `{ name: HT2, address: "fd94::116" }`, `{ name: HT3, address: "fd94::117" }`}
	cfg := e.writeConfig(config(traffic().withServers(servers...), traffic6().withServers(servers6...)))
	lb := e.lab.LBs[0]

	want := map[string]string{"HT1": "", "HT2": realserver.ProblemAnswersARP, "HT3": realserver.ProblemNoVIP}
	want6 := map[string]string{"HT1": "", "HT2": realserver.ProblemAnswersND, "HT3": realserver.ProblemNoVIP}
	t.Run("realserver-check", func(t *testing.T) {
		cmd := lab.Exec(lb.NS, filepath.Join(e.bin, "medialb"), "realserver-check", "--config", cfg, "--wait", "700ms")
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		t.Logf("realserver-check:\n%s%s", out.String(), errb.String())
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != 1 {
			t.Errorf("exit %v, want 1 (servers with problems)", err)
		}
		lines := strings.Split(strings.TrimSpace(out.String()), "\n")
		if len(lines) != 6 {
			t.Fatalf("%d lines, want one per real server and service (6)", len(lines))
		}
		for _, line := range lines {
			svc, rest, _ := strings.Cut(line, " ")
			name, _, _ := strings.Cut(rest, " ")
			w := want[name]
			if svc == "Harmonic_Traffic6" {
				w = want6[name]
			}
			if w == "" && !strings.HasSuffix(line, ": ok") || w != "" && (!strings.Contains(line, ": "+w) || !strings.Contains(line, "fix: ")) {
				t.Errorf("line %q, want %q and its fix", line, cmp(w, "ok"))
			}
		}
		if !strings.Contains(out.String(), "ip addr add 192.168.94.110/32 dev lo") {
			t.Error("the fix for HT3 does not give the command")
		}
	})

	t.Run("realserver-setup", func(t *testing.T) {
		out, err := lab.Exec(lb.NS, filepath.Join(e.bin, "medialb"), "realserver-setup", "--config", cfg, "--os", "linux").CombinedOutput()
		if err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		for _, w := range []string{"# HT2 (192.168.94.116): real server of Harmonic_Traffic", "net.ipv4.conf.all.arp_ignore=1", "ip addr add 192.168.94.110/32 dev lo", "ip addr add fd94::110/128 dev lo"} {
			if !strings.Contains(string(out), w) {
				t.Errorf("setup lacks %q:\n%s", w, out)
			}
		}
	})

	t.Run("overview", func(t *testing.T) {
		e.start(config(traffic().withServers(servers...), traffic6().withServers(servers6...)))
		start := time.Now()
		for svc, w := range map[string]map[string]string{"Harmonic_Traffic": want, "Harmonic_Traffic6": want6} {
			for name, problem := range w {
				rs := e.waitServer(svc, name, 10*time.Second, "checked", func(r api.RealServer) bool {
					return problem == "" || len(r.Problems) > 0
				})
				if problem == "" && len(rs.Problems) != 0 || problem != "" && !strings.HasPrefix(rs.Problems[0], problem) {
					t.Errorf("%s/%s problems %q, want %q", svc, name, rs.Problems, problem)
				}
			}
		}
		t.Logf("flagged %v after medialb started", time.Since(start).Round(100*time.Millisecond))
		log := e.proc.Log()
		if !strings.Contains(log, "real server misconfigured for direct routing") {
			t.Error("the log does not say which real servers are misconfigured")
		}
		code, body := e.apiDo("GET", "/metrics")
		if code != 200 || !strings.Contains(string(body), `medialb_real_server_problems{server="HT3",service="Harmonic_Traffic"} 1`) {
			t.Errorf("/metrics lacks HT3's problem: %d", code)
		}

		// Fixed as the problem says: the problems go.
		for _, s := range []string{"HT2", "HT3"} {
			if err := e.lab.RestoreVIPs(s); err != nil {
				t.Fatal(err)
			}
		}
		for _, svc := range []string{"Harmonic_Traffic", "Harmonic_Traffic6"} {
			for _, name := range []string{"HT2", "HT3"} {
				e.waitServer(svc, name, 10*time.Second, "without problems once fixed", func(r api.RealServer) bool { return len(r.Problems) == 0 })
			}
		}
	})
}

func cmp(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
