package tables_test

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/medialb/medialb/tables"
)

func Example() {
	spec := tables.Spec{
		HashSeed: 42,
		Services: []tables.ServiceSpec{{
			Name:           "Harmonic_Traffic",
			VIP:            netip.MustParseAddr("192.168.94.110"),
			Ports:          []tables.PortRange{{Lo: 1935, Hi: 1935}, {Lo: 554, Hi: 554}, {Lo: 50000, Hi: 65535}},
			TCP:            true,
			UDP:            true,
			Layer:          4,
			PersistTimeout: 300 * time.Second,
			Servers: []tables.ServerSpec{
				{Name: "HT1", Addr: netip.MustParseAddr("192.168.94.115"), Weight: 100, HasMAC: true},
				{Name: "HT2", Addr: netip.MustParseAddr("192.168.94.116"), Weight: 100, HasMAC: true},
			},
		}},
	}
	snap, err := tables.Build(spec, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	var h tables.Holder
	h.Store(snap)

	// The data path: once per batch load the snapshot and read a clock;
	// per packet look up the service and pick a server.
	cur, now := h.Load(), uint32(1000)
	client := netip.MustParseAddr("203.0.113.7")
	svc := cur.Lookup(netip.MustParseAddr("192.168.94.110"), tables.ProtoUDP, 50123)
	srv, v := svc.Pick(client, now)
	fmt.Println(svc.Name, v)
	// The same client on another port and protocol keeps its server.
	srv2, v2 := cur.Lookup(netip.MustParseAddr("192.168.94.110"), tables.ProtoTCP, 1935).Pick(client, now+1)
	fmt.Println(srv2 == srv, v2)
	fmt.Println(cur.Lookup(netip.MustParseAddr("192.168.94.110"), tables.ProtoTCP, 22) == nil)
	// Output:
	// Harmonic_Traffic new
	// true persist
	// true
}
