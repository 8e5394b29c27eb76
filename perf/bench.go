package perf

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"

	"github.com/medialb/medialb/afxdp"
	"github.com/medialb/medialb/perf/xdpref"
	"github.com/medialb/medialb/pipeline"
	"github.com/rs/zerolog"
)

// Config configures a Run. The zero value gives a full default run.
type Config struct {
	Duration     time.Duration // sending time per point; default 2s
	Repeats      int           // measurements of every point, interleaved; default 3
	Packets      uint64        // most frames per point; 0: bounded by Duration only
	Mixes        []Mix         // default Mix64, Mix512, Mix1400, MixIMIX
	Proto        string        // default ProtoMix
	Sources      int           // distinct client source addresses; default 1024
	Forwarders   []string      // default FwdXDPTX, FwdMedialb, FwdMedialbFastpath
	Queues       []int         // RX queue counts of the load balancer's interface; default 1, 2
	ScalingMix   *Mix          // the mix of the multi-queue points; default Mix64
	GenCPU       int           // CPU of the generator (and the downstream bridge work); default 0
	FwdCPU       int           // CPU of the forwarder's first queue; default 1
	LatencyPings int           // UDP ping-pongs per latency path; 0: default 1000, <0: none
	CPUProfile   string        // if set, a CPU profile of the medialb 64-byte point goes there
	CountAt      string        // CountAtSwitch (default) or CountAtServer
	BatchSize    int           // medialb workers' WorkerOptions.BatchSize; 0: the pipeline's default
	ServerCheck  bool          // with CountAtSwitch: also measure ScalingMix counted at the servers
	Logger       zerolog.Logger
}

func (c *Config) defaults() {
	if c.Duration <= 0 {
		c.Duration = 2 * time.Second
	}
	if c.Repeats <= 0 {
		c.Repeats = 3
	}
	if len(c.Mixes) == 0 {
		c.Mixes = []Mix{Mix64, Mix512, Mix1400, MixIMIX}
	}
	if c.Proto == "" {
		c.Proto = ProtoMix
	}
	if c.Sources <= 0 {
		c.Sources = 1024
	}
	if len(c.Forwarders) == 0 {
		c.Forwarders = []string{FwdXDPTX, FwdMedialb, FwdMedialbFastpath}
	}
	if len(c.Queues) == 0 {
		c.Queues = []int{1, 2}
	}
	if c.ScalingMix == nil {
		m := Mix64
		c.ScalingMix = &m
	}
	if c.GenCPU == 0 && c.FwdCPU == 0 {
		c.GenCPU, c.FwdCPU = 0, 1
	}
	if c.CountAt == "" {
		c.CountAt = CountAtSwitch
	}
	if c.LatencyPings == 0 {
		c.LatencyPings = 1000
	}
}

// Point is one measurement: a forwarder, a packet mix and a queue count, sending for
// Elapsed.
type Point struct {
	Forwarder  string
	Mix        string
	MeanSize   float64
	Queues     int
	CountAt    string        // where arrivals were counted: CountAtSwitch or CountAtServer
	Rep        int           // repetition of the point, from 0
	Sent       uint64        // frames the generator completed
	Arrived    uint64        // frames counted at the real servers
	Forwarded  uint64        // frames the forwarder says it sent on
	Elapsed    time.Duration // sending time
	Window     time.Duration // measuring time: sending, then the frames in flight
	FwdCPU     time.Duration // CPU time of the forwarding threads (NAPI threads + workers)
	GenCPU     time.Duration // CPU time of the generator's thread
	CoreBusy   float64       // busy fraction of the forwarding CPU (all tasks) over the point
	NapiCPU    time.Duration // of FwdCPU: the NAPI kernel threads (XDP program, copy into the UMEM)
	UserCPU    time.Duration // of FwdCPU: workers in user space (parse, tables, rings), tick resolution
	SysCPU     time.Duration // of FwdCPU: workers in the kernel (sendto, poll), tick resolution
	Batches    uint64        // medialb: non-empty receive batches
	TxKicks    uint64        // medialb: sendto calls
	FastPathTX uint64        // medialb+fastpath: frames the steering program sent with XDP_TX
	Mallocs    uint64        // heap allocations of the whole process during the point
	Detail     string        // forwarder-specific counters
}

