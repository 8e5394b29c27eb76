package config

import (
	"strings"
	"testing"
	"time"
)

func TestBGP(t *testing.T) {
	head := "node:\n  interface: eth0\nbgp:\n"
	svc := "virtual_services:\n  - {name: T, address: 192.0.2.110, ports: \"1935\", layer: 4, protocol: tcp, health_check: {type: none}, real_servers: [{name: A, address: 192.0.2.115}]}\n"
	peer := "  peers:\n    - { address: 192.0.2.1, asn: 65000 }\n"
	tests := []struct {
		name, body string
		want       []string // problems; empty: valid
		check      func(*BGP) bool
	}{
		{"full", "  asn: 65010\n  router_id: 192.0.2.2\n  listen_port: 1179\n  peers:\n    - { address: 192.0.2.1, asn: 65000, hold_time: 3s, password: s3cret, port: 1790 }\n    - { address: \"2001:db8::1\", asn: 65010 }\n  communities: [\"65010:100\", \"0:1\"]\n  med: 50\n  local_pref: 200\n", nil,
			func(b *BGP) bool {
				return b.ASN == 65010 && b.RouterID.String() == "192.0.2.2" && b.ListenPort == 1179 && len(b.Peers) == 2 &&
					b.Peers[0].HoldTime == 3*time.Second && b.Peers[0].Password == "s3cret" && b.Peers[0].Port == 1790 &&
					b.Peers[1].Port == DefaultBGPPort && b.Peers[1].HoldTime == DefaultBGPHoldTime &&
					len(b.Communities) == 2 && b.Communities[0] == 65010<<16|100 && b.Communities[1] == 1 &&
					*b.MED == 50 && *b.LocalPref == 200
			}},
		{"defaults", "  asn: 4200000001\n  router_id: 192.0.2.2\n" + peer, nil,
			func(b *BGP) bool {
				return b.ASN == 4200000001 && b.MED == nil && b.LocalPref == nil && b.ListenPort == 0
			}},
		{"nothing", "  {}\n", []string{"t.yaml:4: bgp.asn is required", "t.yaml:4: bgp.router_id is required", "t.yaml:4: bgp.peers: none given"}, nil},
		{"router id v6", "  asn: 65010\n  router_id: \"2001:db8::2\"\n" + peer, []string{"t.yaml:5: bgp.router_id: 2001:db8::2 is not an IPv4 address"}, nil},
		{"reserved asn", "  asn: 65535\n  router_id: 192.0.2.2\n" + peer, []string{"t.yaml:4: bgp.asn: 65535 is reserved"}, nil},
		{"asn 0", "  asn: 0\n  router_id: 192.0.2.2\n" + peer, []string{"t.yaml:4: bgp.asn: 0 is out of range"}, nil},
		{"short hold", "  asn: 65010\n  router_id: 192.0.2.2\n  peers:\n    - { address: 192.0.2.1, asn: 65000, hold_time: 1s }\n", []string{"t.yaml:7: bgp.peers[0].hold_time: 1s is out of range 3s.."}, nil},
		{"fractional hold", "  asn: 65010\n  router_id: 192.0.2.2\n  peers:\n    - { address: 192.0.2.1, asn: 65000, hold_time: 3500ms }\n", []string{"t.yaml:7: bgp.peers[0].hold_time: 3.5s is not whole seconds"}, nil},
		{"peer twice", "  asn: 65010\n  router_id: 192.0.2.2\n  peers:\n    - { address: 192.0.2.1, asn: 65000 }\n    - { address: 192.0.2.1, asn: 65001 }\n", []string{"t.yaml:8: bgp.peers[1].address: 192.0.2.1 is already a peer (line 7)"}, nil},
		{"peer without asn", "  asn: 65010\n  router_id: 192.0.2.2\n  peers:\n    - { address: 192.0.2.1, hold_time: 3s }\n", []string{"t.yaml:7: bgp.peers[0].asn is required"}, nil},
		{"bad community", "  asn: 65010\n  router_id: 192.0.2.2\n" + peer + "  communities: [\"65010-100\", \"70000:1\"]\n", []string{`t.yaml:8: bgp.communities[0]: "65010-100" is not a community`, `t.yaml:8: bgp.communities[1]: "70000:1" is not a community`}, nil},
		{"unknown key", "  asn: 65010\n  router_id: 192.0.2.2\n  hold_time: 3s\n" + peer, []string{"t.yaml:6: bgp: unknown key"}, nil},
		{"peer on a VIP", "  asn: 65010\n  router_id: 192.0.2.2\n  peers:\n    - { address: 192.0.2.110, asn: 65000 }\n" + svc, []string{`t.yaml:7: bgp.peers: 192.0.2.110 is the address of virtual service "T"`}, nil},
		{"with ha", "  asn: 65010\n  router_id: 192.0.2.2\n" + peer + "ha: {peer: 192.0.2.3, priority: 100, router_id: 5, secret: 0123456789abcdef0}\n", []string{"t.yaml:4: bgp: together with ha is not supported"}, nil},
	}
	for _, tt := range tests {
		cfg, err := Parse("t.yaml", []byte(head+tt.body))
		var got []string
		if err != nil {
			got = err.(Errors).Lines()
		}
		if len(got) != len(tt.want) {
			t.Errorf("%s: problems %q, want %q", tt.name, got, tt.want)
			continue
		}
		for i := range got {
			if !strings.HasPrefix(got[i], tt.want[i]) {
				t.Errorf("%s: problem %q, want %q...", tt.name, got[i], tt.want[i])
			}
		}
		if tt.check != nil && (cfg == nil || cfg.BGP == nil || !tt.check(cfg.BGP)) {
			t.Errorf("%s: bgp %+v", tt.name, cfg.BGP)
		}
	}
}

func TestBGPExample(t *testing.T) {
	cfg, err := Load("../examples/harmonic-vos-bgp.yaml")
	if err != nil {
		t.Fatal(err)
	}
	want := "../examples/harmonic-vos-bgp.yaml: ok: 1 virtual service (1 layer-4, 0 layer-7), 2 real servers, 15538 ports, BGP AS 65010 to 1 peer"
	if got := cfg.Summary(); got != want {
		t.Errorf("summary %q, want %q", got, want)
	}
	if cfg.BGP.Peers[0].HoldTime != 3*time.Second || cfg.BGP.Communities[0] != 65010<<16|110 {
		t.Errorf("bgp %+v", cfg.BGP)
	}
}
