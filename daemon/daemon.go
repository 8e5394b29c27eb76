// Package daemon assembles a running medialb node from its parts: it brings the VIPs up
// on node.interface, keeps real-server MACs current, compiles snapshots (control),
// attaches the AF_XDP dataplane and runs one poll-mode worker per socket for the
// layer-4 services, runs the health checks, and serves the layer-7 services with the
// SNAT proxy. Reload swaps a new configuration in without dropping flows; Close takes
// everything down and leaves the interface as it was.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/medialb/medialb/afxdp"
	"github.com/medialb/medialb/api"
	"github.com/medialb/medialb/config"
	"github.com/medialb/medialb/control"
	"github.com/medialb/medialb/feedback"
	"github.com/medialb/medialb/ha"
	"github.com/medialb/medialb/health"
	"github.com/medialb/medialb/l7"
	"github.com/medialb/medialb/netif"
	"github.com/medialb/medialb/pipeline"
	"github.com/medialb/medialb/realserver"
	"github.com/medialb/medialb/tables"
)

// Daemon is a running node. Its methods are safe for concurrent use.
type Daemon struct {
	log    zerolog.Logger
	path   string
	holder tables.Holder

	ctx    context.Context
	cancel context.CancelFunc

	started  atomic.Bool // Start finished: reloads may run
	reloadMu sync.Mutex  // serialises Reload and Close
	ctrl     atomic.Pointer[control.Controller]
	vips     *netif.VIPs
	neigh    *netif.Neighbors
	dp       *afxdp.Dataplane
	rxUndo   func() error   // puts the interface's NAPI mode back (node.rx_priority)
	canTX    bool           // the dataplane's interface sends XDP_TX frames unaided
	tunnels  *afxdp.Tunnels // the fast path's tunnel map (tunnel.go)
	workers  []*pipeline.Worker
	wg       sync.WaitGroup
	mon      *health.Monitor
	fbp      *feedback.Poller    // load-feedback agents (feedback.go)
	rsw      *realserver.Watcher // real-server ARP/ND and path checks, nil without layer 4
	proxy    *l7.Proxy
	api      *api.Server
	reloads  reloads
	ha       *ha.Node     // nil without an ha section
	bgp      *bgpNode     // nil without a bgp section (bgp.go)
	hs       haSync       // the pair's configuration sync (ha.go)
	alive    atomic.Int32 // dataplane workers running
	lock     *os.File     // holds node.state_dir (lock.go); nil without one
	web      webParts     // the WebUI's text in force, logs and alerts (webui.go)
}

// Start loads the configuration at path and brings the node up. On error, whatever
// was brought up is taken down again.
func Start(path string, log zerolog.Logger, opts ...Option) (d *Daemon, err error) {
	text := readText(path)
	cfg, err := loadConfig(path)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	d = &Daemon{log: log, path: path, ctx: ctx, cancel: cancel}
	for _, o := range opts {
		o(d)
	}
	d.startAlerts(cfg)
	defer func() {
		if err != nil {
			d.Close()
			d = nil
		}
	}()

	if cfg.Node.StateDir != "" {
		// First of all: a second medialb on this directory must not touch anything.
		if d.lock, err = lockStateDir(cfg.Node.StateDir, cfg.Node.Name); err != nil {
			return d, err
		}
	}
	if d.vips, err = netif.OpenVIPs(cfg.Node.Interface, cfg.Node.StateDir); err != nil {
		return d, err
	}
	if cfg.HA == nil { // with HA, keepalived brings the VIPs up on the master
		if _, err = d.vips.Set(localVIPs(cfg)); err != nil {
			return d, err
		}
	}
	if wantsDataplane(cfg) {
		d.neigh, err = netif.WatchNeighbors(ctx, cfg.Node.Interface, log, func() {
			if c := d.controller(); c != nil {
				c.Refresh("real server MAC changed")
			}
		})
		if err != nil {
			return d, err
		}
		d.neigh.Want(l4Addrs(cfg))
		d.wantTunnels(cfg)
		// Give the kernel a moment to resolve the real servers, so the first snapshot
		// has them; the ones still missing join as soon as they answer.
		d.neigh.WaitResolved(ctx, 2*time.Second)
	}
	var macs control.MACSource
	if d.neigh != nil {
		macs = d.neigh
	}
	ctrl, err := control.New(cfg, &d.holder, macs, log)
	if err != nil {
		return d, err
	}
	d.ctrl.Store(ctrl)
	d.proxy = l7.New(&d.holder, log)
	ctrl.OnSnapshot(d.proxy.OnSnapshot)

	if wantsDataplane(cfg) {
		if err = d.startDataplane(cfg); err != nil {
			return d, err
		}
		d.startRealServerWatch(cfg)
	}
	if err = d.proxy.Apply(d.holder.Load(), l7Options(cfg, l7.NoFile())); err != nil {
		return d, err
	}
	d.mon = health.NewMonitor(log, d.onHealth)
	d.mon.Set(healthTargets(cfg))
	d.startFeedback(cfg)
	if err = d.startAPI(cfg); err != nil {
		return d, err
	}
	if cfg.HA == nil && cfg.BGP == nil { // with BGP the routers learn the VIPs by route, not ARP
		d.announce(vipAddrs(cfg))
	} else if cfg.HA != nil {
		if err = d.startHA(cfg); err != nil {
			return d, err
		}
	}
	if err = d.startBGP(cfg); err != nil {
		return d, err
	}
	d.inForce(cfg, text)
	d.started.Store(true)
	log.Info().Str("config", path).Str("summary", cfg.Summary()).Msg("medialb running")
	return d, nil
}

