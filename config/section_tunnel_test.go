package config

import (
	"errors"
	"strings"
	"testing"
)

func TestTunnelConfig(t *testing.T) {
	svc := func(extra string) string {
		return head + `  - name: media
    address: 192.0.2.11
    ports: 554
    layer: 4
` + extra + `    real_servers: [{name: a, address: 198.51.100.21}]
`
	}
	tests := []struct {
		name    string
		input   string
		want    []string // problems; nil: valid
		fw      Forwarding
		tunnel  Encap
		guePort uint16
	}{
		{"default direct-routing", svc(""), nil, DirectRouting, "", 0},
		{"tunnel defaults to ipip", svc("    forwarding: tunnel\n"), nil, Tunnel, EncapIPIP, 0},
		{"ipip", svc("    forwarding: tunnel\n    tunnel: ipip\n"), nil, Tunnel, EncapIPIP, 0},
		{"gue default port", svc("    forwarding: tunnel\n    tunnel: gue\n"), nil, Tunnel, EncapGUE, DefaultGUEPort},
		{"gue port", svc("    forwarding: tunnel\n    tunnel: gue\n    gue_port: 5555\n"), nil, Tunnel, EncapGUE, 5555},
		{"tunnel without forwarding", svc("    tunnel: ipip\n"), []string{
			"t.yaml:8: virtual_services[0].tunnel: only with forwarding: tunnel (of the service or of a real server; this service uses direct-routing)"}, "", "", 0},
		{"gue_port with ipip", svc("    forwarding: tunnel\n    gue_port: 6080\n"), []string{
			"t.yaml:9: virtual_services[0].gue_port: only with tunnel: gue (this service uses ipip)"}, "", "", 0},
		{"gue_port out of range", svc("    forwarding: tunnel\n    tunnel: gue\n    gue_port: 0\n"), []string{
			"t.yaml:10: virtual_services[0].gue_port: 0 is out of range 1..65535"}, "", "", 0},
		{"ip6ip6 spelled out", svc("    forwarding: tunnel\n    tunnel: ip6ip6\n"), []string{
			`t.yaml:9: virtual_services[0].tunnel: "ip6ip6": write ipip (the IPv6 forms follow the addresses' families)`}, "", "", 0},
		{"unknown encap", svc("    forwarding: tunnel\n    tunnel: vxlan\n"), []string{
			`t.yaml:9: virtual_services[0].tunnel: "vxlan" is not an encapsulation (ipip or gue)`}, "", "", 0},
		{"tun", svc("    forwarding: tun\n"), []string{
			`t.yaml:8: virtual_services[0].forwarding: "tun" is not a forwarding method (did you mean "tunnel"? the encapsulation goes in tunnel: ipip | gue)`}, "", "", 0},
		{"layer 7 tunnel", head + `  - name: web
    address: 192.0.2.10
    ports: 80
    layer: 7
    forwarding: tunnel
    real_servers: [{name: a, address: 198.51.100.21}]
`, []string{`t.yaml:8: virtual_services[0].forwarding: "tunnel": layer 7 always uses snat (leave forwarding out)`}, "", "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			testTunnelConfig(t, tt.input, tt.want, tt.fw, tt.tunnel, tt.guePort)
		})
	}
}

func testTunnelConfig(t *testing.T, input string, want []string, fw Forwarding, tunnel Encap, guePort uint16) *Config {
	t.Helper()
	tt := struct {
		want    []string
		fw      Forwarding
		tunnel  Encap
		guePort uint16
	}{want, fw, tunnel, guePort}
	{
		{
			cfg, err := Parse("t.yaml", []byte(input))
			if tt.want != nil {
				var errs Errors
				if !errors.As(err, &errs) {
					t.Fatalf("want problems %q, got %v", tt.want, err)
				}
				if got := errs.Lines(); strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
					t.Fatalf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
				}
				return nil
			}
			if err != nil {
				t.Fatal(err)
			}
			s := cfg.Services[0]
			if s.Forwarding != tt.fw || s.Tunnel != tt.tunnel || s.GUEPort != tt.guePort {
				t.Fatalf("forwarding %q tunnel %q gue_port %d, want %q %q %d", s.Forwarding, s.Tunnel, s.GUEPort, tt.fw, tt.tunnel, tt.guePort)
			}
			return cfg
		}
	}
}

// A service may mix servers on the segment (direct-routing) and behind routers
// (tunnel), and a tunnelled server may be of the other family.
func TestServerForwarding(t *testing.T) {
	mixed := head + `  - name: media
    address: 192.0.2.11
    ports: 554
    layer: 4
    tunnel: gue
    real_servers:
      - { name: near, address: 192.0.2.21 }
      - { name: far, address: 2001:db8::21, forwarding: tunnel }
`
	cfg := testTunnelConfig(t, mixed, nil, DirectRouting, EncapGUE, DefaultGUEPort)
	rs := cfg.Services[0].RealServers
	if rs[0].Forwarding != DirectRouting || rs[1].Forwarding != Tunnel || !cfg.Services[0].Tunnels() {
		t.Fatalf("servers' forwarding %q %q", rs[0].Forwarding, rs[1].Forwarding)
	}
	testTunnelConfig(t, head+`  - name: media
    address: 192.0.2.11
    ports: 554
    layer: 4
    real_servers:
      - { name: a, address: 192.0.2.21, forwarding: tunel }
      - { name: b, address: 2001:db8::21 }
  - name: web
    address: 192.0.2.12
    ports: 80
    layer: 7
    real_servers: [{ name: c, address: 192.0.2.21, forwarding: tunnel }]
`, []string{
		`t.yaml:9: virtual_services[0].real_servers[0].forwarding: "tunel" is not a forwarding method for a real server (direct-routing, tunnel) (did you mean "tunnel"?)`,
		`t.yaml:10: virtual_services[0].real_servers[1].address: 2001:db8::21 is IPv6 but the service address 192.0.2.11 is IPv4 (one family per service)`,
		`t.yaml:15: virtual_services[1].real_servers[0].forwarding: applies to layer 4 only (layer 7 always uses snat)`,
	}, "", "", 0)
}