// Mpps returns the arrival rate in millions of packets per second.
func (p Point) Mpps() float64 {
	if p.Elapsed <= 0 {
		return 0
	}
	return float64(p.Arrived) / p.Elapsed.Seconds() / 1e6
}

// NsPerPacket returns the forwarding threads' CPU time per arrived frame.
func (p Point) NsPerPacket() float64 {
	if p.Arrived == 0 {
		return 0
	}
	return float64(p.FwdCPU.Nanoseconds()) / float64(p.Arrived)
}

// CoreMpps returns the rate one fully busy forwarding core would reach at NsPerPacket.
func (p Point) CoreMpps() float64 {
	if ns := p.NsPerPacket(); ns > 0 {
		return 1e3 / ns
	}
	return 0
}

// OthersBusy returns the part of CoreBusy not spent by the forwarding threads: other
// tasks and interrupts on the forwarding CPU (the machine is shared). It is meaningful
// for one queue, where all forwarding threads run on that CPU.
func (p Point) OthersBusy() float64 {
	if p.Elapsed <= 0 {
		return 0
	}
	if p.Window <= 0 {
		return 0
	}
	return max(0, p.CoreBusy-p.FwdCPU.Seconds()/p.Window.Seconds())
}

// AllocsPerPacket returns Mallocs per arrived frame.
func (p Point) AllocsPerPacket() float64 {
	if p.Arrived == 0 {
		return 0
	}
	return float64(p.Mallocs) / float64(p.Arrived)
}

// Latency is the round-trip time of UDP ping-pongs from the client to a real server's
// echo, one at a time.
type Latency struct {
	Path          string // "direct" (the real server's own address), FwdXDPTX or FwdMedialb (the VIP)
	Sent, Lost    int
	P50, P99, Max time.Duration
}

// Results is the outcome of a Run.
type Results struct {
	Start     time.Time
	Took      time.Duration
	Machine   Machine
	Generator string
	IPVS      string
	XDPMode   string // of the forwarders on the load balancer's veth
	Config    Config
	Points    []Point
	Latency   []Latency
	Notes     []string
	// LoadStart and LoadEnd are /proc/loadavg's 1, 5 and 15 minute averages.
	LoadStart, LoadEnd string
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

// Run builds the lab, measures every point of cfg, and deletes the lab.
func Run(ctx context.Context, cfg Config) (res *Results, err error) {
	cfg.defaults()
	log := cfg.Logger
	res = &Results{Start: time.Now().UTC(), Machine: machine(), IPVS: ipvsStatus(), Config: cfg, LoadStart: loadAvg()}
	defer func() {
		if res != nil {
			res.Took, res.LoadEnd = time.Since(res.Start), loadAvg()
		}
	}()
	if cfg.CountAt != CountAtSwitch && cfg.CountAt != CountAtServer {
		return nil, fmt.Errorf("run: count arrivals at %q: want %s or %s", cfg.CountAt, CountAtSwitch, CountAtServer)
	}
	if n := runtime.NumCPU(); cfg.GenCPU >= n || cfg.FwdCPU >= n || cfg.GenCPU == cfg.FwdCPU {
		return nil, fmt.Errorf("run: generator on CPU %d and forwarder on CPU %d: want two different CPUs below nproc %d", cfg.GenCPU, cfg.FwdCPU, n)
	}
	if len(cfg.Queues) > 0 && cfg.Queues[0] != 1 {
		return nil, fmt.Errorf("run: the first queue count must be 1 (latency runs there), got %v", cfg.Queues)
	}
	t, err := newTopo(1)
	if err != nil {
		return nil, fmt.Errorf("build lab: %w", err)
	}
	res.Notes = append(res.Notes, t.notes...)
	defer func() { err = errors.Join(err, t.Close()) }()

	gen, err := NewGenerator(GenConfig{
		NS: t.client.ns, Interface: t.client.link, DstMAC: t.lb.mac, SrcMAC: t.client.mac,
		Mix: cfg.Mixes[0], Proto: cfg.Proto, Sources: cfg.Sources, CPU: cfg.GenCPU, Logger: log,
	})
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, gen.Close()) }()
	mode, _ := gen.dp.Mode()
	res.Generator = fmt.Sprintf("medialb-perf AF_XDP TX (copy mode, XDP %s) on the client veth, 1 thread pinned to CPU %d", mode, cfg.GenCPU)

	phases := []phase{{queues: 1, mixes: cfg.Mixes, countAt: cfg.CountAt, latency: cfg.LatencyPings > 0}}
	if cfg.CountAt == CountAtSwitch && cfg.ServerCheck {
		phases = append(phases, phase{queues: 1, mixes: []Mix{*cfg.ScalingMix}, countAt: CountAtServer})
	}
	for _, q := range cfg.Queues[1:] {
		phases = append(phases, phase{queues: q, mixes: []Mix{*cfg.ScalingMix}, countAt: cfg.CountAt})
	}
	for _, ph := range phases {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		if err := t.setLBQueues(ph.queues); err != nil {
			return res, err
		}
		pts, lat, err := runPhase(ctx, t, gen, cfg, ph, res)
		res.Points = append(res.Points, pts...)
		res.Latency = append(res.Latency, lat...)
		if err != nil {
			return res, err
		}
	}
	return res, nil
}

