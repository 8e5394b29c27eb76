// Package bgp announces the node's VIPs to routers, so that several active
// medialb nodes share them through the routers' ECMP. It embeds GoBGP
// (github.com/osrg/gobgp/v3) as a library: one process to run, configure and
// watch, its sessions and routes asked directly rather than through gobgpd's
// gRPC or FRR's vtysh, and its failures in medialb's own log.
//
// A [Speaker] holds the sessions of config.BGP's peers and the set of host
// routes (/32, /128) announced to them; [Speaker.Set] replaces that set,
// announcing what is new and withdrawing what is gone. The daemon decides the
// set: the VIPs with an eligible real server, none while the node is drained
// or unhealthy (daemon/bgp.go).
package bgp

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"time"

	api "github.com/osrg/gobgp/v3/api"
	"github.com/osrg/gobgp/v3/pkg/server"
	"github.com/rs/zerolog"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/medialb/medialb/config"
)

// Peer is one session as the overview shows it.
type Peer struct {
	Address string `json:"address"`
	ASN     uint32 `json:"asn"`
	// State is the BGP finite-state machine's: "idle", "connect", "active",
	// "opensent", "openconfirm", "established".
	State string `json:"state"`
	// Since is when the session last reached or left "established"; zero if never.
	Since time.Time `json:"since,omitzero"`
	// HoldTime is the negotiated hold time in seconds (0 before "established").
	HoldTime uint64 `json:"hold_time"`
	// Flaps counts how often the session went down.
	Flaps uint32 `json:"flaps"`
}

// Speaker is a running BGP speaker. Its methods are safe for concurrent use.
// The zero Speaker is not usable; make one with [Start].
type Speaker struct {
	s   *server.BgpServer
	cfg config.BGP
	log zerolog.Logger

	mu        sync.Mutex
	announced map[netip.Prefix]bool
	closed    bool
}

// Start starts a speaker for cfg and opens its peers' sessions (in the
// background: an unreachable router is retried, not an error). It announces
// nothing until [Speaker.Set].
func Start(cfg *config.BGP, log zerolog.Logger) (*Speaker, error) {
	for _, p := range cfg.Peers {
		if p.Password != "" {
			if err := md5Supported(); err != nil {
				return nil, fmt.Errorf("BGP peer %s has a password, but %w: remove the password or run a kernel with TCP MD5", p.Address, err)
			}
			break
		}
	}
	s := &Speaker{cfg: *cfg, log: log, announced: map[netip.Prefix]bool{},
		s: server.NewBgpServer(server.LoggerOption(logger{log.With().Str("part", "bgp").Logger()}))}
	go s.s.Serve()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	listen := int32(cfg.ListenPort)
	if listen == 0 {
		listen = -1 // GoBGP: do not listen
	}
	err := s.s.StartBgp(ctx, &api.StartBgpRequest{Global: &api.Global{
		Asn: cfg.ASN, RouterId: cfg.RouterID.String(), ListenPort: listen,
	}})
	if err != nil {
		s.s.Stop()
		return nil, fmt.Errorf("start BGP speaker (AS %d, router id %s): %w", cfg.ASN, cfg.RouterID, err)
	}
	for _, p := range cfg.Peers {
		if err := s.s.AddPeer(ctx, &api.AddPeerRequest{Peer: peerConf(p)}); err != nil {
			s.s.Stop()
			return nil, fmt.Errorf("add BGP peer %s (AS %d): %w", p.Address, p.ASN, err)
		}
	}
	return s, nil
}

// peerConf is GoBGP's description of a peer: our timers (keepalive a third of
// the hold time; a quick retry, so a restarted router is back within seconds),
// only the peer's own address family.
func peerConf(p config.BGPPeer) *api.Peer {
	hold := uint64(p.HoldTime / time.Second)
	fam := &api.Family{Afi: api.Family_AFI_IP, Safi: api.Family_SAFI_UNICAST}
	if p.Address.Is6() {
		fam.Afi = api.Family_AFI_IP6
	}
	return &api.Peer{
		Conf: &api.PeerConf{NeighborAddress: p.Address.String(), PeerAsn: p.ASN, AuthPassword: p.Password},
		Timers: &api.Timers{Config: &api.TimersConfig{
			HoldTime: hold, KeepaliveInterval: max(hold/3, 1), ConnectRetry: 2, IdleHoldTimeAfterReset: 1,
		}},
		Transport: &api.Transport{RemotePort: uint32(p.Port)},
		AfiSafis:  []*api.AfiSafi{{Config: &api.AfiSafiConfig{Family: fam, Enabled: true}}},
	}
}

