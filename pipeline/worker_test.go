package pipeline

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/medialb/medialb/tables"
)

const fakeFrameSize = 2048

// fakePort is an in-memory Port: a slice of frames as UMEM, an RX queue of descs, and
// records of what was transmitted and released. It is safe for concurrent use (the
// test reads it while the worker runs); once its slices have grown, it allocates
// nothing.
type fakePort struct {
	mu       sync.Mutex
	umem     []byte
	rx       []Desc // waiting to be received
	tx       []Desc // transmitted, in order
	released []Desc
	txLimit  int // most descs accepted per Transmit call; < 0: no limit
	waits    int
	waitErr  error
}

func newFakePort(nframes int) *fakePort {
	return &fakePort{umem: make([]byte, nframes*fakeFrameSize), txLimit: -1}
}

// load copies frames into UMEM slots from slot first on and queues them for RX.
func (p *fakePort) load(first int, frames ...[]byte) []Desc {
	p.mu.Lock()
	defer p.mu.Unlock()
	var ds []Desc
	for i, f := range frames {
		addr := uint64((first + i) * fakeFrameSize)
		copy(p.umem[addr:], f)
		ds = append(ds, Desc{Addr: addr, Len: uint32(len(f))})
	}
	p.rx = append(p.rx, ds...)
	return ds
}

func (p *fakePort) Receive(descs []Desc) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := copy(descs, p.rx)
	p.rx = p.rx[:copy(p.rx, p.rx[n:])]
	return n
}

func (p *fakePort) Frame(d Desc) []byte { return p.umem[d.Addr : d.Addr+uint64(d.Len)] }

func (p *fakePort) Transmit(descs []Desc) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := len(descs)
	if p.txLimit >= 0 && n > p.txLimit {
		n = p.txLimit
	}
	p.tx = append(p.tx, descs[:n]...)
	return n
}

func (p *fakePort) Release(descs []Desc) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.released = append(p.released, descs...)
}

func (p *fakePort) Wait(timeout time.Duration) error {
	p.mu.Lock()
	p.waits++
	err := p.waitErr
	p.mu.Unlock()
	if err != nil {
		return err
	}
	time.Sleep(min(timeout, time.Millisecond))
	return nil
}

// reset forgets what was transmitted and released (keeping the capacity).
func (p *fakePort) reset() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.tx, p.released = p.tx[:0], p.released[:0]
}

func (p *fakePort) frameCopy(d Desc) []byte { return append([]byte{}, p.Frame(d)...) }

func testHolder(t testing.TB) *tables.Holder {
	var h tables.Holder
	h.Store(testSnapshot(t))
	return &h
}

