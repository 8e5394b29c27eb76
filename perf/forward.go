package perf

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"syscall"
	"time"

	"github.com/medialb/medialb/afxdp"
	"github.com/medialb/medialb/perf/xdpref"
	"github.com/medialb/medialb/pipeline"
	"github.com/medialb/medialb/tables"
	"github.com/rs/zerolog"
)

// Forwarder names, as Point.Forwarder spells them.
const (
	FwdXDPTX   = "xdp_tx"  // in-kernel reference: XDP program, MAC rewrite, XDP_TX
	FwdMedialb = "medialb" // AF_XDP sockets + pipeline workers
	// FwdMedialbBusyPoll is medialb with afxdp.Config.BusyPoll (SO_PREFER_BUSY_POLL).
	FwdMedialbBusyPoll = "medialb_busypoll"
	// FwdMedialbFastpath is medialb with the steering program's fast path
	// (afxdp.FastPath, node.xdp_fastpath): the pipeline picks a client's server, the
	// program forwards the client's next frames itself with XDP_TX.
	FwdMedialbFastpath = "medialb+fastpath"
)

// The VIP's steered ports: the Harmonic_Traffic service of examples/harmonic-vos.yaml.
var vipPorts = []afxdp.PortRange{{Lo: 1935, Hi: 1935}, {Lo: 554, Hi: 554}, {Lo: 50000, Hi: 65535}}

func vips() []afxdp.VIP {
	return []afxdp.VIP{
		{Addr: vipAddr, Proto: afxdp.ProtoTCP, Ports: vipPorts, Service: "Harmonic_Traffic"},
		{Addr: vipAddr, Proto: afxdp.ProtoUDP, Ports: vipPorts, Service: "Harmonic_Traffic"},
	}
}

// fastVIPs is vips with the fast path on.
func fastVIPs() []afxdp.VIP {
	v := vips()
	for i := range v {
		v[i].FastPath = true
	}
	return v
}

// forwarder is one of the compared load-balancer data paths, attached to the lab's load
// balancer interface.
type forwarder interface {
	// threads returns the ids of the threads that do the forwarding work.
	threads() []int
	// napiThreads returns the ids of the interface's NAPI kernel threads (the rest of
	// threads() is user space).
	napiThreads() []int
	// forwarded returns the forwarder's own count of frames it sent on.
	forwarded() uint64
	close() error
}

// startForwarder attaches forwarder name to the load balancer with the lab's queue
// count; queue i's threads run on cpus[i%len(cpus)].
func startForwarder(t *topo, name string, cpus []int, cfg Config) (forwarder, error) {
	log := cfg.Logger
	switch name {
	case FwdXDPTX:
		return startXDPTX(t, cpus)
	case FwdMedialb:
		return startMedialb(t, cpus, dpOptions{}, false, cfg.BatchSize, log)
	case FwdMedialbBusyPoll:
		return startMedialb(t, cpus, dpOptions{BusyPoll: true}, false, cfg.BatchSize, log)
	case FwdMedialbFastpath:
		return startMedialb(t, cpus, dpOptions{}, true, cfg.BatchSize, log)
	}
	if o, fast, ok := variant(name); ok { // variants.go
		return startMedialb(t, cpus, o, fast, cfg.BatchSize, log)
	}
	return nil, fmt.Errorf("start forwarder: unknown %q (want %s, %s, %s or %s)", name, FwdXDPTX, FwdMedialb, FwdMedialbFastpath, FwdMedialbBusyPoll)
}

type xdpTX struct {
	a    *xdpref.Attachment
	napi []int
}

