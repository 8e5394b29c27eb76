package daemon

import (
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/medialb/medialb/api"
	"github.com/medialb/medialb/config"
	"github.com/medialb/medialb/control"
	"github.com/medialb/medialb/netif"
	"github.com/medialb/medialb/pipeline"
	"github.com/medialb/medialb/status"
	"github.com/medialb/medialb/tables"
)

// This file is the daemon's side of the REST API and the WebUI: api.Source.

// reloads counts reloads for the metrics, whichever way they came (SIGHUP or the API).
type reloads struct {
	mu          sync.Mutex
	ok, failed  uint64
	lastFailed  bool
	lastSuccess time.Time
}

func (r *reloads) record(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		r.failed++
		r.lastFailed = true
		return
	}
	r.ok++
	r.lastFailed = false
	r.lastSuccess = time.Now()
}

// source adapts a Daemon to api.Source.
type source struct{ d *Daemon }

var _ api.Source = source{}

// Overview builds the System Overview (status.Overview) from the snapshot in force,
// the control plane's states, the health monitor, the proxy's connection counts and
// the persistence tables.
func (s source) Overview() api.Overview {
	d := s.d
	ctrl := d.controller()
	cfg := ctrl.Config()
	admin, hl := ctrl.States()
	return status.Overview(status.Inputs{
		Node: cfg.Node.Name, Time: time.Now().UTC(), HA: d.haOverview(), BGP: d.bgpOverview(),
		Config: cfg, Snapshot: d.holder.Load(), Now: tables.Now(),
		Admin: admin, Health: hl, Checks: d.mon.Statuses(), L7: d.proxy.Stats(),
		L4Count:  func(slot uint32) (uint64, uint64) { c := d.ServerCount(slot); return c.Packets, c.Bytes },
		Panic:    d.panics(cfg),
		Feedback: ctrl.FeedbackStates(), Problems: d.problems(),
	})
}

// panics returns the panic state of every service of cfg.
func (d *Daemon) panics(cfg *config.Config) map[string]control.PanicStatus {
	out := make(map[string]control.PanicStatus, len(cfg.Services))
	for _, s := range cfg.Services {
		out[s.Name] = d.controller().Panic(s.Name)
	}
	return out
}

// SetState applies an operator's drain, halt or online.
func (s source) SetState(service, server, state string) error {
	st, ok := control.ParseAdminState(state)
	if !ok {
		return fmt.Errorf("state %q: want online, drain or halt", state)
	}
	if err := s.d.controller().SetAdmin(service, server, st); err != nil {
		return err
	}
	if s.d.ha != nil {
		s.d.ha.AdminChanged()
	}
	return nil
}

// Reload re-reads the configuration file.
func (s source) Reload() ([]string, error) { return s.d.ReloadReport() }

// RunningConfig returns the text of the configuration in force (api.RunningConfig).
func (s source) RunningConfig() []byte { return s.d.web.running.get() }

// Metrics returns the dataplane and reload counters.
func (s source) Metrics() api.Metrics {
	c := s.d.Counters()
	m := api.Metrics{Forwarded: c.Forwarded(), Drops: dropsByReason(c), L7Refused: map[string]map[string]uint64{},
		ICMPRouted: map[string]uint64{}}
	if s.d.mon != nil {
		m.HealthLocalErrors = s.d.mon.LocalErrors()
	}
	if s.d.proxy != nil {
		for _, st := range s.d.proxy.Stats() {
			m.L7Refused[st.Name] = map[string]uint64{"max_connections": st.Rejected, "max_connections_per_source": st.RejectedSource,
				"out_of_resources": st.Exhausted}
		}
	}
	for k, n := range c.ICMPRouted {
		if n > 0 {
			m.ICMPRouted[pipeline.ICMPKind(k).String()] = n
		}
	}
	if s.d.dp != nil {
		ps := s.d.dp.ProgramStats()
		m.FastPathTX = ps["fastpath_tx"]
		// A VIP's frame of several buffers, dropped by the XDP program
		// (afxdp/bpf/multibuf.h); a series from the start like every reason.
		m.Drops["multi_buffer"] = ps["drop_multibuf"]
		tx := s.d.dp.TXStats()
		m.TXCompleted, m.TXInvalid, m.IfTXDropped = tx.Completed, tx.Invalid, tx.IfDropped
		if fp := s.d.dp.FastPath(); fp != nil {
			m.FastPathDecisions = fastPathDecisions(fp.Stats())
		}
	}
	m.Tunnel = tunnelMetrics(c, s.d.tunnels)
	s.d.reloads.mu.Lock()
	m.Reloads, m.ReloadFailures = s.d.reloads.ok+s.d.reloads.failed, s.d.reloads.failed
	m.LastReloadFailed, m.LastReloadSuccess = s.d.reloads.lastFailed, s.d.reloads.lastSuccess
	s.d.reloads.mu.Unlock()
	return m
}

// startAPI starts the REST API and WebUI when the configuration has an api section.
func (d *Daemon) startAPI(cfg *config.Config) error {
	if cfg.API.Listen == "" {
		return nil
	}
	ac, err := apiConfig(cfg)
	if err != nil {
		return err
	}
	ac.Peer = d.haConfigHandler(cfg)
	ac.ConfigFile, ac.Logs = d.path, d.web.logs
	srv, err := api.New(ac, source{d}, d.log)
	if err != nil {
		return err
	}
	if err := srv.Start(); err != nil {
		return err
	}
	d.api = srv
	d.log.Info().Str("listen", srv.Addr().String()).Msg("WebUI and REST API: https://" + srv.Addr().String() + "/")
	return nil
}

// apiListen is api.listen with an empty host replaced by the node's own
// address on node.interface (of ha.peer's family with HA): never a VIP.
func apiListen(cfg *config.Config) (string, error) {
	host, port, err := net.SplitHostPort(cfg.API.Listen)
	if err != nil || host != "" {
		return cfg.API.Listen, nil
	}
	var like netip.Addr
	if cfg.HA != nil {
		like = cfg.HA.Peer
	}
	own, err := netif.OwnAddr(cfg.Node.Interface, like, vipAddrs(cfg))
	if err != nil {
		return "", fmt.Errorf("start API on the default api.listen: %w", err)
	}
	return net.JoinHostPort(own.String(), port), nil
}

// Version is the build's version, set with -ldflags "-X github.com/medialb/medialb/daemon.Version=...".
var Version = "dev"

// RestartL7 closes and reopens the layer-7 listeners (api.Maintainer).
func (s source) RestartL7() (string, error) {
	n, err := s.d.proxy.RestartListeners()
	return fmt.Sprintf("%d layer-7 listeners open again; established connections kept", n), err
}

// RestartKeepalived restarts the HA pair's keepalived (api.Maintainer).
func (s source) RestartKeepalived() (string, error) {
	if s.d.ha == nil {
		return "", fmt.Errorf("restart keepalived: this node has no ha section, so it runs no keepalived: %w", api.ErrNotRunHere)
	}
	pid, err := s.d.ha.RestartKeepalived()
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("keepalived (pid %d) stopped; the supervisor starts it again", pid), nil
}
