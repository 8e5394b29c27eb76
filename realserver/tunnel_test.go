package realserver

import (
	"bytes"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/medialb/medialb/config"
)

func TestSetupTunnel(t *testing.T) {
	cfg, err := config.Parse("t.yaml", []byte(`node: { interface: eth0 }
virtual_services:
  - name: Media
    address: 192.168.94.110
    ports: "1935,554"
    layer: 4
    protocol: tcp+udp
    tunnel: gue
    gue_port: 5555
    real_servers:
      - { name: DR1, address: 192.168.94.115 }
      - { name: T1, address: 10.9.0.5, forwarding: tunnel }
  - name: Media6
    address: fd00:94::110
    ports: "554"
    layer: 4
    forwarding: tunnel
    real_servers: [{ name: T6, address: "2001:db8::5" }]
`))
	if err != nil {
		t.Fatal(err)
	}
	// The direct-routing setup leaves the tunnelled servers out.
	if ts := Targets(cfg); len(ts) != 1 || ts[0].Server != "DR1" {
		t.Fatalf("direct-routing targets %+v, want DR1 only", ts)
	}
	var b bytes.Buffer
	if err := SetupTunnel(&b, cfg, "linux"); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"# T1 (10.9.0.5): tunnelled real server of Media\n",
		"ip link add name mlbtun4 type ipip external\n",
		"ip fou add port 5555 gue\n",
		"ip addr add 192.168.94.110/32 dev mlbtun4\n",
		"sysctl -w net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.mlbtun4.rp_filter=0\n",
		"# T6 (2001:db8::5): tunnelled real server of Media6\n",
		"ip -6 link add name mlbtun6 type ip6tnl external mode any\n",
		"ip addr add fd00:94::110/128 dev mlbtun6\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("setup lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "DR1") {
		t.Errorf("the direct-routing server is in the tunnel setup:\n%s", out)
	}
	cmds := TunnelCommands(cfg, netip.MustParseAddr("10.9.0.5"))
	if len(cmds) == 0 || slices.ContainsFunc(cmds, func(c string) bool { return strings.HasPrefix(c, "#") }) {
		t.Fatalf("commands %q", cmds)
	}
	b.Reset()
	if err := SetupTunnel(&b, cfg, "windows"); err != nil || !strings.Contains(b.String(), "Windows cannot decapsulate") {
		t.Fatalf("windows: %v %q", err, b.String())
	}
}
