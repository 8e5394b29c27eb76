package main

import (
	"os"
	"strings"
	"testing"
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
