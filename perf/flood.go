package perf

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"github.com/medialb/medialb/internal/checksum"
	"net/netip"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/medialb/medialb/afxdp"
	"github.com/medialb/medialb/pipeline"
	"github.com/medialb/medialb/tables"
	"github.com/rs/zerolog"
)

// FloodConfig configures RunFlood: established clients keep sending while a spray of
// new, never repeated source addresses hits the VIP's media ports.
type FloodConfig struct {
	Duration    time.Duration // how long the spray lasts; default 5s
	Established int           // established clients (UDP and TCP media); default 256
	Every       int           // one established frame in Every frames, the rest spray; default 16
	Capacity    int           // persistence capacity, and the fast-path map's size; default 8192
	GenCPU      int           // CPU of the generator; default 0
	FwdCPU      int           // CPU of the forwarder; default 1
	// RTNAPI applies the product's node.rx_priority (afxdp.PrioritizeNAPI: the
	// load balancer's NAPI threads at SCHED_FIFO afxdp.NAPIPriority), so that the
	// kernel's receive path, XDP included, always wins the core over the
	// pipeline's worker.
	RTNAPI bool
	// SwitchQueue, when not 0, puts a FIFO of that many frames on the switch's port
	// to the load balancer (tc pfifo; the veth then holds frames back while the load
	// balancer's 256-frame veth ring is full instead of dropping them), as the RX
	// ring of a NIC (512-4096 descriptors) or a switch's buffer absorbs the
	// moments the load balancer's NAPI thread is kept off its core.
	SwitchQueue int
	Logger      zerolog.Logger
}

func (c *FloodConfig) defaults() {
	if c.Duration <= 0 {
		c.Duration = 5 * time.Second
	}
	if c.Established <= 0 {
		c.Established = 256
	}
	if c.Every <= 1 {
		c.Every = 16
	}
	if c.Capacity <= 0 {
		c.Capacity = 8192
	}
	if c.GenCPU == 0 && c.FwdCPU == 0 {
		c.FwdCPU = 1
	}
}

// FloodResult is what RunFlood measured during the spray.
type FloodResult struct {
	Config  FloodConfig
	Elapsed time.Duration
	Sent    uint64 // frames the generator put on the wire
	EstSent uint64 // of which established clients' frames
	Spray   uint64 // of which frames from new sources (one frame each)
	Arrived uint64 // frames that reached a real server
	// EstArrived counts the established clients' frames that reached a real server;
	// EstSent - EstArrived is the established flows' loss (goal 0).
	EstArrived uint64
	FastPath   uint64 // frames the XDP fast path sent (all from established clients)
	// EstOffFastPath is EstSent - FastPath: established frames that went to the
	// pipeline (where the spray competes with them) instead of the fast path. Goal 0.
	EstOffFastPath int64
	Pipeline       pipeline.Counters // the workers' counters over the spray
	RxRingDropped  uint64            // frames the kernel dropped because the socket's RX ring was full
	Affinity       tables.AffinityStats
	FastPathStats  afxdp.FastPathStats // the fast-path map's counters at the end
	// EstKept counts the established clients that, after the spray, still have their
	// persistence entry on their server and their fast-path decision.
	EstKept int
	// LinkDrops are the lab's interface drop counters that grew during the spray
	// (frames lost before any XDP program ran: the load balancer's veth backlog).
	LinkDrops string
	// LBRingDrops counts the frames the switch could not hand to the load balancer's
	// veth (its receive backlog full: the load balancer's core saturated).
	LBRingDrops uint64
	// NAPICPU and WorkerCPU are the CPU time the load balancer's NAPI thread and
	// pipeline worker ran during the spray (schedstat).
	NAPICPU, WorkerCPU time.Duration
	// QueueDrops counts the frames the SwitchQueue FIFO dropped (full).
	QueueDrops uint64
	// LBTXDrops counts the frames the load balancer sent (XDP_TX and the pipeline)
	// that the switch's port could not take (its receive ring full).
	LBTXDrops uint64
	// PingSent and PingLost count echo requests from the client to the load
	// balancer's own address during the spray (the node's own traffic: its kernel
	// answers, as it answers health-check replies, ARP and the API).
	PingSent, PingLost int
}

// EstLost returns the established clients' frames that did not reach a server.
func (r FloodResult) EstLost() int64 { return int64(r.EstSent) - int64(r.EstArrived) }

// Mpps returns the rate the generator sent at.
func (r FloodResult) Mpps() float64 { return float64(r.Sent) / r.Elapsed.Seconds() / 1e6 }

