package vm

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/medialb/medialb/lab"
	"github.com/medialb/medialb/perf"
)

// benchCPUs is the load balancer's vCPU count and its NIC's queue pairs in the bench:
// enough for 4 queues with a worker each. The bench sets the channel count per point.
const benchCPUs = 4

// tapCounts are frames the load balancer's tap handed to its guest (what its NIC took
// of the offered load) and took from it (what it sent: the forwarded frames), and what
// the real servers' taps handed to theirs (the drop filter leaves the rest of the lab's
// traffic: health checks).
type tapCounts struct{ in, out, servers uint64 }

func taps(l *Lab) (tapCounts, error) {
	var c tapCounts
	err := lab.Do(l.NS, func() error {
		for _, g := range append([]*Guest{l.LB}, l.Servers...) {
			link, err := netlink.LinkByName(g.Tap)
			if err != nil {
				return err
			}
			st := link.Attrs().Statistics
			if g == l.LB {
				c.in, c.out = st.TxPackets, st.RxPackets
			} else {
				c.servers += st.TxPackets
			}
		}
		return nil
	})
	return c, err
}

// dropAtServers drops the bench's frames on their way into the real servers' VMs (a tc
// BPF filter on their taps: this host's kernel has no gact action): the host's two cores
// then run the load balancer, not the servers' kernels discarding frames to a closed port.
func dropAtServers(l *Lab) error {
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Type: ebpf.SchedCLS, License: "GPL", Instructions: asm.Instructions{
			asm.Mov.Reg(asm.R6, asm.R1), // LoadAbs reads the packet of R6
			asm.LoadAbs(12, asm.Half),
			asm.JNE.Imm(asm.R0, 0x0800, "pass"),
			asm.LoadAbs(23, asm.Byte),
			asm.JNE.Imm(asm.R0, unix.IPPROTO_UDP, "pass"),
			asm.LoadAbs(36, asm.Half),
			asm.JNE.Imm(asm.R0, benchPort, "pass"),
			asm.Mov.Imm(asm.R0, 2), // TC_ACT_SHOT
			asm.Return(),
			asm.Mov.Imm(asm.R0, 0).WithSymbol("pass"), // TC_ACT_OK
			asm.Return(),
		}})
	if err != nil {
		return fmt.Errorf("load the bench's drop filter: %w", err)
	}
	defer prog.Close()
	return lab.Do(l.NS, func() error {
		for _, g := range l.Servers {
			link, err := netlink.LinkByName(g.Tap)
			if err != nil {
				return err
			}
			idx := link.Attrs().Index
			q := &netlink.GenericQdisc{QdiscType: "clsact",
				QdiscAttrs: netlink.QdiscAttrs{LinkIndex: idx, Handle: netlink.MakeHandle(0xffff, 0), Parent: netlink.HANDLE_CLSACT}}
			if err := netlink.QdiscAdd(q); err != nil {
				return fmt.Errorf("clsact on %s: %w", g.Tap, err)
			}
			f := &netlink.BpfFilter{Fd: prog.FD(), Name: "benchdrop", DirectAction: true,
				FilterAttrs: netlink.FilterAttrs{LinkIndex: idx, Parent: netlink.HANDLE_MIN_EGRESS, Handle: 1, Protocol: unix.ETH_P_ALL, Priority: 1}}
			if err := netlink.FilterAdd(f); err != nil {
				return fmt.Errorf("drop filter on %s: %w", g.Tap, err)
			}
		}
		return nil
	})
}

// benchPoint is one forwarder setup of the bench.
type benchPoint struct {
	key, name string
	xdpTX     bool   // the in-kernel XDP_TX reference instead of medialb
	threaded  bool   // XDP_TX reference: threaded NAPI (/sys/class/net/eth0/threaded)
	zeroCopy  bool   // medialb: node.zero_copy on (else off)
	fastPath  string // xdp_fastpath in copy mode
	softirq   bool   // node.rx_priority: off (NAPI in softirqs, not in threads at real-time priority)
	busyPoll  bool   // node.busy_poll: on
	deferIRQ  bool   // napi_defer_hard_irqs and gro_flush_timeout on eth0
	// workerCPU, when pinned: queue 0's interrupt pinned to vCPU 0 and every medialb
	// thread to workerCPU.
	workerCPU int
	pinned    bool
	oneQueue  bool // a step measured on 1 queue only (the run stays within a lock's hold)
}

