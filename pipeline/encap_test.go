package pipeline

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/medialb/medialb/tables"
)

// The tunnel tests' services: one per encapsulation and family pair, one server each,
// no persistence (Maglev only), so every frame goes to that server.
var (
	tunVIPIPIP4  = netip.MustParseAddr("192.168.94.120") // IPIP to an IPv4 server
	tunVIPGUE4   = netip.MustParseAddr("192.168.94.121") // GUE to an IPv4 server
	tunVIPIPIP6  = netip.MustParseAddr("fd00:94::120")   // IP6IP6
	tunVIPGUE6   = netip.MustParseAddr("fd00:94::121")   // GUE over IPv6 (UDP checksum)
	tunVIP4in6   = netip.MustParseAddr("192.168.94.122") // IPv4 in IPv6
	tunSrv4      = netip.MustParseAddr("198.51.100.5")
	tunSrv6      = netip.MustParseAddr("2001:db8:5::5")
	tunSrc4      = netip.MustParseAddr("192.168.94.2")
	tunSrc6      = netip.MustParseAddr("fd00:94::2")
	routerMAC    = [6]byte{0x02, 0x00, 0x5e, 0x00, 0x00, 0xfe}
	tunGUEPort   = uint16(6080)
	tunnelGolden = filepath.Join("testdata", "tunnel")
)

