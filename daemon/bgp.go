package daemon

import (
	"errors"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/medialb/medialb/api"
	"github.com/medialb/medialb/bgp"
	"github.com/medialb/medialb/config"
	"github.com/medialb/medialb/tables"
)

// This file is the daemon's side of BGP: which VIPs the node announces, and
// when it withdraws them (a VIP without an eligible real server, an unhealthy
// node, an operator's drain, shutdown).

// bgpRecheck is how often the announced set is recomputed without a new
// snapshot, to notice a dataplane worker that stopped or an XDP program
// detached from outside.
const bgpRecheck = time.Second

// bgpLinger is how long Close keeps forwarding after the routes are withdrawn,
// for the packets the routers had already sent this way.
const bgpLinger = 500 * time.Millisecond

// bgpNode is the node's BGP speaker and its drain state.
type bgpNode struct {
	sp      *bgp.Speaker
	drained atomic.Bool
	kick    chan struct{}
	quit    chan struct{} // closed by stopBGP: the loop ends
	done    chan struct{} // closed when the loop has ended

	syncMu sync.Mutex // one syncBGP at a time: a drain's withdraw is never undone by an older decision

	mu     sync.Mutex
	state  string // "active", "drain", "unhealthy"
	reason string
}

// startBGP starts the speaker of cfg's bgp section and the loop that keeps its
// routes following the snapshots and the node's health.
func (d *Daemon) startBGP(cfg *config.Config) error {
	if cfg.BGP == nil {
		return nil
	}
	sp, err := bgp.Start(cfg.BGP, d.log)
	if err != nil {
		return err
	}
	b := &bgpNode{sp: sp, kick: make(chan struct{}, 1), quit: make(chan struct{}), done: make(chan struct{}), state: "unhealthy"}
	d.bgp = b
	d.controller().OnSnapshot(func(_, _ *tables.Snapshot) { b.poke() })
	go func() {
		defer close(b.done)
		t := time.NewTicker(bgpRecheck)
		defer t.Stop()
		for {
			d.syncBGP()
			select {
			case <-d.ctx.Done():
				return
			case <-b.quit:
				return
			case <-b.kick:
			case <-t.C:
			}
		}
	}()
	return nil
}

func (b *bgpNode) poke() {
	select {
	case b.kick <- struct{}{}:
	default:
	}
}

// syncBGP announces what the node should announce now.
func (d *Daemon) syncBGP() {
	b := d.bgp
	b.syncMu.Lock()
	defer b.syncMu.Unlock()
	select {
	case <-b.quit: // shutting down: stopBGP withdraws everything
		return
	default:
	}
	state, reason := "active", ""
	if ok, why := d.haHealth(); !ok {
		state, reason = "unhealthy", why
	} else if d.mon == nil {
		state, reason = "unhealthy", "health checks not running"
	}
	if b.drained.Load() {
		state = "drain"
	}
	var want []netip.Prefix
	if state == "active" {
		want = bgpPrefixes(d.holder.Load())
	}
	b.mu.Lock()
	if b.state != state {
		ev := d.log.Info()
		if state == "unhealthy" {
			ev = d.log.Warn()
		}
		if reason != "" {
			ev = ev.Str("reason", reason)
		}
		ev.Str("state", state).Str("was", b.state).Msg("BGP node state")
	}
	b.state, b.reason = state, reason
	b.mu.Unlock()
	if err := b.sp.Set(want); err != nil {
		d.log.Warn().Err(err).Msg("BGP routes not all updated; retried within a second")
	}
}

// bgpPrefixes are the host routes of the VIPs that have a service with an
// eligible real server in snap: one that takes new clients, or one draining (it
// still serves its established clients, which a withdraw would send to nodes
// that may not know them).
func bgpPrefixes(snap *tables.Snapshot) []netip.Prefix {
	if snap == nil {
		return nil
	}
	var out []netip.Prefix
	for _, s := range snap.Services() {
		if s.EligibleServers() == 0 && !slices.ContainsFunc(s.Servers, func(srv *tables.Server) bool { return srv.State == tables.StateDrain }) {
			continue
		}
		a := s.VIP.Unmap()
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	slices.SortFunc(out, func(x, y netip.Prefix) int { return x.Addr().Compare(y.Addr()) })
	return slices.Compact(out)
}

// DrainNode withdraws every route (api.NodeDrainer).
func (s source) DrainNode() error {
	b := s.d.bgp
	if b == nil {
		return errors.New("node drain: this node has no bgp section; drain its real servers, or fail over an HA pair")
	}
	if !b.drained.Swap(true) {
		s.d.log.Info().Msg("node drained: BGP routes withdrawn; established flows still forwarded until medialb stops")
	}
	s.d.syncBGP()
	return nil
}

// OnlineNode announces the routes again (api.NodeDrainer).
func (s source) OnlineNode() error {
	b := s.d.bgp
	if b == nil {
		return errors.New("node online: this node has no bgp section")
	}
	if b.drained.Swap(false) {
		s.d.log.Info().Msg("node back online: BGP routes announced again")
	}
	s.d.syncBGP()
	return nil
}

// bgpOverview is the overview's bgp field, nil without BGP.
func (d *Daemon) bgpOverview() *api.BGP {
	b := d.bgp
	if b == nil {
		return nil
	}
	b.mu.Lock()
	out := &api.BGP{State: b.state, Reason: b.reason, Announced: []string{}}
	b.mu.Unlock()
	for _, p := range b.sp.Announced() {
		out.Announced = append(out.Announced, p.String())
	}
	for _, p := range b.sp.Peers() {
		ap := api.BGPPeer{Address: p.Address, ASN: p.ASN, State: p.State, HoldTime: p.HoldTime, Flaps: p.Flaps}
		if !p.Since.IsZero() {
			t := p.Since.UTC()
			ap.Since = &t
		}
		out.Peers = append(out.Peers, ap)
	}
	return out
}

// stopBGP withdraws the routes and closes the sessions, then keeps forwarding
// for bgpLinger so that what the routers sent before they heard it still
// arrives. Called first in Close, before the dataplane goes.
func (d *Daemon) stopBGP() error {
	b := d.bgp
	if b == nil {
		return nil
	}
	close(b.quit)
	<-b.done // no announcement after this
	had := len(b.sp.Announced()) > 0
	err := b.sp.Stop()
	if had {
		d.log.Info().Dur("linger", bgpLinger).Msg("BGP routes withdrawn for shutdown; forwarding a moment longer")
		time.Sleep(bgpLinger)
	}
	return err
}

// localVIPs are the VIPs brought up on node.interface. Without BGP: all of them.
// With BGP only those of layer-7 services, whose listeners need a local address:
// the layer-4 VIPs are steered by XDP and need none, and a local one would make
// the node's kernel answer the VIP's clients with a TCP reset for as long as the
// routers still send them to a node whose medialb was killed (kill -9) — without
// it the kernel drops those packets and the clients' TCP retransmits them to the
// node the routers pick next.
func localVIPs(cfg *config.Config) []netip.Addr {
	if cfg.BGP == nil {
		return vipAddrs(cfg)
	}
	var out []netip.Addr
	for _, s := range cfg.Services {
		if s.Layer == config.Layer7 && !slices.Contains(out, s.Address) {
			out = append(out, s.Address)
		}
	}
	return out
}