// A batch of mixed frames: only the valid VIP frames are transmitted, rewritten, and
// everything is counted under its reason.
func TestWorkerMixedBatch(t *testing.T) {
	type entry struct {
		frame []byte
		want  Reason
	}
	var entries []entry
	add := func(r Reason, frames ...[]byte) {
		for _, f := range frames {
			entries = append(entries, entry{f, r})
		}
	}
	for i := range 10 {
		c := netip.AddrFrom4([4]byte{10, 0, 0, byte(i)})
		add(Forwarded,
			buildFrame(frameSpec{src: c, dport: 1935}),
			buildFrame(frameSpec{src: c, proto: protoTCP, dport: 554, vlans: []uint16{3}}))
	}
	add(Forwarded, buildFrame(frameSpec{src: client6, dport: 60000}), buildFrame(frameSpec{frag: FragLater}))
	for _, c := range corpus() {
		if c.want.Malformed() {
			add(c.want, c.frame)
		}
	}
	add(NotForUs, buildFrame(frameSpec{dstMAC: otherMAC, dport: 1935}), buildFrame(frameSpec{proto: 1, noL4: true}))
	add(NoService, buildFrame(frameSpec{dport: 22}), buildFrame(frameSpec{proto: protoTCP, dst: vipMgmt, dport: 8443}))
	add(NoServer, buildFrame(frameSpec{dst: vipNoServer, dport: 554}))
	add(MACUnresolved, buildFrame(frameSpec{dst: vipNoMAC, dport: 554}))

	port := newFakePort(len(entries))
	frames := make([][]byte, len(entries))
	var want Counters
	for i, e := range entries {
		frames[i] = e.frame
		want.ByReason[e.want]++
	}
	descs := port.load(0, frames...)
	// 3 forwardable frames do not fit into the TX ring of the last batch.
	const batch = 16
	nb := (len(entries) + batch - 1) / batch
	want.Batches = uint64(nb)
	w := NewWorker(port, testHolder(t), localMAC, WorkerOptions{BatchSize: batch})
	var lastTX []Desc
	for i := range nb {
		if i == nb-1 {
			port.txLimit = 0
			for _, d := range descs[i*batch:] {
				if entries[d.Addr/fakeFrameSize].want == Forwarded {
					lastTX = append(lastTX, d)
				}
			}
		}
		if !w.poll() {
			t.Fatalf("batch %d: nothing received", i)
		}
	}
	if w.poll() {
		t.Fatal("received more batches than queued")
	}
	want.ByReason[Forwarded] -= uint64(len(lastTX))
	want.ByReason[TXFull] += uint64(len(lastTX))

	got := w.Counters()
	if got != want {
		t.Errorf("counters:\n got %+v\nwant %+v", got, want)
	}
	if got.Received() != uint64(len(entries)) || got.Dropped() != uint64(len(entries))-want.ByReason[Forwarded] {
		t.Errorf("Received %d, Dropped %d of %d frames", got.Received(), got.Dropped(), len(entries))
	}
	if len(port.tx)+len(port.released) != len(entries) {
		t.Errorf("%d transmitted + %d released, want %d frames", len(port.tx), len(port.released), len(entries))
	}
	snap := w.holder.Load()
	txSet := map[uint64]bool{}
	for _, d := range port.tx {
		txSet[d.Addr] = true
		e := entries[d.Addr/fakeFrameSize]
		if e.want != Forwarded {
			t.Errorf("frame %d (%v) transmitted", d.Addr/fakeFrameSize, e.want)
		}
		checkRewrite(t, snap, e.frame, port.Frame(d), Forwarded)
	}
	for _, d := range port.released {
		if txSet[d.Addr] {
			t.Errorf("frame %d both transmitted and released", d.Addr/fakeFrameSize)
		}
		e := entries[d.Addr/fakeFrameSize]
		if e.want != Forwarded && !bytes.Equal(port.Frame(d), e.frame) {
			t.Errorf("dropped frame %d (%v) modified", d.Addr/fakeFrameSize, e.want)
		}
	}
}

