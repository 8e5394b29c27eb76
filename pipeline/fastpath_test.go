package pipeline

import (
	"errors"
	"net/netip"
	"testing"

	"github.com/medialb/medialb/afxdp"
)

// fakeFastPath records what a worker sends to the fast-path map.
type fakeFastPath struct {
	gen   uint32
	ids   map[string]uint32
	calls int
	keys  []afxdp.FastPathKey
	vals  []afxdp.FastPathValue
	err   error
}

func (f *fakeFastPath) Generation() uint32           { return f.gen }
func (f *fakeFastPath) ServiceID(name string) uint32 { return f.ids[name] }
func (f *fakeFastPath) Update(keys []afxdp.FastPathKey, vals []afxdp.FastPathValue) error {
	f.calls++
	if f.err != nil {
		return f.err
	}
	f.keys = append(f.keys, keys...)
	f.vals = append(f.vals, vals...)
	return nil
}

// The worker records each client of a fast-path service once per generation, in one
// Update per batch, with the server it forwarded to; fragments, services without an
// id and frames that are not forwarded are not recorded.
func TestWorkerFastPath(t *testing.T) {
	fp := &fakeFastPath{gen: 7, ids: map[string]uint32{"Harmonic_Traffic": 3}}
	clients := []netip.Addr{client4, netip.MustParseAddr("10.9.9.9"), netip.MustParseAddr("10.9.9.10")}
	var frames [][]byte
	for _, c := range clients {
		frames = append(frames,
			buildFrame(frameSpec{src: c, dport: 1935}),
			buildFrame(frameSpec{src: c, proto: protoTCP, dport: 554})) // same client, other port: once
	}
	frames = append(frames,
		buildFrame(frameSpec{src: netip.MustParseAddr("10.7.7.7"), frag: FragLater}), // fragment: not recorded
		buildFrame(frameSpec{src: client6, dst: vip6, dport: 60000}),                 // Traffic6 has no id
		buildFrame(frameSpec{src: netip.MustParseAddr("10.8.8.8"), dport: 22}),       // not forwarded
	)
	port := newFakePort(64)
	port.load(0, frames...)
	now := uint32(100)
	w := NewWorker(port, testHolder(t), localMAC, WorkerOptions{FastPath: fp, Clock: func() uint32 { return now }})
	if !w.poll() {
		t.Fatal("nothing received")
	}
	if fp.calls != 1 || len(fp.keys) != len(clients) {
		t.Fatalf("%d Update calls with %d entries, want 1 with %d", fp.calls, len(fp.keys), len(clients))
	}
	svc := testHolder(t).Load().Service("Harmonic_Traffic")
	for i, k := range fp.keys {
		c := netip.AddrFrom16(k.Client).Unmap()
		if k.Service != 3 || c != clients[i] {
			t.Errorf("entry %d: key %d %v, want 3 %v", i, k.Service, c, clients[i])
		}
		v := fp.vals[i]
		srv, _ := svc.Pick(c, now)
		if v.Gen != 7 || v.DstMAC != srv.MAC || v.SrcMAC != localMAC {
			t.Errorf("entry %d: value %+v, want gen 7 dst %x src %x", i, v, srv.MAC, localMAC)
		}
	}
	if c := w.Counters(); c.FastPathEntries != 3 || c.FastPathFlushes != 1 || c.FastPathErrors != 0 {
		t.Errorf("counters %+v", c)
	}

	// The same clients again in the same generation and second: nothing to record.
	port.load(0, frames...)
	w.poll()
	if fp.calls != 1 {
		t.Errorf("%d Update calls after repeated clients, want still 1: %v", fp.calls, fp.keys)
	}
	// A second later (the map may have lost them): recorded again.
	now++
	port.load(0, frames[:2]...)
	w.poll()
	if fp.calls != 2 || len(fp.keys) != 4 {
		t.Errorf("a second later: %d calls, %d entries; want 2 and 4", fp.calls, len(fp.keys))
	}
	// A new generation: recorded again under it.
	fp.gen = 8
	port.load(0, frames[:2]...)
	w.poll()
	if fp.calls != 3 || len(fp.keys) != 5 || fp.vals[4].Gen != 8 {
		t.Errorf("new generation: %d calls, %d entries; want 3 and 5 with gen 8", fp.calls, len(fp.keys))
	}
	// A failed Update is counted and the entries are tried again with the next frame.
	fp.err = errors.New("no map")
	port.load(0, buildFrame(frameSpec{src: netip.MustParseAddr("10.6.6.6"), dport: 1935}),
		buildFrame(frameSpec{src: netip.MustParseAddr("10.6.6.6"), dport: 1935}))
	w.poll()
	fp.err = nil
	port.load(0, buildFrame(frameSpec{src: netip.MustParseAddr("10.6.6.6"), dport: 1935}))
	w.poll()
	if c := w.Counters(); c.FastPathErrors != 1 || len(fp.keys) != 6 {
		t.Errorf("after a failed Update: %d errors, %d entries; want 1 and 6", c.FastPathErrors, len(fp.keys))
	}
}

