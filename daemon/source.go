package daemon

import (
	"fmt"
	"sync"
	"time"

	"github.com/medialb/medialb/api"
	"github.com/medialb/medialb/config"
	"github.com/medialb/medialb/control"
	"github.com/medialb/medialb/l7"
	"github.com/medialb/medialb/pipeline"
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

// Overview builds the System Overview from the snapshot in force, the control plane's
// states, the health monitor, the proxy's connection counts and the persistence tables.
func (s source) Overview() api.Overview {
	d := s.d
	ctrl := d.controller()
	cfg := ctrl.Config()
	snap := d.holder.Load()
	now := d.now()
	// Layer-7 connection and byte counts, by service and by service/server.
	l7svc := map[string]l7.ServiceStats{}
	l7srv := map[string]l7.ServerStats{}
	for _, st := range d.proxy.Stats() {
		l7svc[st.Name] = st
		for _, ss := range st.Servers {
			l7srv[st.Name+"/"+ss.Name] = ss
		}
	}
	ov := api.Overview{Node: cfg.Node.Name, Time: time.Now().UTC(), HA: d.haOverview()}
	for i := range cfg.Services {
		cs := &cfg.Services[i]
		ts := snap.Service(cs.Name)
		if ts == nil {
			continue
		}
		as := api.Service{
			Name: cs.Name, Address: cs.Address.String(), Ports: cs.Ports.String(), Layer: int(cs.Layer),
			Protocol: cs.Protocol.String(), Forwarding: string(cs.Forwarding), Persistence: string(cs.Persistence.Mode),
			Connections: l7svc[cs.Name].Active,
			Bytes:       l7svc[cs.Name].BytesIn + l7svc[cs.Name].BytesOut,
		}
		if cs.Layer == config.Layer7 {
			as.Forwarding = "proxy"
		}
		aff := ts.AffinityStats()
		as.PersistEvictions, as.PersistRefused = aff.Evictions, aff.Refused
		if ps := ctrl.Panic(cs.Name); ps.Count > 0 {
			as.Panic, as.Panics = ps.Active, ps.Count
			since := ps.Since.UTC()
			as.PanicSince = &since
		}
		if cs.Persistence.Mode == config.PersistSourceIP {
			as.Persistence += " " + cs.Persistence.Timeout.String()
		}
		for _, srv := range ts.Servers {
			h := ctrl.HealthOf(cs.Name, srv.Name)
			rs := api.RealServer{
				Name: srv.Name, Address: srv.Addr.String(), Port: srv.Port, Weight: int(srv.Weight),
				State: srv.State.String(), Admin: ctrl.Admin(cs.Name, srv.Name).String(),
				Health: "unknown", HealthReason: h.Reason,
				Connections: l7srv[cs.Name+"/"+srv.Name].Active,
				Bytes:       l7srv[cs.Name+"/"+srv.Name].BytesIn + l7srv[cs.Name+"/"+srv.Name].BytesOut,
			}
			if h.Checked {
				rs.Health = map[bool]string{true: "up", false: "down"}[h.Up]
			}
			if st, ok := d.mon.Status(cs.Name + "/" + srv.Name); ok {
				rs.HealthCheckSeconds = st.LastResult.Duration.Seconds()
			}
			if cs.Persistence.Mode == config.PersistSourceIP {
				rs.ActiveClients = int64(ts.ActiveClients(srv, now))
				as.ActiveClients += rs.ActiveClients
			}
			if cs.Layer == config.Layer4 {
				// Direct routing never sees the replies, so connections are not
				// tracked: the persistence entries stand for them, as for the service.
				rs.Connections = rs.ActiveClients
				// Frames and bytes sent to the server (client to server only: the
				// replies bypass us), the pipeline's and the XDP fast path's.
				sc := d.ServerCount(srv.Slot)
				rs.Packets, rs.Bytes = sc.Packets, sc.Bytes
				as.Packets += sc.Packets
				as.Bytes += sc.Bytes
			}
			as.RealServers = append(as.RealServers, rs)
		}
		if cs.Layer == config.Layer4 {
			as.Connections = as.ActiveClients
		}
		as.State = api.ServiceState(as.RealServers)
		if as.State == api.ServiceDown && ts.Fallback != nil {
			as.State = "fallback"
		}
		ov.Services = append(ov.Services, as)
	}
	return ov
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
func (s source) Reload() error { return s.d.Reload() }

// Metrics returns the dataplane and reload counters.
func (s source) Metrics() api.Metrics {
	c := s.d.Counters()
	m := api.Metrics{Forwarded: c.Forwarded(), Drops: map[string]uint64{}, ICMPRouted: map[string]uint64{}}
	for k, n := range c.ICMPRouted {
		if n > 0 {
			m.ICMPRouted[pipeline.ICMPKind(k).String()] = n
		}
	}
	if s.d.dp != nil {
		m.FastPathTX = s.d.dp.ProgramStats()["fastpath_tx"]
		tx := s.d.dp.TXStats()
		m.TXCompleted, m.TXInvalid, m.IfTXDropped = tx.Completed, tx.Invalid, tx.IfDropped
	}
	for r, n := range c.ByReason {
		if r != 0 && n > 0 {
			m.Drops[pipeline.Reason(r).String()] = n
		}
	}
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
	var users []api.User
	for _, u := range cfg.API.Users {
		users = append(users, api.User{Name: u.Name, PasswordHash: u.PasswordHash})
	}
	srv, err := api.New(api.Config{
		Listen: cfg.API.Listen, TLSCert: cfg.API.TLSCert, TLSKey: cfg.API.TLSKey,
		StateDir: cfg.Node.StateDir, Users: users, Version: Version,
		Peer: d.haConfigHandler(cfg),
	}, source{d}, d.log)
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

// Version is the build's version, set with -ldflags "-X github.com/medialb/medialb/daemon.Version=...".
var Version = "dev"
