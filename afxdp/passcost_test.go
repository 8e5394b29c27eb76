package afxdp

import (
	"net/netip"
	"testing"
	"time"

	"github.com/cilium/ebpf"
)

// BenchmarkPassedFrame measures what the steering program costs a frame it
// passes to the kernel (every non-VIP frame runs it: layer 7, API, health
// checks, ARP), with BPF_PROG_TEST_RUN repeats: ns/frame is the kernel's
// average run time per frame. "no-program" runs a program that only returns
// XDP_PASS: the floor of the measurement (the test-run harness, the XDP
// dispatcher); the steering program's own cost is the difference. The VIP map
// holds the guide's layer-4 service (192.168.94.110, TCP and UDP, 1935, 554,
// 50000-65535).
func BenchmarkPassedFrame(b *testing.B) {
	requireRoot(b)
	var objs steerObjects
	if err := loadSteerObjects(&objs, nil); err != nil {
		b.Fatal(err)
	}
	defer objs.Close()
	l4 := netip.MustParseAddr("192.168.94.110")
	ports := []PortRange{{1935, 1935}, {554, 554}, {50000, 65535}}
	keys, err := Keys([]VIP{{Addr: l4, Proto: ProtoTCP, Ports: ports}, {Addr: l4, Proto: ProtoUDP, Ports: ports}})
	if err != nil {
		b.Fatal(err)
	}
	for k := range keys {
		if err := objs.Vips.Put(k, uint8(1)); err != nil {
			b.Fatal(err)
		}
	}
	pass := passProgram(b)
	defer pass.Close()
	mac := []byte{2, 0, 0, 0, 0, 1}
	l7 := netip.MustParseAddr("192.168.94.100")
	client := netip.MustParseAddr("192.168.95.10")
	tcp := udp4(mac, mac, client, l7, 40000, 8080, make([]byte, 1460-8))
	tcp[14+9] = ProtoTCP // the parser reads the port only
	frames := []struct {
		name  string
		frame []byte
	}{
		{"tcp4-1514B-to-L7-VIP", tcp},
		{"udp4-64B-to-LB", udp4(mac, mac, client, netip.MustParseAddr("192.168.94.2"), 1, 53, make([]byte, 18))},
		{"udp6-64B-to-LB", udp6(mac, mac, netip.MustParseAddr("fd95::10"), netip.MustParseAddr("fd94::2"), 1, 53, nil)},
	}
	const repeat = 10000
	run := func(b *testing.B, prog *ebpf.Program, frame []byte) {
		var total time.Duration
		for b.Loop() {
			ret, d, err := prog.Benchmark(frame, repeat, nil)
			if err != nil {
				b.Fatal(err)
			}
			if ret != 2 {
				b.Fatalf("returned %d, want XDP_PASS", ret)
			}
			total += d
		}
		b.ReportMetric(float64(total.Nanoseconds())/float64(b.N), "ns/frame")
	}
	for _, f := range frames {
		b.Run("no-program/"+f.name, func(b *testing.B) { run(b, pass, f.frame) })
		b.Run("steer/"+f.name, func(b *testing.B) { run(b, objs.XdpSteer, f.frame) })
	}
}
