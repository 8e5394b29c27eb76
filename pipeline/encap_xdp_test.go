package pipeline

import (
	"bytes"
	"os"
	"testing"

	"github.com/medialb/medialb/afxdp"
	"github.com/medialb/medialb/tables"
)

// newTunnelRunner loads the steering program with the tunnel services' VIPs (fast
// path on).
func newTunnelRunner(t *testing.T, snap *tables.Snapshot) *afxdp.FastPathRunner {
	if os.Geteuid() != 0 {
		t.Skip("running the XDP program (BPF_PROG_TEST_RUN) needs root")
	}
	var vips []afxdp.VIP
	for _, svc := range snap.Services() {
		var ports []afxdp.PortRange
		for _, p := range svc.Ports {
			ports = append(ports, afxdp.PortRange{Lo: p.Lo, Hi: p.Hi})
		}
		for _, proto := range []uint8{afxdp.ProtoTCP, afxdp.ProtoUDP} {
			vips = append(vips, afxdp.VIP{Addr: svc.VIP, Proto: proto, Ports: ports, Service: svc.Name, FastPath: true})
		}
	}
	r, err := afxdp.NewFastPathRunner(vips)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// setTunnels gives each server a tunnel entry at its counter slot.
func setTunnels(t *testing.T, r *afxdp.FastPathRunner, snap *tables.Snapshot, mtu int) {
	for _, svc := range snap.Services() {
		srv := svc.Servers[0]
		if srv.Slot == 0 {
			t.Fatalf("server %s has no counter slot", srv.Name)
		}
		kind := afxdp.TunnelIPIP
		if srv.Encap == tables.EncapGUE {
			kind = afxdp.TunnelGUE
		}
		if err := r.SetTunnel(srv.Slot, afxdp.NewTunnel(kind, srv.TunnelSrc, srv.Addr, srv.GUEPort, mtu)); err != nil {
			t.Fatal(err)
		}
	}
}

// TestXDPTunnelAgrees: for a decided client of a tunnelled server, the steering
// program's fast path sends (XDP_TX) exactly the frame the pipeline sends; the frames
// it leaves to the pipeline (VLAN tags, padding, GUE over IPv6, too big for the MTU)
// go to the socket untouched.
func TestXDPTunnelAgrees(t *testing.T) {
	const xdpTX = 3
	tests := []struct {
		name   string
		frame  []byte
		mtu    int
		fast   bool
		reason string // the tunnel counter that moves
	}{
		{"ipip4-udp", buildFrame(frameSpec{dst: tunVIPIPIP4, dport: 1935, payload: 32}), 1500, true, "tunnel_encap"},
		{"ipip4-tcp", buildFrame(frameSpec{dst: tunVIPIPIP4, proto: protoTCP, dport: 554, payload: 100}), 1500, true, "tunnel_encap"},
		{"gue4-udp", buildFrame(frameSpec{dst: tunVIPGUE4, dport: 1935, payload: 32}), 1500, true, "tunnel_encap"},
		{"ip6ip6-tcp", buildFrame(frameSpec{src: client6, dst: tunVIPIPIP6, proto: protoTCP, dport: 554, payload: 20}), 1500, true, "tunnel_encap"},
		{"4in6-udp", buildFrame(frameSpec{dst: tunVIP4in6, dport: 1935, payload: 32}), 1500, true, "tunnel_encap"},
		{"full-size ipip4 at mtu 1520", fullSize(tunVIPIPIP4, 1500), 1520, true, "tunnel_encap"},
		{"full-size gue4 too big", fullSize(tunVIPGUE4, 1500), 1500, false, "tunnel_too_big"},
		{"gue6: pipeline", buildFrame(frameSpec{src: client6, dst: tunVIPGUE6, proto: protoTCP, dport: 554, payload: 33}), 1500, false, "tunnel_to_socket"},
		{"vlan: pipeline", buildFrame(frameSpec{dst: tunVIPIPIP4, dport: 1935, payload: 32, vlans: []uint16{7}}), 1500, false, "tunnel_to_socket"},
		{"ipv6 ext headers: pipeline", buildFrame(frameSpec{src: client6, dst: tunVIPIPIP6, dport: 1935, payload: 32,
			ext: []v6ext{{protoDestOpts, 8}}}), 1500, false, "tunnel_to_socket"},
		{"padded: pipeline", buildFrame(frameSpec{dst: tunVIPIPIP4, dport: 1935, payload: 2, pad: 16}), 1500, false, "tunnel_to_socket"},
	}
	snap := tunnelSnapshot(t)
	holder := &tables.Holder{}
	holder.Store(snap)
	r := newTunnelRunner(t, snap)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			setTunnels(t, r, snap, tt.mtu)
			before := r.TunnelStats()
			var p Packet
			if Parse(tt.frame, &p) != OK {
				t.Fatal("frame does not parse")
			}
			svc := snap.Lookup(p.Dst, p.Proto, p.DstPort)
			if err := r.Decide(p.Src, afxdp.FastPathValue{DstMAC: routerMAC, SrcMAC: localMAC, Slot: svc.Servers[0].Slot}); err != nil {
				t.Fatal(err)
			}
			ret, out, err := r.Run(tt.frame)
			if err != nil {
				t.Fatal(err)
			}
			if st := r.TunnelStats(); st[tt.reason] != before[tt.reason]+1 {
				t.Errorf("tunnel counters %v (before %v), want %s up by 1", st, before, tt.reason)
			}
			if !tt.fast {
				if ret == xdpTX || !bytes.Equal(out, tt.frame) {
					t.Fatalf("action %d, frame changed %v: want it at the socket untouched", ret, !bytes.Equal(out, tt.frame))
				}
				return
			}
			if ret != xdpTX {
				t.Fatalf("action %d, want XDP_TX", ret)
			}
			port := newFakePort(1)
			port.loadHead(tunnelHead, tt.frame)
			w := NewWorker(port, holder, localMAC, WorkerOptions{MTU: tt.mtu})
			w.poll()
			if len(port.tx) != 1 {
				t.Fatalf("pipeline sent %d frames", len(port.tx))
			}
			want := port.frameCopy(port.tx[0])
			if !bytes.Equal(out, want) {
				t.Fatalf("fast path and pipeline differ:\n xdp      %x\n pipeline %x", out, want)
			}
			checkEncap(t, tt.frame, out, svc.Servers[0].TunnelSrc, svc.Servers[0].Addr, svc.Servers[0].Encap == tables.EncapGUE)
		})
	}
}
