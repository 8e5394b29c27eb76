package control

import (
	"net/netip"
	"testing"

	"github.com/rs/zerolog"

	"github.com/medialb/medialb/config"
	"github.com/medialb/medialb/tables"
)

// fakeTunnels answers next-hop MACs of tunnelled servers (and nothing for MAC).
type fakeTunnels map[netip.Addr]struct {
	mac [6]byte
	src netip.Addr
}

func (f fakeTunnels) MAC(netip.Addr) ([6]byte, bool) { return [6]byte{}, false }

func (f fakeTunnels) TunnelMAC(a netip.Addr) ([6]byte, netip.Addr, bool) {
	r, ok := f[a]
	return r.mac, r.src, ok
}

func TestTunnelServersInSnapshot(t *testing.T) {
	cfg, err := config.Parse("t.yaml", []byte(`
node: { name: lb1, interface: eth0 }
virtual_services:
  - name: Far
    address: 192.168.94.110
    ports: "1935"
    layer: 4
    forwarding: tunnel
    tunnel: gue
    gue_port: 5555
    real_servers:
      - { name: A, address: 10.9.0.5 }
      - { name: B, address: 10.9.0.6 }
      - { name: C, address: 10.9.0.7 }
`))
	if err != nil {
		t.Fatal(err)
	}
	router := [6]byte{2, 0, 0, 0, 0, 1}
	src := netip.MustParseAddr("192.168.94.2")
	macs := fakeTunnels{}
	macs[netip.MustParseAddr("10.9.0.5")] = struct {
		mac [6]byte
		src netip.Addr
	}{router, src}
	// C's route has a source of the wrong family: not usable.
	macs[netip.MustParseAddr("10.9.0.7")] = struct {
		mac [6]byte
		src netip.Addr
	}{router, netip.MustParseAddr("2001:db8::2")}
	h := &tables.Holder{}
	if _, err := New(cfg, h, macs, zerolog.Nop()); err != nil {
		t.Fatal(err)
	}
	svc := h.Load().Services()[0]
	a, b, c := svc.Servers[0], svc.Servers[1], svc.Servers[2]
	if a.Encap != tables.EncapGUE || a.GUEPort != 5555 {
		t.Fatalf("encap %v port %d, want gue 5555", a.Encap, a.GUEPort)
	}
	if !a.HasMAC || a.MAC != router || a.TunnelSrc != src {
		t.Errorf("A: has %v mac %x src %v, want the router's MAC and %v", a.HasMAC, a.MAC, a.TunnelSrc, src)
	}
	if b.HasMAC {
		t.Errorf("B has no route but is usable")
	}
	if c.HasMAC {
		t.Errorf("C's route has an IPv6 source but C is usable")
	}
}
