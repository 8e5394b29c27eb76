package bgp

import (
	"context"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	api "github.com/osrg/gobgp/v3/api"
	"github.com/osrg/gobgp/v3/pkg/server"
	"github.com/rs/zerolog"

	"github.com/medialb/medialb/config"
)

// router is a second GoBGP speaker in the test, standing for the ECMP router:
// it listens on 127.0.0.1 and accepts the speaker under test as a passive peer.
type router struct {
	s    *server.BgpServer
	port int
}

func startRouter(t *testing.T) *router { return startRouterOn(t, "127.0.0.1", "") }

func startRouterOn(t *testing.T, addr, password string) *router {
	t.Helper()
	l, err := net.Listen("tcp", net.JoinHostPort(addr, "0"))
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	s := server.NewBgpServer(server.LoggerOption(logger{zerolog.Nop()}))
	go s.Serve()
	ctx := context.Background()
	if err := s.StartBgp(ctx, &api.StartBgpRequest{Global: &api.Global{
		Asn: 65000, RouterId: "10.0.0.1", ListenPort: int32(port), ListenAddresses: []string{addr},
	}}); err != nil {
		t.Fatalf("start the router: %v", err)
	}
	if err := s.AddPeer(ctx, &api.AddPeerRequest{Peer: &api.Peer{
		Conf: &api.PeerConf{NeighborAddress: addr, PeerAsn: 65010},
		AfiSafis: []*api.AfiSafi{{Config: &api.AfiSafiConfig{Enabled: true, Family: &api.Family{Afi: api.Family_AFI_IP, Safi: api.Family_SAFI_UNICAST}}},
			{Config: &api.AfiSafiConfig{Enabled: true, Family: &api.Family{Afi: api.Family_AFI_IP6, Safi: api.Family_SAFI_UNICAST}}}},
		Transport: &api.Transport{PassiveMode: true},
		Timers:    &api.Timers{Config: &api.TimersConfig{HoldTime: 3, KeepaliveInterval: 1}},
	}}); err != nil {
		t.Fatalf("router: add peer: %v", err)
	}
	t.Cleanup(s.Stop)
	return &router{s: s, port: port}
}

// received returns the routes the router holds from the speaker, with their
// MED and communities.
type route struct {
	prefix      string
	med         uint32
	communities []uint32
}

func (r *router) received(t *testing.T) []route { return r.receivedFamily(t, api.Family_AFI_IP) }

func (r *router) receivedFamily(t *testing.T, afi api.Family_Afi) []route {
	t.Helper()
	var out []route
	err := r.s.ListPath(context.Background(), &api.ListPathRequest{
		TableType: api.TableType_GLOBAL, Family: &api.Family{Afi: afi, Safi: api.Family_SAFI_UNICAST},
	}, func(d *api.Destination) {
		for _, p := range d.Paths {
			rt := route{prefix: d.Prefix}
			for _, a := range p.Pattrs {
				var med api.MultiExitDiscAttribute
				var com api.CommunitiesAttribute
				if a.UnmarshalTo(&med) == nil {
					rt.med = med.Med
				} else if a.UnmarshalTo(&com) == nil {
					rt.communities = com.Communities
				}
			}
			out = append(out, rt)
		}
	})
	if err != nil {
		t.Fatalf("router: list paths: %v", err)
	}
	slices.SortFunc(out, func(a, b route) int { return map[bool]int{true: -1, false: 1}[a.prefix < b.prefix] })
	return out
}

// eventually polls cond for up to 15 s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestSpeakerAnnouncesAndWithdraws(t *testing.T) {
	r := startRouter(t)
	med := uint32(50)
	cfg := &config.BGP{
		ASN: 65010, RouterID: netip.MustParseAddr("10.0.0.2"), MED: &med, Communities: []uint32{65010<<16 | 100},
		Peers: []config.BGPPeer{{Address: netip.MustParseAddr("127.0.0.1"), ASN: 65000, Port: uint16(r.port), HoldTime: 3 * time.Second}},
	}
	sp, err := Start(cfg, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	defer func() {
		if !stopped {
			sp.Stop()
		}
	}()
	eventually(t, "the session to come up", func() bool {
		ps := sp.Peers()
		return len(ps) == 1 && ps[0].State == "established"
	})
	if ps := sp.Peers(); ps[0].HoldTime != 3 || ps[0].Since.IsZero() {
		t.Errorf("peer %+v: want hold time 3 and an up time", ps[0])
	}
	a, b := netip.MustParsePrefix("192.0.2.110/32"), netip.MustParsePrefix("192.0.2.100/32")
	if err := sp.Set([]netip.Prefix{a, b}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "both routes at the router", func() bool { return len(r.received(t)) == 2 })
	got := r.received(t)
	if got[0].prefix != "192.0.2.100/32" || got[0].med != 50 || !slices.Equal(got[0].communities, []uint32{65010<<16 | 100}) {
		t.Errorf("route %+v: want 192.0.2.100/32 with MED 50 and community 65010:100", got[0])
	}
	if ann := sp.Announced(); !slices.Equal(ann, []netip.Prefix{b, a}) {
		t.Errorf("announced %v, want [%v %v]", ann, b, a)
	}
	// The set shrinks: the missing route is withdrawn, the other stays.
	if err := sp.Set([]netip.Prefix{a}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "one route withdrawn", func() bool {
		got := r.received(t)
		return len(got) == 1 && got[0].prefix == "192.0.2.110/32"
	})
	if err := sp.Set([]netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}); err == nil {
		t.Error("a /24 was taken; only host routes may be announced")
	}
	// Stop withdraws everything and closes the session.
	if err := sp.Stop(); err != nil {
		t.Fatal(err)
	}
	stopped = true
	eventually(t, "the routes gone after Stop", func() bool { return len(r.received(t)) == 0 })
	if err := sp.Set([]netip.Prefix{a}); err == nil {
		t.Error("Set after Stop succeeded")
	}
}