// RunFlood builds the lab, lets Established clients send for 2.5 s (so that they are
// confirmed in the persistence table and recorded in the fast-path map), then sprays
// new sources at VIP:50000-65535 from the same generator for Duration, one established
// frame in Every, and reports what became of the established clients.
func RunFlood(ctx context.Context, cfg FloodConfig) (res *FloodResult, err error) {
	cfg.defaults()
	res = &FloodResult{Config: cfg}
	t, err := newTopo(1)
	if err != nil {
		return nil, fmt.Errorf("build lab: %w", err)
	}
	defer func() { err = errors.Join(err, t.Close()) }()
	spec := harmonicTraffic(t)
	spec.Services[0].AffinityCap = cfg.Capacity
	f, err := startMedialbSpec(t, spec, cfg.Capacity, []int{cfg.FwdCPU}, dpOptions{}, true, 0, cfg.Logger)
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, f.close()) }()
	if cfg.RTNAPI {
		var undo func() error
		if err := inNSWithSys(t.lb.ns, func() (err error) { _, undo, err = afxdp.PrioritizeNAPI(t.lb.link); return err }); err != nil {
			return nil, err
		}
		defer func() { err = errors.Join(err, inNSWithSys(t.lb.ns, undo)) }()
	}
	if cfg.SwitchQueue > 0 {
		if err := runCmd("tc", "-n", t.sw, "qdisc", "replace", "dev", t.lb.port, "root", "pfifo", "limit", strconv.Itoa(cfg.SwitchQueue)); err != nil {
			return nil, fmt.Errorf("queue of %d frames on the switch's port to the load balancer: %w", cfg.SwitchQueue, err)
		}
	}
	// Counted at the servers: the bridge port facing the load balancer lets its
	// answers to the client's pings through.
	down, err := setDownstream(t, CountAtServer, cfg.GenCPU)
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, down.close()) }()
	gen, err := NewGenerator(GenConfig{
		NS: t.client.ns, Interface: t.client.link, DstMAC: t.lb.mac, SrcMAC: t.client.mac,
		Mix: Mix64, Proto: ProtoMix, Sources: cfg.Established, CPU: cfg.GenCPU, Logger: cfg.Logger,
	})
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, gen.Close()) }()

	// Warm-up: the established clients only, long enough to be seen in two seconds.
	if _, err := gen.Send(ctx, 0, 2500*time.Millisecond); err != nil {
		return nil, err
	}
	time.Sleep(100 * time.Millisecond)
	svc := f.holder.Load().Service("Harmonic_Traffic")
	now := tables.Now()
	servers := make(map[netip.Addr]string, cfg.Established)
	for i := range cfg.Established {
		c := addrAdd(sourceBase, i)
		if _, name, ok := svc.LastSeen(c, now); ok {
			servers[c] = name
		}
	}
	if len(servers) != cfg.Established {
		return nil, fmt.Errorf("flood: %d of %d established clients in the persistence table after the warm-up", len(servers), cfg.Established)
	}

	c0, fp0, rx0, arr0, ld0 := f.counters(), f.fastForwarded(), rxDropped(f.dp), uint64(0), t.linkDrops()
	if arr0, err = down.arrived(); err != nil {
		return nil, err
	}
	est0, err := down.clientsArrived()
	if err != nil {
		return nil, err
	}
	napi0, work0 := sumRuntime(f.napi), sumRuntime(f.wtids)
	q0, err := queueDrops(t, cfg.SwitchQueue)
	if err != nil {
		return nil, err
	}
	pings := make(chan [2]int, 1)
	go func() { pings <- pingLoss(t, cfg.Duration) }()
	g, err := gen.spray(ctx, cfg.Duration, cfg.Every)
	if err != nil {
		return nil, err
	}
	res.NAPICPU, res.WorkerCPU = sumRuntime(f.napi)-napi0, sumRuntime(f.wtids)-work0
	pl := <-pings
	res.PingSent, res.PingLost = pl[0], pl[1]
	time.Sleep(200 * time.Millisecond) // let the pipeline drain its ring
	arr1, err := down.arrived()
	if err != nil {
		return nil, err
	}
	q1, err := queueDrops(t, cfg.SwitchQueue)
	if err != nil {
		return nil, err
	}
	res.QueueDrops = q1 - q0
	res.Elapsed, res.Sent, res.EstSent, res.Spray = g.Elapsed, g.Sent, g.est, g.Sent-g.est
	est1, err := down.clientsArrived()
	if err != nil {
		return nil, err
	}
	res.Arrived, res.EstArrived = arr1-arr0, est1-est0
	res.FastPath = f.fastForwarded() - fp0
	res.EstOffFastPath = int64(res.EstSent) - int64(res.FastPath)
	res.Pipeline = diffCounters(f.counters(), c0)
	res.RxRingDropped = rxDropped(f.dp) - rx0
	res.Affinity = svc.AffinityStats()
	ld1 := t.linkDrops()
	res.LinkDrops = dropDelta(ld0, ld1)
	k := t.lb.port + " tx_dropped"
	res.LBRingDrops = ld1[k] - ld0[k]
	k = t.lb.link + " tx_dropped"
	res.LBTXDrops = ld1[k] - ld0[k]

	fp := f.dp.FastPath()
	res.FastPathStats = fp.Stats()
	id := fp.ServiceID("Harmonic_Traffic")
	now = tables.Now()
	for c, name := range servers {
		_, got, ok := svc.LastSeen(c, now)
		v, inMap := fp.Lookup(id, c)
		if ok && got == name && inMap && v.Gen == fp.Generation() {
			res.EstKept++
		}
	}
	return res, nil
}

