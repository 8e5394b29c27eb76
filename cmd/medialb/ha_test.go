package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/medialb/medialb/config"
)

func TestHACheck(t *testing.T) {
	primary, secondary := "../../examples/harmonic-vos-ha-primary.yaml", "../../examples/harmonic-vos-ha-secondary.yaml"
	data, err := os.ReadFile(secondary)
	if err != nil {
		t.Fatal(err)
	}
	heavier := writeFile(t, "heavier.yaml", strings.Replace(string(data), "name: HT1, address: 192.168.94.115, weight: 100", "name: HT1, address: 192.168.94.115, weight: 300", 1))
	if heavier == "" || !strings.Contains(string(mustRead(t, heavier)), "weight: 300") {
		t.Fatal("test file not changed; the example moved")
	}
	tests := []struct {
		name    string
		args    []string
		code    int
		stdout  string
		stderrs []string
	}{
		{"the example pair", []string{"ha-check", "--config", primary, "--peer-config", secondary}, 0,
			"ok: the pair agrees (2 virtual services, router_id 51, priorities 150 and 100)", nil},
		{"a weight differs", []string{"ha-check", "--config", primary, "--peer-config", heavier}, 1,
			"", []string{`virtual service "Harmonic_Traffic": real server #1 differs`}},
		{"same file twice", []string{"ha-check", "--config", primary, "--peer-config", primary}, 1,
			"", []string{"ha.priority: both 150", "ha.peer: both"}},
		{"peer missing", []string{"ha-check", "--config", primary}, 2, "", []string{"--peer-config FILE are required"}},
		{"invalid file", []string{"ha-check", "--config", primary, "--peer-config", writeFile(t, "bad.yaml", "node: [\n")}, 1, "", []string{"bad.yaml:"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := run(t, "", tt.args...)
			if code != tt.code || !strings.Contains(stdout, tt.stdout) {
				t.Errorf("exit %d, stdout %q; want %d, %q (stderr %q)", code, stdout, tt.code, tt.stdout, stderr)
			}
			for _, w := range tt.stderrs {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr %q lacks %q", stderr, w)
				}
			}
		})
	}
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestCheckPeerConfig runs `medialb check --config A --peer-config B`, also on
// a secondary that runs the virtual_services its primary pushed.
func TestCheckPeerConfig(t *testing.T) {
	primary, secondary := "../../examples/harmonic-vos-ha-primary.yaml", "../../examples/harmonic-vos-ha-secondary.yaml"
	pdata, sdata := mustRead(t, primary), mustRead(t, secondary)
	heavyText := strings.Replace(string(pdata), "name: HT1, address: 192.168.94.115, weight: 100", "name: HT1, address: 192.168.94.115, weight: 300", 1)
	heavy := writeFile(t, "primary.yaml", heavyText)
	state := t.TempDir()
	sec := writeFile(t, "secondary.yaml", strings.Replace(string(sdata), "  name: lb2\n", "  name: lb2\n  state_dir: "+state+"\n", 1))
	if !strings.Contains(heavyText, "weight: 300") || !strings.Contains(string(mustRead(t, sec)), state) {
		t.Fatal("test files not changed; the examples moved")
	}

	if code, out, errOut := run(t, "", "check", "--config", primary, "--peer-config", secondary); code != 0 || !strings.Contains(out, "ok: the pair agrees") {
		t.Errorf("the example pair: exit %d %q %q", code, out, errOut)
	}
	if code, _, errOut := run(t, "", "check", "--config", sec, "--peer-config", heavy); code != 1 || !strings.Contains(errOut, `virtual service "Harmonic_Traffic": real server #1 differs`) {
		t.Errorf("a weight differs: exit %d %q", code, errOut)
	}

	// The primary pushed its services: the secondary runs them, and agrees.
	doc, err := config.ServicesDocument([]byte(heavyText), config.Primary{Node: "lb1", Priority: 150})
	if err != nil {
		t.Fatal(err)
	}
	overlay := filepath.Join(state, config.OverlayFile)
	if err := os.MkdirAll(filepath.Dir(overlay), 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(overlay, doc, 0o600); err != nil {
		t.Fatal(err)
	}
	if code, out, errOut := run(t, "", "check", "--config", sec, "--peer-config", heavy); code != 0 || !strings.Contains(out, "the pair agrees") || !strings.Contains(out, "pushed by lb1") {
		t.Errorf("after the push: exit %d %q %q", code, out, errOut)
	}
	if code, out, _ := run(t, "", "check", "--config", sec); code != 0 || !strings.Contains(out, "virtual_services pushed by lb1") {
		t.Errorf("check of the secondary: exit %d %q", code, out)
	}
	// ha-check reads this node's configuration the same way.
	if code, _, _ := run(t, "", "ha-check", "--config", sec, "--peer-config", heavy); code != 0 {
		t.Errorf("ha-check after the push: exit %d", code)
	}
	// A pushed file this node cannot run is reported with its lines.
	if err := os.WriteFile(overlay, append(doc, "  - name: [\n"...), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, errOut := run(t, "", "check", "--config", sec); code != 1 || !strings.Contains(errOut, overlay+":") || !strings.Contains(errOut, "remove "+overlay) {
		t.Errorf("broken pushed file: exit %d %q", code, errOut)
	}
}