func TestWorkerRun(t *testing.T) {
	port := newFakePort(256)
	w := NewWorker(port, testHolder(t), localMAC, WorkerOptions{IdleWait: time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()

	var frames [][]byte
	for i := range 200 {
		frames = append(frames, buildFrame(frameSpec{src: netip.AddrFrom4([4]byte{10, 1, 0, byte(i)}), dport: 1935}))
	}
	port.load(0, frames[:100]...)
	time.Sleep(5 * time.Millisecond) // the worker idles in between
	port.load(100, frames[100:]...)
	deadline := time.Now().Add(5 * time.Second)
	for w.Counters().Received() < 200 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run = %v, want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	c := w.Counters()
	if c.Forwarded() != 200 || c.Received() != 200 || c.Batches < 4 {
		t.Errorf("counters %+v: want 200 forwarded in at least 4 batches", c)
	}
	port.mu.Lock()
	ntx, waits := len(port.tx), port.waits
	port.waitErr = errors.New("socket closed")
	port.mu.Unlock()
	if ntx != 200 || waits == 0 {
		t.Errorf("%d transmitted, %d waits", ntx, waits)
	}

	// A failing Wait ends Run with the error.
	if err := w.Run(context.Background()); !errors.Is(err, port.waitErr) {
		t.Errorf("Run = %v, want the Wait error", err)
	}
}

// Sum and Counters agree across workers.
func TestSum(t *testing.T) {
	var ws []*Worker
	h := testHolder(t)
	for i := range 3 {
		port := newFakePort(4)
		var frames [][]byte
		for range i + 1 {
			frames = append(frames, buildFrame(frameSpec{dport: 1935}))
		}
		frames = append(frames, buildFrame(frameSpec{dport: 1}))
		port.load(0, frames...)
		w := NewWorker(port, h, localMAC, WorkerOptions{})
		w.poll()
		ws = append(ws, w)
	}
	s := Sum(ws...)
	if s.Forwarded() != 6 || s.ByReason[NoService] != 3 || s.Batches != 3 || s.Received() != 9 || s.Dropped() != 3 {
		t.Errorf("Sum = %+v", s)
	}
}

func TestWorkerAllocs(t *testing.T) {
	var frames [][]byte
	for i := range 64 {
		c := netip.AddrFrom4([4]byte{10, 2, 0, byte(i)})
		switch i % 4 {
		case 0:
			frames = append(frames, buildFrame(frameSpec{src: c, dport: 1935}))
		case 1:
			frames = append(frames, buildFrame(frameSpec{src: netip.AddrFrom16([16]byte{0: 0xfd, 15: byte(i)}), proto: protoTCP, dport: 554}))
		case 2:
			frames = append(frames, buildFrame(frameSpec{src: c, frag: FragLater, vlans: []uint16{9}}))
		default:
			frames = append(frames, buildFrame(frameSpec{src: c, dport: 22}))
		}
	}
	port := newFakePort(64)
	descs := port.load(0, frames...)
	w := NewWorker(port, testHolder(t), localMAC, WorkerOptions{})
	w.poll()
	allocs := testing.AllocsPerRun(200, func() {
		port.reset()
		port.rx = append(port.rx[:0], descs...)
		for _, d := range descs {
			copy(port.Frame(d), localMAC[:])
		}
		if !w.poll() {
			t.Fatal("nothing received")
		}
	})
	if allocs != 0 {
		t.Errorf("%v allocations per batch, want 0", allocs)
	}
	if c := w.Counters(); c.Batches < 201 || c.Forwarded() != c.Batches*48 || c.ByReason[NoService] != c.Batches*16 {
		t.Errorf("counters %+v", c)
	}
}

// The barrage: 3000 random and mutated frames. Nothing broken is transmitted: every
// transmitted frame re-parses as a packet to a VIP and differs from what was received
// in the MACs only.
func TestWorkerBarrage(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var valid [][]byte
	for _, c := range corpus() {
		if c.want == OK {
			valid = append(valid, c.frame)
		}
	}
	valid = append(valid,
		buildFrame(frameSpec{dport: 1935, payload: 40}),
		buildFrame(frameSpec{src: client6, proto: protoTCP, dport: 50001, ext: []v6ext{{0, 8}}}))
	const n = 3000
	frames := make([][]byte, n)
	for i := range frames {
		var f []byte
		switch i % 3 {
		case 0: // random bytes, mostly addressed to us
			f = make([]byte, rng.IntN(200))
			for j := range f {
				f[j] = byte(rng.Uint32())
			}
			if len(f) >= 14 && rng.IntN(4) != 0 {
				copy(f, localMAC[:])
				et := [][2]byte{{0x08, 0x00}, {0x86, 0xdd}, {0x81, 0x00}}[rng.IntN(3)]
				f[12], f[13] = et[0], et[1]
				if len(f) > 14 && et[0] == 0x08 {
					f[14] = 0x40 | f[14]&0x0f
				} else if len(f) > 14 && et[0] == 0x86 {
					f[14] = 0x60 | f[14]&0x0f
				}
			}
		default: // a valid frame with a few header bytes flipped, truncated or extended
			f = append([]byte{}, valid[rng.IntN(len(valid))]...)
			for range 1 + rng.IntN(3) {
				j := 12 + rng.IntN(min(len(f)-12, 80))
				f[j] ^= byte(1 + rng.IntN(255))
			}
			switch rng.IntN(4) {
			case 0:
				f = f[:rng.IntN(len(f)+1)]
			case 1:
				f = append(f, make([]byte, rng.IntN(64))...)
			}
		}
		frames[i] = f
	}
	port := newFakePort(n)
	port.load(0, frames...)
	w := NewWorker(port, testHolder(t), localMAC, WorkerOptions{})
	for w.poll() {
	}
	c := w.Counters()
	if c.Received() != n || len(port.tx)+len(port.released) != n {
		t.Fatalf("received %d, transmitted %d, released %d of %d", c.Received(), len(port.tx), len(port.released), n)
	}
	snap := w.holder.Load()
	for _, d := range port.tx {
		checkRewrite(t, snap, frames[d.Addr/fakeFrameSize], port.Frame(d), Forwarded)
	}
	for _, d := range port.released {
		if !bytes.Equal(port.Frame(d), frames[d.Addr/fakeFrameSize]) {
			t.Fatalf("dropped frame %d modified", d.Addr/fakeFrameSize)
		}
	}
	t.Logf("barrage: %d forwarded, %d malformed, counters %v", c.Forwarded(), c.Malformed(), c.ByReason)
	if c.Forwarded() == 0 || c.Malformed() < n/3 || c.ByReason[NotForUs] == 0 {
		t.Errorf("barrage did not exercise both paths: %+v", c)
	}
}

// TestWorkerServerCounts: frames and bytes are counted by real server, only for the
// frames the TX ring took; more than 8 servers in a batch are counted too.
func TestWorkerServerCounts(t *testing.T) {
	spec := testSpec()
	ht := &spec.Services[0]
	for i := len(ht.Servers); i < 12; i++ { // 12 servers: more than a batch's 8 accumulators
		ht.Servers = append(ht.Servers, tables.ServerSpec{Name: fmt.Sprintf("HT%d", i+1),
			Addr: netip.AddrFrom4([4]byte{192, 168, 94, byte(115 + i)}), Weight: 100, MAC: serverMAC(i + 1), HasMAC: true})
	}
	snap, err := tables.Build(spec, nil)
	if err != nil {
		t.Fatal(err)
	}
	var h tables.Holder
	h.Store(snap)
	svc := snap.Service("Harmonic_Traffic")
	want := map[string]ServerCount{}
	var frames [][]byte
	for i := range 200 {
		f := buildFrame(frameSpec{src: netip.AddrFrom4([4]byte{10, 5, byte(i >> 8), byte(i)}), dport: 1935, payload: i})
		frames = append(frames, f)
	}
	port := newFakePort(len(frames))
	port.load(0, frames...)
	port.txLimit = 150 // the last 50 forwardable frames do not fit
	w := NewWorker(port, &h, localMAC, WorkerOptions{BatchSize: len(frames), Clock: func() uint32 { return 1 }})
	w.poll()
	for _, d := range port.tx {
		f := port.Frame(d)
		for _, srv := range svc.Servers {
			if srv.MAC == [6]byte(f[0:6]) {
				c := want[srv.Name]
				c.Packets++
				c.Bytes += uint64(len(f))
				want[srv.Name] = c
			}
		}
	}
	if len(port.tx) != 150 || len(want) < 9 {
		t.Fatalf("%d frames sent to %d servers; want 150 to more than 8", len(port.tx), len(want))
	}
	var total uint64
	for _, srv := range svc.Servers {
		got := w.ServerCount(srv.Slot)
		if got != want[srv.Name] {
			t.Errorf("%s (slot %d): %+v, want %+v", srv.Name, srv.Slot, got, want[srv.Name])
		}
		total += got.Packets
	}
	if total != 150 {
		t.Errorf("%d frames counted by server, want the 150 sent", total)
	}
}
