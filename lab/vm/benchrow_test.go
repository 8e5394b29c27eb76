package vm

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// benchRow is one measured point. Rates are per second of the offered load's duration;
// busy and host are CPUs' worth of time over it.
type benchRow struct {
	fwd                  string
	queues               int
	offered, in, kpps    float64
	busy, user, sys      float64 // guest vCPUs busy: all, user, system
	softirq              float64 // guest vCPUs in softirq (NAPI: XDP, the AF_XDP rings, TX completion)
	netRX                float64 // NET_RX softirqs per frame forwarded
	host                 float64 // host cores the QEMU vCPU threads took
	perCore, hostPerCore float64 // kpps per busy guest vCPU, per host core of the vCPU threads
	top                  string  // the busiest guest threads, in vCPUs
	lo, hi               float64 // the range of hostPerCore over the rounds
}

// newRow computes a row from what was counted over a point (d: the offered load's
// duration, over which rates are given; the counters also cover a drain after it).
func newRow(fwd string, q int, d time.Duration, sent, in, out uint64, u cpuUse, host time.Duration) benchRow {
	s := d.Seconds()
	r := benchRow{fwd: fwd, queues: q, offered: float64(sent) / s / 1e3, in: float64(in) / s / 1e3, kpps: float64(out) / s / 1e3,
		busy: u.busy / s, user: u.user / s, sys: u.sys / s, softirq: u.softirq / s, host: host.Seconds() / s, top: u.top(4, s)}
	if out > 0 {
		r.netRX = float64(u.netRX) / float64(out)
	}
	if u.busy > 0 {
		r.perCore = float64(out) / u.busy / 1e3
	}
	if host > 0 {
		r.hostPerCore = float64(out) / host.Seconds() / 1e3
	}
	return r
}

// medianRow returns the sample of median rate per host core, with the range of all.
func medianRow(s []benchRow) benchRow {
	sorted := slices.Clone(s)
	slices.SortFunc(sorted, func(a, b benchRow) int { return cmp.Compare(a.hostPerCore, b.hostPerCore) })
	r := sorted[len(sorted)/2]
	r.lo, r.hi = sorted[0].hostPerCore, sorted[len(sorted)-1].hostPerCore
	return r
}

const (
	vmBenchBegin = "<!-- vm-bench begin -->"
	vmBenchEnd   = "<!-- vm-bench end -->"
)

// queueMarkers delimit the section of q queues.
func queueMarkers(q int) (begin, end string) {
	return fmt.Sprintf("<!-- vm-bench q%d begin -->", q), fmt.Sprintf("<!-- vm-bench q%d end -->", q)
}

// benchRun is what every point of a run shares.
type benchRun struct {
	date   time.Time
	pps    int
	d      time.Duration
	rounds int
	load   string // the host's load average at the start
}

// benchHeader is the VM section's description (the tables follow, one per queue count).
func benchHeader() string {
	return vmBenchBegin + "\n## L4 forwarding in the VM lab (virtio-net, QEMU TCG)\n\n" +
		"`make bench-vm` (`MEDIALB_VM_BENCH_QUEUES=1,2,4`, `MEDIALB_VM_BENCH_POINTS`, `MEDIALB_VM_BENCH_ROUNDS` run a subset; " +
		"each queue count's table is rewritten by the run that measured it). The load balancer VM (4 vCPUs, virtio-net with 4 queue pairs, " +
		"`ethtool -L eth0 combined N` set before each point, native XDP; XDP_TX in virtio-net's locked mode: no spare queue pairs) forwards 60-byte UDP " +
		"frames of 40 clients written into its tap from the host's side of the lab by one Go thread; the real servers' taps drop them " +
		"(tc), so the host's 2 cores run the load balancer. Per point: 1 s of warm-up, then the offered load for the stated time; " +
		"rows are the round of median per-core rate, with the range over the rounds.\n\n" +
		"- **forwarded**: frames the load balancer sent (its tap's RX counter) per second of offered load.\n" +
		"- **host cores**: CPU time of the load balancer's QEMU vCPU threads on the host per second: the cost of running the guest's " +
		"code (QEMU's tap I/O runs in its main loop thread, outside). **per host core**: forwarded frames per second of that time, " +
		"the per-core measure of the namespace harness (frames / forwarding CPU time) taken where the clock is real. " +
		"**The ratio** compares it with XDP_TX on the **same queue count in the same run**: the better of its two rows (NAPI in " +
		"softirqs, the kernel's default, or threaded NAPI, which medialb's `node.rx_priority: auto` turns on).\n" +
		"- **guest vCPUs busy**: the guest's own view (/proc/stat, user+system+irq+softirq, per second) and frames per busy " +
		"vCPU-second with its ratio. Under TCG the guest has no steal time: a vCPU thread the host keeps off a core still counts " +
		"busy in the guest, so this view is inflated where the host is contended (compare the two columns).\n" +
		"- TCG makes absolute rates meaningless and distorts what instructions cost (interrupts, atomics, syscalls): compare ratios.\n" +
		vmBenchEnd + "\n"
}