// Recording allocates nothing once the worker runs: a batch costs the same allocations
// (those of the fake port's load) with and without the fast path.
func TestWorkerFastPathAllocs(t *testing.T) {
	var frames [][]byte
	for i := range 64 {
		frames = append(frames, buildFrame(frameSpec{src: netip.AddrFrom4([4]byte{10, 3, 0, byte(i)}), dport: 1935}))
	}
	measure := func(fp FastPath) float64 {
		port := newFakePort(64)
		n := uint32(0)
		w := NewWorker(port, testHolder(t), localMAC, WorkerOptions{FastPath: fp, Clock: func() uint32 { n++; return n }})
		port.load(0, frames...)
		w.poll()
		port.reset()
		return testing.AllocsPerRun(50, func() {
			port.load(0, frames...)
			w.poll()
			port.reset()
		})
	}
	fp := &fakeFastPath{gen: 1, ids: map[string]uint32{"Harmonic_Traffic": 1}}
	fp.keys = make([]afxdp.FastPathKey, 0, 1<<16)
	fp.vals = make([]afxdp.FastPathValue, 0, 1<<16)
	without, with := measure(nil), measure(fp)
	if with != without {
		t.Errorf("%v allocations per batch with the fast path, %v without", with, without)
	}
	if fp.calls < 50 {
		t.Errorf("%d Update calls, want one per batch (a new second every batch)", fp.calls)
	}
	if v := fp.vals[len(fp.vals)-1]; v.Gen != 1 || v.SrcMAC != localMAC {
		t.Errorf("last value %+v", v)
	}
}

// TestWorkerFastPathAdmission: a client enters the fast-path map with its second
// packet (an affinity hit), never with its first: a spray of one-packet sources
// leaves the map alone.
func TestWorkerFastPathAdmission(t *testing.T) {
	fp := &fakeFastPath{gen: 1, ids: map[string]uint32{"Harmonic_Traffic": 1}}
	port := newFakePort(256)
	var spray [][]byte
	for i := range 200 {
		spray = append(spray, buildFrame(frameSpec{src: netip.AddrFrom4([4]byte{10, 99, byte(i >> 8), byte(i)}), dport: 50000 + uint16(i)}))
	}
	port.load(0, spray...)
	now := uint32(10)
	w := NewWorker(port, testHolder(t), localMAC, WorkerOptions{FastPath: fp, BatchSize: 256, Clock: func() uint32 { return now }})
	w.poll()
	if len(fp.keys) != 0 || w.Counters().ByReason[Forwarded] != 200 {
		t.Fatalf("one packet each: %d fast-path entries, %d forwarded; want 0 and 200", len(fp.keys), w.Counters().ByReason[Forwarded])
	}
	now++
	port.load(0, spray[:1]...)
	w.poll()
	if len(fp.keys) != 1 {
		t.Errorf("second packet of a client: %d entries, want 1", len(fp.keys))
	}
}
