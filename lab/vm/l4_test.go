package vm

import (
	"context"
	"fmt"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/medialb/medialb/lab"
	"github.com/medialb/medialb/lab/probe"
)

// lbConfig is the guide's Harmonic_Traffic VIP (IPv4), HT1 weighted three times HT2, with
// native XDP. zeroCopy: zero_copy on and xdp_fastpath auto (virtio-net loses XDP_TX
// frames from zero-copy queues, so auto turns the fast path off); otherwise copy mode with
// the fast path on. servers overrides the real servers (a reload).
func lbConfig(zeroCopy bool, servers ...string) string {
	if servers == nil {
		servers = []string{"{ name: HT1, address: 192.168.94.115, weight: 300 }", "{ name: HT2, address: 192.168.94.116, weight: 100 }"}
	}
	zc, fp := `"on"`, "auto"
	if !zeroCopy {
		zc, fp = `"off"`, `"on"`
	}
	return `node:
  name: lb1
  interface: eth0
  state_dir: /var/lib/medialb
  xdp_mode: native
  zero_copy: ` + zc + `
  xdp_fastpath: ` + fp + `
api:
  listen: 192.168.94.2:9443
  users:
    - name: loadbalancer
      password_hash: "$2a$10$u0cqovdTwUFe8GZsu.3X/OU4fJQhpx.weaiGm3.Z4VcxMEaEsc/Pm"
virtual_services:
  - name: Harmonic_Traffic
    address: 192.168.94.110
    ports: "1935,554,50000-65535"
    layer: 4
    forwarding: direct-routing
    protocol: tcp+udp
    persistence: { mode: source-ip, timeout: 300s }
    health_check: { type: https-get, port: 8443, path: /admin/status, expect: Healthy, interval: 2s, timeout: 1500ms, rise: 1, fall: 2 }
    real_servers:
      - ` + strings.Join(servers, "\n      - ") + "\n"
}

var vip = netip.MustParseAddr("192.168.94.110")

// l4Targets: TCP and UDP on 1935 and 554 and in the range.
func l4Targets() []probe.Target {
	var ts []probe.Target
	for _, p := range []uint16{1935, 554, 60000} {
		ts = append(ts, probe.Target{Proto: "tcp", Addr: netip.AddrPortFrom(vip, p)}, probe.Target{Proto: "udp", Addr: netip.AddrPortFrom(vip, p)})
	}
	return ts
}

// vmEnv is a VM lab with vossim on the real servers and medialb in the load balancer.
type vmEnv struct {
	t   *testing.T
	l   *Lab
	ctx context.Context
}

func (e *vmEnv) sources() []netip.Addr {
	var s []netip.Addr
	for _, a := range e.l.Client.Addrs {
		s = append(s, a.Addr())
	}
	return s
}

// startVOS starts vossim on every real server, its control port open to the host.
func (e *vmEnv) startVOS() {
	for _, g := range e.l.Servers {
		if err := g.Start(e.ctx, "vossim", "/bin/vossim", "--name", g.Name, "--control", ":9901", "--media-ports", "60000", "--log-format", "json"); err != nil {
			e.t.Fatal(err)
		}
	}
}

func (e *vmEnv) setHealth(g *Guest, mode string) {
	e.t.Helper()
	code, body, err := e.l.HTTP(e.ctx, "POST", "http://"+g.Addr.String()+":9901/status?mode="+mode, "", "", nil)
	if err != nil || code != 200 {
		e.t.Fatalf("set %s %s: %d %v %s", g.Name, mode, code, err, body)
	}
}

