package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/medialb/medialb/lab/lbproc"
)

// writeConfig rewrites the example onto the lab: the load balancer's interface, a
// state directory of the demo's own, the API on the load balancer's address, and
// health checks every second so that the failover shows within seconds.
func (d *demo) writeConfig() (string, error) {
	src, err := os.ReadFile(d.example)
	if err != nil {
		return "", err
	}
	lb := d.lab.LBs[0]
	set := map[string]string{
		"node.interface": lb.Link,
		"node.state_dir": filepath.Join(d.tmp, "state"),
		// The lab's load balancer port is a veth whose bridge-side peer gets an
		// XDP_PASS program (see run), so the steering program's XDP_TX fast path works;
		// medialb cannot see the peer, so "auto" would leave it off on veth.
		"node.xdp_fastpath": "on",
		"api.listen":        lb.Addr4.String() + ":9443",
	}
	// Harmonic_Management's servers report their load (vossim's agents).
	set["virtual_services.0.feedback.protocol"] = "agent"
	set["virtual_services.0.feedback.interval"] = "1s"
	for i := 0; i < 2; i++ {
		p := fmt.Sprintf("virtual_services.%d.health_check.", i)
		set[p+"interval"] = "1s"
		set[p+"timeout"] = "500ms"
	}
	out, err := rewrite(src, set)
	if err != nil {
		return "", fmt.Errorf("rewrite %s: %w", d.example, err)
	}
	path := filepath.Join(d.tmp, "harmonic-vos.yaml")
	for k, v := range set {
		fmt.Printf("   %-42s %s\n", k+":", v)
	}
	return path, os.WriteFile(path, out, 0o600)
}

func (d *demo) check(cfg string) error {
	out, err := exec.Command(filepath.Join(d.bin, "medialb"), "check", "--config", cfg).CombinedOutput()
	fmt.Printf("   $ medialb check --config %s\n   %s", cfg, out)
	if err != nil {
		return fmt.Errorf("medialb check: %w", err)
	}
	return nil
}

func interesting(ev lbproc.Event) bool {
	switch ev["message"] {
	case "real server state", "medialb running", "layer-4 dataplane attached", "configuration reloaded",
		"stopped; interface left as it was", "dataplane counters", "real server MAC learned", "virtual service has real servers again",
		"real server set up right for direct routing again":
		return true
	}
	return false
}

func render(ev lbproc.Event) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%-5v %v", ev["level"], ev["message"])
	for _, k := range []string{"service", "server", "state", "reason", "cause", "address", "mac", "vip", "xdp_mode", "zero_copy", "workers",
		"received", "forwarded", "fastpath_tx", "malformed", "no_service", "no_server", "mac_unresolved", "tx_full", "error", "problem", "summary"} {
		if v, ok := ev[k]; ok {
			fmt.Fprintf(&b, " %s=%v", k, v)
		}
	}
	return b.String()
}

// echo prints the log lines a person wants to see as they come.
func echo(ev lbproc.Event) {
	if lvl, _ := ev["level"].(string); lvl == "warn" || lvl == "error" || lvl == "raw" || interesting(ev) {
		fmt.Printf("   medialb| %s\n", render(ev))
	}
}