func tunnelSnapshot(t testing.TB) *tables.Snapshot {
	t.Helper()
	svc := func(name string, vip, srv, src netip.Addr, e tables.Encap) tables.ServiceSpec {
		ss := tables.ServiceSpec{Name: name, VIP: vip, Ports: []tables.PortRange{{Lo: 1935, Hi: 1935}, {Lo: 554, Hi: 554}},
			TCP: true, UDP: true, Layer: tables.Layer4, MaglevSize: 7,
			Servers: []tables.ServerSpec{{Name: name + "-rs", Addr: srv, Weight: 100, HasMAC: true, MAC: routerMAC, TunnelSrc: src, Encap: e}}}
		if e == tables.EncapGUE {
			ss.Servers[0].GUEPort = tunGUEPort
		}
		return ss
	}
	s, err := tables.Build(tables.Spec{Services: []tables.ServiceSpec{
		svc("ipip4", tunVIPIPIP4, tunSrv4, tunSrc4, tables.EncapIPIP),
		svc("gue4", tunVIPGUE4, tunSrv4, tunSrc4, tables.EncapGUE),
		svc("ipip6", tunVIPIPIP6, tunSrv6, tunSrc6, tables.EncapIPIP),
		svc("gue6", tunVIPGUE6, tunSrv6, tunSrc6, tables.EncapGUE),
		svc("4in6", tunVIP4in6, tunSrv6, tunSrc6, tables.EncapIPIP),
	}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// Grow gives the fake port the headroom of a real UMEM frame: frames loaded with
// loadHead start tunnelHead bytes into their slot.
func (p *fakePort) Grow(d Desc, n int) (Desc, []byte, bool) {
	base := d.Addr / fakeFrameSize * fakeFrameSize
	if n < 0 || d.Addr-base < uint64(n) {
		return d, nil, false
	}
	nd := Desc{Addr: d.Addr - uint64(n), Len: d.Len + uint32(n)}
	return nd, p.Frame(nd), true
}

const tunnelHead = 256 // XDP_PACKET_HEADROOM

// loadHead is load with frames starting head bytes into their slots.
func (p *fakePort) loadHead(head int, frames ...[]byte) []Desc {
	ds := p.load(0, frames...)
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := range ds {
		copy(p.umem[ds[i].Addr+uint64(head):], frames[i])
		ds[i].Addr += uint64(head)
	}
	p.rx = p.rx[:0]
	p.rx = append(p.rx, ds...)
	return ds
}

// csum16 is the plain RFC 1071 checksum of the concatenated parts (the reference the
// fast sum is checked against).
func csum16(parts ...[]byte) uint16 {
	var all []byte
	for _, p := range parts {
		all = append(all, p...)
	}
	var s uint32
	for i := 0; i < len(all); i += 2 {
		w := uint32(all[i]) << 8
		if i+1 < len(all) {
			w |= uint32(all[i+1])
		}
		s += w
	}
	for s > 0xffff {
		s = s&0xffff + s>>16
	}
	return ^uint16(s)
}

// pseudo6Bytes is an IPv6 pseudo-header.
func pseudo6Bytes(src, dst []byte, n int, proto byte) []byte {
	b := append(append([]byte{}, src...), dst...)
	b = binary.BigEndian.AppendUint32(b, uint32(n))
	return append(b, 0, 0, 0, proto)
}

// checkEncap checks an encapsulated frame against the original one: Ethernet to the
// router from us with the original VLAN tags, a valid outer header from src to srv, and
// the original IP packet, byte for byte, behind it.
func checkEncap(t *testing.T, orig, got []byte, src, srv netip.Addr, gue bool) {
	t.Helper()
	var p Packet
	if r := Parse(orig, &p); r != OK {
		t.Fatalf("original does not parse: %v", r)
	}
	l3 := p.L3Off
	innerLen, _, _ := ipLength(orig, l3)
	inner := orig[l3 : l3+innerLen]
	if [6]byte(got[0:6]) != routerMAC || [6]byte(got[6:12]) != localMAC {
		t.Fatalf("MACs %x -> %x, want %x -> %x", got[6:12], got[0:6], localMAC, routerMAC)
	}
	if !bytes.Equal(got[12:l3-2], orig[12:l3-2]) {
		t.Fatalf("VLAN tags changed: %x, were %x", got[12:l3-2], orig[12:l3-2])
	}
	et := binary.BigEndian.Uint16(got[l3-2:])
	var hl, proto int
	var osrc, odst []byte
	if srv.Is4() {
		hl = 20
		h := got[l3 : l3+20]
		if et != etherTypeIPv4 || h[0] != 0x45 || csum16(h) != 0 {
			t.Fatalf("outer IPv4 header bad (ethertype %#x, checksum %#x): %x", et, csum16(h), h)
		}
		if int(binary.BigEndian.Uint16(h[2:])) != len(got)-l3 {
			t.Fatalf("outer total length %d, frame carries %d", binary.BigEndian.Uint16(h[2:]), len(got)-l3)
		}
		proto, osrc, odst = int(h[9]), h[12:16], h[16:20]
	} else {
		hl = 40
		h := got[l3 : l3+40]
		if et != etherTypeIPv6 || h[0]>>4 != 6 {
			t.Fatalf("outer IPv6 header bad (ethertype %#x): %x", et, h)
		}
		if int(binary.BigEndian.Uint16(h[4:])) != len(got)-l3-40 {
			t.Fatalf("outer payload length %d, frame carries %d", binary.BigEndian.Uint16(h[4:]), len(got)-l3-40)
		}
		proto, osrc, odst = int(h[6]), h[8:24], h[24:40]
	}
	if !bytes.Equal(osrc, src.AsSlice()) || !bytes.Equal(odst, srv.AsSlice()) {
		t.Fatalf("outer %x -> %x, want %v -> %v", osrc, odst, src, srv)
	}
	if gue {
		u := got[l3+hl : l3+hl+8]
		if proto != protoUDP || binary.BigEndian.Uint16(u[2:]) != tunGUEPort || binary.BigEndian.Uint16(u[0:]) < 0xc000 ||
			int(binary.BigEndian.Uint16(u[4:])) != 8+innerLen {
			t.Fatalf("GUE UDP header bad (proto %d): %x", proto, u)
		}
		if srv.Is6() && csum16(pseudo6Bytes(osrc, odst, 8+innerLen, protoUDP), got[l3+hl:]) != 0 {
			t.Fatalf("outer UDP checksum does not verify")
		}
		hl += 8
	} else if want := map[bool]int{true: protoIPIP, false: protoIPv6Encap}[p.Src.Is4()]; proto != want {
		t.Fatalf("outer protocol %d, want %d", proto, want)
	}
	if !bytes.Equal(got[l3+hl:], inner) {
		t.Fatalf("inner packet changed:\n got %x\nwant %x", got[l3+hl:], inner)
	}
}

// The golden frames: every encapsulation and family pair, tagged and untagged, TCP and
// UDP. testdata/tunnel/*.hex holds what the worker sent (`go test -run
// TestTunnelGolden -update` rewrites them); the structure is checked independently.
func TestTunnelGolden(t *testing.T) {
	tests := []struct {
		name     string
		frame    []byte
		src, srv netip.Addr
		gue      bool
	}{
		{"ipip4-udp", buildFrame(frameSpec{dst: tunVIPIPIP4, dport: 1935, payload: 32}), tunSrc4, tunSrv4, false},
		{"ipip4-tcp-vlan", buildFrame(frameSpec{dst: tunVIPIPIP4, proto: protoTCP, dport: 554, payload: 10, vlans: []uint16{7}}), tunSrc4, tunSrv4, false},
		{"ipip4-padded", buildFrame(frameSpec{dst: tunVIPIPIP4, dport: 1935, payload: 2, pad: 16}), tunSrc4, tunSrv4, false},
		{"ipip4-frag-later", buildFrame(frameSpec{dst: tunVIPIPIP4, dport: 1935, payload: 64, frag: FragLater}), tunSrc4, tunSrv4, false},
		{"gue4-udp", buildFrame(frameSpec{dst: tunVIPGUE4, dport: 1935, payload: 32}), tunSrc4, tunSrv4, true},
		{"gue4-tcp", buildFrame(frameSpec{dst: tunVIPGUE4, proto: protoTCP, dport: 554, payload: 3}), tunSrc4, tunSrv4, true},
		{"ip6ip6-udp", buildFrame(frameSpec{src: client6, dst: tunVIPIPIP6, dport: 1935, payload: 32}), tunSrc6, tunSrv6, false},
		{"gue6-tcp", buildFrame(frameSpec{src: client6, dst: tunVIPGUE6, proto: protoTCP, dport: 554, payload: 33}), tunSrc6, tunSrv6, true},
		{"ipip-4in6-udp", buildFrame(frameSpec{dst: tunVIP4in6, dport: 1935, payload: 32}), tunSrc6, tunSrv6, false},
	}
	holder := &tables.Holder{}
	holder.Store(tunnelSnapshot(t))
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			port := newFakePort(1)
			port.loadHead(tunnelHead, tt.frame)
			w := NewWorker(port, holder, localMAC, WorkerOptions{})
			w.poll()
			c := w.Counters()
			if len(port.tx) != 1 || c.Forwarded() != 1 || c.Tunnel.Encapsulated != 1 {
				t.Fatalf("transmitted %d, counters %+v", len(port.tx), c)
			}
			got := port.frameCopy(port.tx[0])
			checkEncap(t, tt.frame, got, tt.src, tt.srv, tt.gue)
			var sc ServerCount
			for _, svc := range holder.Load().Services() {
				sc.Packets += w.ServerCount(svc.Servers[0].Slot).Packets
				sc.Bytes += w.ServerCount(svc.Servers[0].Slot).Bytes
			}
			if sc.Packets != 1 || sc.Bytes != uint64(len(got)) {
				t.Errorf("server counters %+v, want 1 frame of %d bytes (the encapsulated length)", sc, len(got))
			}
			file := filepath.Join(tunnelGolden, tt.name+".hex")
			if *update {
				if err := os.MkdirAll(tunnelGolden, 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(file, []byte(hex.EncodeToString(got)+"\n"), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			b, err := os.ReadFile(file)
			if err != nil {
				t.Fatalf("%v (run with -update)", err)
			}
			want, err := hex.DecodeString(strings.TrimSpace(string(b)))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("frame differs from %s:\n got %x\nwant %x", file, got, want)
			}
		})
	}
}

// fullSize returns an untagged TCP frame to VIP whose IP packet is n bytes (DF set
// for IPv4).
func fullSize(vip netip.Addr, n int) []byte {
	s := frameSpec{dst: vip, proto: protoTCP, dport: 554}
	if vip.Is6() {
		s.src = client6
		s.payload = n - 40 - 20
	} else {
		s.payload = n - 20 - 20
	}
	return buildFrame(s)
}

// MTU: a full-size frame (1500-byte IP packet) is encapsulated when the MTU leaves room
// for the outer header; when it does not, the client gets an ICMP too-big with the MTU
// left for it (IPv4 with DF, IPv6), or the frame is dropped (IPv4 without DF).
func TestTunnelMTU(t *testing.T) {
	noDF := mutate(fullSize(tunVIPIPIP4, 1500), func(b []byte) []byte {
		b[l3+6] = 0 // DF off
		binary.BigEndian.PutUint16(b[l3+10:], ipv4Checksum(b[l3:l3+20]))
		return b
	})
	tests := []struct {
		name    string
		frame   []byte
		mtu     int
		want    Reason
		tooBig  int // the MTU the ICMP error announces; 0: no ICMP
		outer   int // the frame length sent when encapsulated
		noRoom  bool
		headLen int
	}{
		{"full-size ipip4 fits mtu 1520", fullSize(tunVIPIPIP4, 1500), 1520, Forwarded, 0, 14 + 1520, false, tunnelHead},
		{"full-size gue6 fits mtu 1548", fullSize(tunVIPGUE6, 1500), 1548, Forwarded, 0, 14 + 1548, false, tunnelHead},
		{"ipip4 exact fit at mtu 1500", fullSize(tunVIPIPIP4, 1480), 1500, Forwarded, 0, 14 + 1500, false, tunnelHead},
		{"full-size ipip4 too big: frag needed", fullSize(tunVIPIPIP4, 1500), 1500, Forwarded, 1480, 0, false, tunnelHead},
		{"full-size gue4 too big: frag needed", fullSize(tunVIPGUE4, 1500), 1500, Forwarded, 1472, 0, false, tunnelHead},
		{"full-size ip6ip6 too big: packet too big", fullSize(tunVIPIPIP6, 1500), 1500, Forwarded, 1460, 0, false, tunnelHead},
		{"ipv4 without DF too big: dropped", noDF, 1500, TunnelTooBig, 0, 0, false, tunnelHead},
		{"no headroom", fullSize(tunVIPIPIP4, 100), 1500, TunnelNoRoom, 0, 0, true, 0},
	}
	holder := &tables.Holder{}
	holder.Store(tunnelSnapshot(t))
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			port := newFakePort(1)
			port.loadHead(tt.headLen, tt.frame)
			w := NewWorker(port, holder, localMAC, WorkerOptions{MTU: tt.mtu})
			w.poll()
			c := w.Counters()
			if c.ByReason[tt.want] != 1 {
				t.Fatalf("counters %+v, want one %v", c.ByReason, tt.want)
			}
			if tt.want != Forwarded {
				// process set the MACs before the tunnel refused it: a dropped frame's
				// bytes do not matter, but nothing beyond them may have moved.
				if len(port.tx) != 0 || !bytes.Equal(port.Frame(port.released[0])[12:], tt.frame[12:]) {
					t.Fatalf("dropped frame sent or modified")
				}
				return
			}
			got := port.frameCopy(port.tx[0])
			if tt.tooBig == 0 {
				if len(got) != tt.outer || c.Tunnel.Encapsulated != 1 {
					t.Fatalf("sent %d bytes (encapsulated %d), want %d", len(got), c.Tunnel.Encapsulated, tt.outer)
				}
				return
			}
			if c.Tunnel.TooBigSent != 1 {
				t.Fatalf("too-big counter %d", c.Tunnel.TooBigSent)
			}
			checkTooBig(t, tt.frame, got, tt.tooBig)
			for _, svc := range holder.Load().Services() {
				if n := w.ServerCount(svc.Servers[0].Slot); n.Packets != 0 {
					t.Fatalf("ICMP error counted for server %s", svc.Servers[0].Name)
				}
			}
		})
	}
}

