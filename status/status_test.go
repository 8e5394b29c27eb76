package status

import (
	"net/netip"
	"testing"
	"time"

	"github.com/medialb/medialb/api"
	"github.com/medialb/medialb/config"
	"github.com/medialb/medialb/control"
	"github.com/medialb/medialb/feedback"
	"github.com/medialb/medialb/health"
	"github.com/medialb/medialb/l7"
	"github.com/medialb/medialb/tables"
)

// fixture is a node with the contract's two services: Mgmt (layer 7, no
// persistence, HM1 and HM2) and Traffic (layer 4, source-IP persistence of
// 5 minutes, HT1 and HT2).
type fixture struct {
	cfg  config.Config
	spec tables.Spec
}

func newFixture() *fixture {
	f := &fixture{cfg: config.Config{Node: config.Node{Name: "lb1"}, Services: []config.Service{
		{Name: "Mgmt", Address: netip.MustParseAddr("192.168.94.100"), Ports: config.PortRanges{{Lo: 8080, Hi: 8080}, {Lo: 8443, Hi: 8443}},
			Layer: config.Layer7, Protocol: config.TCP, Forwarding: config.SNAT, Persistence: config.Persistence{Mode: config.PersistNone}},
		{Name: "Traffic", Address: netip.MustParseAddr("192.168.94.110"), Ports: config.PortRanges{{Lo: 1935, Hi: 1935}},
			Layer: config.Layer4, Protocol: config.TCPAndUDP, Forwarding: config.DirectRouting,
			Persistence: config.Persistence{Mode: config.PersistSourceIP, Timeout: 5 * time.Minute}},
	}}}
	server := func(name string, last byte) tables.ServerSpec {
		return tables.ServerSpec{Name: name, Addr: netip.AddrFrom4([4]byte{192, 168, 94, last}), Weight: 100,
			MAC: [6]byte{2, 0, 0, 0, 0, last}, HasMAC: true}
	}
	f.spec = tables.Spec{HashSeed: 1, Services: []tables.ServiceSpec{
		{Name: "Mgmt", VIP: f.cfg.Services[0].Address, Ports: []tables.PortRange{{Lo: 8080, Hi: 8080}, {Lo: 8443, Hi: 8443}}, TCP: true,
			Layer: tables.Layer7, MaglevSize: 251, Servers: []tables.ServerSpec{server("HM1", 105), server("HM2", 106)}},
		{Name: "Traffic", VIP: f.cfg.Services[1].Address, Ports: []tables.PortRange{{Lo: 1935, Hi: 1935}}, TCP: true, UDP: true,
			Layer: tables.Layer4, MaglevSize: 251, PersistTimeout: 5 * time.Minute, AffinityCap: 1024,
			Servers: []tables.ServerSpec{server("HT1", 115), server("HT2", 116)}},
	}}
	return f
}

// inputs builds the snapshot and the inputs; clients pick a Traffic server
// each first, so that they hold persistence entries.
func (f *fixture) inputs(t *testing.T, clients int) Inputs {
	t.Helper()
	snap, err := tables.Build(f.spec, nil)
	if err != nil {
		t.Fatal(err)
	}
	const now = 100
	for i := range clients {
		snap.Service("Traffic").Pick(netip.AddrFrom4([4]byte{10, 0, 0, byte(1 + i)}), now)
	}
	return Inputs{Node: "lb1", Time: time.Unix(1, 0).UTC(), Config: &f.cfg, Snapshot: snap, Now: now}
}

func key(svc, srv string) tables.Key { return tables.Key{Service: svc, Server: srv} }

