package afxdp

import (
	"encoding/binary"
	"net"
	"net/netip"
	"strconv"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// peerCapture captures, on the peer xb, the frames that come back from xa.
func peerCapture(t *testing.T, p *pair) func(want int, timeout time.Duration) []frame {
	t.Helper()
	var fd int
	if err := inNS(p.hB, func() (err error) {
		fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ALL)))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: p.idxB})
	unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Sec: 0, Usec: 50000})
	return func(want int, timeout time.Duration) []frame {
		var out []frame
		buf := make([]byte, 2048)
		deadline := time.Now().Add(timeout)
		for len(out) < want && time.Now().Before(deadline) {
			m, from, err := unix.Recvfrom(fd, buf, 0)
			if err != nil {
				continue
			}
			if ll, ok := from.(*unix.SockaddrLinklayer); ok && ll.Pkttype == unix.PACKET_OUTGOING {
				continue
			}
			if f := frame(buf[:m]); len(f) > 14 && binary.BigEndian.Uint16(f[12:]) == 0x0800 {
				out = append(out, append(frame(nil), f...))
			}
		}
		return out
	}
}

// TestFastPath: a client with a decision of the current generation is sent back by
// the steering program itself (XDP_TX, MACs rewritten, fastpath_tx counted, last-seen
// refreshed); after Bump, or for a frame not addressed to us, a non-first fragment,
// another client, or a VIP without the fast path, frames go to the socket as before.
func TestFastPath(t *testing.T) {
	p := newPair(t)
	d := p.open(t, Config{})
	if ok, why := d.CanXDPTX(); d.xdpMode == ModeNative && (ok || why == "") {
		t.Errorf("CanXDPTX on a veth in native mode: %v %q, want false and why", ok, why)
	}
	attachPass(t, p.hB, "xb")
	vips := []VIP{{Addr: ipA4, Proto: ProtoUDP, Ports: []PortRange{{5000, 5000}}, Service: "S", FastPath: true}}
	if err := d.SetVIPs(vips); err != nil {
		t.Fatal(err)
	}
	fp := d.FastPath()
	id := fp.ServiceID("S")
	if id == 0 || fp.ServiceName(id) != "S" {
		t.Fatalf("service id %d, name %q", id, fp.ServiceName(id))
	}
	s := d.Sockets()[0]
	send := rawSender(t, p.hB, p.idxB)
	capture := peerCapture(t, p)
	client := netip.MustParseAddr("10.99.0.77")
	other := netip.MustParseAddr("10.99.0.78")
	rs := [6]byte{0x02, 0, 0, 0, 0, 0x42}
	toVIP := func(src netip.Addr) []byte { return udp4(p.macA, p.macB, src, ipA4, 40000, 5000, []byte("media")) }
	expectSocket := func(what string, f []byte, n int) {
		t.Helper()
		before := d.ProgramStats()
		for range n {
			send(f)
		}
		if got := collect(s, n, time.Second); len(got) != n {
			t.Errorf("%s: %d of %d frames at the socket", what, len(got), n)
		}
		after := d.ProgramStats()
		if after["fastpath_tx"] != before["fastpath_tx"] {
			t.Errorf("%s: fastpath_tx rose from %d to %d", what, before["fastpath_tx"], after["fastpath_tx"])
		}
	}

	expectSocket("no decision yet", toVIP(client), 3)

	var mac [6]byte
	copy(mac[:], p.macA)
	gen := fp.Generation()
	const slot = 7
	if err := fp.Update([]FastPathKey{{Service: id, Client: client.As16()}}, []FastPathValue{{DstMAC: rs, SrcMAC: mac, Gen: gen, Slot: slot}}); err != nil {
		t.Fatal(err)
	}
	v0, ok := fp.Lookup(id, client)
	if !ok || v0.Seen == 0 {
		t.Fatalf("entry after Update: %+v %v", v0, ok)
	}
	time.Sleep(300 * time.Millisecond) // longer than the program's last-seen resolution
	const n = 20
	for range n {
		send(toVIP(client))
	}
	got := capture(n, 2*time.Second)
	if len(got) != n {
		t.Errorf("peer saw %d of %d fast-path frames", len(got), n)
	}
	for _, f := range got {
		if [6]byte(f[0:6]) != rs || string(f[6:12]) != string(p.macA) {
			t.Errorf("fast-path frame MACs dst %v src %v, want %v %v", net.HardwareAddr(f[0:6]), net.HardwareAddr(f[6:12]), net.HardwareAddr(rs[:]), p.macA)
			break
		}
	}
	if st := d.ProgramStats(); st["fastpath_tx"] != n {
		t.Errorf("fastpath_tx %d, want %d", st["fastpath_tx"], n)
	}
	// The server's per-CPU counters, folded: every frame and its bytes.
	if pk, by := d.ServerCount(slot); pk != n || by != n*uint64(len(toVIP(client))) {
		t.Errorf("server slot %d: %d frames, %d bytes; want %d and %d", slot, pk, by, n, n*len(toVIP(client)))
	}
	if pk, _ := d.ServerCount(slot + 1); pk != 0 {
		t.Errorf("another slot counted %d frames", pk)
	}
	if extra := collect(s, 1, 100*time.Millisecond); len(extra) != 0 {
		t.Errorf("%d fast-path frames also reached the socket", len(extra))
	}
	if v1, _ := fp.Lookup(id, client); v1.Seen <= v0.Seen {
		t.Errorf("last seen not refreshed: %d then %d", v0.Seen, v1.Seen)
	}

	expectSocket("another client", toVIP(other), 2)
	notUs := toVIP(client)
	copy(notUs[0:6], []byte{0x02, 0, 0, 0, 0, 0x99})
	expectSocket("frame for another host", notUs, 2)
	frag := toVIP(client)
	binary.BigEndian.PutUint16(frag[14+6:], 185) // fragment offset 185*8: non-first
	expectSocket("non-first fragment", frag, 2)

	if err := fp.Bump(); err != nil {
		t.Fatal(err)
	}
	expectSocket("after Bump (stale generation)", toVIP(client), 2)

	// A fresh decision, then the VIP loses its fast path: frames go to the socket.
	if err := fp.Update([]FastPathKey{{Service: id, Client: client.As16()}}, []FastPathValue{{DstMAC: rs, SrcMAC: mac, Gen: fp.Generation()}}); err != nil {
		t.Fatal(err)
	}
	vips[0].FastPath = false
	if err := d.SetVIPs(vips); err != nil {
		t.Fatal(err)
	}
	if fp.ServiceID("S") != 0 {
		t.Error("service keeps its fast-path id after SetVIPs without FastPath")
	}
	expectSocket("fast path off", toVIP(client), 2)

	// Walk sees the entries and deletes what it is told to.
	seen := 0
	kept, deleted, err := fp.Walk(func(k FastPathKey, v FastPathValue, idle time.Duration) bool {
		seen++
		if idle < 0 || idle > time.Minute {
			t.Errorf("idle %v", idle)
		}
		return false
	})
	if err != nil || seen != 1 || kept != 0 || deleted != 1 {
		t.Errorf("Walk: seen %d kept %d deleted %d err %v, want 1 0 1", seen, kept, deleted, err)
	}
	if _, ok := fp.Lookup(id, client); ok {
		t.Error("entry left after Walk deleted it")
	}
}