// startLB writes cfg and starts medialb; it waits until the dataplane is open and every
// real server had a health verdict, and returns the dataplane's log line.
func (e *vmEnv) startLB(cfg string) string {
	e.t.Helper()
	lb := e.l.LB
	if err := lb.WriteFile(e.ctx, "/etc/medialb.yaml", []byte(cfg)); err != nil {
		e.t.Fatal(err)
	}
	if err := lb.Start(e.ctx, "medialb", "/bin/medialb", "run", "--config", "/etc/medialb.yaml"); err != nil {
		e.t.Fatal(err)
	}
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) {
		p, err := lb.Proc(e.ctx, "medialb")
		if err != nil {
			// The guest may not answer for a moment while the driver resets
			// its queues for XDP; the deadline decides.
			e.t.Logf("waiting for medialb: %v", err)
			time.Sleep(time.Second)
			continue
		}
		if !p.Running {
			e.t.Fatalf("medialb exited (%d):\n%s", p.Code, lastLines(p.Log, 30))
		}
		open := ""
		for _, l := range strings.Split(p.Log, "\n") {
			if strings.Contains(l, "AF_XDP dataplane open") {
				open = l
			}
		}
		if open != "" {
			code, body, err := e.api("GET", "/api/v1/overview")
			if err == nil && code == 200 && !strings.Contains(string(body), `"health":"unknown"`) {
				return open
			}
		}
		time.Sleep(time.Second)
	}
	p, _ := lb.Proc(e.ctx, "medialb")
	e.t.Fatalf("medialb not ready (dataplane open, servers checked) within 90 s:\n%s", lastLines(p.Log, 30))
	return ""
}

// api calls medialb's REST API; a failed GET is retried a few times (a TCG guest on a
// busy host sometimes drops a connection).
func (e *vmEnv) api(method, path string) (code int, body []byte, err error) {
	for try := 0; try < 5; try++ {
		code, body, err = e.l.HTTP(e.ctx, method, "https://192.168.94.2:9443"+path, "loadbalancer", "loadbalancer", nil)
		if err == nil || method != "GET" {
			return code, body, err
		}
		time.Sleep(2 * time.Second)
	}
	return code, body, err
}

// metric sums the samples of name whose labels contain label.
func (e *vmEnv) metric(name, label string) float64 {
	e.t.Helper()
	code, body, err := e.api("GET", "/metrics")
	if err != nil || code != 200 {
		e.t.Fatalf("GET /metrics: %d %v", code, err)
	}
	re := regexp.MustCompile(`(?m)^` + name + `(\{[^}]*\})? ([0-9.e+]+)$`)
	sum := 0.0
	for _, m := range re.FindAllStringSubmatch(string(body), -1) {
		if label == "" || strings.Contains(m[1], label) {
			v, _ := strconv.ParseFloat(m[2], 64)
			sum += v
		}
	}
	return sum
}

// sweep probes every target from every source from the client guest.
func (e *vmEnv) sweep(srcs []netip.Addr, targets []probe.Target) probe.Summary {
	e.t.Helper()
	rs, err := e.l.Client.Probe(e.ctx, srcs, targets, 16)
	if err != nil {
		e.t.Fatal(err)
	}
	return probe.Summarize(rs)
}

// checkDR asserts what direct routing promises from the client's side: every probe
// answered, the client's own address seen, one server per client on every port and
// protocol, and the weights' shares (within tol).
func checkDR(t *testing.T, what string, s probe.Summary, share map[string]float64, tol float64) {
	t.Helper()
	if s.Failed > 0 {
		t.Errorf("%s: %d probes failed: %v", what, s.Failed, s.Errors)
	}
	if s.SawClient != s.Answered {
		t.Errorf("%s: %d answers saw another client address: %v", what, s.Answered-s.SawClient, s.SawOther)
	}
	if len(s.Split) > 0 {
		t.Errorf("%s: %d clients reached different servers on different ports/protocols: %v", what, len(s.Split), s.Split)
	}
	n := 0
	for _, c := range s.ClientsOf {
		n += c
	}
	for name, want := range share {
		got := float64(s.ClientsOf[name]) / float64(max(n, 1))
		if got < want-tol || got > want+tol {
			t.Errorf("%s: %s took %.2f of the clients, want %.2f±%.2f", what, name, got, want, tol)
		}
	}
	t.Logf("%s: %d answers, clients per server %v", what, s.Answered, s.ClientsOf)
}