// queueDrops returns the drops of the FIFO on the switch's port to the load balancer
// (0 without one: queue 0).
func queueDrops(t *topo, queue int) (uint64, error) {
	if queue == 0 {
		return 0, nil
	}
	out, err := exec.Command("tc", "-n", t.sw, "-s", "qdisc", "show", "dev", t.lb.port).CombinedOutput()
	if err != nil {
		return 0, fmt.Errorf("read the queue's drops on %s: %w: %s", t.lb.port, err, out)
	}
	// " Sent 123 bytes 4 pkt (dropped 5, overlimits 0 requeues 0)"
	_, rest, ok := strings.Cut(string(out), "(dropped ")
	n, perr := strconv.ParseUint(strings.TrimRight(strings.Fields(rest + " x")[0], ","), 10, 64)
	if !ok || perr != nil {
		return 0, fmt.Errorf("read the queue's drops on %s: no drop count in %q", t.lb.port, out)
	}
	return n, nil
}

// pingLoss pings the load balancer's own address from the client, 100 a second for
// about d, and returns how many it sent and how many got no answer.
func pingLoss(t *topo, d time.Duration) [2]int {
	n := int(d / (10 * time.Millisecond))
	out, _ := exec.Command("ip", "netns", "exec", t.client.ns, "ping", "-q", "-n", "-i", "0.01", "-W", "1",
		"-c", strconv.Itoa(n), lbAddr.String()).CombinedOutput()
	// "N packets transmitted, M received, ..."
	var sent, recv int
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Contains(line, "packets transmitted") {
			fmt.Sscanf(strings.TrimSpace(line), "%d packets transmitted, %d received", &sent, &recv)
		}
	}
	return [2]int{sent, sent - recv}
}

// rxDropped returns the frames the kernel dropped for want of room in the sockets' RX rings.
func rxDropped(dp *afxdp.Dataplane) uint64 {
	var n uint64
	for _, s := range dp.Sockets() {
		n += s.Stats().RxDropped
	}
	return n
}

// diffCounters returns b - a, reason by reason.
func diffCounters(b, a pipeline.Counters) pipeline.Counters {
	d := pipeline.Counters{Batches: b.Batches - a.Batches}
	for i := range d.ByReason {
		d.ByReason[i] = b.ByReason[i] - a.ByReason[i]
	}
	return d
}

// sprayResult is what one spray sent.
type sprayResult struct {
	GenResult
	est uint64 // established frames among Sent
}

