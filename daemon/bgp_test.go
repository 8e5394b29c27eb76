package daemon

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/rs/zerolog"

	"github.com/medialb/medialb/config"
	"github.com/medialb/medialb/control"
	"github.com/medialb/medialb/tables"
)

const bgpTestConfig = `node: { interface: eth0 }
bgp:
  asn: 65010
  router_id: 192.0.2.2
  peers: [ { address: 192.0.2.1, asn: 65000 } ]
virtual_services:
  - { name: A, address: 192.0.2.100, ports: "8080", layer: 7, protocol: tcp, health_check: { type: none },
      real_servers: [ { name: A1, address: 192.0.2.105 } ] }
  - { name: B, address: 192.0.2.101, ports: "8080", layer: 7, protocol: tcp, health_check: { type: none },
      real_servers: [ { name: B1, address: 192.0.2.106 }, { name: B2, address: 192.0.2.107 } ] }
  - { name: B6, address: "2001:db8::101", ports: "8080", layer: 7, protocol: tcp, health_check: { type: none },
      real_servers: [ { name: B1, address: "2001:db8::106" } ] }
  - { name: T, address: 192.0.2.110, ports: "1935", layer: 4, protocol: tcp, health_check: { type: none },
      real_servers: [ { name: T1, address: 192.0.2.115 } ] }
`

// A VIP is announced while one of its services has an eligible real server: a
// layer-4 server whose MAC is not known yet is not eligible, halting every
// server of a service withdraws its VIP, a draining one keeps it, and IPv6 VIPs
// are /128s.
func TestBGPPrefixes(t *testing.T) {
	cfg, err := config.Parse("t.yaml", []byte(bgpTestConfig))
	if err != nil {
		t.Fatal(err)
	}
	var h tables.Holder
	ctrl, err := control.New(cfg, &h, nil, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	pfx := func(ss ...string) []netip.Prefix {
		var out []netip.Prefix
		for _, s := range ss {
			out = append(out, netip.MustParsePrefix(s))
		}
		return out
	}
	if got, want := bgpPrefixes(h.Load()), pfx("192.0.2.100/32", "192.0.2.101/32", "2001:db8::101/128"); !slices.Equal(got, want) {
		t.Errorf("announced %v, want %v (T's server has no MAC yet)", got, want)
	}
	for _, s := range []string{"B1", "B2"} {
		if err := ctrl.SetAdmin("B", s, tables.StateHalt); err != nil {
			t.Fatal(err)
		}
	}
	if got, want := bgpPrefixes(h.Load()), pfx("192.0.2.100/32", "2001:db8::101/128"); !slices.Equal(got, want) {
		t.Errorf("B halted: announced %v, want %v", got, want)
	}
	if err := ctrl.SetAdmin("B", "B2", tables.StateDrain); err != nil {
		t.Fatal(err)
	}
	if got := bgpPrefixes(h.Load()); !slices.Contains(got, netip.MustParsePrefix("192.0.2.101/32")) {
		t.Errorf("B's only server in service drains (keeps its established clients): announced %v, want B's VIP too", got)
	}
	if got := bgpPrefixes(nil); got != nil {
		t.Errorf("no snapshot: %v", got)
	}
	// With bgp, only layer-7 VIPs are local addresses; without, all.
	if got, want := localVIPs(cfg), []netip.Addr{netip.MustParseAddr("192.0.2.100"), netip.MustParseAddr("192.0.2.101"), netip.MustParseAddr("2001:db8::101")}; !slices.Equal(got, want) {
		t.Errorf("local VIPs with bgp: %v, want %v", got, want)
	}
	cfg.BGP = nil
	if got := localVIPs(cfg); len(got) != 4 {
		t.Errorf("local VIPs without bgp: %v, want all four", got)
	}
}
