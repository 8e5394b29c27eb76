package e2e

import (
	"context"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/medialb/medialb/afxdp"
	"github.com/medialb/medialb/api"
	"github.com/medialb/medialb/lab"
	"github.com/medialb/medialb/lab/probe"
)

// surgeConfig: one layer-4 service on all four lab servers, fast checks, the default
// panic threshold (50 %).
const surgeConfig = nodeSection + apiSection + `
virtual_services:
  - name: Harmonic_Traffic
    address: 192.168.94.110
    ports: "1935,554,50000-65535"
    layer: 4
    forwarding: direct-routing
    protocol: tcp+udp
    persistence: { mode: source-ip, timeout: 300s }
    health_check: { type: https-get, port: 8443, path: /admin/status, expect: Healthy, interval: 1s, timeout: 500ms, rise: 2, fall: 3 }
    real_servers:
      - { name: HM1, address: 192.168.94.105 }
      - { name: HM2, address: 192.168.94.106 }
      - { name: HT1, address: 192.168.94.115 }
      - { name: HT2, address: 192.168.94.116 }
`

// TestL4SurgePanic: the replies to the health checks of three of four servers are
// lost for 15 s (a blackhole route on the servers: the load balancer sees what a
// saturated receive path showed in the surge measured in issue 14); none of those
// servers goes down, the overview shows the panic, established clients keep flowing;
// meanwhile the fourth server really fails (answers Unhealthy) and is taken out. When
// the replies get through again, the panic ends.
func TestL4SurgePanic(t *testing.T) {
	e := newEnv(t, "sg", lab.Options{Clients: 20, Servers: lab.DefaultServers(4)})
	e.start(surgeConfig)
	e.waitChecked(15 * time.Second)
	ctx := context.Background()
	vip := netip.MustParseAddr("192.168.94.110")
	targets := []probe.Target{{Proto: "udp", Addr: netip.AddrPortFrom(vip, e.lab.MediaPorts[0])}}
	before := map[netip.Addr]string{}
	for _, r := range probe.Sweep(ctx, e.lab, e.lab.Client.Sources4, targets, 16) {
		if r.Err == nil {
			before[r.Src] = r.Reply.Server
		}
	}
	// The replies of HM1, HT1 and HT2 to the load balancer (the health checks') are
	// lost on the way, as in a saturated receive path; their media to the clients is not.
	lb := e.lab.LBs[0]
	lose := func(add bool) {
		verb := "add"
		if !add {
			verb = "del"
		}
		for _, name := range []string{"HM1", "HT1", "HT2"} {
			srv, err := e.lab.Server(name)
			if err != nil {
				t.Fatal(err)
			}
			if out, err := lab.Exec(srv.NS, "ip", "route", verb, "blackhole", lb.Addr4.String()+"/32").CombinedOutput(); err != nil && add {
				t.Fatalf("blackhole route in %s: %v\n%s", name, err, out)
			}
		}
	}
	lose(true)
	t.Cleanup(func() { lose(false) })
	if err := e.lab.SetStatus("HM2", lab.Unhealthy); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.lab.SetStatus("HM2", lab.Healthy) })

	var svc api.Service
	deadline := time.Now().Add(15 * time.Second)
	sawPanic := false
	for time.Now().Before(deadline) {
		svc = e.overview().Services[0]
		sawPanic = sawPanic || svc.Panic
		for _, rs := range svc.RealServers {
			if rs.Name != "HM2" && rs.State != "online" {
				t.Fatalf("%s went %s during the surge (%s); the panic threshold should keep it", rs.Name, rs.State, rs.HealthReason)
			}
		}
		time.Sleep(500 * time.Millisecond)
	}
	if !sawPanic || svc.Panics == 0 {
		t.Errorf("the overview never showed the panic: %+v", svc)
	}
	for _, rs := range svc.RealServers {
		if rs.Name == "HM2" && rs.State != "down" {
			t.Errorf("HM2 answered Unhealthy during the surge but is %s", rs.State)
		}
	}
	// Established clients of the kept servers still reach their server.
	moved := 0
	for _, r := range probe.Sweep(ctx, e.lab, e.lab.Client.Sources4, targets, 16) {
		if r.Err != nil {
			t.Errorf("client %s: %v", r.Src, r.Err)
		} else if was := before[r.Src]; was != "HM2" && was != r.Reply.Server {
			moved++
		}
	}
	if moved > 0 {
		t.Errorf("%d clients of kept servers moved during the surge", moved)
	}
	code, body := e.apiDo("GET", "/metrics")
	if code != 200 || !slices.Contains(strings.Split(string(body), "\n"), `medialb_service_panics_total{service="Harmonic_Traffic"} 1`) {
		t.Errorf("metrics do not count the panic:\n%s", grepLines(string(body), "panic"))
	}
	// The replies get through again: the panic ends.
	lose(false)
	deadline = time.Now().Add(10 * time.Second)
	for e.overview().Services[0].Panic {
		if time.Now().After(deadline) {
			t.Fatal("panic not over 10 s after the health replies got through again")
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestL4RXPriority: with node.rx_priority at its default (auto) and the steering
// program attached natively, the load balancer's receive path runs as threaded NAPI at
// real-time priority, before the pipeline's workers (see BENCHMARKS.md, the flood
// section, for what that saves).
func TestL4RXPriority(t *testing.T) {
	e := newEnv(t, "rxp", lab.Options{Clients: 2})
	e.start(l4Config)
	lb := e.lab.LBs[0]
	tids := afxdp.NAPIThreads(lb.Link)
	if len(tids) == 0 {
		t.Fatalf("no NAPI thread of %s: threaded NAPI not switched on", lb.Link)
	}
	for _, tid := range tids {
		if pol, err := afxdp.SchedPolicy(tid); err != nil || pol != 1 { // SCHED_FIFO
			t.Errorf("NAPI thread %d of %s: policy %d %v, want SCHED_FIFO (1)", tid, lb.Link, pol, err)
		}
	}
	if !strings.Contains(e.proc.Log(), "receive path prioritized") {
		t.Error("medialb did not log that it prioritized the receive path")
	}
}