// spray sends, for d, one established frame (the prebuilt ones, cycling) in every,
// and between them frames from new sources: each takes the next address from
// 11.0.0.0 up (never repeated within 16 M frames) and a destination port in
// 50000-65535; the IPv4 checksum is recomputed, the L4 one is left wrong (nobody
// checks it on the way).
func (g *Generator) spray(ctx context.Context, d time.Duration, every int) (sprayResult, error) {
	type out struct {
		r   sprayResult
		err error
	}
	done := make(chan out, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if g.cfg.CPU >= 0 {
			if err := pinThread(syscall.Gettid(), g.cfg.CPU); err != nil {
				done <- out{err: err}
				return
			}
		}
		before := g.sock.Stats()
		descs := make([]afxdp.Desc, 64)
		isEst := make([]bool, 64)
		fs := g.frames
		next, estNext, k := 0, 0, 0
		var spray uint32
		var queued, est uint64
		start := time.Now()
		deadline := start.Add(d)
		for i := 0; ; i++ {
			if i&63 == 0 && (ctx.Err() != nil || time.Now().After(deadline)) {
				break
			}
			n := g.sock.Alloc(descs)
			for j := range n {
				isEst[j] = k%every == 0
				k++
				// Established frames cycle through all the prebuilt ones (every
				// client); the spray rewrites the others.
				idx := &next
				if isEst[j] {
					idx = &estNext
				}
				f := fs.frame(*idx)
				if *idx++; *idx == len(fs.sizes) {
					*idx = 0
				}
				buf := g.sock.Frame(descs[j])
				copy(buf, f)
				descs[j].Len = uint32(len(f))
				if !isEst[j] {
					spray++
					ip := buf[ethLen:]
					binary.BigEndian.PutUint32(ip[12:], 11<<24|spray&0xffffff)
					binary.BigEndian.PutUint16(ip[ipv4Len+2:], uint16(50000+spray%15536))
					ip[10], ip[11] = 0, 0
					binary.BigEndian.PutUint16(ip[10:], ^checksum.Fold(checksum.Sum(ip[:ipv4Len], 0)))
				}
			}
			m := g.sock.Transmit(descs[:n])
			if m < n {
				g.sock.Release(descs[m:n])
			}
			for j := range m {
				if isEst[j] {
					est++
				}
			}
			queued += uint64(m)
		}
		elapsed := time.Since(start)
		after := g.complete(before, queued)
		done <- out{r: sprayResult{GenResult: GenResult{
			Sent: after.TxCompleted - before.TxCompleted, Elapsed: elapsed, TxErrors: after.TxErrors - before.TxErrors,
		}, est: est}}
	}()
	o := <-done
	return o.r, o.err
}

// Markers of the flood section of BENCHMARKS.md.
const (
	FloodBeginMarker = "<!-- flood:begin -->"
	FloodEndMarker   = "<!-- flood:end -->"
)

// FloodSection renders results (one run each, e.g. without and with RTNAPI) as the
// flood section of BENCHMARKS.md, with the command that produced them.
func FloodSection(command string, results ...*FloodResult) string {
	var b strings.Builder
	b.WriteString(FloodBeginMarker + "\n## A flood of new sources while established media flows\n\n")
	if len(results) == 0 {
		return b.String() + FloodEndMarker + "\n"
	}
	c := results[0].Config
	fmt.Fprintf(&b, "`%s` (root; %s of spray per run, the runs one after the other on the same machine). "+
		"%d established clients (UDP and TCP, 64-byte frames, one in %d frames) took the fast path during a 2.5 s "+
		"warm-up; then the same AF_XDP generator (CPU 0) sprayed frames from never-repeated source addresses at "+
		"VIP:50000-65535 between them, at the highest rate it reaches, while medialb (fast path on, persistence "+
		"capacity and fast-path map %d entries) forwarded on CPU 1; frames are counted where they reach the real "+
		"servers, and the client pings the load balancer's own address 100 times a second meanwhile.\n\n",
		command, c.Duration, c.Established, c.Every, c.Capacity)
	for _, r := range results {
		name := "default scheduling (NAPI thread and pipeline worker share CPU 1 as equals)"
		if r.Config.RTNAPI {
			name = fmt.Sprintf("node.rx_priority (the product's default with native XDP): NAPI thread at SCHED_FIFO %d over the pipeline worker", afxdp.NAPIPriority)
		}
		if r.Config.SwitchQueue > 0 {
			name += fmt.Sprintf(", and a %d-frame queue ahead of the load balancer's 256-frame veth ring (as a NIC's RX ring)", r.Config.SwitchQueue)
		}
		fmt.Fprintf(&b, "### %s\n\n%s\n", name, r.Markdown())
		fmt.Fprintf(&b, "Established flows' loss (sent by the clients, not arrived at a server): %.2f %%; frames the switch dropped before "+
			"the load balancer's XDP program (its veth ring full): %.2f %% of all; pings to the load balancer lost: "+
			"%d of %d. Established clients that kept their persistence entry and fast-path decision: %d of %d.\n\n",
			100*float64(r.EstLost())/float64(max(r.EstSent, 1)), 100*float64(r.LBRingDrops)/float64(max(r.Sent, 1)),
			r.PingLost, r.PingSent, r.EstKept, r.Config.Established)
	}
	b.WriteString("Reading: the tables hold (the new sources only evict each other in the persistence table and never " +
		"enter the fast-path map, which admits a client on its second packet and, a plain hash, never evicts one). " +
		"Established frames are lost where every frame is: at the load balancer's veth ring (256 frames, fixed) " +
		"ahead of XDP, and (the lab's switch only) at the switch port's ring that takes the load balancer's XDP_TX, " +
		"drained by a thread on the generator's CPU. Without node.rx_priority the NAPI thread is an ordinary thread " +
		"among the machine's other jobs and the ring overflows for half of the frames or more, pings included. With it (the product's default, " +
		"afxdp.PrioritizeNAPI) the NAPI thread is far from saturated (its CPU share above), and what the ring still " +
		"loses falls in the moments the thread is kept off its core anyway: this kernel is preempt=none (a thread in a " +
		"system call keeps the core until it returns) and the machine is a shared VM. A NIC's RX ring (512-4096 " +
		"descriptors; `ethtool -G IF rx 4096`) or a switch's buffer absorbs those gaps: with a 4096-frame queue ahead of " +
		"the veth ring (the third run) nothing is lost before XDP, pings neither, and the spray is still shed at the " +
		"AF_XDP socket's rings; what established flows may still lose is the lab switch's, behind XDP_TX.\n\n")
	m := machine()
	fmt.Fprintf(&b, "Date: %s; kernel %s; `nproc`: %d; load average %s at the end (shared machine).\n\n",
		time.Now().UTC().Format("2006-01-02T15:04Z"), m.Kernel, m.NProc, loadAvg())
	return b.String() + FloodEndMarker + "\n"
}

