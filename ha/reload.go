package ha

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"syscall"

	"github.com/medialb/medialb/config"
	"github.com/medialb/medialb/internal/atomicfile"
)

// Reload is a reload of the ha section prepared by PrepareReload: keepalived's new
// configuration passed its --config-test, and a sync listener on a new
// ha.sync_port is bound. Nothing is in force until Commit; Abort leaves the node
// as it was. Exactly one of them must be called.
type Reload struct {
	n        *Node
	ha       config.HA
	settings KeepalivedSettings
	conf     string  // the new keepalived.conf; "" when unchanged
	sync     *syncer // bound on a new sync port; nil when the port stays
	resync   bool    // ha.secret, ha.peer or ha.sync_port changed
}

// PrepareReload checks a new ha section, node name and VIP list against the ones
// in force. On error nothing changed: the previous keepalived file and settings
// stay (so the same reload tried again is checked again, not skipped).
func (n *Node) PrepareReload(node string, h config.HA, vips []netip.Addr) (*Reload, error) {
	n.mu.Lock()
	old, cur := n.settings, n.cur
	n.mu.Unlock()
	s := old
	s.Node, s.Peer, s.Priority, s.RouterID, s.Advert, s.Preempt, s.VIPs = node, h.Peer, h.Priority, h.RouterID, h.AdvertInterval, h.Preempt, vips
	r := &Reload{n: n, ha: h, settings: s}
	if text := RenderKeepalived(s); text != RenderKeepalived(old) {
		cand := n.sup.conf + ".new"
		if err := atomicfile.Write(cand, []byte(text), 0o600); err != nil {
			return nil, fmt.Errorf("write keepalived configuration: %w", err)
		}
		err := n.sup.checkFile(cand)
		os.Remove(cand)
		if err != nil {
			return nil, err
		}
		r.conf = text
	}
	r.resync = h.Secret != cur.Secret || h.Peer != cur.Peer || h.SyncPort != cur.SyncPort
	if r.resync && h.SyncPort != cur.SyncPort && n.syncer() != nil {
		sy, err := newSyncer(n, h)
		if err != nil {
			return nil, err
		}
		r.sync = sy
	}
	return r, nil
}

// Abort drops a prepared reload.
func (r *Reload) Abort() {
	if r != nil && r.sync != nil {
		r.sync.ln.Close()
	}
}

// Commit puts the prepared reload in force: keepalived's configuration is
// replaced and keepalived reloads it (SIGHUP; the role stays), and the sync
// channel restarts with the new secret, peer and port.
func (r *Reload) Commit() error {
	n := r.n
	var errs []error
	if r.conf != "" {
		if err := n.sup.writeConfig(r.conf); err != nil {
			errs = append(errs, err)
		} else {
			n.sup.signal(syscall.SIGHUP)
			n.log.Info().Msg("HA: keepalived configuration rewritten and reloaded")
		}
	}
	n.mu.Lock()
	n.settings, n.cur, n.st.Peer = r.settings, r.ha, r.ha.Peer
	old := n.sync
	n.mu.Unlock()
	if !r.resync || old == nil {
		return errors.Join(errs...)
	}
	old.close()
	old.loops.Wait()
	sy := r.sync
	if sy == nil {
		var err error
		if sy, err = newSyncer(n, r.ha); err != nil {
			return errors.Join(append(errs, err)...)
		}
	}
	n.mu.Lock()
	n.sync = sy
	n.mu.Unlock()
	sy.start(n.ctx, &n.wg)
	n.log.Info().Str("peer", netip.AddrPortFrom(r.ha.Peer, r.ha.SyncPort).String()).Msg("HA: sync channel restarted with the new ha settings")
	return errors.Join(errs...)
}