func startXDPTX(t *topo, cpus []int) (*xdpTX, error) {
	f := &xdpTX{}
	err := inNS(t.lb.ns, func() (err error) {
		f.a, err = xdpref.AttachXDPTXForwarder(t.lb.link, t.rs[0].mac, t.lb.mac, vips())
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("attach XDP_TX reference: %w", err)
	}
	if f.napi, err = threadNAPI(t.lb.ns, t.lb.link, cpus); err != nil {
		f.a.Close()
		return nil, err
	}
	return f, nil
}

func (f *xdpTX) threads() []int     { return f.napi }
func (f *xdpTX) napiThreads() []int { return f.napi }
func (f *xdpTX) forwarded() uint64  { return f.a.ProgramStats()["tx_fwd"] }
func (f *xdpTX) close() error       { return f.a.Close() }

type medialb struct {
	holder  tables.Holder
	dp      *afxdp.Dataplane
	fast    bool // the fast path is on
	workers []*pipeline.Worker
	napi    []int
	wtids   []int
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	mu      sync.Mutex
	errs    []error
}

// harmonicTraffic returns the L4 service of the lab: the VIP's ports over TCP and UDP,
// source-IP persistence as in the example configuration, both real servers.
func harmonicTraffic(t *topo) tables.Spec {
	svc := tables.ServiceSpec{
		Name: "Harmonic_Traffic", VIP: vipAddr, TCP: true, UDP: true, Layer: 4,
		PersistTimeout: 300 * time.Second,
	}
	for _, p := range vipPorts {
		svc.Ports = append(svc.Ports, tables.PortRange{Lo: p.Lo, Hi: p.Hi})
	}
	for i, n := range t.rs {
		s := tables.ServerSpec{Name: fmt.Sprintf("HT%d", i+1), Addr: rsAddrs[i], Weight: 100, HasMAC: true}
		copy(s.MAC[:], n.mac)
		svc.Servers = append(svc.Servers, s)
	}
	return tables.Spec{HashSeed: 1, Services: []tables.ServiceSpec{svc}}
}

func startMedialb(t *topo, cpus []int, o dpOptions, fast bool, batch int, log zerolog.Logger) (f *medialb, err error) {
	return startMedialbSpec(t, harmonicTraffic(t), 0, cpus, o, fast, batch, log)
}

// startMedialbSpec is startMedialb with the tables spec and the fast-path map's size
// (0: the default) given.
func startMedialbSpec(t *topo, spec tables.Spec, fpEntries int, cpus []int, o dpOptions, fast bool, batch int, log zerolog.Logger) (f *medialb, err error) {
	snap, err := tables.Build(spec, nil)
	if err != nil {
		return nil, fmt.Errorf("build tables: %w", err)
	}
	f = &medialb{fast: fast}
	f.holder.Store(snap)
	err = inNS(t.lb.ns, func() (err error) {
		f.dp, err = afxdp.Open(afxdp.Config{Interface: t.lb.link, XDPMode: afxdp.ModeNative, BusyPoll: o.BusyPoll,
			TXBudget: o.TXBudget, FastPathEntries: fpEntries, Logger: log})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("open medialb dataplane: %w", err)
	}
	defer func() {
		if err != nil {
			f.close()
		}
	}()
	v := vips()
	if fast {
		v = fastVIPs()
	}
	if err := f.dp.SetVIPs(v); err != nil {
		return nil, fmt.Errorf("set VIPs: %w", err)
	}
	if f.napi, err = threadNAPI(t.lb.ns, t.lb.link, cpus); err != nil {
		return nil, err
	}
	var mac [6]byte
	copy(mac[:], t.lb.mac)
	ctx, cancel := context.WithCancel(context.Background())
	f.cancel = cancel
	tids := make(chan int)
	for i, s := range f.dp.Sockets() {
		opts := pipeline.WorkerOptions{BatchSize: batch}
		if fast {
			opts.FastPath = f.dp.FastPath()
		}
		w := pipeline.NewWorker(s, &f.holder, mac, opts)
		f.workers = append(f.workers, w)
		cpu := cpus[i%len(cpus)]
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			// Run locks its goroutine to its thread again (nesting): it keeps this one,
			// which is pinned.
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			tid := syscall.Gettid()
			if err := pinThread(tid, cpu); err != nil {
				f.addErr(err)
			}
			tids <- tid
			if err := w.Run(ctx); err != nil {
				f.addErr(err)
			}
		}()
		f.wtids = append(f.wtids, <-tids)
	}
	if err := f.err(); err != nil {
		return nil, err
	}
	return f, nil
}

func (f *medialb) addErr(err error) {
	f.mu.Lock()
	f.errs = append(f.errs, err)
	f.mu.Unlock()
}

func (f *medialb) err() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return errors.Join(f.errs...)
}

func (f *medialb) napiThreads() []int { return f.napi }
func (f *medialb) threads() []int     { return append(append([]int(nil), f.napi...), f.wtids...) }
func (f *medialb) forwarded() uint64 {
	return pipeline.Sum(f.workers...).Forwarded() + f.fastForwarded()
}

// fastForwarded returns the frames the steering program's fast path sent with XDP_TX.
func (f *medialb) fastForwarded() uint64 {
	if !f.fast {
		return 0
	}
	return f.dp.ProgramStats()["fastpath_tx"]
}

// counters returns the workers' summed counters.
func (f *medialb) counters() pipeline.Counters { return pipeline.Sum(f.workers...) }

func (f *medialb) close() error {
	if f.cancel != nil {
		f.cancel()
	}
	f.wg.Wait()
	var err error
	if f.dp != nil {
		err = f.dp.Close()
	}
	return errors.Join(f.err(), err)
}