// Where throughput runs count arrivals (Config.CountAt, Point.CountAt).
const (
	// CountAtSwitch counts, on the bridge port facing the load balancer, the frames the
	// load balancer sent with a real server's destination MAC, and drops them there.
	CountAtSwitch = "switch"
	// CountAtServer lets the bridge forward the frames and counts them on the real
	// servers' veths (frames with the server's own MAC), where they are dropped.
	CountAtServer = "server"
)

// phase is a set of points sharing the load balancer's queue count and the place
// arrivals are counted at.
type phase struct {
	queues  int
	mixes   []Mix
	countAt string
	latency bool
}

// downstream is what receives the forwarded frames: counting programs, and the
// XDP_PASS on the bridge port that a veth needs to receive XDP_TX frames.
type downstream struct {
	pass     *xdpref.Attachment
	counters []*counter
}

func (d *downstream) arrived() (uint64, error) { return d.sum((*counter).Count) }

// clientsArrived returns the frames from the lab's clients (10.0.0.0/8) counted so far.
func (d *downstream) clientsArrived() (uint64, error) { return d.sum((*counter).Clients) }

// sum adds up read over the counters.
func (d *downstream) sum(read func(*counter) (uint64, error)) (uint64, error) {
	var s uint64
	for _, c := range d.counters {
		n, err := read(c)
		if err != nil {
			return 0, err
		}
		s += n
	}
	return s, nil
}

func (d *downstream) close() error {
	var errs []error
	for _, c := range d.counters {
		errs = append(errs, c.Close())
	}
	d.counters = nil
	if d.pass != nil {
		errs = append(errs, d.pass.Close())
		d.pass = nil
	}
	return errors.Join(errs...)
}

// setDownstream attaches what receives forwarded frames for countAt ("" : only XDP_PASS
// on the bridge port, for the latency runs). The bridge port's NAPI threads run on cpu.
func setDownstream(t *topo, countAt string, cpu int) (d *downstream, err error) {
	d = &downstream{}
	defer func() {
		if err != nil {
			d.close()
		}
	}()
	if countAt == CountAtSwitch {
		c, err := attachCounter(t.sw, t.lb.port, t.rsMACs())
		if err != nil {
			return nil, err
		}
		d.counters = append(d.counters, c)
	} else {
		if err := inNS(t.sw, func() (err error) { d.pass, err = xdpref.AttachPass(t.lb.port); return err }); err != nil {
			return nil, fmt.Errorf("attach XDP_PASS to %s: %w", t.lb.port, err)
		}
		if countAt == CountAtServer {
			for _, n := range t.rs {
				c, err := attachCounter(n.ns, n.link, []net.HardwareAddr{n.mac})
				if err != nil {
					return nil, err
				}
				d.counters = append(d.counters, c)
			}
		}
	}
	tids, err := threadNAPI(t.sw, t.lb.port, []int{cpu})
	if err != nil {
		return nil, err
	}
	// The bridge port's NAPI thread shares the generator's CPU; a real-time priority makes
	// it drain the ring the forwarder fills as soon as frames are there (what it does is
	// cheap), so that losses between the forwarder and the counter are not the
	// generator's doing.
	for _, tid := range tids {
		if err := runCmd("chrt", "-f", "-p", "10", strconv.Itoa(tid)); err != nil {
			return nil, err
		}
	}
	return d, nil
}

