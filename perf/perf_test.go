package perf

import (
	"context"
	"encoding/binary"
	"github.com/medialb/medialb/internal/checksum"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/medialb/medialb/pipeline"
)

func TestBuildFrames(t *testing.T) {
	dst := net.HardwareAddr{0x02, 0, 0, 0, 0, 1}
	src := net.HardwareAddr{0x02, 0, 0, 0, 0, 2}
	for _, tc := range []struct {
		mix   Mix
		proto string
	}{
		{Mix64, ProtoMix},
		{Mix64, ProtoUDP},
		{Mix64, ProtoTCP},
		{Mix512, ProtoMix},
		{Mix1400, ProtoMix},
		{MixIMIX, ProtoMix},
	} {
		t.Run(tc.mix.Name+"/"+tc.proto, func(t *testing.T) {
			fs, err := buildFrames(48, 16, tc.mix, tc.proto, dst, src, netip.Addr{}, netip.AddrPort{})
			if err != nil {
				t.Fatal(err)
			}
			var p pipeline.Packet
			for i := range 48 {
				f := fs.frame(i)
				if want := tc.mix.Sizes[i%len(tc.mix.Sizes)]; len(f) != want {
					t.Fatalf("frame %d: %d bytes, want %d", i, len(f), want)
				}
				if r := pipeline.Parse(f, &p); r != pipeline.OK {
					t.Fatalf("frame %d: Parse = %v", i, r)
				}
				if p.Dst != vipAddr || p.Src != addrAdd(sourceBase, i%16) {
					t.Errorf("frame %d: %v -> %v, want %v -> %v", i, p.Src, p.Dst, addrAdd(sourceBase, i%16), vipAddr)
				}
				wantProto := uint8(17)
				if tc.proto == ProtoTCP || (tc.proto == ProtoMix && i%2 == 1) {
					wantProto = 6
				}
				if p.Proto != wantProto || p.DstPort < basePort {
					t.Errorf("frame %d: proto %d port %d, want proto %d port >= %d", i, p.Proto, p.DstPort, wantProto, basePort)
				}
				ip := f[ethLen : ethLen+ipv4Len]
				if checksum.Fold(checksum.Sum(ip, 0)) != 0xffff {
					t.Errorf("frame %d: bad IPv4 header checksum", i)
				}
				l4 := f[ethLen+ipv4Len:]
				ps := checksum.Pseudo(ip[12:16], ip[16:20], uint32(len(l4)), byte(p.Proto))
				if checksum.Fold(checksum.Sum(l4, ps)) != 0xffff {
					t.Errorf("frame %d: bad %d checksum", i, p.Proto)
				}
				if binary.BigEndian.Uint16(ip[2:]) != uint16(len(f)-ethLen) {
					t.Errorf("frame %d: IP length field wrong", i)
				}
			}
		})
	}
	if _, err := buildFrames(4, 4, Mix{Name: "tiny", Sizes: []int{40}}, ProtoUDP, dst, src, netip.Addr{}, netip.AddrPort{}); err == nil {
		t.Error("a 40-byte UDP frame was built")
	}
}

