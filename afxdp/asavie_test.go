package afxdp

import (
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/asavie/xdp"
	"golang.org/x/sys/unix"
)

// Why Socket is ours: github.com/asavie/xdp v0.3.3's socket, on this kernel,
// stops its copy-mode transmit after the kernel's 32-frame sendto budget,
// spins in Poll on POLLOUT, has frame accounting that can put one frame on
// two rings, and leaves the rings mapped on Close so the queue stays claimed.
// TestAsavieBugs shows three of these.

// TestAsavieBugs shows, on this kernel, why Socket replaces asavie/xdp
// v0.3.3's socket: its Transmit makes one sendto, which in copy mode sends 32
// frames and answers EAGAIN, so the rest of a batch sits on the TX ring; its
// Poll then asks for POLLOUT and returns at once (a spin); and its Close
// leaves the rings mapped, so the queue stays claimed (EBUSY). The same
// operations through Socket are in TestTransmit and TestWaitDoesNotSpin.
func TestAsavieBugs(t *testing.T) {
	p := newPair(t)
	peer := listenUDP(t, p.hB, netip.AddrPortFrom(ipB4, 7000))
	peer.SetReadBuffer(4 << 20)
	opts := &xdp.SocketOptions{NumFrames: 512, FrameSize: 2048,
		FillRingNumDescs: 256, CompletionRingNumDescs: 256, RxRingNumDescs: 256, TxRingNumDescs: 256}
	var xsk *xdp.Socket
	if err := inNS(p.hA, func() (err error) { xsk, err = xdp.NewSocket(p.idxA, 0, opts); return err }); err != nil {
		t.Fatal(err)
	}
	const batch = 100
	descs := xsk.GetDescs(batch)
	for i := range descs {
		b := udp4(p.macB, p.macA, ipA4, ipB4, 5000, 7000, []byte("asavie"))
		descs[i].Len = uint32(copy(xsk.GetFrame(descs[i]), b))
	}
	if n := xsk.Transmit(descs); n != batch {
		t.Fatalf("asavie Transmit took %d", n)
	}
	got := countUDP(peer, batch, time.Second)
	t.Logf("asavie: %d of %d frames of one Transmit arrived", got, batch)
	if got >= batch {
		t.Errorf("asavie sent the whole batch: the copy-mode EAGAIN bug is gone, revisit afxdp's replacement")
	}

	start := time.Now()
	calls := 0
	for time.Since(start) < 100*time.Millisecond {
		xsk.Poll(100) // 100 ms timeout, nothing to receive
		calls++
	}
	t.Logf("asavie: %d Poll(100ms) calls returned within 100ms with frames in flight", calls)
	if calls < 10 {
		t.Errorf("asavie Poll blocked (%d calls): the POLLOUT spin is gone", calls)
	}

	xsk.Close()
	var err error
	if err = inNS(p.hA, func() error {
		s, err := newSocket(socketConfig{ifindex: p.idxA, queue: 0, numFrames: 64, frameSize: 2048, ringSize: 64, bindFlags: unix.XDP_COPY})
		if err == nil {
			s.Close()
		}
		return err
	}); !errors.Is(err, unix.EBUSY) {
		t.Errorf("bind after asavie Close: %v, want EBUSY (rings left mapped keep the queue claimed)", err)
	} else {
		t.Logf("bind after asavie Close: %v", err)
	}
}

// TestWaitDoesNotSpin: with nothing to receive, Wait sleeps its timeout, also
// right after a Transmit (where asavie's Poll would ask for POLLOUT and spin).
func TestWaitDoesNotSpin(t *testing.T) {
	p := newPair(t)
	d := p.open(t, Config{})
	s := d.Sockets()[0]
	descs := make([]Desc, 40)
	s.Alloc(descs)
	for i := range descs {
		descs[i].Len = uint32(copy(s.Frame(descs[i]), udp4(p.macB, p.macA, ipA4, ipB4, 5000, 7000, []byte("w"))))
	}
	s.Transmit(descs)
	start := time.Now()
	calls := 0
	for time.Since(start) < 300*time.Millisecond {
		if err := s.Wait(100 * time.Millisecond); err != nil {
			t.Fatal(err)
		}
		calls++
	}
	if calls > 4 {
		t.Errorf("%d Wait(100ms) calls in 300ms: Wait spins", calls)
	}
}