// controller returns the control plane, nil while Start has not created it. It is an
// atomic pointer so that callbacks (health, neighbours) never wait for a reload.
func (d *Daemon) controller() *control.Controller { return d.ctrl.Load() }

func (d *Daemon) startDataplane(cfg *config.Config) error {
	dp, err := afxdp.Open(afxdp.Config{
		Interface: cfg.Node.Interface,
		Queues:    cfg.Node.Queues,
		XDPMode:   string(cfg.Node.XDPMode),
		ZeroCopy:  string(cfg.Node.ZeroCopy),
		BusyPoll:  cfg.Node.BusyPoll,
		Logger:    d.log,
		// The fast-path map mirrors the persistence tables: one size.
		FastPathEntries: fastPathEntries(cfg),
	})
	if err != nil {
		return err
	}
	d.dp = dp
	canTX, why := dp.CanXDPTX()
	d.canTX = canTX
	if !canTX && cfg.Node.XDPFastPath == config.FastPathAuto {
		d.log.Info().Str("interface", cfg.Node.Interface).Str("reason", why).
			Msg("XDP fast path off (node.xdp_fastpath: auto); set it to on if the peer has an XDP program")
	} else if !canTX && cfg.Node.XDPFastPath == config.FastPathOn {
		d.log.Warn().Str("interface", cfg.Node.Interface).Str("reason", why).
			Msg("XDP fast path on (node.xdp_fastpath: on) where its frames may not leave; auto would turn it off")
	}
	if err := dp.SetVIPs(steerVIPs(cfg, canTX)); err != nil {
		return err
	}
	// The fast-path map follows the snapshots: a new generation on every swap,
	// ageing and persistence refresh in the background.
	ager := pipeline.NewFastPathAger(dp.FastPath(), &d.holder, nil, d.log)
	d.controller().OnSnapshot(ager.OnSnapshot)
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		ager.Run(d.ctx)
	}()
	ifi, err := net.InterfaceByName(cfg.Node.Interface)
	if err != nil {
		return fmt.Errorf("read MAC of %s: %w", cfg.Node.Interface, err)
	}
	d.startTunnels(ifi.MTU)
	var mac [6]byte
	copy(mac[:], ifi.HardwareAddr)
	for _, s := range dp.Sockets() {
		w := pipeline.NewWorker(s, &d.holder, mac, pipeline.WorkerOptions{FastPath: dp.FastPath(), MTU: ifi.MTU})
		d.workers = append(d.workers, w)
		d.wg.Add(1)
		d.alive.Add(1)
		go func() {
			defer d.wg.Done()
			defer d.alive.Add(-1)
			if err := w.Run(d.ctx); err != nil && !errors.Is(err, context.Canceled) {
				d.log.Error().Err(err).Int("queue", s.QueueID()).Msg("dataplane worker stopped")
			}
		}()
	}
	mode, zc := dp.Mode()
	d.log.Info().Str("interface", cfg.Node.Interface).Str("xdp_mode", mode).Bool("zero_copy", zc).
		Int("workers", len(d.workers)).Msg("layer-4 dataplane attached")
	d.adviseRXRing(cfg.Node.Interface)
	return d.prioritizeRX(cfg, mode)
}

// prioritizeRX applies node.rx_priority: the interface's receive path (threaded NAPI
// at real-time priority) runs before the pipeline's workers, so that a saturated core
// drops new flows at the AF_XDP rings rather than established clients and the node's
// own traffic before XDP (BENCHMARKS.md, the flood section). "auto" does it when the
// program is attached natively (threaded NAPI needs that) and only warns when it
// cannot; "on" fails the start.
func (d *Daemon) prioritizeRX(cfg *config.Config, xdpMode string) error {
	want := cfg.Node.RXPriority
	if want == "off" || (want != "on" && xdpMode != afxdp.ModeNative) {
		return nil
	}
	n, undo, err := afxdp.PrioritizeNAPI(cfg.Node.Interface)
	if err != nil {
		if want == "on" {
			return fmt.Errorf("node.rx_priority: %w", err)
		}
		ev := d.log.Warn()
		if errors.Is(err, fs.ErrPermission) {
			// auto does what the privileges allow: without root the operator sets
			// /sys/class/net/IF/threaded and grants CAP_SYS_NICE.
			ev = d.log.Info()
		}
		ev.Err(err).Str("interface", cfg.Node.Interface).
			Msg("receive path not prioritized (node.rx_priority: auto): a saturated core may drop health-check replies before XDP; " +
				"as root it is done, otherwise write 1 to /sys/class/net/IF/threaded and grant CAP_SYS_NICE")
		return nil
	}
	d.rxUndo = undo
	d.log.Info().Str("interface", cfg.Node.Interface).Int("napi_threads", n).Int("priority", afxdp.NAPIPriority).
		Msg("receive path prioritized: threaded NAPI at real-time priority, before the pipeline's workers")
	return nil
}

