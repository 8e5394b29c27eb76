package config

import (
	"fmt"
	"strings"
	"testing"

	"github.com/medialb/medialb/tables"
)

// limitsConfig has n layer-4 services of ports "ports" (tcp+udp) on addresses
// 192.0.2.1, .2, ...; capacity is the persistence capacity of the first.
func limitsConfig(n int, ports string, capacity int) string {
	var b strings.Builder
	b.WriteString("node: { name: lb1, interface: eth0 }\nvirtual_services:\n")
	for i := range n {
		fmt.Fprintf(&b, "  - name: s%d\n    address: 192.0.2.%d\n    ports: %q\n    layer: 4\n    protocol: tcp+udp\n", i, i+1, ports)
		if i == 0 {
			fmt.Fprintf(&b, "    persistence: { mode: source-ip, timeout: 5m, capacity: %d }\n", capacity)
		}
		b.WriteString("    real_servers: [{ name: a, address: 192.0.2.200 }]\n")
	}
	return b.String()
}

// TestLimits: what the tables or the dataplane would refuse, check refuses first,
// with the line of the service; what they accept, check accepts.
func TestLimits(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want string // "" for a valid file
	}{
		{"capacity at the tables' limit", limitsConfig(1, "80", tables.MaxAffinityCap), ""},
		{"capacity above the tables' limit", limitsConfig(1, "80", tables.MaxAffinityCap+1),
			fmt.Sprintf("t.yaml:8: virtual_services[0].persistence.capacity: %d is out of range 1..%d", tables.MaxAffinityCap+1, tables.MaxAffinityCap)},
		// 4 services of 16384 ports on two protocols: 4 * 2 * (16384 + 1) keys fit.
		{"steering keys that fit", limitsConfig(4, "1-16383", 1000), ""},
		{"more steering keys than the map holds", limitsConfig(5, "1-16383", 1000),
			"t.yaml:28: virtual_services[4]: the layer-4 services need 163840 XDP steering keys (one per port and protocol, and per address), more than the 131072 the map holds (the excess starts here)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("t.yaml", []byte(tt.yaml))
			if tt.want == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v\nwant %q", err, tt.want)
			}
		})
	}
}