// BenchmarkFastPathUpdate measures the cost of recording decisions: one
// BPF_MAP_UPDATE_BATCH syscall per call with N entries.
func BenchmarkFastPathUpdate(b *testing.B) {
	p := newPair(b)
	var d *Dataplane
	if err := inNS(p.hA, func() (err error) { d, err = Open(Config{Interface: "xa", NumFrames: 1024, RingSize: 512}); return err }); err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	fp := d.FastPath()
	for _, n := range []int{1, 16, 64} {
		b.Run("entries="+strconv.Itoa(n), func(b *testing.B) {
			keys := make([]FastPathKey, n)
			vals := make([]FastPathValue, n)
			i := uint32(0)
			b.ReportAllocs()
			for b.Loop() {
				for j := range keys {
					i = (i + 1) % (DefaultFastPathEntries / 2) // the map never fills
					keys[j] = FastPathKey{Service: 1, Client: netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}).As16()}
					vals[j] = FastPathValue{Gen: 1}
				}
				if err := fp.Update(keys, vals); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/entry")
		})
	}
}

// TestFastPathFull: a full fast-path map refuses new clients (counted) and keeps
// every recorded one (an LRU map would evict one per newcomer, uncounted); known
// clients are still updated in the same batch, and once the ager deleted an
// entry (counted as expired) a newcomer gets its room.
func TestFastPathFull(t *testing.T) {
	p := newPair(t)
	var d *Dataplane
	if err := inNS(p.hA, func() (err error) {
		d, err = Open(Config{Interface: "xa", NumFrames: 1024, RingSize: 512, FastPathEntries: 8})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	fp := d.FastPath()
	client := func(i int) netip.Addr { return netip.AddrFrom4([4]byte{10, 1, 0, byte(i)}) }
	batch := func(from, to int, mac byte) ([]FastPathKey, []FastPathValue) {
		var ks []FastPathKey
		var vs []FastPathValue
		for i := from; i < to; i++ {
			ks = append(ks, FastPathKey{Service: 1, Client: client(i).As16()})
			vs = append(vs, FastPathValue{DstMAC: [6]byte{2, 0, 0, 0, 0, mac}, Gen: fp.Generation()})
		}
		return ks, vs
	}
	ks, vs := batch(0, 8, 1)
	if err := fp.Update(ks, vs); err != nil {
		t.Fatal(err)
	}
	// Newcomers 8-11 between known clients 6 and 7 (updated to MAC ...:02).
	ks, vs = batch(6, 12, 2)
	ks[1], ks[5], vs[1], vs[5] = ks[5], ks[1], vs[5], vs[1] // 6, 11, 8, 9, 10, 7
	if err := fp.Update(ks, vs); err != nil {
		t.Fatalf("update of a full map: %v, want refusals counted, not an error", err)
	}
	st := fp.Stats()
	if st.Refused != 4 || st.Entries != 10 {
		t.Errorf("stats %+v: want 4 refused, 10 entries written", st)
	}
	for i := range 12 {
		v, ok := fp.Lookup(1, client(i))
		switch {
		case i < 6 && (!ok || v.DstMAC[5] != 1):
			t.Errorf("client %d: %v %v, want kept with its first decision", i, ok, v.DstMAC)
		case (i == 6 || i == 7) && (!ok || v.DstMAC[5] != 2):
			t.Errorf("client %d: %v %v, want updated in the full map", i, ok, v.DstMAC)
		case i >= 8 && ok:
			t.Errorf("client %d is in the map, want refused (full)", i)
		}
	}
	if _, deleted, err := fp.Walk(func(k FastPathKey, _ FastPathValue, _ time.Duration) bool {
		return netip.AddrFrom16(k.Client).Unmap() != client(0)
	}); err != nil || deleted != 1 || fp.Stats().Expired != 1 {
		t.Fatalf("walk: %d deleted, %v, stats %+v: want 1 expired", deleted, err, fp.Stats())
	}
	ks, vs = batch(8, 9, 3)
	if err := fp.Update(ks, vs); err != nil {
		t.Fatal(err)
	}
	if _, ok := fp.Lookup(1, client(8)); !ok || fp.Stats().Refused != 4 {
		t.Errorf("after the walk: newcomer recorded %v, stats %+v", ok, fp.Stats())
	}
}

// TestFastPathLayout: the Go types match the program's structs byte for byte (the
// raw batch update relies on it), as bpf2go generated them from bpf/steer.c.
func TestFastPathLayout(t *testing.T) {
	if unsafe.Sizeof(FastPathKey{}) != unsafe.Sizeof(steerFpKey{}) || unsafe.Sizeof(FastPathKey{}) != 20 {
		t.Errorf("FastPathKey is %d bytes, fp_key %d, want 20", unsafe.Sizeof(FastPathKey{}), unsafe.Sizeof(steerFpKey{}))
	}
	if unsafe.Sizeof(FastPathValue{}) != unsafe.Sizeof(steerFpValue{}) || unsafe.Sizeof(FastPathValue{}) != 32 {
		t.Errorf("FastPathValue is %d bytes, fp_value %d, want 32", unsafe.Sizeof(FastPathValue{}), unsafe.Sizeof(steerFpValue{}))
	}
	var v FastPathValue
	if unsafe.Offsetof(v.Gen) != 12 || unsafe.Offsetof(v.Slot) != 16 || unsafe.Offsetof(v.Seen) != 24 {
		t.Errorf("FastPathValue offsets gen %d slot %d seen %d, want 12, 16 and 24", unsafe.Offsetof(v.Gen), unsafe.Offsetof(v.Slot), unsafe.Offsetof(v.Seen))
	}
	spec, err := loadSteer()
	if err != nil {
		t.Fatal(err)
	}
	if m := spec.Maps["fastpath"]; m.KeySize != 20 || m.ValueSize != 32 {
		t.Errorf("fastpath map key %d value %d bytes, want 20 and 32", m.KeySize, m.ValueSize)
	}
}
