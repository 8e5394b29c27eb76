package afxdp

import (
	"net/netip"
	"strconv"
	"testing"
	"time"
)

// TestMultiQueue: one socket per RX queue, each in the XSKMAP at its queue;
// flows spread over the queues all arrive; Queues limits the count.
func TestMultiQueue(t *testing.T) {
	p := newPairQ(t, 2)
	d := p.open(t, Config{})
	socks := d.Sockets()
	if len(socks) != 2 || socks[0].QueueID() != 0 || socks[1].QueueID() != 1 {
		t.Fatalf("got %d sockets", len(socks))
	}
	if err := d.SetVIPs([]VIP{{Addr: ipA4, Proto: ProtoUDP, Ports: []PortRange{{5000, 5000}}}}); err != nil {
		t.Fatal(err)
	}
	const flows = 32
	for i := 0; i < flows; i++ {
		dialUDP(t, p.hB, netip.AddrPortFrom(ipA4, 5000)).Write([]byte("flow"))
	}
	got0 := len(collect(socks[0], flows, 500*time.Millisecond))
	got1 := len(collect(socks[1], flows-got0, time.Second))
	t.Logf("queue 0: %d frames, queue 1: %d frames", got0, got1)
	if got0+got1 != flows {
		t.Errorf("%d of %d flows arrived", got0+got1, flows)
	}
	d.Close()

	d1 := p.open(t, Config{Queues: 1})
	if n := len(d1.Sockets()); n != 1 {
		t.Errorf("Queues: 1 opened %d sockets", n)
	}
	d1.Close()
	if err := inNS(p.hA, func() error {
		d, err := Open(Config{Interface: "xa", Queues: 3})
		if err == nil {
			d.Close()
		}
		return err
	}); err == nil {
		t.Error("Queues: 3 on a 2-queue interface did not fail")
	}
}

// TestNoAllocs: the per-batch calls allocate nothing.
func TestNoAllocs(t *testing.T) {
	p := newPair(t)
	d := p.open(t, Config{})
	s := d.Sockets()[0]
	descs := make([]Desc, 16)
	tmpl := udp4(p.macB, p.macA, ipA4, ipB4, 5000, 7000, []byte("alloc"))
	allocs := testing.AllocsPerRun(200, func() {
		n := s.Receive(descs)
		s.Release(descs[:n])
		n = s.Alloc(descs)
		for i := range descs[:n] {
			descs[i].Len = uint32(copy(s.Frame(descs[i]), tmpl))
		}
		sent := s.Transmit(descs[:n])
		s.Release(descs[sent:n])
		s.Wait(0)
		_ = s.Stats()
	})
	if allocs != 0 {
		t.Errorf("%.1f allocations per batch, want 0", allocs)
	}
}

// BenchmarkTransmit: copy-mode AF_XDP TX on a veth, batches of 64 frames.
func BenchmarkTransmit(b *testing.B) {
	requireRoot(b)
	for _, size := range []int{64, 1400} {
		b.Run("frame="+strconv.Itoa(size), func(b *testing.B) {
			p := newPair(b)
			var d *Dataplane
			if err := inNS(p.hA, func() (err error) { d, err = Open(Config{Interface: "xa"}); return err }); err != nil {
				b.Fatal(err)
			}
			defer d.Close()
			s := d.Sockets()[0]
			tmpl := udp4(p.macB, p.macA, ipA4, ipB4, 5000, 9, make([]byte, size-42))
			descs := make([]Desc, 64)
			frames := 0
			b.ReportAllocs()
			for b.Loop() {
				n := s.Alloc(descs)
				for i := range descs[:n] {
					descs[i].Len = uint32(copy(s.Frame(descs[i]), tmpl))
				}
				sent := s.Transmit(descs[:n])
				s.Release(descs[sent:n])
				frames += sent
			}
			b.ReportMetric(float64(frames)/b.Elapsed().Seconds(), "frames/s")
			st := s.Stats()
			b.ReportMetric(float64(st.TxKicks)/float64(max(frames, 1)), "kicks/frame")
		})
	}
}

// TestFrameAccounting: a received frame stays the caller's until Transmit or
// Release; refills in between never hand it to the kernel again (asavie's
// Receive marked it free at once, so it could land on the fill and TX rings).
func TestFrameAccounting(t *testing.T) {
	p := newPair(t)
	d := p.open(t, Config{NumFrames: 600, RingSize: 512}) // only 88 frames beyond the fill ring
	if err := d.SetVIPs([]VIP{{Addr: ipA4, Proto: ProtoUDP, Ports: []PortRange{{5000, 5000}}}}); err != nil {
		t.Fatal(err)
	}
	s := d.Sockets()[0]
	c := dialUDP(t, p.hB, netip.AddrPortFrom(ipA4, 5000))
	const n = 50
	for i := 0; i < n; i++ {
		c.Write([]byte("held"))
	}
	held := make([]Desc, 0, n)
	descs := make([]Desc, n)
	deadline := time.Now().Add(2 * time.Second)
	for len(held) < n && time.Now().Before(deadline) {
		s.Wait(20 * time.Millisecond)
		k := s.Receive(descs[:n-len(held)])
		held = append(held, descs[:k]...)
	}
	if len(held) != n {
		t.Fatalf("received %d of %d", len(held), n)
	}
	for i := 0; i < 5; i++ { // refills
		s.Receive(descs)
		s.Wait(0)
	}
	onFill := map[uint64]bool{}
	for i := atomicLoad(s.fill.consumer); i != s.fill.prod; i++ {
		onFill[s.fillDescs[i&s.fill.mask]] = true
	}
	inFree := map[uint64]bool{}
	for _, a := range s.free {
		inFree[a] = true
	}
	for _, h := range held {
		if base := h.Addr & s.frameMask; onFill[base] || inFree[base] {
			t.Fatalf("held frame %#x is also on the fill ring (%v) or free (%v)", base, onFill[base], inFree[base])
		}
	}
	if got := len(s.free) + int(s.fill.prod-atomicLoad(s.fill.consumer)) + len(held); got != 600 {
		t.Errorf("free %d + fill ring %d + held %d = %d frames, want 600", len(s.free), s.fill.prod-atomicLoad(s.fill.consumer), len(held), got)
	}
	s.Release(held)
	s.Wait(0)
	if got := len(s.free) + int(s.fill.prod-atomicLoad(s.fill.consumer)); got != 600 {
		t.Errorf("after Release: %d frames accounted for, want 600", got)
	}
}

// TestSetChannels: the channel count read back is the one set; more than the
// device's maximum fails with the maximum in the message.
func TestSetChannels(t *testing.T) {
	p := newPairQ(t, 2)
	for _, tc := range []struct {
		n       int
		wantErr bool
	}{{1, false}, {2, false}, {3, true}, {0, true}} {
		var got int
		err := inNS(p.hA, func() error {
			if err := SetChannels("xa", tc.n); err != nil {
				return err
			}
			var err error
			got, err = ethtoolRxChannels("xa")
			return err
		})
		if (err != nil) != tc.wantErr {
			t.Errorf("SetChannels(%d): %v, want error %v", tc.n, err, tc.wantErr)
		}
		if err == nil && got != tc.n {
			t.Errorf("SetChannels(%d): %d channels read back", tc.n, got)
		}
	}
}
