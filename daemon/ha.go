package daemon

import (
	"fmt"

	"github.com/medialb/medialb/api"
	"github.com/medialb/medialb/config"
	"github.com/medialb/medialb/control"
	"github.com/medialb/medialb/ha"
	"github.com/medialb/medialb/tables"
)

// This file is the daemon's side of an HA pair (package ha): used only when the
// configuration has an ha section.

// startHA starts keepalived and the sync channel. Everything else is up by now,
// so the node is ready to serve the moment keepalived makes it master.
func (d *Daemon) startHA(cfg *config.Config) error {
	n, err := ha.Start(ha.Options{
		HA:        *cfg.HA,
		Node:      cfg.Node.Name,
		Interface: cfg.Node.Interface,
		StateDir:  cfg.Node.StateDir,
		VIPs:      vipAddrs(cfg),
		Health:    d.haHealth,
		OnMaster:  func() { d.announce(vipAddrs(d.controller().Config())) },
		Tables:    &d.holder,
		Clock:     d.now,
		Admin:     haAdmin{d},
		Log:       d.log,
	})
	if err != nil {
		return err
	}
	d.ha = n
	return nil
}

// haHealth is what keepalived's priority follows: with layer-4 services, the
// dataplane attached and every worker running.
func (d *Daemon) haHealth() (bool, string) {
	if d.dp == nil {
		if hasLayer(d.controller().Config(), config.Layer4) {
			return false, "layer-4 dataplane not attached"
		}
		return true, ""
	}
	if n, want := int(d.alive.Load()), len(d.workers); n < want {
		return false, fmt.Sprintf("%d of %d dataplane workers stopped", want-n, want)
	}
	return true, ""
}

// haOverview is the overview's ha field, nil without HA.
func (d *Daemon) haOverview() *api.HA {
	if d.ha == nil {
		return nil
	}
	st := d.ha.Status()
	h := &api.HA{Role: st.Role, Peer: st.Peer.String(), PeerState: st.PeerState,
		Priority: st.Priority, Failovers: st.Failovers, LastFailoverCause: st.Cause,
		SyncImported: st.Imported, SyncExported: st.Exported}
	if !st.LastFailover.IsZero() {
		t := st.LastFailover.UTC()
		h.LastFailover = &t
	}
	return h
}

// HARole returns the node's HA role, "" without HA.
func (d *Daemon) HARole() string {
	if d.ha == nil {
		return ""
	}
	return d.ha.Role()
}

// haAdmin carries the operators' states between the pair.
type haAdmin struct{ d *Daemon }

// AdminStates returns the states set here other than online, keyed "service/server".
func (a haAdmin) AdminStates() map[string]string {
	ctrl := a.d.controller()
	cfg := ctrl.Config()
	m := map[string]string{}
	for _, s := range cfg.Services {
		for _, r := range s.RealServers {
			if st := ctrl.Admin(s.Name, r.Name); st != tables.StateOnline {
				m[s.Name+"/"+r.Name] = st.String()
			}
		}
	}
	return m
}

// ApplyAdminStates makes this node's operator states equal to the master's.
func (a haAdmin) ApplyAdminStates(states map[string]string) {
	ctrl := a.d.controller()
	cfg := ctrl.Config()
	for _, s := range cfg.Services {
		for _, r := range s.RealServers {
			want := tables.StateOnline
			if v, ok := states[s.Name+"/"+r.Name]; ok {
				st, ok := control.ParseAdminState(v)
				if !ok {
					continue
				}
				want = st
			}
			if ctrl.Admin(s.Name, r.Name) == want {
				continue
			}
			if err := ctrl.SetAdmin(s.Name, r.Name, want); err != nil {
				a.d.log.Error().Err(err).Msg("HA: the master's administrative state not applied")
				continue
			}
			a.d.log.Info().Str("service", s.Name).Str("server", r.Name).Str("state", want.String()).
				Msg("HA: administrative state taken from the master")
		}
	}
}
