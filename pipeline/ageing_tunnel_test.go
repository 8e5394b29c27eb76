package pipeline

import (
	"net/netip"
	"testing"

	"github.com/medialb/medialb/afxdp"
	"github.com/medialb/medialb/tables"
)

// Two tunnelled servers behind one router share the router's MAC: the ager finds a
// decision's server by its counter slot, so it refreshes the client's persistence
// entry for the server the client goes to, never moves it to the other.
func TestAgeFastPathTunnelSharedMAC(t *testing.T) {
	spec := tables.Spec{Services: []tables.ServiceSpec{{Name: "far", VIP: netip.MustParseAddr("192.168.94.120"),
		Ports: []tables.PortRange{{Lo: 1935, Hi: 1935}}, TCP: true, Layer: tables.Layer4, PersistTimeout: 300e9,
		Servers: []tables.ServerSpec{
			{Name: "A", Addr: netip.MustParseAddr("10.9.0.5"), Weight: 1, HasMAC: true, MAC: routerMAC, TunnelSrc: tunSrc4, Encap: tables.EncapIPIP},
			{Name: "B", Addr: netip.MustParseAddr("10.9.0.6"), Weight: 1, HasMAC: true, MAC: routerMAC, TunnelSrc: tunSrc4, Encap: tables.EncapIPIP},
		}}}}
	snap, err := tables.Build(spec, nil)
	if err != nil {
		t.Fatal(err)
	}
	b := snap.Services()[0].Servers[1]
	const gen, now = 3, 1000
	client := netip.MustParseAddr("10.1.2.3")
	k := afxdp.FastPathKey{Service: 1, Client: client.As16()}
	m := &memFastPath{gen: gen, names: map[uint32]string{1: "far"},
		entries: map[afxdp.FastPathKey]memEntry{k: {v: afxdp.FastPathValue{DstMAC: routerMAC, Gen: gen, Slot: b.Slot}, idle: 2e9}}}
	if _, _, touched, err := AgeFastPath(m, snap, now); err != nil || touched != 1 {
		t.Fatalf("touched %d, %v", touched, err)
	}
	if _, server, ok := snap.Service("far").LastSeen(client, now); !ok || server != "B" {
		t.Fatalf("persistence entry for %q (%v), want B, whose slot the decision carries", server, ok)
	}
}
