package tables

import (
	"net/netip"
	"strings"
	"testing"
)

func TestBuildEncap(t *testing.T) {
	src := netip.MustParseAddr("::ffff:192.0.2.2")
	tests := []struct {
		name    string
		layer   Layer
		encap   Encap
		port    uint16
		wantErr string
	}{
		{"direct routing", Layer4, EncapNone, 0, ""},
		{"ipip", Layer4, EncapIPIP, 0, ""},
		{"gue", Layer4, EncapGUE, 6080, ""},
		{"gue without port", Layer4, EncapGUE, 0, "no UDP port"},
		{"layer 7", Layer7, EncapIPIP, 0, "layer-4 services only"},
		{"unknown", Layer4, EncapGUE + 1, 0, "unknown value"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			snap, err := Build(Spec{Services: []ServiceSpec{{
				Name: "s", VIP: netip.MustParseAddr("192.0.2.10"), Ports: []PortRange{{80, 80}}, TCP: true,
				Layer: tt.layer,
				Servers: []ServerSpec{{Name: "a", Addr: netip.MustParseAddr("198.51.100.5"), Weight: 1, HasMAC: true, TunnelSrc: src,
					Encap: tt.encap, GUEPort: tt.port}},
			}}}, nil)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			srv := snap.Services()[0].Servers[0]
			if srv.Encap != tt.encap || srv.GUEPort != tt.port {
				t.Fatalf("encap %v port %d", srv.Encap, srv.GUEPort)
			}
			if got := srv.TunnelSrc; got != src.Unmap() {
				t.Fatalf("tunnel source %v, want %v (unmapped)", got, src.Unmap())
			}
		})
	}
}