// checkTooBig checks an ICMP too-big sent back for orig.
func checkTooBig(t *testing.T, orig, got []byte, mtu int) {
	t.Helper()
	if [6]byte(got[0:6]) != clientMAC || [6]byte(got[6:12]) != localMAC {
		t.Fatalf("ICMP error MACs %x -> %x, want us -> the client's router", got[6:12], got[0:6])
	}
	var p Packet
	Parse(orig, &p)
	ip := got[l3:]
	if p.Src.Is4() {
		if csum16(ip[:20]) != 0 || ip[9] != protoICMP || int(binary.BigEndian.Uint16(ip[2:])) != len(ip) || len(got) > 14+576 {
			t.Fatalf("ICMP IPv4 header bad: %x", ip[:20])
		}
		if !bytes.Equal(ip[12:16], p.Dst.AsSlice()) || !bytes.Equal(ip[16:20], p.Src.AsSlice()) {
			t.Fatalf("ICMP error %x -> %x, want VIP -> client", ip[12:16], ip[16:20])
		}
		ic := ip[20:]
		if ic[0] != 3 || ic[1] != 4 || csum16(ic) != 0 || int(binary.BigEndian.Uint16(ic[6:])) != mtu {
			t.Fatalf("ICMP frag needed bad (checksum %#x): %x", csum16(ic), ic[:8])
		}
		if !bytes.Equal(ic[8:], orig[l3:l3+len(ic)-8]) {
			t.Fatalf("quote differs from the packet")
		}
		return
	}
	if ip[6] != protoICMPv6 || int(binary.BigEndian.Uint16(ip[4:])) != len(ip)-40 || len(got) > 14+1280 {
		t.Fatalf("ICMPv6 header bad: %x", ip[:40])
	}
	if !bytes.Equal(ip[8:24], p.Dst.AsSlice()) || !bytes.Equal(ip[24:40], p.Src.AsSlice()) {
		t.Fatalf("ICMPv6 error %x -> %x, want VIP -> client", ip[8:24], ip[24:40])
	}
	ic := ip[40:]
	if ic[0] != 2 || csum16(pseudo6Bytes(ip[8:24], ip[24:40], len(ic), protoICMPv6), ic) != 0 ||
		int(binary.BigEndian.Uint32(ic[4:])) != mtu {
		t.Fatalf("ICMPv6 packet too big bad: %x", ic[:8])
	}
	if !bytes.Equal(ic[8:], orig[l3:l3+len(ic)-8]) {
		t.Fatalf("quote differs from the packet")
	}
}