func TestReplaceSection(t *testing.T) {
	sec := BeginMarker + "\nnew\n" + EndMarker + "\n"
	for _, tc := range []struct {
		name, doc, want string
		wantErr         bool
	}{
		{"empty", "", "\n" + sec, false},
		{"append", "# B\n\ntables\n", "# B\n\ntables\n\n" + sec, false},
		{"append no newline", "# B", "# B\n\n" + sec, false},
		{"replace", "# B\n" + BeginMarker + "\nold\nold\n" + EndMarker + "\ntail\n", "# B\n" + sec + "tail\n", false},
		{"unpaired", "# B\n" + BeginMarker + "\nold\n", "", true},
		{"reversed", EndMarker + "\n" + BeginMarker + "\n", "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := replaceSection(tc.doc, sec)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, want error %v", err, tc.wantErr)
			}
			if got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestSummaries(t *testing.T) {
	r := &Results{Points: []Point{
		{Forwarder: FwdXDPTX, Mix: "64", Queues: 1, CountAt: CountAtSwitch, Arrived: 1000, Elapsed: time.Second, FwdCPU: time.Millisecond},
		{Forwarder: FwdXDPTX, Mix: "64", Queues: 1, CountAt: CountAtSwitch, Arrived: 3000, Elapsed: time.Second, FwdCPU: 3 * time.Millisecond},
		{Forwarder: FwdXDPTX, Mix: "64", Queues: 1, CountAt: CountAtSwitch, Arrived: 2000, Elapsed: time.Second, FwdCPU: 4 * time.Millisecond},
		{Forwarder: FwdMedialb, Mix: "64", Queues: 1, CountAt: CountAtSwitch, Arrived: 1000, Elapsed: time.Second, FwdCPU: 4 * time.Millisecond},
	}}
	ss := r.Summaries()
	if len(ss) != 2 {
		t.Fatalf("%d summaries, want 2", len(ss))
	}
	x := ss[0]
	if x.Reps != 3 || x.Arrived != 6000 || x.Mpps != 0.002 || x.NsPerPacket != 1000 || x.NsMin != 1000 || x.NsMax != 2000 {
		t.Errorf("xdp_tx summary = %+v", x)
	}
	if md := r.Markdown("test"); !strings.Contains(md, "| medialb | 64 | 1 | switch | 0.50 | 0.25 |") {
		t.Errorf("ratio row missing:\n%s", md)
	}
}

// TestSmoke runs the whole harness at a tiny size: frames must arrive at the real
// servers through all three forwarders, and the counts must be consistent; with the
// fast path, most frames must have been sent by the steering program.
func TestSmoke(t *testing.T) {
	requireLab(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	res, err := Run(ctx, Config{
		Duration: 300 * time.Millisecond, Packets: 20000, Repeats: 1,
		Mixes: []Mix{Mix64}, Queues: []int{1}, CountAt: CountAtServer, LatencyPings: 20,
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Points) != 3 {
		t.Fatalf("%d points, want 3 (xdp_tx, medialb, medialb+fastpath)", len(res.Points))
	}
	for _, p := range res.Points {
		t.Logf("%s: sent %d forwarded %d arrived %d in %s, %.0f ns/pkt; %s", p.Forwarder, p.Sent, p.Forwarded, p.Arrived, p.Elapsed, p.NsPerPacket(), p.Detail)
		if p.Arrived == 0 || p.Arrived > p.Sent || p.Arrived > p.Forwarded || p.Forwarded > p.Sent || p.Sent > 20000 {
			t.Errorf("%s: sent %d, forwarded %d, arrived %d: want 0 < arrived <= forwarded <= sent <= 20000", p.Forwarder, p.Sent, p.Forwarded, p.Arrived)
		}
		if p.FwdCPU <= 0 || p.Mpps() <= 0 {
			t.Errorf("%s: CPU %s, %.3f Mpps: want both > 0", p.Forwarder, p.FwdCPU, p.Mpps())
		}
		// Allocations per packet: the daemon's fixed work (timers, the API) divided by
		// the frames forwarded. When a loaded machine let the veth ring drop most of the
		// burst, that quotient says nothing about the packet path: logged, not judged.
		switch a := p.AllocsPerPacket(); {
		case p.Forwarded < p.Sent/2:
			t.Logf("%s: %.2f allocations per packet over only %d of %d frames forwarded: not judged", p.Forwarder, a, p.Forwarded, p.Sent)
		case a > 0.5:
			t.Errorf("%s: %.2f allocations per packet", p.Forwarder, a)
		}
		if fast := p.Forwarder == FwdMedialbFastpath; (fast && p.FastPathTX <= p.Forwarded/2) || (!fast && p.FastPathTX != 0) {
			t.Errorf("%s: %d of %d frames by the fast path", p.Forwarder, p.FastPathTX, p.Forwarded)
		}
	}
	ss := res.Summaries()
	if ratio(ss[1].Mpps, ss[0].Mpps) <= 0 {
		t.Errorf("medialb / xdp_tx ratio is not > 0: %+v", ss)
	}
	if len(res.Latency) != 4 {
		t.Fatalf("latency paths %+v, want direct, xdp_tx, medialb, medialb+fastpath", res.Latency)
	}
	for _, l := range res.Latency {
		if l.Sent != 20 || l.P50 <= 0 || l.P99 < l.P50 || l.Lost > 2 {
			t.Errorf("latency %+v", l)
		}
	}
	md := res.Markdown("go test")
	if !strings.HasPrefix(md, BeginMarker) || !strings.HasSuffix(md, EndMarker+"\n") {
		t.Errorf("section lacks its markers")
	}
}

// requireLab skips a test that needs the harness's lab: root, two CPUs and the tools.
func requireLab(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: builds network namespaces, attaches XDP programs, opens AF_XDP sockets")
	}
	if runtime.NumCPU() < 2 {
		t.Skip("needs 2 CPUs: the generator and the forwarder are pinned apart")
	}
	for _, c := range []string{"ip", "bridge", "ethtool", "taskset", "chrt"} {
		if _, err := exec.LookPath(c); err != nil {
			t.Skipf("needs %s (make deps-bench)", c)
		}
	}
}