// runPhase measures every forwarder and mix of ph, then (if ph.latency) the ping-pong
// latencies.
func runPhase(ctx context.Context, t *topo, gen *Generator, cfg Config, ph phase, res *Results) (pts []Point, lats []Latency, err error) {
	log := cfg.Logger
	cpus := []int{cfg.FwdCPU, cfg.GenCPU}[:min(ph.queues, 2)]
	ds, err := setDownstream(t, ph.countAt, cfg.GenCPU)
	if err != nil {
		return nil, nil, err
	}
	defer func() { err = errors.Join(err, ds.close()) }()
	// Forwarders take turns point by point (mix by mix, repeat by repeat), so that a
	// burst of load from other jobs on the shared machine hits all of them alike.
	for _, mix := range ph.mixes {
		for rep := range cfg.Repeats {
			for _, name := range cfg.Forwarders {
				f, err := startForwarder(t, name, cpus, cfg)
				if err != nil {
					return pts, nil, err
				}
				if xa, ok := f.(*xdpTX); ok && res.XDPMode == "" {
					res.XDPMode = xa.a.Mode()
				}
				p, err := measure(ctx, t, gen, f, ds.arrived, cfg, name, mix, ph.queues, rep)
				err = errors.Join(err, f.close())
				if err != nil {
					return pts, nil, fmt.Errorf("measure %s %s: %w", name, mix.Name, err)
				}
				p.CountAt = ph.countAt
				log.Info().Str("forwarder", name).Str("mix", mix.Name).Int("queues", ph.queues).Str("count_at", ph.countAt).Int("rep", rep).
					Uint64("sent", p.Sent).Uint64("forwarded", p.Forwarded).Uint64("arrived", p.Arrived).Float64("mpps", p.Mpps()).
					Float64("ns_per_pkt", p.NsPerPacket()).Float64("busy", p.CoreBusy).Dur("gen_cpu", p.GenCPU).Str("detail", p.Detail).Msg("point")
				pts = append(pts, p)
			}
		}
	}
	if !ph.latency {
		return pts, nil, nil
	}
	// The counters drop everything, ARP included: the ping-pongs need the real stack.
	if err := ds.close(); err != nil {
		return pts, nil, err
	}
	if ds, err = setDownstream(t, "", cfg.GenCPU); err != nil {
		return pts, nil, err
	}
	lats, err = measureLatency(ctx, t, cfg, cpus[:1])
	return pts, lats, err
}