// Encapsulation allocates nothing.
func TestTunnelAllocs(t *testing.T) {
	holder := &tables.Holder{}
	holder.Store(tunnelSnapshot(t))
	frames := [][]byte{
		buildFrame(frameSpec{dst: tunVIPIPIP4, dport: 1935, payload: 32}),
		buildFrame(frameSpec{src: client6, dst: tunVIPGUE6, proto: protoTCP, dport: 554, payload: 33}),
		fullSize(tunVIPIPIP4, 1500), // ICMP too big
	}
	port := newFakePort(len(frames))
	w := NewWorker(port, holder, localMAC, WorkerOptions{})
	ds := port.loadHead(tunnelHead, frames...)
	w.poll() // grow the fake's slices
	allocs := testing.AllocsPerRun(100, func() {
		port.reset()
		for i, f := range frames {
			copy(port.umem[ds[i].Addr:], f)
		}
		port.rx = append(port.rx[:0], ds...)
		w.poll()
	})
	if allocs > 0 {
		t.Errorf("%v allocations per batch", allocs)
	}
}

// FuzzTunnel feeds arbitrary frames to a worker whose services are all tunnelled: it
// must not panic, and whatever it encapsulates must be the original IP packet behind
// a valid outer header.
func FuzzTunnel(f *testing.F) {
	f.Add(buildFrame(frameSpec{dst: tunVIPIPIP4, dport: 1935, payload: 32}), 1500)
	f.Add(buildFrame(frameSpec{src: client6, dst: tunVIPGUE6, proto: protoTCP, dport: 554, payload: 33}), 1500)
	f.Add(buildFrame(frameSpec{dst: tunVIP4in6, dport: 1935, vlans: []uint16{1, 2}}), 1500)
	f.Add(fullSize(tunVIPIPIP6, 1500), 1500)
	f.Add(fullSize(tunVIPGUE4, 1500), 600)
	holder := &tables.Holder{}
	holder.Store(tunnelSnapshot(f))
	f.Fuzz(func(t *testing.T, frame []byte, mtu int) {
		if len(frame) > fakeFrameSize-tunnelHead {
			return
		}
		mtu = 68 + (mtu&0xffff)%9000
		port := newFakePort(1)
		port.loadHead(tunnelHead, frame)
		w := NewWorker(port, holder, localMAC, WorkerOptions{MTU: mtu})
		w.poll()
		c := w.Counters()
		if c.Received() != 1 || len(port.tx)+len(port.released) != 1 {
			t.Fatalf("frame lost: counters %+v", c)
		}
		if c.Tunnel.Encapsulated == 1 {
			var p Packet
			Parse(frame, &p)
			srv := holder.Load().Lookup(p.Dst, p.Proto, p.DstPort)
			if srv == nil {
				return // an ICMP error routed by its quote
			}
			s := srv.Servers[0]
			got := port.frameCopy(port.tx[0])
			if len(got)-ethHeaderLen-int(p.VLANs)*4 > mtu {
				t.Fatalf("sent %d bytes past MTU %d", len(got), mtu)
			}
			checkEncap(t, frame, got, s.TunnelSrc, s.Addr, s.Encap == tables.EncapGUE)
		}
	})
}
