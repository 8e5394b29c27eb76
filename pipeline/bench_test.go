package pipeline

import (
	"net/netip"
	"testing"
)

// benchKinds are the frame kinds benchmarked; i numbers the client (64 per batch).
var benchKinds = []struct {
	name string
	spec func(i int) frameSpec
}{
	{"udp4-64B", func(i int) frameSpec {
		return frameSpec{src: benchClient4(i), dport: 1935, payload: 18}
	}},
	{"tcp4", func(i int) frameSpec {
		return frameSpec{src: benchClient4(i), proto: protoTCP, dport: 554, payload: 6}
	}},
	{"udp6", func(i int) frameSpec {
		return frameSpec{src: netip.AddrFrom16([16]byte{0: 0xfd, 1: 1, 14: byte(i >> 8), 15: byte(i)}), dport: 50000, payload: 100}
	}},
	{"vlan", func(i int) frameSpec {
		return frameSpec{src: benchClient4(i), vlans: []uint16{100}, dport: 1935, payload: 14}
	}},
	{"frag", func(i int) frameSpec {
		return frameSpec{src: benchClient4(i), frag: FragLater, payload: 600}
	}},
}

func benchClient4(i int) netip.Addr { return netip.AddrFrom4([4]byte{10, 3, byte(i >> 8), byte(i)}) }

// BenchmarkWorker runs the batch path (receive, process, transmit, count) on batches of
// 64 frames of one kind from 64 clients (persistence hits after the first batch)
// through the in-memory port. Each iteration first restores the destination MACs the
// previous one rewrote (6 bytes per frame, included in the figures).
//
// "udp4-64B/fastpath" is udp4-64B with WorkerOptions.FastPath set (a fake map that
// records in memory): the clients are known after the first batch, so it measures
// what the fast-path bookkeeping adds per packet to frames that still reach the worker
// (the cache check; no map update).
func BenchmarkWorker(b *testing.B) {
	const batch = 64
	kinds := append(benchKinds[:len(benchKinds):len(benchKinds)], struct {
		name string
		spec func(i int) frameSpec
	}{"udp4-64B/fastpath", benchKinds[0].spec})
	for _, k := range kinds {
		b.Run(k.name, func(b *testing.B) {
			frames := make([][]byte, batch)
			for i := range frames {
				frames[i] = buildFrame(k.spec(i))
			}
			port := newFakePort(batch)
			descs := port.load(0, frames...)
			opts := WorkerOptions{BatchSize: batch}
			var fp *fakeFastPath
			if k.name == "udp4-64B/fastpath" {
				fp = &fakeFastPath{gen: 1, ids: map[string]uint32{"Harmonic_Traffic": 1}}
				opts.FastPath = fp
			}
			w := NewWorker(port, testHolder(b), localMAC, opts)
			b.ReportAllocs()
			for b.Loop() {
				port.tx, port.released = port.tx[:0], port.released[:0]
				port.rx = append(port.rx[:0], descs...)
				for _, d := range descs {
					copy(port.Frame(d), localMAC[:])
				}
				w.poll()
			}
			c := w.Counters()
			if c.Forwarded() != c.Received() {
				b.Fatalf("not everything forwarded: %+v", c)
			}
			if fp != nil && len(fp.keys) < batch {
				b.Fatalf("%d clients recorded, want %d", len(fp.keys), batch)
			}
			ns := float64(b.Elapsed().Nanoseconds()) / float64(b.N*batch)
			b.ReportMetric(ns, "ns/pkt")
			b.ReportMetric(1e3/ns, "Mpps")
		})
	}
}

// BenchmarkParse is the parser alone.
func BenchmarkParse(b *testing.B) {
	for _, k := range benchKinds {
		b.Run(k.name, func(b *testing.B) {
			f := buildFrame(k.spec(1))
			var p Packet
			b.ReportAllocs()
			for b.Loop() {
				if Parse(f, &p) != OK {
					b.Fatal("not ok")
				}
			}
		})
	}
}
