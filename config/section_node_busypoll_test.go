package config

import (
	"strings"
	"testing"
)

// TestBusyPoll: node.busy_poll is off by default, on with "on", and anything but on
// or off (a YAML boolean included) is an error at its line.
func TestBusyPoll(t *testing.T) {
	for _, tt := range []struct {
		line, wantErr string
		want          bool
	}{
		{"", "", false},
		{"  busy_poll: on\n", "", true},
		{"  busy_poll: off\n", "", false},
		{"  busy_poll: true\n", "t.yaml:3: node.busy_poll: write on or off (not true)", false},
		{"  busy_poll: fast\n", "t.yaml:3: node.busy_poll", false},
	} {
		cfg, err := Parse("t.yaml", []byte("node:\n  interface: eth0\n"+tt.line+"virtual_services:\n"+l4))
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%q: error %v, want %q", tt.line, err, tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tt.line, err)
			continue
		}
		if cfg.Node.BusyPoll != tt.want {
			t.Errorf("%q: BusyPoll %v, want %v", tt.line, cfg.Node.BusyPoll, tt.want)
		}
	}
}