// wantOpen checks the dataplane's log line: native XDP, zero-copy, a socket per queue.
func wantOpen(t *testing.T, line string, queues int, zeroCopy bool) {
	t.Helper()
	for _, want := range []string{`"xdp_mode":"native"`, fmt.Sprintf(`"zero_copy":%v`, zeroCopy), fmt.Sprintf(`"queues":%d`, queues)} {
		if !strings.Contains(line, want) {
			t.Errorf("dataplane open without %s: %s", want, line)
		}
	}
}

// fastPathCheck sends n UDP probes from one decided client and returns how many frames
// the pipeline forwarded meanwhile (the rest went through the XDP fast path).
func (e *vmEnv) fastPathCheck(src netip.Addr, n int) float64 {
	e.t.Helper()
	target := []probe.Target{{Proto: "udp", Addr: netip.AddrPortFrom(vip, 1935)}}
	e.sweep([]netip.Addr{src}, target)
	time.Sleep(300 * time.Millisecond)
	f0 := e.metric("medialb_dataplane_forwarded_packets_total", "")
	for range n {
		if s := e.sweep([]netip.Addr{src}, target); s.Failed > 0 {
			e.t.Fatalf("UDP from %s: %v", src, s.Errors)
		}
	}
	return e.metric("medialb_dataplane_forwarded_packets_total", "") - f0
}

