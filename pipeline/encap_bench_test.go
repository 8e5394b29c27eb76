package pipeline

import (
	"testing"

	"github.com/medialb/medialb/tables"
)

// BenchmarkWorkerTunnel is BenchmarkWorker's batch path for tunnelled servers, beside
// direct routing in the same run: 64 frames from 64 clients per batch, each iteration
// restoring what the previous one overwrote (the MACs; for a tunnel the 14 bytes
// before the IP packet, which the outer header covers). "gue6-1400B" computes the outer
// UDP checksum over the whole packet.
func BenchmarkWorkerTunnel(b *testing.B) {
	const batch = 64
	kinds := []struct {
		name string
		spec func(i int) frameSpec
	}{
		{"dr-udp4-64B", func(i int) frameSpec { return frameSpec{src: benchClient4(i), dport: 1935, payload: 18} }},
		{"ipip-udp4-64B", func(i int) frameSpec {
			return frameSpec{src: benchClient4(i), dst: tunVIPIPIP4, dport: 1935, payload: 18}
		}},
		{"gue4-udp4-64B", func(i int) frameSpec {
			return frameSpec{src: benchClient4(i), dst: tunVIPGUE4, dport: 1935, payload: 18}
		}},
		{"dr-udp4-1400B", func(i int) frameSpec { return frameSpec{src: benchClient4(i), dport: 1935, payload: 1400} }},
		{"ipip-udp4-1400B", func(i int) frameSpec {
			return frameSpec{src: benchClient4(i), dst: tunVIPIPIP4, dport: 1935, payload: 1400}
		}},
		{"gue6-udp6-1400B", func(i int) frameSpec {
			return frameSpec{src: client6, dst: tunVIPGUE6, sport: uint16(10000 + i), dport: 1935, payload: 1400}
		}},
	}
	tun := &tables.Holder{}
	tun.Store(tunnelSnapshot(b))
	for _, k := range kinds {
		b.Run(k.name, func(b *testing.B) {
			frames := make([][]byte, batch)
			for i := range frames {
				frames[i] = buildFrame(k.spec(i))
			}
			port := newFakePort(batch)
			descs := port.loadHead(tunnelHead, frames...)
			holder := tun
			if k.name[:3] == "dr-" {
				holder = testHolder(b)
			}
			w := NewWorker(port, holder, localMAC, WorkerOptions{BatchSize: batch})
			b.ReportAllocs()
			for b.Loop() {
				port.tx, port.released = port.tx[:0], port.released[:0]
				port.rx = append(port.rx[:0], descs...)
				for i, d := range descs {
					copy(port.umem[d.Addr:d.Addr+ethHeaderLen], frames[i][:ethHeaderLen])
				}
				w.poll()
			}
			c := w.Counters()
			if c.Forwarded() != c.Received() {
				b.Fatalf("not everything forwarded: %+v", c)
			}
			ns := float64(b.Elapsed().Nanoseconds()) / float64(b.N*batch)
			b.ReportMetric(ns, "ns/pkt")
		})
	}
}