// section renders the rows of q queues, each also as a per-core ratio to the XDP_TX
// reference: of the rows named xdp_tx, the one of most frames per host core.
func (run benchRun) section(q int, rows []benchRow) string {
	begin, end := queueMarkers(q)
	var b strings.Builder
	fmt.Fprintf(&b, "%s\n### %d RX queue(s), a worker each\n\n", begin, q)
	fmt.Fprintf(&b, "%s, host load average %s at the start; %d frames/s offered in 1 ms bursts, %s per point, %d rounds.\n\n",
		run.date.Format("2006-01-02 15:04Z"), run.load, run.pps, run.d, run.rounds)
	b.WriteString("| forwarder | offered kpps | into the VM kpps | forwarded kpps | host cores | kpps per host core (range) | **ratio per core to XDP_TX** | " +
		"guest vCPUs busy (user / sys / softirq) | kpps per guest vCPU | guest ratio | NET_RX softirqs per frame | busiest guest threads (vCPUs) |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	ref := rows[0]
	for _, r := range rows {
		if strings.HasPrefix(r.fwd, "xdp_tx") && r.hostPerCore > ref.hostPerCore {
			ref = r
		}
	}
	ratio := func(x, y float64) float64 {
		if y == 0 {
			return 0
		}
		return x / y
	}
	for _, r := range rows {
		fmt.Fprintf(&b, "| %s | %.1f | %.1f | %.1f | %.2f | %.1f (%.1f–%.1f) | **%.2f** | %.2f (%.2f / %.2f / %.2f) | %.1f | %.2f | %.2f | %s |\n",
			r.fwd, r.offered, r.in, r.kpps, r.host, r.hostPerCore, r.lo, r.hi, ratio(r.hostPerCore, ref.hostPerCore),
			r.busy, r.user, r.sys, r.softirq, r.perCore, ratio(r.perCore, ref.perCore), r.netRX, r.top)
	}
	b.WriteString(end + "\n")
	return b.String()
}

func TestMedianRow(t *testing.T) {
	r := medianRow([]benchRow{{fwd: "a", hostPerCore: 5, in: 1}, {fwd: "b", hostPerCore: 1, in: 2}, {fwd: "c", hostPerCore: 3, in: 3}})
	if r.fwd != "c" || r.in != 3 || r.lo != 1 || r.hi != 5 {
		t.Errorf("medianRow = %+v, want c's sample with the range 1–5", r)
	}
}

// TestBenchSection: per-core rates from frames and CPU time, ratios to the XDP_TX row
// of most frames per host core (not the first, not the one of most per guest vCPU).
func TestBenchSection(t *testing.T) {
	d := 5 * time.Second
	slow := newRow("xdp_tx slow", 2, d, 500000, 400000, 300000, cpuUse{busy: 5}, 24*time.Second)
	ref := newRow("xdp_tx", 2, d, 500000, 400000, 300000, cpuUse{busy: 10, softirq: 9}, 12*time.Second)
	zc := newRow("zc", 2, d, 500000, 300000, 100000, cpuUse{busy: 5, user: 2, sys: 2, softirq: 1}, 10*time.Second)
	if ref.perCore != 30 || zc.perCore != 20 || ref.kpps != 60 || zc.busy != 1 || zc.hostPerCore != 10 {
		t.Fatalf("rows %+v %+v", ref, zc)
	}
	s := benchRun{date: time.Date(2026, 12, 2, 16, 0, 0, 0, time.UTC), pps: 100000, d: d, rounds: 3, load: "1.0 1.0 1.0"}.
		section(2, []benchRow{medianRow([]benchRow{slow}), medianRow([]benchRow{ref}), medianRow([]benchRow{zc})})
	for _, want := range []string{"<!-- vm-bench q2 begin -->", "### 2 RX queue(s)", "| zc | 100.0 | 60.0 | 20.0 | 2.00 | 10.0 (10.0–10.0) | **0.40** | 1.00 (0.40 / 0.40 / 0.20) | 20.0 | 0.67 |", "<!-- vm-bench q2 end -->"} {
		if !strings.Contains(s, want) {
			t.Errorf("section lacks %q:\n%s", want, s)
		}
	}
}
