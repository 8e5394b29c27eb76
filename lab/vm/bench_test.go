package vm

import (
	"cmp"
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/medialb/medialb/lab"
	"github.com/medialb/medialb/perf"
)

// benchPort is the generator's destination port: in the VIP's range, with no listener on
// the real servers (they answer nothing but a rate-limited ICMP error).
const benchPort = 50001

// udpFrame returns a 60-byte Ethernet/IPv4/UDP frame from src:sport to dst:dport.
func udpFrame(dstMAC, srcMAC net.HardwareAddr, src, dst netip.Addr, sport, dport uint16) []byte {
	f := make([]byte, 60)
	copy(f[0:6], dstMAC)
	copy(f[6:12], srcMAC)
	binary.BigEndian.PutUint16(f[12:], 0x0800)
	ip := f[14:34]
	ip[0], ip[8], ip[9] = 0x45, 64, unix.IPPROTO_UDP
	binary.BigEndian.PutUint16(ip[2:], 46)
	s, d := src.As4(), dst.As4()
	copy(ip[12:16], s[:])
	copy(ip[16:20], d[:])
	sum := uint32(0)
	for i := 0; i < 20; i += 2 {
		sum += uint32(binary.BigEndian.Uint16(ip[i:]))
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	binary.BigEndian.PutUint16(ip[10:], ^uint16(sum))
	udp := f[34:]
	binary.BigEndian.PutUint16(udp[0:], sport)
	binary.BigEndian.PutUint16(udp[2:], dport)
	binary.BigEndian.PutUint16(udp[4:], 26)
	return f
}

func TestUDPFrame(t *testing.T) {
	f := udpFrame(net.HardwareAddr{2, 0, 0, 0, 0, 2}, net.HardwareAddr{2, 0, 0, 0, 0, 1},
		netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("192.168.94.110"), 40000, benchPort)
	// The header checksum of a correct header sums to 0xffff.
	sum := uint32(0)
	for i := 14; i < 34; i += 2 {
		sum += uint32(binary.BigEndian.Uint16(f[i:]))
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	if sum != 0xffff || len(f) != 60 || f[23] != unix.IPPROTO_UDP || binary.BigEndian.Uint16(f[36:]) != benchPort {
		t.Errorf("bad frame (header sum %#x): % x", sum, f)
	}
}

// generator writes frames into the load balancer's tap from the host's side (the switch
// namespace): they arrive on the guest NIC's queues as the tap's flow hash spreads them.
type generator struct {
	fd     int
	frames [][]byte
}

func newGenerator(l *Lab, frames [][]byte) (*generator, error) {
	g := &generator{fd: -1, frames: frames}
	err := lab.Do(l.NS, func() error {
		link, err := netlink.LinkByName(l.LB.Tap)
		if err != nil {
			return err
		}
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, 0)
		if err != nil {
			return err
		}
		g.fd = fd
		return unix.Bind(fd, &unix.SockaddrLinklayer{Ifindex: link.Attrs().Index})
	})
	if err != nil {
		if g.fd >= 0 {
			unix.Close(g.fd)
		}
		return nil, fmt.Errorf("generator on %s: %w", l.LB.Tap, err)
	}
	return g, nil
}

// send offers pps frames per second (in 1 ms bursts) for d and returns how many it wrote.
func (g *generator) send(pps int, d time.Duration) uint64 {
	burst := max(pps/1000, 1)
	var sent uint64
	i := 0
	start := time.Now()
	for tick := start; time.Since(start) < d; tick = tick.Add(time.Millisecond) {
		for range burst {
			if _, err := unix.Write(g.fd, g.frames[i]); err == nil {
				sent++
			}
			i = (i + 1) % len(g.frames)
		}
		time.Sleep(time.Until(tick.Add(time.Millisecond)))
	}
	return sent
}

// tapCounts are frames the taps handed to their guests: the load balancer's (what its
// NIC took of the offered load) and the real servers' together (what it forwarded).
type tapCounts struct{ lb, servers uint64 }

func taps(l *Lab) (tapCounts, error) {
	var c tapCounts
	err := lab.Do(l.NS, func() error {
		for _, g := range append([]*Guest{l.LB}, l.Servers...) {
			link, err := netlink.LinkByName(g.Tap)
			if err != nil {
				return err
			}
			if g == l.LB {
				c.lb = link.Attrs().Statistics.TxPackets
			} else {
				c.servers += link.Attrs().Statistics.TxPackets
			}
		}
		return nil
	})
	return c, err
}

// benchRow is one measured point.
type benchRow struct {
	fwd               string
	queues            string
	offered, in, kpps float64
	lo, hi            float64 // the range of kpps over the rounds
}

// benchRounds is how many times every point is measured.
const benchRounds = 3

// medianRow returns the sample of median kpps, with the range of all.
func medianRow(s []benchRow) benchRow {
	sorted := slices.Clone(s)
	slices.SortFunc(sorted, func(a, b benchRow) int { return cmp.Compare(a.kpps, b.kpps) })
	r := sorted[len(sorted)/2]
	r.lo, r.hi = sorted[0].kpps, sorted[len(sorted)-1].kpps
	return r
}

// TestVMBench: forwarded frames per second at the real servers for the in-kernel XDP_TX
// reference and medialb (pipeline only and fast path in copy mode, pipeline only in
// zero-copy mode) with node.queues 1 and 2, in the same VM on the same virtio-net NIC,
// one run. MEDIALB_VM_BENCH_OUT names a Markdown file whose VM section it rewrites.
func TestVMBench(t *testing.T) {
	if os.Getenv("MEDIALB_VM_BENCH") == "" {
		t.Skip("VM bench: run with make bench-vm (MEDIALB_VM_BENCH=1)")
	}
	pps := 100000
	if v := os.Getenv("MEDIALB_VM_BENCH_PPS"); v != "" {
		var err error
		if pps, err = strconv.Atoi(v); err != nil || pps <= 0 {
			t.Fatalf("MEDIALB_VM_BENCH_PPS=%q: want a positive frame rate", v)
		}
	}
	const d = 5 * time.Second
	l := newLab(t, Options{Topology: lab.Options{Clients: 40}, Progs: []string{"medialb", "vossim", "medialb-perf"}})
	e := &vmEnv{t: t, l: l, ctx: context.Background()}
	e.startVOS()
	var frames [][]byte
	for i, src := range e.sources() {
		frames = append(frames, udpFrame(l.LB.MAC, l.Client.MAC, src, vip, uint16(40000+i), benchPort))
	}
	gen, err := newGenerator(l, frames)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(gen.fd)
	measure := func(fwd, queues string) benchRow {
		gen.send(pps, time.Second) // the pipeline decides every client (the fast path learns them)
		time.Sleep(2 * time.Second)
		c0, err := taps(l)
		if err != nil {
			t.Fatal(err)
		}
		sent := gen.send(pps, d)
		time.Sleep(time.Second)
		c1, err := taps(l)
		if err != nil {
			t.Fatal(err)
		}
		kpps := func(n uint64) float64 { return float64(n) / d.Seconds() / 1e3 }
		r := benchRow{fwd: fwd, queues: queues, offered: kpps(sent), in: kpps(c1.lb - c0.lb), kpps: kpps(c1.servers - c0.servers)}
		t.Logf("%s, queues %s: offered %.1f kpps, %.1f into the VM, %.1f at the servers", fwd, queues, r.offered, r.in, r.kpps)
		return r
	}
	ref := strings.Join([]string{"eth0", l.Servers[0].MAC.String(), l.LB.MAC.String(), vip.String(), "50000-65535"}, ",")
	type point struct {
		name, queues string
		run          func() benchRow
	}
	points := []point{{"xdp_tx (in-kernel reference)", "all (2)", func() benchRow {
		if err := l.LB.Start(e.ctx, "xdpref", "/bin/medialb-perf", "--xdp-tx-ref", ref); err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Second)
		if p, err := l.LB.Proc(e.ctx, "xdpref"); err != nil || !p.Running || !strings.Contains(p.Log, "attached") {
			t.Fatalf("XDP_TX reference not running (%v): %s", err, p.Log)
		}
		r := measure("xdp_tx (in-kernel reference)", "all (2)")
		if exited, err := l.LB.Signal(e.ctx, "xdpref", 15, 20*time.Second); err != nil || !exited {
			t.Fatalf("stop the XDP_TX reference: exited %v, %v", exited, err)
		}
		return r
	}}}
	for _, q := range []int{1, 2} {
		for _, p := range []struct {
			name string
			zc   bool
			fast string
		}{{"medialb pipeline only, copy", false, `"off"`}, {"medialb + fast path, copy", false, `"on"`}, {"medialb pipeline only, zero-copy", true, "auto"}} {
			cfg := lbConfig(p.zc)
			if !p.zc {
				cfg = strings.Replace(cfg, `xdp_fastpath: "on"`, "xdp_fastpath: "+p.fast, 1)
			}
			cfg = strings.Replace(cfg, "  interface: eth0\n", fmt.Sprintf("  interface: eth0\n  queues: %d\n", q), 1)
			points = append(points, point{p.name, strconv.Itoa(q), func() benchRow {
				wantOpen(t, e.startLB(cfg), q, p.zc)
				r := measure(p.name, strconv.Itoa(q))
				if exited, err := l.LB.Signal(e.ctx, "medialb", 15, 30*time.Second); err != nil || !exited {
					t.Fatalf("stop medialb: exited %v, %v", exited, err)
				}
				return r
			}})
		}
	}
	// Rounds: every point once per round, so that the noise of a shared host falls on
	// all of them; the table shows each point's median round and the range.
	samples := make([][]benchRow, len(points))
	for range benchRounds {
		for i, p := range points {
			samples[i] = append(samples[i], p.run())
		}
	}
	var rows []benchRow
	for _, s := range samples {
		rows = append(rows, medianRow(s))
	}
	section := benchSection(rows, pps, d)
	t.Log("\n" + section)
	if out := os.Getenv("MEDIALB_VM_BENCH_OUT"); out != "" {
		if err := perf.UpdateSection(out, section, vmBenchBegin, vmBenchEnd); err != nil {
			t.Fatal(err)
		}
	}
}