func TestOverview(t *testing.T) {
	for _, tc := range []struct {
		name    string
		clients int
		change  func(f *fixture, in *Inputs)
		check   func(t *testing.T, ov api.Overview)
	}{
		{name: "both services, config order, fixed fields", check: func(t *testing.T, ov api.Overview) {
			if ov.Node != "lb1" || len(ov.Services) != 2 || ov.Services[0].Name != "Mgmt" || ov.Services[1].Name != "Traffic" {
				t.Fatalf("overview %+v", ov)
			}
			m, tr := ov.Services[0], ov.Services[1]
			if m.Forwarding != "proxy" || m.Persistence != "none" || m.Layer != 7 || m.Ports != "8080,8443" || m.Protocol != "tcp" || m.State != api.ServiceOnline {
				t.Errorf("Mgmt %+v", m)
			}
			if tr.Forwarding != "direct-routing" || tr.Persistence != "source-ip 5m0s" || tr.Layer != 4 || tr.Protocol != "tcp+udp" {
				t.Errorf("Traffic %+v", tr)
			}
			if r := m.RealServers[0]; r.Name != "HM1" || r.Address != "192.168.94.105" || r.Weight != 100 || r.State != "online" ||
				r.Admin != "online" || r.Health != "unknown" {
				t.Errorf("HM1 %+v", r)
			}
		}},
		{name: "layer 7: the proxy's connections and bytes", change: func(f *fixture, in *Inputs) {
			in.L7 = []l7.ServiceStats{{Name: "Mgmt", Active: 3, BytesIn: 10, BytesOut: 20,
				Servers: []l7.ServerStats{{Name: "HM1", Active: 2, BytesIn: 4, BytesOut: 5}}}}
		}, check: func(t *testing.T, ov api.Overview) {
			m := ov.Services[0]
			if m.Connections != 3 || m.Bytes != 30 || m.RealServers[0].Connections != 2 || m.RealServers[0].Bytes != 9 || m.RealServers[1].Connections != 0 {
				t.Errorf("Mgmt %+v", m)
			}
		}},
		{name: "layer 4: persistence entries stand for connections", clients: 6, check: func(t *testing.T, ov api.Overview) {
			tr := ov.Services[1]
			a, b := tr.RealServers[0], tr.RealServers[1]
			if tr.ActiveClients != 6 || tr.Connections != 6 || a.ActiveClients+b.ActiveClients != 6 ||
				a.Connections != a.ActiveClients || b.Connections != b.ActiveClients {
				t.Errorf("Traffic %+v", tr)
			}
			if ov.Services[0].ActiveClients != 0 {
				t.Errorf("Mgmt without persistence has %d active clients", ov.Services[0].ActiveClients)
			}
		}},
		{name: "health verdicts, operator state, check duration", change: func(f *fixture, in *Inputs) {
			in.Health = map[tables.Key]control.Health{
				key("Traffic", "HT1"): {Checked: true, Up: true, Reason: "HTTP 200 Healthy"},
				key("Traffic", "HT2"): {Checked: true, Up: false, Reason: "timeout"},
			}
			in.Admin = map[tables.Key]tables.State{key("Mgmt", "HM2"): tables.StateDrain}
			in.Checks = map[tables.Key]health.Status{key("Traffic", "HT1"): {LastResult: health.Result{Duration: 1500 * time.Millisecond}}}
		}, check: func(t *testing.T, ov api.Overview) {
			a, b := ov.Services[1].RealServers[0], ov.Services[1].RealServers[1]
			if a.Health != "up" || a.HealthReason != "HTTP 200 Healthy" || a.HealthCheckSeconds != 1.5 {
				t.Errorf("HT1 %+v", a)
			}
			if b.Health != "down" || b.HealthReason != "timeout" || b.HealthCheckSeconds != 0 {
				t.Errorf("HT2 %+v", b)
			}
			if r := ov.Services[0].RealServers[1]; r.Admin != "drain" {
				t.Errorf("HM2 %+v, want admin drain", r)
			}
		}},
		{name: "feedback, configured weight, problems", change: func(f *fixture, in *Inputs) {
			f.cfg.Services[1].RealServers = []config.RealServer{{Name: "HT1", Weight: 200}, {Name: "HT2", Weight: 100}}
			in.Feedback = map[tables.Key]control.Feedback{key("Traffic", "HT1"): {Percent: 10, Agent: feedback.AgentDrain, Answer: "drain 10%",
				AnsweredAt: time.Unix(5, 0)}}
			in.Problems = map[tables.Key][]string{key("Traffic", "HT2"): {"VIP not configured on the real server"}}
		}, check: func(t *testing.T, ov api.Overview) {
			a, b := ov.Services[1].RealServers[0], ov.Services[1].RealServers[1]
			if a.ConfiguredWeight != 200 || a.Feedback == nil || a.Feedback.Percent != 10 || a.Feedback.Agent != "drain" ||
				a.Feedback.Answer != "drain 10%" || a.Feedback.AnsweredAt != "1970-01-01T00:00:05Z" || a.Problems == nil || len(a.Problems) != 0 {
				t.Errorf("HT1 %+v feedback %+v", a, a.Feedback)
			}
			if b.Feedback != nil || len(b.Problems) != 1 || b.Problems[0] != "VIP not configured on the real server" {
				t.Errorf("HT2 %+v", b)
			}
		}},
		{name: "one server down: degraded", change: func(f *fixture, in *Inputs) {
			f.spec.Services[1].Servers[1].State = tables.StateDown
		}, check: func(t *testing.T, ov api.Overview) {
			if tr := ov.Services[1]; tr.State != api.ServiceDegraded || tr.RealServers[1].State != "down" {
				t.Errorf("Traffic %+v", tr)
			}
		}},
		{name: "all down: down, or fallback with one", change: func(f *fixture, in *Inputs) {
			for i := range f.spec.Services {
				for j := range f.spec.Services[i].Servers {
					f.spec.Services[i].Servers[j].State = tables.StateHalt
				}
			}
			f.spec.Services[1].Fallback = &tables.ServerSpec{Name: "sorry", Addr: netip.MustParseAddr("192.168.94.200"), Weight: 1, HasMAC: true}
		}, check: func(t *testing.T, ov api.Overview) {
			if s := ov.Services[0].State; s != api.ServiceDown {
				t.Errorf("Mgmt state %q, want down", s)
			}
			if s := ov.Services[1].State; s != "fallback" {
				t.Errorf("Traffic state %q, want fallback", s)
			}
		}},
		{name: "a service not compiled yet is left out", change: func(f *fixture, in *Inputs) {
			f.spec.Services = f.spec.Services[1:]
		}, check: func(t *testing.T, ov api.Overview) {
			if len(ov.Services) != 1 || ov.Services[0].Name != "Traffic" {
				t.Errorf("services %+v, want Traffic only", ov.Services)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture()
			var in Inputs
			if tc.change != nil {
				tc.change(f, &in) // spec changes first, then the inputs built from it
			}
			built := f.inputs(t, tc.clients)
			built.Admin, built.Health, built.Checks, built.L7 = in.Admin, in.Health, in.Checks, in.L7
			built.Feedback, built.Problems = in.Feedback, in.Problems
			tc.check(t, Overview(built))
		})
	}
}

// Layer-4 servers carry the dataplane's frame and byte counts (by counter slot), the
// service their sum; the panic and the persistence evictions show on the service.
func TestOverviewL4CountsAndPanic(t *testing.T) {
	f := newFixture()
	in := f.inputs(t, 0)
	ht := in.Snapshot.Service("Traffic")
	counts := map[uint32][2]uint64{ht.Servers[0].Slot: {10, 1000}, ht.Servers[1].Slot: {5, 700}}
	in.L4Count = func(slot uint32) (uint64, uint64) { c := counts[slot]; return c[0], c[1] }
	since := time.Unix(50, 0)
	in.Panic = map[string]control.PanicStatus{"Traffic": {Active: true, Since: since, Count: 2}}
	ov := Overview(in)
	tr := ov.Services[1]
	if tr.RealServers[0].Packets != 10 || tr.RealServers[0].Bytes != 1000 || tr.RealServers[1].Packets != 5 ||
		tr.Packets != 15 || tr.Bytes != 1700 {
		t.Errorf("counts: service %d/%d, servers %+v", tr.Packets, tr.Bytes, tr.RealServers)
	}
	if !tr.Panic || tr.Panics != 2 || tr.PanicSince == nil || !tr.PanicSince.Equal(since) {
		t.Errorf("panic: %v %d %v", tr.Panic, tr.Panics, tr.PanicSince)
	}
	if mg := ov.Services[0]; mg.Panic || mg.Packets != 0 {
		t.Errorf("layer-7 service: %+v", mg)
	}
}

// A layer-4 overview says how each server is reached.
func TestOverviewForwarding(t *testing.T) {
	f := newFixture()
	f.spec.Services[1].Servers[1].Encap = tables.EncapGUE
	f.spec.Services[1].Servers[1].GUEPort = 6080
	ov := Overview(f.inputs(t, 0))
	rs := ov.Services[1].RealServers
	if rs[0].Forwarding != "direct-routing" || rs[0].Tunnel != "" || rs[1].Forwarding != "tunnel" || rs[1].Tunnel != "gue" {
		t.Errorf("forwarding %q/%q and %q/%q, want direct-routing and tunnel/gue", rs[0].Forwarding, rs[0].Tunnel, rs[1].Forwarding, rs[1].Tunnel)
	}
	if mg := ov.Services[0].RealServers[0]; mg.Forwarding != "" {
		t.Errorf("layer-7 server forwarding %q, want none", mg.Forwarding)
	}
}