// TestVMLab: medialb on a real virtio-net driver with two channels (native XDP, a
// zero-copy socket and worker per queue): the namespace lab's layer-4 checks, the
// malformed-frame barrage, a reload, then kill -9 and a restart in copy mode with the
// XDP fast path (XDP_TX on the real driver).
func TestVMLab(t *testing.T) {
	l := newLab(t, Options{Topology: lab.Options{Clients: 40}})
	e := &vmEnv{t: t, l: l, ctx: context.Background()}
	e.startVOS()
	t.Cleanup(func() {
		if t.Failed() {
			if p, err := l.LB.Proc(e.ctx, "medialb"); err == nil {
				t.Logf("medialb (running %v, exit %d), last lines of its log:\n%s", p.Running, p.Code, lastLines(p.Log, 40))
			}
		}
	})
	start := time.Now()
	wantOpen(t, e.startLB(lbConfig(true)), 2, true)
	t.Logf("medialb ready in %s", time.Since(start).Round(time.Second))
	if p, err := l.LB.Proc(e.ctx, "medialb"); err != nil || !strings.Contains(p.Log, "virtio-net in zero-copy mode") {
		t.Errorf("zero-copy on virtio-net: the log does not say the fast path is off and why (%v)", err)
	}
	srcs := e.sources()

	t.Run("l4", func(t *testing.T) {
		s := e.sweep(srcs, l4Targets())
		checkDR(t, "TCP+UDP on 1935, 554, 60000", s, map[string]float64{"HT1": 0.75, "HT2": 0.25}, 0.2)
	})
	t.Run("zero-copy-pipeline", func(t *testing.T) {
		const n = 20
		if d := e.fastPathCheck(srcs[0], n); d < n {
			t.Errorf("the pipeline forwarded %.0f of %d answered frames: the fast path should be off in zero-copy mode", d, n)
		}
	})
	t.Run("health-failover", func(t *testing.T) {
		ht1 := l.Servers[0]
		e.setHealth(ht1, "unhealthy")
		defer e.setHealth(ht1, "healthy")
		deadline := time.Now().Add(30 * time.Second)
		var s probe.Summary
		for time.Now().Before(deadline) {
			time.Sleep(2 * time.Second)
			s = e.sweep(srcs, l4Targets()[:2])
			if s.PerServer["HT1"] == 0 && s.Failed == 0 {
				break
			}
		}
		checkDR(t, "HT1 unhealthy", s, map[string]float64{"HT2": 1}, 0)
	})
	t.Run("malformed-barrage", func(t *testing.T) {
		// Connections of the last sweep may still be closing (FINs through the
		// pipeline): start from a counter that stood still for two seconds.
		before := e.metric("medialb_dataplane_forwarded_packets_total", "")
		for range 10 {
			time.Sleep(2 * time.Second)
			now := e.metric("medialb_dataplane_forwarded_packets_total", "")
			if now == before {
				break
			}
			before = now
		}
		frames := lab.MalformedFrames(l.Client.MAC, l.LB.MAC, srcs[0], vip, netip.MustParseAddr("fd95::1"), netip.MustParseAddr("fd94::110"), 3000)
		sent, err := l.Client.SendFrames(e.ctx, frames)
		if err != nil || sent != len(frames) {
			t.Fatalf("barrage: %d of %d sent: %v", sent, len(frames), err)
		}
		time.Sleep(2 * time.Second)
		if after := e.metric("medialb_dataplane_forwarded_packets_total", ""); after != before {
			t.Errorf("%.0f malformed frames were forwarded", after-before)
		}
		malformed := e.metric("medialb_dataplane_dropped_packets_total", `reason="malformed`)
		if malformed == 0 {
			t.Error("no malformed frame counted by the dataplane: did the barrage reach it?")
		}
		t.Logf("%d frames sent; the dataplane counted %.0f malformed", sent, malformed)
		if p, err := l.LB.Proc(e.ctx, "medialb"); err != nil {
			t.Fatal(err)
		} else if !p.Running {
			t.Fatalf("medialb exited during the barrage:\n%s", lastLines(p.Log, 20))
		}
		checkDR(t, "after the barrage", e.sweep(srcs, l4Targets()[:2]), nil, 0)
	})
	t.Run("reload", func(t *testing.T) {
		// HT1 leaves the service: after SIGHUP every client goes to HT2, medialb and its
		// zero-copy sockets stay.
		if err := l.LB.WriteFile(e.ctx, "/etc/medialb.yaml", []byte(lbConfig(true, "{ name: HT2, address: 192.168.94.116, weight: 100 }"))); err != nil {
			t.Fatal(err)
		}
		if _, err := l.LB.Signal(e.ctx, "medialb", 1, 0); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(30 * time.Second)
		for time.Now().Before(deadline) {
			if p, _ := l.LB.Proc(e.ctx, "medialb"); strings.Contains(p.Log, "configuration reloaded") {
				break
			}
			time.Sleep(time.Second)
		}
		checkDR(t, "after the reload", e.sweep(srcs, l4Targets()[:2]), map[string]float64{"HT2": 1}, 0)
		if p, err := l.LB.Proc(e.ctx, "medialb"); err != nil {
			t.Fatal(err)
		} else if !p.Running || strings.Count(p.Log, "AF_XDP dataplane open") != 1 {
			t.Errorf("the reload restarted medialb or its dataplane (running %v)", p.Running)
		}
	})
	t.Run("kill-9-restart-copy-fastpath", func(t *testing.T) {
		// kill -9 of a zero-copy medialb: the kernel releases its sockets and program (a
		// zero-copy pool left on a queue crashed the guest at the next attach), and the
		// restart (copy mode, fast path on) binds every queue again.
		exited, err := l.LB.Signal(e.ctx, "medialb", 9, 10*time.Second)
		if err != nil || !exited {
			t.Fatalf("kill -9: exited %v, %v", exited, err)
		}
		wantOpen(t, e.startLB(lbConfig(false)), 2, false)
		checkDR(t, "after kill -9 and restart", e.sweep(srcs, l4Targets()), map[string]float64{"HT1": 0.75, "HT2": 0.25}, 0.2)
		const n = 20
		if d := e.fastPathCheck(srcs[1], n); d > 1 {
			t.Errorf("the pipeline forwarded %.0f of %d frames of a decided client: want them on the fast path (XDP_TX on virtio-net)", d, n)
		} else {
			t.Logf("fast path (copy mode): the pipeline forwarded %.0f of the client's next %d frames", d, n)
		}
	})
}
