package daemon

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"

	"github.com/vishvananda/netlink"

	"github.com/medialb/medialb/api"
	"github.com/medialb/medialb/config"
	"github.com/medialb/medialb/ha"
	"github.com/medialb/medialb/internal/atomicfile"
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
		Clock:     tables.Now,
		Admin:     d.controller(),
		Log:       d.log,
	})
	if err != nil {
		return err
	}
	d.ha = n
	d.startConfigSync(cfg)
	d.hs.ready.Store(true)
	return nil
}

// haHealth is what keepalived's priority follows: with layer-4 services, the
// dataplane attached, its XDP program still on the interface (an operator or
// another tool may detach it: the node would then hold the VIPs and forward
// nothing) and every worker running.
func (d *Daemon) haHealth() (bool, string) {
	if d.dp == nil {
		if hasLayer(d.controller().Config(), config.Layer4) {
			return false, "layer-4 dataplane not attached"
		}
		return true, ""
	}
	ifname := d.dp.Interface()
	l, err := netlink.LinkByName(ifname)
	if err != nil {
		return false, fmt.Sprintf("read interface %s: %v", ifname, err)
	}
	if x := l.Attrs().Xdp; x == nil || !x.Attached {
		return false, fmt.Sprintf("no XDP program on %s any more (detached from outside?); restart medialb", ifname)
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
		SyncImported: st.Imported, SyncExported: st.Exported, SyncRefused: st.Refused}
	if !st.LastFailover.IsZero() {
		t := st.LastFailover.UTC()
		h.LastFailover = &t
	}
	if p := d.hs.pusher.Load(); p != nil {
		h.ConfigSync = p.Status()
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

// haSync is the daemon's side of the pair's configuration sync (see
// ha.ConfigHandler and ha.Pusher).
type haSync struct {
	mu     sync.Mutex                // one pushed configuration applied at a time
	pusher atomic.Pointer[ha.Pusher] // nil without HA or without an API
	ready  atomic.Bool               // startHA done: pushes may be applied
	url    string                    // the peer's API the pusher pushes to (under Daemon.reloadMu)
}

// restartConfigSync moves the pusher to the peer API of cfg when a reload changed
// ha.peer or the API's port.
func (d *Daemon) restartConfigSync(cfg *config.Config) {
	url, err := ha.PeerURL(cfg)
	if err != nil || url == d.hs.url {
		return
	}
	if p := d.hs.pusher.Swap(nil); p != nil {
		p.Close()
	}
	d.startConfigSync(cfg)
}

// kick makes the pusher compare the pair's services now (after a reload).
func (h *haSync) kick() {
	if p := h.pusher.Load(); p != nil {
		p.Kick()
	}
}

// startConfigSync pushes this node's virtual_services to the peer's API
// (https://ha.peer at this node's api.listen port) while it is the primary.
func (d *Daemon) startConfigSync(cfg *config.Config) {
	url, err := ha.PeerURL(cfg)
	if err != nil {
		d.log.Warn().Err(err).Msg("HA: virtual_services are not synced between the pair")
		return
	}
	d.hs.url = url
	d.hs.pusher.Store(ha.StartPusher(d.ctx, url, func() *config.Config {
		if c := d.controller(); c != nil {
			return c.Config()
		}
		return nil
	}, d.log))
}

// haConfigHandler is what the API serves at ha.PathPrefix: nil without HA.
func (d *Daemon) haConfigHandler(cfg *config.Config) http.Handler {
	if cfg.HA == nil {
		return nil
	}
	return ha.ConfigHandler(haTarget{d}, filepath.Join(cfg.Node.StateDir, "ha", "config-sync-time"), d.log)
}

// haTarget applies the virtual_services the primary pushes.
type haTarget struct{ d *Daemon }

// Config returns the running configuration.
func (t haTarget) Config() *config.Config { return t.d.controller().Config() }

// ApplyServices validates doc with this node's own file, keeps it in
// node.state_dir and reloads; on any failure the previous pushed file (or
// none) is put back and the running configuration stays.
func (t haTarget) ApplyServices(doc []byte) error {
	d := t.d
	if !d.hs.ready.Load() {
		return fmt.Errorf("apply pushed virtual_services: %w", ha.ErrStarting)
	}
	d.hs.mu.Lock()
	defer d.hs.mu.Unlock()
	cfg := d.controller().Config()
	ov := filepath.Join(cfg.Node.StateDir, config.OverlayFile)
	data, err := os.ReadFile(d.path)
	if err != nil {
		return fmt.Errorf("read %s: %w", d.path, err)
	}
	if _, err := config.ParseWithServices(d.path, data, ov, doc); err != nil {
		return err
	}
	old, oldErr := os.ReadFile(ov)
	if err := atomicfile.Write(ov, doc, 0o640); err != nil {
		return err
	}
	if err := d.Reload(); err != nil {
		if oldErr == nil {
			err = errors.Join(err, atomicfile.Write(ov, old, 0o640))
		} else {
			os.Remove(ov)
		}
		return err
	}
	return nil
}