// Set makes prefixes the announced routes: new ones are announced, missing ones
// withdrawn. Each must be a host route (/32 or /128). On error the routes that
// were changed stay changed and the others are tried again on the next Set.
func (s *Speaker) Set(prefixes []netip.Prefix) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errors.New("set BGP routes: speaker stopped")
	}
	want := map[netip.Prefix]bool{}
	for _, p := range prefixes {
		if !p.IsSingleIP() {
			return fmt.Errorf("set BGP routes: %s is not a host route (/32 or /128)", p)
		}
		want[p] = true
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var errs []error
	for p := range s.announced {
		if !want[p] {
			if err := s.s.DeletePath(ctx, &api.DeletePathRequest{Family: family(p), Path: s.path(p)}); err != nil {
				errs = append(errs, fmt.Errorf("withdraw %s: %w", p, err))
				continue
			}
			delete(s.announced, p)
			s.log.Info().Str("prefix", p.String()).Msg("BGP route withdrawn")
		}
	}
	for p := range want {
		if !s.announced[p] {
			if _, err := s.s.AddPath(ctx, &api.AddPathRequest{Path: s.path(p)}); err != nil {
				errs = append(errs, fmt.Errorf("announce %s: %w", p, err))
				continue
			}
			s.announced[p] = true
			s.log.Info().Str("prefix", p.String()).Msg("BGP route announced")
		}
	}
	return errors.Join(errs...)
}

// Announced returns the announced routes, sorted.
func (s *Speaker) Announced() []netip.Prefix {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]netip.Prefix, 0, len(s.announced))
	for p := range s.announced {
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b netip.Prefix) int { return a.Addr().Compare(b.Addr()) })
	return out
}

// Peers returns the sessions in configuration order.
func (s *Speaker) Peers() []Peer {
	byAddr := map[string]*api.Peer{}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = s.s.ListPeer(ctx, &api.ListPeerRequest{}, func(p *api.Peer) {
		byAddr[p.GetConf().GetNeighborAddress()] = p
	})
	out := make([]Peer, 0, len(s.cfg.Peers))
	for _, c := range s.cfg.Peers {
		p := Peer{Address: c.Address.String(), ASN: c.ASN, State: "idle"}
		if ap := byAddr[p.Address]; ap != nil {
			st := ap.GetState()
			p.State = sessionState(st.GetSessionState())
			p.Flaps = st.GetFlops()
			ts := ap.GetTimers().GetState()
			p.HoldTime = ts.GetNegotiatedHoldTime()
			if p.State == "established" && ts.GetUptime() != nil {
				p.Since = ts.GetUptime().AsTime()
			} else if ts.GetDowntime() != nil && ts.GetDowntime().GetSeconds() > 0 {
				p.Since = ts.GetDowntime().AsTime()
			}
		}
		out = append(out, p)
	}
	return out
}

// Stop withdraws every route, closes the sessions (a BGP NOTIFICATION "cease":
// the routers drop this node's paths at once, without waiting for the hold
// time) and stops the speaker.
func (s *Speaker) Stop() error {
	err := s.Set(nil)
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.s.Stop()
	return err
}

// path is the route to p with this node's attributes; the next hop is left
// to GoBGP (0.0.0.0 or ::), which puts the session's local address.
func (s *Speaker) path(p netip.Prefix) *api.Path {
	nlri, _ := anypb.New(&api.IPAddressPrefix{Prefix: p.Addr().String(), PrefixLen: uint32(p.Bits())})
	attrs := []*anypb.Any{mustAny(&api.OriginAttribute{Origin: 0})} // IGP
	if p.Addr().Is4() {
		attrs = append(attrs, mustAny(&api.NextHopAttribute{NextHop: "0.0.0.0"}))
	} else {
		attrs = append(attrs, mustAny(&api.MpReachNLRIAttribute{Family: family(p), NextHops: []string{"::"}, Nlris: []*anypb.Any{nlri}}))
	}
	if len(s.cfg.Communities) > 0 {
		attrs = append(attrs, mustAny(&api.CommunitiesAttribute{Communities: s.cfg.Communities}))
	}
	if s.cfg.MED != nil {
		attrs = append(attrs, mustAny(&api.MultiExitDiscAttribute{Med: *s.cfg.MED}))
	}
	if s.cfg.LocalPref != nil {
		attrs = append(attrs, mustAny(&api.LocalPrefAttribute{LocalPref: *s.cfg.LocalPref}))
	}
	return &api.Path{Family: family(p), Nlri: nlri, Pattrs: attrs}
}

func family(p netip.Prefix) *api.Family {
	if p.Addr().Is4() {
		return &api.Family{Afi: api.Family_AFI_IP, Safi: api.Family_SAFI_UNICAST}
	}
	return &api.Family{Afi: api.Family_AFI_IP6, Safi: api.Family_SAFI_UNICAST}
}

// mustAny wraps a GoBGP attribute message; it cannot fail for these types.
func mustAny(m proto.Message) *anypb.Any {
	a, err := anypb.New(m)
	if err != nil {
		panic(fmt.Sprintf("bgp: wrap %T: %v", m, err)) // a programming error: every type here is GoBGP's
	}
	return a
}

func sessionState(st api.PeerState_SessionState) string {
	switch st {
	case api.PeerState_IDLE:
		return "idle"
	case api.PeerState_CONNECT:
		return "connect"
	case api.PeerState_ACTIVE:
		return "active"
	case api.PeerState_OPENSENT:
		return "opensent"
	case api.PeerState_OPENCONFIRM:
		return "openconfirm"
	case api.PeerState_ESTABLISHED:
		return "established"
	}
	return "unknown"
}