const (
	vmBenchBegin = "<!-- vm-bench begin -->"
	vmBenchEnd   = "<!-- vm-bench end -->"
)

// benchSection renders the rows as BENCHMARKS.md's VM section, each row also as a ratio
// to the XDP_TX reference (the first row).
func benchSection(rows []benchRow, pps int, d time.Duration) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s\n## L4 forwarding in the VM lab (virtio-net, QEMU TCG)\n\n", vmBenchBegin)
	fmt.Fprintf(&b, "`make bench-vm`, %s. The load balancer VM (2 vCPUs, virtio-net with 2 queue pairs, native XDP) "+
		"forwards 60-byte UDP frames of 40 clients written into its tap from the host's side of the lab (%d frames/s offered "+
		"in 1 ms bursts, %s per point after 1 s of warm-up, %d rounds of all points; the row is the round of median arrivals); arrivals are the frames the real servers' taps handed to "+
		"their VMs; \"into the VM\" is what the load balancer's tap handed to it (the rest the tap dropped: the guest did not "+
		"take frames off its RX queues faster). TCG makes absolute rates meaningless: compare the ratios. The XDP_TX reference runs on every queue of the NIC.\n\n",
		time.Now().UTC().Format("2006-01-02"), pps, d, benchRounds)
	b.WriteString("| forwarder | node.queues | offered kpps | into the VM kpps | at the servers kpps (median, range) | ratio to XDP_TX |\n|---|---|---|---|---|---|\n")
	for _, r := range rows {
		ratio := 0.0
		if rows[0].kpps > 0 {
			ratio = r.kpps / rows[0].kpps
		}
		fmt.Fprintf(&b, "| %s | %s | %.1f | %.1f | %.1f (%.1f–%.1f) | %.2f |\n", r.fwd, r.queues, r.offered, r.in, r.kpps, r.lo, r.hi, ratio)
	}
	b.WriteString(vmBenchEnd + "\n")
	return b.String()
}

func TestMedianRow(t *testing.T) {
	r := medianRow([]benchRow{{fwd: "a", kpps: 5, in: 1}, {fwd: "b", kpps: 1, in: 2}, {fwd: "c", kpps: 3, in: 3}})
	if r.fwd != "c" || r.in != 3 || r.lo != 1 || r.hi != 5 {
		t.Errorf("medianRow = %+v, want c's sample with the range 1–5", r)
	}
}