// UpdateFloodFile replaces the flood section of the Markdown file at path.
func UpdateFloodFile(path, section string) error {
	return updateFile(path, section, FloodBeginMarker, FloodEndMarker)
}

// Markdown renders the result as a BENCHMARKS.md table.
func (r FloodResult) Markdown() string {
	c := r.Pipeline
	return fmt.Sprintf(`| measure | value |
| --- | --- |
| spray duration | %s |
| generator rate | %.3f Mpps (%d frames: %d from established clients, %d from new sources) |
| established clients | %d, of which kept their server and fast-path decision: %d |
| established frames lost (sent, not arrived at a server; goal 0) | %d |
| established frames off the fast path | %d |
| fast path (XDP_TX) | %d frames |
| pipeline | %d frames received (%.3f Mpps), %d forwarded, drops: no_server %d, tx_full %d, other %d |
| RX ring full (kernel drops before the pipeline) | %d frames |
| CPU 1: NAPI thread / pipeline worker | %.0f %% / %.0f %% of the spray's time |
| arrived at the servers | %d frames (%.1f %% of sent) |
| the node's own traffic: pings to the load balancer's address | %d sent, %d lost |
| the switch could not take the load balancer's frames (XDP_TX and pipeline TX) | %d |
| dropped by the queue ahead of the load balancer (when there is one) | %d |
| lab interface drops | %s |
| persistence table (capacity %d) | %d inserts, %d evictions (unconfirmed or idle), %d refused, %d full drops |
| fast-path map (%d entries) | %d decisions recorded, %d refused (map full), %d expired |
`, r.Elapsed.Round(time.Millisecond), r.Mpps(), r.Sent, r.EstSent, r.Spray,
		r.Config.Established, r.EstKept, r.EstLost(), r.EstOffFastPath, r.FastPath,
		c.Received(), float64(c.Received())/r.Elapsed.Seconds()/1e6, c.Forwarded(),
		c.ByReason[pipeline.NoServer], c.ByReason[pipeline.TXFull],
		c.Dropped()-c.ByReason[pipeline.NoServer]-c.ByReason[pipeline.TXFull],
		r.RxRingDropped, 100*r.NAPICPU.Seconds()/r.Elapsed.Seconds(), 100*r.WorkerCPU.Seconds()/r.Elapsed.Seconds(), r.Arrived, 100*float64(r.Arrived)/float64(max(r.Sent, 1)), r.PingSent, r.PingLost, r.LBTXDrops, r.QueueDrops, r.LinkDrops,
		r.Affinity.Capacity, r.Affinity.Inserts, r.Affinity.Evictions, r.Affinity.Refused, r.Affinity.FullDrops,
		r.Config.Capacity, r.FastPathStats.Entries, r.FastPathStats.Refused, r.FastPathStats.Expired)
}