var benchPoints = []benchPoint{
	{key: "xdptx", name: "xdp_tx (in-kernel reference), NAPI in softirqs", xdpTX: true},
	{key: "xdptxthr", name: "xdp_tx (in-kernel reference), threaded NAPI", xdpTX: true, threaded: true},
	{key: "fast", name: "medialb + fast path, copy", fastPath: `"on"`},
	{key: "copy", name: "medialb pipeline only, copy", fastPath: `"off"`},
	{key: "zc", name: "medialb pipeline only, zero-copy (rx_priority auto: threaded NAPI)", zeroCopy: true},
	{key: "zcsoftirq", name: "pipeline only, zero-copy, rx_priority off (NAPI in softirqs)", zeroCopy: true, softirq: true},
	{key: "zcbusy", name: "pipeline only, zero-copy, rx_priority off + busy_poll", zeroCopy: true, softirq: true, busyPoll: true, oneQueue: true},
	{key: "zcdefer", name: "pipeline only, zero-copy, rx_priority off + busy_poll + IRQ deferral", zeroCopy: true, softirq: true, busyPoll: true, deferIRQ: true, oneQueue: true},
	{key: "zcsame", name: "pipeline only, zero-copy, rx_priority off, worker and NAPI on vCPU 0", zeroCopy: true, softirq: true, pinned: true, workerCPU: 0, oneQueue: true},
	{key: "zcapart", name: "pipeline only, zero-copy, rx_priority off, NAPI on vCPU 0, worker on vCPU 1", zeroCopy: true, softirq: true, pinned: true, workerCPU: 1, oneQueue: true},
}

// config returns the load balancer's configuration for p on q queues.
func (p benchPoint) config(q int) string {
	cfg := lbConfig(p.zeroCopy)
	if !p.zeroCopy {
		cfg = strings.Replace(cfg, `xdp_fastpath: "on"`, "xdp_fastpath: "+p.fastPath, 1)
	}
	extra := fmt.Sprintf("  queues: %d\n", q)
	if p.busyPoll {
		extra += "  busy_poll: on\n"
	}
	if p.softirq {
		extra += "  rx_priority: \"off\"\n"
	}
	return strings.Replace(cfg, "  interface: eth0\n", "  interface: eth0\n"+extra, 1)
}

// envList returns the comma-separated values of the environment variable name, or def.
func envList(name string, def []string) []string {
	if v := os.Getenv(name); v != "" {
		return strings.Split(v, ",")
	}
	return def
}