func TestSpeakerPeerDown(t *testing.T) {
	// No router at all: the session stays down, Start does not fail, and the
	// overview says so.
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	cfg := &config.BGP{ASN: 65010, RouterID: netip.MustParseAddr("10.0.0.2"),
		Peers: []config.BGPPeer{{Address: netip.MustParseAddr("127.0.0.1"), ASN: 65000, Port: uint16(port), HoldTime: 3 * time.Second}}}
	sp, err := Start(cfg, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Stop()
	time.Sleep(500 * time.Millisecond)
	if ps := sp.Peers(); len(ps) != 1 || ps[0].State == "established" || ps[0].Address != "127.0.0.1" {
		t.Errorf("peers %+v: want one, not established", ps)
	}
}

// An IPv6 VIP goes as a /128 over an IPv6 session.
func TestSpeakerIPv6(t *testing.T) {
	if l, err := net.Listen("tcp", "[::1]:0"); err != nil {
		t.Skipf("no IPv6 loopback here: %v", err)
	} else {
		l.Close()
	}
	r := startRouterOn(t, "::1", "")
	cfg := &config.BGP{ASN: 65010, RouterID: netip.MustParseAddr("10.0.0.2"),
		Peers: []config.BGPPeer{{Address: netip.MustParseAddr("::1"), ASN: 65000, Port: uint16(r.port), HoldTime: 3 * time.Second}}}
	sp, err := Start(cfg, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Stop()
	eventually(t, "the IPv6 session to come up", func() bool { return sp.Peers()[0].State == "established" })
	if err := sp.Set([]netip.Prefix{netip.MustParsePrefix("2001:db8::110/128")}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the /128 at the router", func() bool {
		got := r.receivedFamily(t, api.Family_AFI_IP6)
		return len(got) == 1 && got[0].prefix == "2001:db8::110/128"
	})
}

// A TCP MD5 password (RFC 2385): the session comes up with the router's
// password, and not with another one. On a kernel without TCP MD5 the speaker
// refuses to start, saying why (GoBGP alone would retry for ever in silence).
func TestSpeakerPassword(t *testing.T) {
	cfg := func(port int, pw string) *config.BGP {
		return &config.BGP{ASN: 65010, RouterID: netip.MustParseAddr("10.0.0.2"),
			Peers: []config.BGPPeer{{Address: netip.MustParseAddr("127.0.0.1"), ASN: 65000, Port: uint16(port), HoldTime: 3 * time.Second, Password: pw}}}
	}
	if err := md5Supported(); err != nil {
		sp, err := Start(cfg(179, "s3cret"), zerolog.Nop())
		if err == nil {
			sp.Stop()
			t.Fatal("started with a password on a kernel without TCP MD5")
		}
		if !strings.Contains(err.Error(), "CONFIG_TCP_MD5SIG") || !strings.Contains(err.Error(), "127.0.0.1") {
			t.Errorf("error %q: want the peer and CONFIG_TCP_MD5SIG", err)
		}
		t.Logf("kernel without TCP MD5: %v", err)
		return
	}
	r := startRouterOn(t, "127.0.0.1", "s3cret")
	right, err := Start(cfg(r.port, "s3cret"), zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "the session with the right password", func() bool { return right.Peers()[0].State == "established" })
	right.Stop()
	wrong, err := Start(cfg(r.port, "wrong"), zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer wrong.Stop()
	time.Sleep(3 * time.Second)
	if st := wrong.Peers()[0].State; st == "established" {
		t.Errorf("session with the wrong password: %s", st)
	}
}