// onHealth feeds a health transition into the control plane.
func (d *Daemon) onHealth(t health.Transition) {
	if c := d.controller(); c != nil {
		c.SetHealthResult(t.Key.Service, t.Key.Server, t.Up, t.Result.Reason, t.Result.NoAnswer)
	}
}

func (d *Daemon) announce(addrs []netip.Addr) {
	cfg := d.controller().Config()
	for _, a := range addrs {
		if err := netif.Announce(cfg.Node.Interface, a); err != nil {
			d.log.Warn().Err(err).Str("vip", a.String()).Msg("VIP not announced; neighbours learn it on their next ARP/ND")
		}
	}
}

// Holder returns the snapshot holder (for the API and tests).
func (d *Daemon) Holder() *tables.Holder { return &d.holder }

// Controller returns the control plane.
func (d *Daemon) Controller() *control.Controller { return d.controller() }

// Proxy returns the layer-7 proxy.
func (d *Daemon) Proxy() *l7.Proxy { return d.proxy }

// Counters sums the layer-4 dataplane counters of all workers.
func (d *Daemon) Counters() pipeline.Counters { return pipeline.Sum(d.workers...) }

// ServerCount returns what the layer-4 dataplane sent to the real server with counter
// slot slot (tables.Server.Slot): the pipeline's frames the TX ring took, plus the
// XDP fast path's frames, in frames and bytes.
func (d *Daemon) ServerCount(slot uint32) pipeline.ServerCount {
	var c pipeline.ServerCount
	for _, w := range d.workers {
		wc := w.ServerCount(slot)
		c.Packets += wc.Packets
		c.Bytes += wc.Bytes
	}
	if d.dp != nil {
		p, b := d.dp.ServerCount(slot)
		c.Packets += p
		c.Bytes += b
	}
	return c
}

// Dataplane returns the AF_XDP dataplane, or nil without layer-4 services.
func (d *Daemon) Dataplane() *afxdp.Dataplane { return d.dp }

// Now returns the coarse clock used with the persistence tables (tables.Now).
func (d *Daemon) Now() uint32 { return tables.Now() }

// Close stops everything in the reverse order of Start and takes the VIPs down.
func (d *Daemon) Close() error {
	d.reloadMu.Lock()
	defer d.reloadMu.Unlock()
	var errs []error
	// First: the routers (BGP) or the peer (HA) take the VIPs elsewhere at once.
	errs = append(errs, d.stopBGP())
	if d.ha != nil {
		errs = append(errs, d.ha.Close())
	}
	if d.api != nil {
		errs = append(errs, d.api.Close())
	}
	if d.proxy != nil {
		errs = append(errs, d.proxy.Close())
	}
	if d.mon != nil {
		d.mon.Close()
	}
	if d.fbp != nil {
		d.fbp.Close()
	}
	d.cancel()
	d.wg.Wait()
	if len(d.workers) > 0 {
		c := d.Counters()
		ev := d.log.Info().Uint64("received", c.Received()).Uint64("forwarded", c.Forwarded())
		for r, n := range c.ByReason {
			if r != int(pipeline.Forwarded) && n > 0 {
				ev = ev.Uint64(pipeline.Reason(r).String(), n)
			}
		}
		if d.dp != nil {
			// The steering program's own counters: fastpath_tx (frames it forwarded
			// itself), redirect, pass_* by reason (pass_no_socket: a queue without
			// a socket, e.g. more queues than sockets).
			for k, n := range d.dp.ProgramStats() {
				if n > 0 || k == "fastpath_tx" {
					ev = ev.Uint64("xdp_"+k, n)
				}
			}
		}
		ev.Msg("dataplane counters")
	}
	// NAPI mode first: a veth without its XDP program has no NAPI to switch.
	if d.rxUndo != nil {
		errs = append(errs, d.rxUndo())
	}
	if d.dp != nil {
		errs = append(errs, d.dp.Close())
	}
	if d.vips != nil {
		errs = append(errs, d.vips.Close())
	}
	if d.lock != nil {
		d.lock.Close() // last: the next medialb may take the directory now
	}
	return errors.Join(errs...)
}