// TestVMBench: frames forwarded per second and per second of the guest's CPU time for the
// in-kernel XDP_TX reference and medialb (fast path and pipeline only in copy mode,
// pipeline only in zero-copy mode with and without busy polling) on 1, 2 and 4 queues of
// the same virtio-net NIC (4 vCPUs), one run. Environment: MEDIALB_VM_BENCH_PPS (offered
// frames/s), MEDIALB_VM_BENCH_QUEUES (default 1,2,4), MEDIALB_VM_BENCH_POINTS (keys of
// benchPoints), MEDIALB_VM_BENCH_ROUNDS (default 3), MEDIALB_VM_BENCH_OUT (a Markdown file
// whose sections of the queue counts run it rewrites).
func TestVMBench(t *testing.T) {
	if os.Getenv("MEDIALB_VM_BENCH") == "" {
		t.Skip("VM bench: run with make bench-vm (MEDIALB_VM_BENCH=1)")
	}
	pps, rounds := 200000, 3
	for _, v := range []struct {
		name string
		p    *int
	}{{"MEDIALB_VM_BENCH_PPS", &pps}, {"MEDIALB_VM_BENCH_ROUNDS", &rounds}} {
		if s := os.Getenv(v.name); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil || n <= 0 {
				t.Fatalf("%s=%q: want a positive number", v.name, s)
			}
			*v.p = n
		}
	}
	var queues []int
	for _, s := range envList("MEDIALB_VM_BENCH_QUEUES", []string{"1", "2", "4"}) {
		q, err := strconv.Atoi(s)
		if err != nil || q < 1 || q > benchCPUs {
			t.Fatalf("MEDIALB_VM_BENCH_QUEUES: %q: want 1..%d", s, benchCPUs)
		}
		queues = append(queues, q)
	}
	keys := envList("MEDIALB_VM_BENCH_POINTS", nil)
	var points []benchPoint
	for _, p := range benchPoints {
		if keys == nil || strings.Contains(","+strings.Join(keys, ",")+",", ","+p.key+",") {
			points = append(points, p)
		}
	}
	if len(points) == 0 || !points[0].xdpTX {
		t.Fatal("MEDIALB_VM_BENCH_POINTS: the ratios need an XDP_TX reference (xdptx, xdptxthr)")
	}
	load, _ := os.ReadFile("/proc/loadavg")
	run := benchRun{date: time.Now().UTC(), pps: pps, d: 5 * time.Second, rounds: rounds, load: strings.Join(strings.Fields(string(load))[:3], " ")}

	l := newLab(t, Options{Topology: lab.Options{Clients: 40}, Progs: []string{"medialb", "vossim", "medialb-perf"}, LBCPUs: benchCPUs})
	e := &vmEnv{t: t, l: l, ctx: context.Background()}
	e.startVOS()
	if err := dropAtServers(l); err != nil {
		t.Fatal(err)
	}
	var frames [][]byte
	for i, src := range e.sources() {
		frames = append(frames, udpFrame(l.LB.MAC, l.Client.MAC, src, vip, uint16(40000+i), benchPort))
	}
	gen, err := newGenerator(l, frames)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(gen.fd)
	b := &bench{e: e, gen: gen, run: run}

	samples := map[int][][]benchRow{}
	for range rounds {
		for _, q := range queues {
			if err := b.setQueues(q); err != nil {
				t.Fatal(err)
			}
			for i, p := range points {
				if len(samples[q]) < len(points) {
					samples[q] = append(samples[q], nil)
				}
				if p.oneQueue && q != 1 {
					continue
				}
				samples[q][i] = append(samples[q][i], b.point(p, q))
			}
		}
	}
	out := os.Getenv("MEDIALB_VM_BENCH_OUT")
	header := benchHeader()
	t.Log("\n" + header)
	if out != "" {
		if err := perf.UpdateSection(out, header, vmBenchBegin, vmBenchEnd); err != nil {
			t.Fatal(err)
		}
	}
	for _, q := range queues {
		var rows []benchRow
		for _, s := range samples[q] {
			if len(s) > 0 {
				rows = append(rows, medianRow(s))
			}
		}
		section := run.section(q, rows)
		t.Log("\n" + section)
		if out != "" {
			begin, end := queueMarkers(q)
			if err := perf.UpdateSection(out, section, begin, end); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// bench measures points in a running VM lab.
type bench struct {
	e   *vmEnv
	gen *generator
	run benchRun
}

// setQueues sets the load balancer NIC's channels to q (nothing attached: between points).
func (b *bench) setQueues(q int) error {
	var err error
	for range 5 {
		if err = b.e.l.LB.SetChannels(b.e.ctx, "eth0", q); err == nil {
			return nil
		}
		time.Sleep(2 * time.Second) // an XDP program still detaching
	}
	return err
}

// point starts p's forwarder on q queues, measures it and stops it.
func (b *bench) point(p benchPoint, q int) benchRow {
	t, l, ctx := b.e.t, b.e.l, b.e.ctx
	name := "medialb"
	if p.xdpTX {
		name = "xdpref"
		b.sysfs("threaded", map[bool]string{true: "1", false: "0"}[p.threaded])
		ref := strings.Join([]string{"eth0", l.Servers[0].MAC.String(), l.LB.MAC.String(), vip.String(), "50000-65535"}, ",")
		if err := l.LB.Start(ctx, name, "/bin/medialb-perf", "--xdp-tx-ref", ref); err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Second)
		if pr, err := l.LB.Proc(ctx, name); err != nil || !pr.Running || !strings.Contains(pr.Log, "attached") {
			t.Fatalf("XDP_TX reference not running (%v): %s", err, pr.Log)
		}
	} else {
		b.deferIRQ(p.deferIRQ)
		wantOpen(t, b.e.startLB(p.config(q)), q, p.zeroCopy)
		if p.pinned {
			b.pin(p.workerCPU)
		}
	}
	r := b.measure(p.name, q)
	if exited, err := l.LB.Signal(ctx, name, 15, 30*time.Second); err != nil || !exited {
		t.Fatalf("stop %s: exited %v, %v", name, exited, err)
	}
	if p.deferIRQ {
		b.deferIRQ(false)
	}
	if p.threaded {
		b.sysfs("threaded", "0")
	}
	if p.pinned {
		b.pinIRQ(fmt.Sprintf("0-%d", benchCPUs-1))
	}
	return r
}

// pin puts queue 0's interrupt on vCPU 0 and every medialb thread on cpu.
func (b *bench) pin(cpu int) {
	b.pinIRQ("0")
	pinned, err := b.e.l.LB.Pin(b.e.ctx, []string{"medialb"}, cpu)
	if err != nil {
		b.e.t.Fatal(err)
	}
	b.e.t.Logf("queue 0's interrupt on vCPU 0, %d medialb threads on vCPU %d", len(pinned), cpu)
}

// pinIRQ sets the CPUs of queue 0's interrupt (smp_affinity_list).
func (b *bench) pinIRQ(cpus string) {
	t, lb, ctx := b.e.t, b.e.l.LB, b.e.ctx
	irqs, err := lb.ReadFile(ctx, "/proc/interrupts")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, line := range strings.Split(string(irqs), "\n") {
		if f := strings.Fields(line); len(f) > 1 && strings.HasSuffix(line, "-input.0") {
			if err := lb.WriteFile(ctx, "/proc/irq/"+strings.TrimSuffix(f[0], ":")+"/smp_affinity_list", []byte(cpus)); err != nil {
				t.Fatal(err)
			}
			n++
		}
	}
	if n != 1 {
		t.Fatalf("queue 0's interrupt: %d lines of /proc/interrupts end in -input.0:\n%s", n, irqs)
	}
}

// deferIRQ sets eth0's napi_defer_hard_irqs and gro_flush_timeout (busy polling's
// companions: the NIC's interrupts stay off while the application polls) or clears them.
func (b *bench) deferIRQ(on bool) {
	vals := map[string]string{"napi_defer_hard_irqs": "0", "gro_flush_timeout": "0"}
	if on {
		vals = map[string]string{"napi_defer_hard_irqs": "2", "gro_flush_timeout": "200000"}
	}
	for f, v := range vals {
		b.sysfs(f, v)
	}
}

// sysfs writes v to /sys/class/net/eth0/f in the load balancer.
func (b *bench) sysfs(f, v string) {
	if err := b.e.l.LB.WriteFile(b.e.ctx, "/sys/class/net/eth0/"+f, []byte(v)); err != nil {
		b.e.t.Fatal(err)
	}
}

// measure offers the load for the run's duration after a warm-up (the pipeline decides
// every client; the fast path learns them) and returns what the load balancer forwarded
// and the CPU time its guest and the host's vCPU threads spent meanwhile.
func (b *bench) measure(fwd string, q int) benchRow {
	t, lb := b.e.t, b.e.l.LB
	b.gen.send(b.run.pps, time.Second)
	time.Sleep(time.Second)
	sample := func() (tapCounts, CPUSample, time.Duration) {
		h0, err := lb.HostVCPUTime()
		if err != nil {
			t.Fatal(err)
		}
		s, err := lb.CPU(b.e.ctx)
		if err != nil {
			t.Fatal(err)
		}
		h1, err := lb.HostVCPUTime()
		if err != nil {
			t.Fatal(err)
		}
		c, err := taps(b.e.l)
		if err != nil {
			t.Fatal(err)
		}
		return c, s, (h0 + h1) / 2
	}
	c0, s0, h0 := sample()
	sent := b.gen.send(b.run.pps, b.run.d)
	time.Sleep(time.Second) // what the guest still holds drains; its CPU time counts
	c1, s1, h1 := sample()
	r := newRow(fwd, q, b.run.d, sent, c1.in-c0.in, c1.out-c0.out, use(s0, s1), h1-h0)
	t.Logf("%s, %d queue(s): offered %.1f kpps, %.1f into the VM, %.1f forwarded (%d frames reached the servers); guest busy %.2f vCPUs (user %.2f sys %.2f softirq %.2f), %.1f kpps per vCPU; host vCPU threads %.2f cores; threads: %s",
		fwd, q, r.offered, r.in, r.kpps, c1.servers-c0.servers, r.busy, r.user, r.sys, r.softirq, r.perCore, r.host, r.top)
	return r
}