// measure runs one point: a short warm-up (persistence entries, caches), then cfg.Duration
// of sending, then a pause for frames in flight.
func measure(ctx context.Context, t *topo, gen *Generator, f forwarder, arrived func() (uint64, error), cfg Config, name string, mix Mix, q, rep int) (Point, error) {
	p := Point{Forwarder: name, Mix: mix.Name, MeanSize: mix.MeanSize(), Queues: q, Rep: rep}
	if err := gen.SetMix(mix); err != nil {
		return p, err
	}
	warm := cfg.Duration / 10
	if _, err := gen.Send(ctx, min(cfg.Packets, 100000), warm); err != nil {
		return p, err
	}
	time.Sleep(50 * time.Millisecond)
	tids := f.threads()
	cpu0 := sumRuntime(tids)
	napi0 := sumRuntime(f.napiThreads())
	user0, sys0 := sumUserSys(tids[len(f.napiThreads()):])
	a0, err := arrived()
	if err != nil {
		return p, err
	}
	f0 := f.forwarded()
	var ms0, ms1 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	b0, t0, _ := cpuTimes(cfg.FwdCPU)
	w0 := time.Now()
	drops0 := t.linkDrops()
	var c0 pipeline.Counters
	var st0 []afxdp.Stats
	var fast0 uint64
	if m, ok := f.(*medialb); ok {
		c0 = m.counters()
		fast0 = m.fastForwarded()
		for _, s := range m.dp.Sockets() {
			st0 = append(st0, s.Stats())
		}
	}
	profiling := false
	if cfg.CPUProfile != "" && name == FwdMedialb && mix.Name == Mix64.Name && q == 1 && rep == 0 {
		pf, err := os.Create(cfg.CPUProfile)
		if err != nil {
			return p, fmt.Errorf("create CPU profile: %w", err)
		}
		defer pf.Close()
		if err := pprof.StartCPUProfile(pf); err != nil {
			return p, fmt.Errorf("start CPU profile: %w", err)
		}
		profiling = true
	}
	g, err := gen.Send(ctx, cfg.Packets, cfg.Duration)
	if profiling {
		pprof.StopCPUProfile()
	}
	if err != nil {
		return p, err
	}
	time.Sleep(100 * time.Millisecond)
	b1, t1, _ := cpuTimes(cfg.FwdCPU)
	p.Window = time.Since(w0)
	runtime.ReadMemStats(&ms1)
	a1, err := arrived()
	if err != nil {
		return p, err
	}
	p.Sent, p.Arrived, p.Forwarded = g.Sent, a1-a0, f.forwarded()-f0
	p.Elapsed, p.GenCPU = g.Elapsed, g.CPU
	p.FwdCPU = sumRuntime(tids) - cpu0
	p.NapiCPU = sumRuntime(f.napiThreads()) - napi0
	user1, sys1 := sumUserSys(tids[len(f.napiThreads()):])
	p.UserCPU, p.SysCPU = user1-user0, sys1-sys0
	p.Mallocs = ms1.Mallocs - ms0.Mallocs
	if t1 > t0 {
		p.CoreBusy = float64(b1-b0) / float64(t1-t0)
	}
	p.Detail = "drops: " + dropDelta(drops0, t.linkDrops())
	if m, ok := f.(*medialb); ok {
		c := m.counters()
		var parts []string
		p.Batches = c.Batches - c0.Batches
		for i, s := range m.dp.Sockets() {
			st, b := s.Stats(), st0[i]
			p.TxKicks += st.TxKicks - b.TxKicks
			parts = append(parts, fmt.Sprintf("q%d: rx %d, kernel rx_dropped %d, rx_ring_full %d, fill_empty %d, tx_kicks %d, tx_eagain %d",
				s.QueueID(), st.RxFrames-b.RxFrames, st.RxDropped-b.RxDropped, st.RxRingFull-b.RxRingFull,
				st.FillRingEmpty-b.FillRingEmpty, st.TxKicks-b.TxKicks, st.TxEAGAIN-b.TxEAGAIN))
		}
		var why []string
		for r := range pipeline.NumReasons {
			if n := c.ByReason[r] - c0.ByReason[r]; n > 0 {
				why = append(why, fmt.Sprintf("%s %d", r, n))
			}
		}
		p.Detail += fmt.Sprintf("; batches %d: %s; %s", p.Batches, strings.Join(why, ", "), strings.Join(parts, "; "))
		if m.fast {
			p.FastPathTX = m.fastForwarded() - fast0
			p.Detail += fmt.Sprintf("; fast path: fastpath_tx %d, pipeline forwarded %d, map updates %d (syscalls) with %d entries, errors %d",
				p.FastPathTX, c.Forwarded()-c0.Forwarded(), c.FastPathFlushes-c0.FastPathFlushes,
				c.FastPathEntries-c0.FastPathEntries, c.FastPathErrors-c0.FastPathErrors)
		}
	}
	return p, nil
}

func sumUserSys(tids []int) (user, sys time.Duration) {
	for _, tid := range tids {
		u, s, _ := threadUserSys(tid)
		user += u
		sys += s
	}
	return user, sys
}

func sumRuntime(tids []int) time.Duration {
	var s time.Duration
	for _, tid := range tids {
		d, _ := threadRuntime(tid)
		s += d
	}
	return s
}
