package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/medialb/medialb/api"
	"github.com/medialb/medialb/lab"
	"github.com/medialb/medialb/lab/lbproc"
	"github.com/medialb/medialb/lab/probe"
)

// hcTrials is the number of failover trials TestHealthFailoverTime runs. The figure in
// BENCHMARKS.md ("## health") comes from:
//
//	go test -count=1 -v -run 'TestHealthFailoverTime' ./e2e/ -e2e.trials=20
var hcTrials = flag.Int("e2e.trials", 2, "trials of TestHealthFailoverTime (20 for the figure in BENCHMARKS.md)")

// The health check every service of these tests uses: VOS's status page, every second,
// down after 3 failures, up after 2 passes, 500 ms timeout (jitter: the default, a tenth
// of the interval).
const (
	hcInterval = time.Second
	hcTimeout  = 500 * time.Millisecond
	hcRise     = 2
	hcFall     = 3
	hcJitter   = hcInterval / 10
	hcCheck    = `{ type: https-get, port: 8443, path: /admin/status, expect: Healthy, interval: 1s, timeout: 500ms, rise: 2, fall: 3 }`
)

// hcConfig: the guide's two VIPs with fast checks, plus an IPv6 twin of the layer-4 VIP.
// The IPv4 layer-4 VIP has a fallback, HM1: a real server that is not in its list but,
// like every real server of the lab, holds the VIPs on lo (direct routing needs that).
// The IPv6 one has none: with all its servers down, new flows are dropped.
var hcConfig = config(
	management().check(hcCheck),
	traffic().check(hcCheck).withFallback("{ address: 192.168.94.105 }"),
	traffic6().check(hcCheck))

// hcTimingConfig is the IPv4 layer-4 VIP alone, for the timing trials.
var hcTimingConfig = config(traffic().check(hcCheck))

const (
	hcL4  = "Harmonic_Traffic"
	hcL46 = "Harmonic_Traffic6"
	hcL7  = "Harmonic_Management"
)

var (
	hcVIP4 = netip.MustParseAddr("192.168.94.110")
	hcVIP6 = netip.MustParseAddr("fd94::110")
	hcVIP7 = netip.MustParseAddr("192.168.94.100")
)

// downBound is how long a failed server may keep new clients: fall failed checks, the
// first of which may come up to an interval (plus jitter) after the failure, and the
// check's own duration.
const hcDownBound = hcFall*(hcInterval+hcJitter) + hcInterval + hcTimeout

// slack absorbs a loaded machine (several lab tests share two cores): the figures go to
// BENCHMARKS.md; the assertions only catch what is clearly wrong.
const hcSlack = 3 * time.Second

func TestHealthChecks(t *testing.T) {
	e := newEnv(t, "hc", lab.Options{Clients: 100})
	e.start(hcConfig)
	e.waitChecked(20 * time.Second)
	(&hc{env: e, t: t}).requireAllUp()
	src := e.lab.Client.Sources4
	udp := netip.AddrPortFrom(hcVIP4, e.lab.MediaPorts[0])

	// Sources are used in disjoint groups, so that "new client" means one the load
	// balancer never saw.
	existing, duringRise, fresh := src[0:30], src[30:35], src[35:55]
	drainExisting, drainFresh := src[35:55], src[55:70]

	t.Run("unhealthy-loses-all-clients", func(t *testing.T) {
		h := &hc{env: e, t: t}
		before := hcServerOf(t, e.lab, existing, l4Targets(hcVIP4, []uint16{e.lab.MediaPorts[0]}))
		onVictim := hcSourcesOn(before, "HT1")
		if len(onVictim) == 0 || len(onVictim) == len(existing) {
			t.Fatalf("clients before: %v; want some on each server", hcCount(before))
		}
		st := hcStartStream(t, e.lab, onVictim, udp, 50*time.Millisecond)
		time.Sleep(300 * time.Millisecond)
		mark := e.proc.Mark()
		t0 := time.Now()
		h.setStatus("HT1", lab.Unhealthy)
		ev := h.waitState(mark, hcL4, "HT1", "down", hcDownBound+hcSlack)
		if !strings.Contains(ev.Str("reason"), `body "Unhealthy", want "Healthy"`) || ev.Str("cause") != "health check" {
			t.Errorf("down event: reason %q, cause %q; want the check's body mismatch, cause \"health check\"", ev.Str("reason"), ev.Str("cause"))
		}
		h.waitState(mark, hcL46, "HT1", "down", hcSlack)
		st.waitMoved(t, "HT1", t0, hcDownBound+hcSlack)
		time.Sleep(500 * time.Millisecond)
		st.stop()
		m := st.moves("HT1", t0)
		t.Logf("HT1 Unhealthy: first client elsewhere after %s, all %d after %s, last answer from HT1 %s after (bound interval*fall+interval = %s)",
			hcMS(m.first), len(onVictim), hcMS(m.all), hcMS(m.lastVictim), hcInterval*(hcFall+1))
		if m.all > hcDownBound+hcSlack {
			t.Errorf("HT1's clients moved %s after it failed; want within %s", m.all, hcDownBound)
		}
		if m.lastVictim > m.all+500*time.Millisecond {
			t.Errorf("HT1 still answered %s after the failure, %s after every client had moved", m.lastVictim, m.lastVictim-m.all)
		}
		// Persistent clients too: every flow of every former HT1 client, TCP and UDP,
		// now ends on HT2; HT2's clients stay.
		after := hcServerOf(t, e.lab, existing, l4Targets(hcVIP4, []uint16{e.lab.MediaPorts[0], e.lab.MediaPorts[1]}))
		for s, was := range before {
			if after[s] != "HT2" {
				t.Errorf("client %s (was on %s) now on %q, want HT2", s, was, after[s])
			}
		}
		// Logged once: further failed checks add no state event.
		time.Sleep(2 * hcInterval)
		if n := h.countStates(mark, hcL4, "HT1"); n != 1 {
			t.Errorf("%d state events for %s/HT1 after one failure, want 1:\n%s", n, hcL4, h.stateLog(mark))
		}
		ov := h.overview()
		if got := hcRealServer(ov, hcL4, "HT1"); got.State != "down" || got.Health != "down" {
			t.Errorf("overview: HT1 state %q health %q, want down/down", got.State, got.Health)
		}
		if got := hcService(ov, hcL4).State; got != api.ServiceDegraded {
			t.Errorf("overview: %s state %q, want %q", hcL4, got, api.ServiceDegraded)
		}
	})

	t.Run("healthy-again-after-rise", func(t *testing.T) {
		h := &hc{env: e, t: t}
		if err := e.lab.ResetStats("HT1"); err != nil {
			t.Fatal(err)
		}
		mark := e.proc.Mark()
		t0 := time.Now()
		h.setStatus("HT1", lab.Healthy)
		// Until rise checks passed, new clients still all go to HT2.
		rs := probe.Sweep(context.Background(), e.lab, duringRise, []probe.Target{{Proto: "udp", Addr: udp}}, 8)
		if h.countStates(mark, hcL4, "HT1") == 0 {
			for _, r := range rs {
				if r.Err != nil || r.Reply.Server != "HT2" {
					t.Errorf("new client %s right after HT1 recovered (before rise): %q %v, want HT2", r.Src, r.Reply.Server, r.Err)
				}
			}
		}
		ev := h.waitState(mark, hcL4, "HT1", "online", hcRise*(hcInterval+hcJitter)+hcInterval+hcSlack)
		took := time.Since(t0)
		st, err := e.lab.Stats("HT1")
		if err != nil {
			t.Fatal(err)
		}
		checks := st.Ports["https/8443"][e.lab.LBs[0].Addr4.String()].Packets
		t.Logf("HT1 online %s after it recovered, after %d checks from the load balancer (rise %d); reason %q", hcMS(took), checks, hcRise, ev.Str("reason"))
		// A check that started just before the switch may still have seen Unhealthy.
		if checks < hcRise || checks > hcRise+1 {
			t.Errorf("HT1 came back after %d checks, want %d (rise), or one more for a check under way", checks, hcRise)
		}
		if took < (hcRise-1)*hcInterval-hcJitter {
			t.Errorf("HT1 came back %s after it recovered; rise %d at %s cannot be that fast", took, hcRise, hcInterval)
		}
		// New clients reach it again; former clients stay where persistence put them.
		got := hcServerOf(t, e.lab, fresh, []probe.Target{{Proto: "udp", Addr: udp}, {Proto: "tcp", Addr: netip.AddrPortFrom(hcVIP4, 1935)}})
		if c := hcCount(got); c["HT1"] == 0 || c["HT2"] == 0 {
			t.Errorf("new clients after HT1 came back: %v; want both servers", c)
		}
		for s, srv := range hcServerOf(t, e.lab, existing, []probe.Target{{Proto: "udp", Addr: udp}}) {
			if srv != "HT2" {
				t.Errorf("client %s moved back to %s; persistence should keep it on HT2", s, srv)
			}
		}
		h.waitState(mark, hcL46, "HT1", "online", hcSlack)
	})

	t.Run("hang-is-down-after-timeout", func(t *testing.T) {
		h := &hc{env: e, t: t}
		mark := e.proc.Mark()
		t0 := time.Now()
		h.setStatus("HT2", lab.Hang)
		ev := h.waitState(mark, hcL4, "HT2", "down", hcDownBound+hcSlack)
		took := time.Since(t0)
		want := fmt.Sprintf("timeout after %s", hcTimeout)
		t.Logf("HT2 hanging: down %s after, reason %q", hcMS(took), ev.Str("reason"))
		if !strings.Contains(ev.Str("reason"), want) {
			t.Errorf("reason %q, want it to say %q", ev.Str("reason"), want)
		}
		if took < (hcFall-1)*hcInterval {
			t.Errorf("down %s after hanging: fall %d at %s cannot be that fast", took, hcFall, hcInterval)
		}
		h.waitState(mark, hcL46, "HT2", "down", hcSlack)
		// While it hangs, it gets nothing.
		for s, srv := range hcServerOf(t, e.lab, existing[:10], []probe.Target{{Proto: "udp", Addr: udp}}) {
			if srv != "HT1" {
				t.Errorf("client %s on %s while HT2 hangs", s, srv)
			}
		}
		mark = e.proc.Mark()
		h.setStatus("HT2", lab.Healthy)
		h.waitState(mark, hcL4, "HT2", "online", hcRise*(hcInterval+hcJitter)+hcInterval+hcSlack)
		h.waitState(mark, hcL46, "HT2", "online", hcSlack)
	})

	t.Run("drain-and-halt", func(t *testing.T) {
		h := &hc{env: e, t: t}
		targets := []probe.Target{{Proto: "udp", Addr: udp}, {Proto: "tcp", Addr: netip.AddrPortFrom(hcVIP4, 554)}}
		before := hcServerOf(t, e.lab, drainExisting, targets)
		onHT1 := hcSourcesOn(before, "HT1")
		if len(onHT1) == 0 {
			t.Fatalf("no client on HT1 to drain: %v", hcCount(before))
		}
		// An established media connection through the VIP to HT1.
		held := hcDialLine(t, e.lab, onHT1[0], netip.AddrPortFrom(hcVIP4, 1935))
		if srv, err := held.ask(); err != nil || srv != "HT1" {
			t.Fatalf("held connection from %s: %q %v, want HT1", onHT1[0], srv, err)
		}

		mark := e.proc.Mark()
		h.admin(hcL4, "HT1", "drain")
		ev := h.waitState(mark, hcL4, "HT1", "drain", hcSlack)
		if ev.Str("reason") != "drained by operator" || ev.Str("cause") != "operator set drain" {
			t.Errorf("drain event: reason %q cause %q", ev.Str("reason"), ev.Str("cause"))
		}
		// Persistent clients and the established connection stay; new clients do not come.
		for s, srv := range hcServerOf(t, e.lab, onHT1, targets) {
			if srv != "HT1" {
				t.Errorf("drain: persistent client %s moved to %s, want it kept on HT1", s, srv)
			}
		}
		if srv, err := held.ask(); err != nil || srv != "HT1" {
			t.Errorf("drain: established connection: %q %v, want it kept on HT1", srv, err)
		}
		if c := hcCount(hcServerOf(t, e.lab, drainFresh, targets)); c["HT1"] != 0 {
			t.Errorf("drain: new clients %v; want none on HT1", c)
		}
		if got := hcRealServer(h.overview(), hcL4, "HT1"); got.State != "drain" {
			t.Errorf("overview: HT1 state %q, want drain", got.State)
		}

		mark = e.proc.Mark()
		h.admin(hcL4, "HT1", "halt")
		ev = h.waitState(mark, hcL4, "HT1", "halt", hcSlack)
		if ev.Str("reason") != "halted by operator" {
			t.Errorf("halt event: reason %q", ev.Str("reason"))
		}
		// At once: no waiting for a check.
		for s, srv := range hcServerOf(t, e.lab, onHT1, targets) {
			if srv != "HT2" {
				t.Errorf("halt: client %s on %s, want moved to HT2 at once", s, srv)
			}
		}
		srv, err := held.ask()
		t.Logf("halt: the established connection now gets %q %v (its packets go to HT2, which has no such connection)", srv, err)
		if err == nil && srv == "HT1" {
			t.Errorf("halt: the established connection still reaches HT1")
		}

		mark = e.proc.Mark()
		h.admin(hcL4, "HT1", "online")
		h.waitState(mark, hcL4, "HT1", "online", hcSlack)
		for s, srv := range hcServerOf(t, e.lab, onHT1, targets) {
			if srv != "HT2" {
				t.Errorf("online again: client %s went back to %s; persistence keeps it on HT2", s, srv)
			}
		}
		if n := h.countStates(mark, hcL4, "HT1"); n != 1 {
			t.Errorf("%d state events after one online, want 1:\n%s", n, h.stateLog(mark))
		}
	})

	t.Run("all-down", func(t *testing.T) {
		h := &hc{env: e, t: t}
		before := h.metricNoServer()
		mark := e.proc.Mark()
		h.setStatus("HT1", lab.Unhealthy)
		h.setStatus("HT2", lab.Unhealthy)
		for _, svc := range []string{hcL4, hcL46} {
			for _, srv := range []string{"HT1", "HT2"} {
				h.waitState(mark, svc, srv, "down", hcDownBound+hcSlack)
			}
		}
		fb := h.waitMsg(mark, hcL4, "no real server available: new clients go to the fallback server", hcSlack)
		if fb.Str("fallback") != "192.168.94.105" {
			t.Errorf("fallback event names %q, want 192.168.94.105", fb.Str("fallback"))
		}
		h.waitMsg(mark, hcL46, "no real server available: new flows are dropped", hcSlack)

		// IPv4: everything goes to the fallback, HM1, which sees the client's own address.
		targets := l4Targets(hcVIP4, []uint16{e.lab.MediaPorts[0]})
		rs := probe.Sweep(context.Background(), e.lab, existing[:20], targets, 16)
		sum := probe.Summarize(rs)
		if sum.Failed > 0 || sum.PerServer["HM1"] != len(rs) || sum.SawClient != len(rs) {
			t.Errorf("all down with a fallback: %d answers %v (saw client %d), %d failed %v; want all from HM1", sum.Answered, sum.PerServer, sum.SawClient, sum.Failed, sum.Errors)
		}
		// IPv6: no fallback, nothing answers, and the drops are counted.
		rs6 := probe.Sweep(context.Background(), e.lab, e.lab.Client.Sources6[:8], l4Targets(hcVIP6, []uint16{e.lab.MediaPorts[0]}), 32)
		if sum6 := probe.Summarize(rs6); sum6.Answered > 0 {
			t.Errorf("all down without a fallback: %d answers %v, want none", sum6.Answered, sum6.PerServer)
		}
		after := h.metricNoServer()
		// UDP probes send 3 datagrams, TCP ones a SYN and its retries.
		t.Logf("no_server drops: %v -> %v", before, after)
		if after-before < float64(len(rs6)) {
			t.Errorf("no_server counter grew by %v for %d dropped flows", after-before, len(rs6))
		}
		ov := h.overview()
		if s := hcService(ov, hcL4).State; s != "fallback" {
			t.Errorf("overview: %s state %q, want fallback", hcL4, s)
		}
		if s := hcService(ov, hcL46).State; s != api.ServiceDown {
			t.Errorf("overview: %s state %q, want down", hcL46, s)
		}
		time.Sleep(2 * hcInterval)
		for _, svc := range []string{hcL4, hcL46} {
			if n := h.countMsgPrefix(mark, svc, "no real server available"); n != 1 {
				t.Errorf("%s: %d \"no real server available\" events, want 1:\n%s", svc, n, h.stateLog(mark))
			}
		}

		mark = e.proc.Mark()
		h.setStatus("HT1", lab.Healthy)
		h.setStatus("HT2", lab.Healthy)
		for _, svc := range []string{hcL4, hcL46} {
			h.waitMsg(mark, svc, "virtual service has real servers again", hcRise*(hcInterval+hcJitter)+hcInterval+hcSlack)
		}
		for _, svc := range []string{hcL4, hcL46} {
			for _, srv := range []string{"HT1", "HT2"} {
				h.waitState(mark, svc, srv, "online", hcSlack)
			}
		}
		sum = probe.Summarize(probe.Sweep(context.Background(), e.lab, e.lab.Client.Sources6[:8], l4Targets(hcVIP6, []uint16{e.lab.MediaPorts[0]}), 32))
		if sum.Failed > 0 || sum.PerServer["HT1"]+sum.PerServer["HT2"] != sum.Answered {
			t.Errorf("IPv6 after the servers came back: %v, %d failed %v", sum.PerServer, sum.Failed, sum.Errors)
		}
	})

	t.Run("l7-down-closes-drain-keeps", func(t *testing.T) {
		h := &hc{env: e, t: t}
		vipPort := netip.AddrPortFrom(hcVIP7, 8080)
		next := 0
		// onServer returns a source (not used on the L7 VIP yet) that the proxy sends to srv.
		onServer := func(srv string) netip.Addr {
			t.Helper()
			for ; next < len(src); next++ {
				r, err := probe.One(context.Background(), e.lab, src[next], probe.Target{Proto: "http", Addr: vipPort})
				if err == nil && r.Server == srv {
					next++
					return src[next-1]
				}
			}
			t.Fatalf("no client source lands on %s", srv)
			return netip.Addr{}
		}
		a := onServer("HM1")
		conn := hcDialHTTP(t, e.lab, a, vipPort)
		if srv, err := conn.get(); err != nil || srv != "HM1" {
			t.Fatalf("held connection: %q %v, want HM1", srv, err)
		}

		mark := e.proc.Mark()
		h.admin(hcL7, "HM1", "drain")
		h.waitState(mark, hcL7, "HM1", "drain", hcSlack)
		time.Sleep(300 * time.Millisecond)
		if srv, err := conn.get(); err != nil || srv != "HM1" {
			t.Errorf("drain: established connection: %q %v, want it kept on HM1", srv, err)
		}
		if r, err := probe.One(context.Background(), e.lab, a, probe.Target{Proto: "http", Addr: vipPort}); err != nil || r.Server != "HM1" {
			t.Errorf("drain: new connection of a persistent client: %q %v, want HM1", r.Server, err)
		}
		for i := 0; i < 5 && next < len(src); i, next = i+1, next+1 {
			if r, err := probe.One(context.Background(), e.lab, src[next], probe.Target{Proto: "http", Addr: vipPort}); err != nil || r.Server != "HM2" {
				t.Errorf("drain: new client %s: %q %v, want HM2", src[next], r.Server, err)
			}
		}
		mark = e.proc.Mark()
		h.admin(hcL7, "HM1", "online")
		h.waitState(mark, hcL7, "HM1", "online", hcSlack)

		// Down: the established connection is closed, the client's next one goes to HM2.
		mark = e.proc.Mark()
		h.setStatus("HM1", lab.Unhealthy)
		h.waitState(mark, hcL7, "HM1", "down", hcDownBound+hcSlack)
		closed := h.waitMsg(mark, hcL7, "closed established connections", hcSlack)
		if !conn.closedWithin(hcSlack) {
			t.Errorf("down: the established connection to HM1 is still open")
		}
		t.Logf("down: medialb closed %v connection(s) of HM1", closed["connections"])
		if r, err := probe.One(context.Background(), e.lab, a, probe.Target{Proto: "http", Addr: vipPort}); err != nil || r.Server != "HM2" {
			t.Errorf("down: the client's new connection: %q %v, want HM2", r.Server, err)
		}
		mark = e.proc.Mark()
		h.setStatus("HM1", lab.Healthy)
		h.waitState(mark, hcL7, "HM1", "online", hcRise*(hcInterval+hcJitter)+hcInterval+hcSlack)

		// Halt: closed at once too.
		b := onServer("HM1")
		conn = hcDialHTTP(t, e.lab, b, vipPort)
		if srv, err := conn.get(); err != nil || srv != "HM1" {
			t.Fatalf("held connection: %q %v, want HM1", srv, err)
		}
		mark = e.proc.Mark()
		h.admin(hcL7, "HM1", "halt")
		h.waitState(mark, hcL7, "HM1", "halt", hcSlack)
		if !conn.closedWithin(hcSlack) {
			t.Errorf("halt: the established connection to HM1 is still open")
		}
		mark = e.proc.Mark()
		h.admin(hcL7, "HM1", "online")
		h.waitState(mark, hcL7, "HM1", "online", hcSlack)
	})

	// At exit, the dataplane counters count the flows dropped for want of a server.
	mark := e.proc.Mark()
	if err := e.proc.Stop(15 * time.Second); err != nil {
		t.Errorf("medialb exit: %v", err)
	}
	ev, err := e.proc.WaitFor(context.Background(), mark, 5*time.Second, "dataplane counters", func(ev lbproc.Event) bool {
		return ev.Msg() == "dataplane counters"
	})
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := ev["no_server"].(float64); n == 0 {
		t.Errorf("dataplane counters at exit: %v; want no_server > 0", ev)
	} else {
		t.Logf("dataplane counters at exit: no_server=%v", n)
	}
}

// TestHealthFailoverTime measures how long a failed server keeps receiving new flows:
// from lab.SetStatus(Unhealthy) to the moment every client that was on it gets its
// answers from the other server. Clients probe continuously (UDP, every 50 ms). Each
// trial fails one server (alternately HT1 and HT2, so that every client is on the
// victim), waits for the move, and brings the server back. Run 20 trials for the figure
// in BENCHMARKS.md with -e2e.trials=20.
func TestHealthFailoverTime(t *testing.T) {
	trials := *hcTrials
	if trials <= 0 {
		t.Skip("-e2e.trials=0")
	}
	e := newEnv(t, "hc", lab.Options{Clients: 20, NoIPv6: true})
	e.start(hcTimingConfig)
	e.waitChecked(20 * time.Second)
	h := &hc{env: e, t: t}
	h.requireAllUp()
	srcs := e.lab.Client.Sources4
	udp := netip.AddrPortFrom(hcVIP4, e.lab.MediaPorts[0])

	var first, all, last []time.Duration
	for i := 0; i < trials; i++ {
		now := hcServerOf(t, e.lab, srcs, []probe.Target{{Proto: "udp", Addr: udp}})
		c := hcCount(now)
		victim := "HT1"
		if c["HT2"] > c["HT1"] {
			victim = "HT2"
		}
		clients := hcSourcesOn(now, victim)
		st := hcStartStream(t, e.lab, clients, udp, 50*time.Millisecond)
		// A random phase against the checks' schedule.
		time.Sleep(300*time.Millisecond + rand.N(hcInterval))
		mark := e.proc.Mark()
		t0 := time.Now()
		h.setStatus(victim, lab.Unhealthy)
		st.waitMoved(t, victim, t0, hcDownBound+hcSlack)
		time.Sleep(300 * time.Millisecond)
		st.stop()
		m := st.moves(victim, t0)
		h.waitState(mark, hcL4, victim, "down", hcSlack)
		t.Logf("trial %2d: %s failed; %2d clients; first moved %s, all moved %s, last answer from %s %s",
			i+1, victim, len(clients), hcMS(m.first), hcMS(m.all), victim, hcMS(m.lastVictim))
		first, all, last = append(first, m.first), append(all, m.all), append(last, m.lastVictim)
		mark = e.proc.Mark()
		h.setStatus(victim, lab.Healthy)
		h.waitState(mark, hcL4, victim, "online", hcRise*(hcInterval+hcJitter)+hcInterval+hcSlack)
	}
	goal := hcFall*hcInterval + 500*time.Millisecond
	t.Logf("failover over %d trials (interval %s, fall %d, timeout %s, jitter %s; goal <= %s):", trials, hcInterval, hcFall, hcTimeout, hcJitter, goal)
	t.Logf("  first client moved: median %s, max %s", hcMS(hcMedian(first)), hcMS(slices.Max(first)))
	t.Logf("  all clients moved:  median %s, max %s", hcMS(hcMedian(all)), hcMS(slices.Max(all)))
	t.Logf("  last answer from the failed server: median %s, max %s", hcMS(hcMedian(last)), hcMS(slices.Max(last)))
	if mx := slices.Max(all); mx > hcDownBound+hcSlack {
		t.Errorf("a failed server kept clients %s; want within %s", mx, hcDownBound)
	}
}

// hc holds the helpers of the health tests.
type hc struct {
	*env
	t *testing.T
}

func (h *hc) setStatus(server string, m lab.Mode) {
	h.t.Helper()
	if err := h.lab.SetStatus(server, m); err != nil {
		h.t.Fatal(err)
	}
}

// admin sets an operator state through the REST API.
func (h *hc) admin(svc, server, state string) {
	h.t.Helper()
	code, body, err := h.proc.API(context.Background(), "POST", "9443",
		"/api/v1/services/"+svc+"/real-servers/"+server+"/"+state, "loadbalancer", "loadbalancer")
	if err != nil || code != http.StatusOK {
		h.t.Fatalf("POST %s %s/%s: %d %v %s", state, svc, server, code, err, body)
	}
}

func (h *hc) overview() api.Overview {
	h.t.Helper()
	code, body, err := h.proc.API(context.Background(), "GET", "9443", "/api/v1/overview", "loadbalancer", "loadbalancer")
	if err != nil || code != http.StatusOK {
		h.t.Fatalf("GET overview: %d %v", code, err)
	}
	var ov api.Overview
	if err := json.Unmarshal(body, &ov); err != nil {
		h.t.Fatalf("decode overview: %v\n%s", err, body)
	}
	return ov
}

// requireAllUp fails the test unless every real server passed its first check: the
// tests below assume healthy servers at the start.
func (h *hc) requireAllUp() {
	h.t.Helper()
	for _, s := range h.overview().Services {
		for _, r := range s.RealServers {
			if r.Health != "up" || r.State != "online" {
				h.t.Fatalf("at start %s/%s is %s, health %s: %s", s.Name, r.Name, r.State, r.Health, r.HealthReason)
			}
		}
	}
}

func hcService(ov api.Overview, name string) api.Service {
	for _, s := range ov.Services {
		if s.Name == name {
			return s
		}
	}
	return api.Service{}
}

func hcRealServer(ov api.Overview, svc, server string) api.RealServer {
	for _, r := range hcService(ov, svc).RealServers {
		if r.Name == server {
			return r
		}
	}
	return api.RealServer{}
}

func (h *hc) metricNoServer() float64 {
	return metricLabel(h.t, h.env, "medialb_dataplane_dropped_packets_total", `reason="no_server"`)
}

func hcIsState(ev lbproc.Event, svc, server string) bool {
	return ev.Msg() == "real server state" && ev.Str("service") == svc && ev.Str("server") == server
}

// waitState waits for the state event of svc/server after mark, which must say state.
func (h *hc) waitState(mark int, svc, server, state string, timeout time.Duration) lbproc.Event {
	h.t.Helper()
	ev, err := h.proc.WaitFor(context.Background(), mark, timeout, svc+"/"+server+" "+state, func(ev lbproc.Event) bool {
		return hcIsState(ev, svc, server) && ev.Str("state") == state
	})
	if err != nil {
		h.t.Fatalf("%v\nstate events since:\n%s", err, h.stateLog(mark))
	}
	return ev
}

// waitMsg waits for an event with message msg about service svc after mark.
func (h *hc) waitMsg(mark int, svc, msg string, timeout time.Duration) lbproc.Event {
	h.t.Helper()
	ev, err := h.proc.WaitFor(context.Background(), mark, timeout, svc+": "+msg, func(ev lbproc.Event) bool {
		return ev.Msg() == msg && ev.Str("service") == svc
	})
	if err != nil {
		h.t.Fatalf("%v\nstate events since:\n%s", err, h.stateLog(mark))
	}
	return ev
}

func (h *hc) countStates(mark int, svc, server string) int {
	n := 0
	for _, ev := range h.proc.Events()[mark:] {
		if hcIsState(ev, svc, server) {
			n++
		}
	}
	return n
}

func (h *hc) countMsgPrefix(mark int, svc, prefix string) int {
	n := 0
	for _, ev := range h.proc.Events()[mark:] {
		if strings.HasPrefix(ev.Msg(), prefix) && ev.Str("service") == svc {
			n++
		}
	}
	return n
}

// stateLog lists the events about services since mark, for failure messages.
func (h *hc) stateLog(mark int) string {
	var b strings.Builder
	for _, ev := range h.proc.Events()[mark:] {
		if ev.Str("service") != "" {
			fmt.Fprintf(&b, "  %s %s/%s state=%s reason=%q cause=%q\n", ev.Msg(), ev.Str("service"), ev.Str("server"), ev.Str("state"), ev.Str("reason"), ev.Str("cause"))
		}
	}
	return b.String()
}

// hcServerOf probes every target from every source and returns the server each source
// reached; the test fails if a probe fails or a source reaches two servers.
func hcServerOf(t *testing.T, l *lab.Lab, srcs []netip.Addr, targets []probe.Target) map[netip.Addr]string {
	t.Helper()
	m := map[netip.Addr]string{}
	for _, r := range probe.Sweep(context.Background(), l, srcs, targets, 16) {
		if r.Err != nil {
			t.Errorf("probe %s from %s: %v", r.Target, r.Src, r.Err)
			continue
		}
		if was, ok := m[r.Src]; ok && was != r.Reply.Server {
			t.Errorf("client %s reached %s and %s", r.Src, was, r.Reply.Server)
		}
		m[r.Src] = r.Reply.Server
	}
	return m
}

func hcSourcesOn(m map[netip.Addr]string, server string) []netip.Addr {
	var out []netip.Addr
	for s, srv := range m {
		if srv == server {
			out = append(out, s)
		}
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}

func hcCount(m map[netip.Addr]string) map[string]int {
	c := map[string]int{}
	for _, srv := range m {
		c[srv]++
	}
	return c
}

// hcStream sends a UDP datagram every interval from each source (one socket each, so one
// flow each) and records which server answered, and when the answer arrived.
type hcStream struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
	mu     sync.Mutex
	got    map[netip.Addr][]hcSample
	srcs   []netip.Addr
}

type hcSample struct {
	at     time.Time
	server string
}

func hcStartStream(t *testing.T, l *lab.Lab, srcs []netip.Addr, dst netip.AddrPort, every time.Duration) *hcStream {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s := &hcStream{cancel: cancel, got: map[netip.Addr][]hcSample{}, srcs: srcs}
	t.Cleanup(s.stop)
	for _, src := range srcs {
		c, err := l.ListenUDP(netip.AddrPortFrom(src, 0))
		if err != nil {
			t.Fatal(err)
		}
		s.wg.Go(func() {
			buf := make([]byte, 512)
			for {
				n, _, err := c.ReadFromUDPAddrPort(buf)
				if err != nil {
					return // closed by the sender
				}
				at := time.Now()
				if r, err := probe.Parse(strings.TrimSpace(string(buf[:n]))); err == nil {
					s.mu.Lock()
					s.got[src] = append(s.got[src], hcSample{at, r.Server})
					s.mu.Unlock()
				}
			}
		})
		s.wg.Go(func() {
			defer c.Close()
			msg := []byte("probe from " + src.String() + "\n")
			// Spread the sources over the interval.
			select {
			case <-ctx.Done():
				return
			case <-time.After(rand.N(every)):
			}
			tk := time.NewTicker(every)
			defer tk.Stop()
			for {
				c.WriteToUDPAddrPort(msg, dst) //nolint:errcheck // a lost datagram is a missing sample
				select {
				case <-ctx.Done():
					return
				case <-tk.C:
				}
			}
		})
	}
	return s
}

func (s *hcStream) stop() {
	s.cancel()
	s.wg.Wait()
}

// hcMoved is what an hcStream saw after a server failed at t0.
type hcMoved struct {
	first, all time.Duration // first answer from elsewhere: earliest source, latest source
	lastVictim time.Duration // the last answer from the failed server
	unmoved    []netip.Addr  // sources with no answer from elsewhere yet
}

func (s *hcStream) moves(victim string, t0 time.Time) hcMoved {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := hcMoved{first: -1, all: -1, lastVictim: -1}
	for _, src := range s.srcs {
		moveAt := time.Duration(-1)
		for _, x := range s.got[src] {
			d := x.at.Sub(t0)
			if x.server == victim {
				m.lastVictim = max(m.lastVictim, d)
			} else if d >= 0 && moveAt < 0 {
				moveAt = d
			}
		}
		if moveAt < 0 {
			m.unmoved = append(m.unmoved, src)
			continue
		}
		if m.first < 0 || moveAt < m.first {
			m.first = moveAt
		}
		m.all = max(m.all, moveAt)
	}
	return m
}

// waitMoved waits until every source got an answer from another server than victim.
func (s *hcStream) waitMoved(t *testing.T, victim string, t0 time.Time, timeout time.Duration) hcMoved {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		m := s.moves(victim, t0)
		if len(m.unmoved) == 0 {
			return m
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d clients of %s got no answer from another server within %s of its failure: %v",
				len(m.unmoved), len(s.srcs), victim, timeout, m.unmoved)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func hcMedian(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func hcMS(d time.Duration) string { return d.Round(time.Millisecond).String() }

// hcLine is a TCP media connection held open: each line sent is answered by the
// server with "server=NAME client=...".
type hcLine struct {
	c *net.TCPConn
	r *bufio.Reader
}

func hcDialLine(t *testing.T, l *lab.Lab, src netip.Addr, dst netip.AddrPort) *hcLine {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), probe.Timeout)
	defer cancel()
	c, err := l.DialTCP(ctx, src, dst)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &hcLine{c: c, r: bufio.NewReader(c)}
}

func (lc *hcLine) ask() (string, error) {
	lc.c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := io.WriteString(lc.c, "still there?\n"); err != nil {
		return "", err
	}
	line, err := lc.r.ReadString('\n')
	if err != nil {
		return "", err
	}
	r, err := probe.Parse(strings.TrimSpace(line))
	return r.Server, err
}

// hcHTTP is an HTTP/1.1 keep-alive connection through the layer-7 VIP.
type hcHTTP struct {
	c *net.TCPConn
	r *bufio.Reader
}

func hcDialHTTP(t *testing.T, l *lab.Lab, src netip.Addr, dst netip.AddrPort) *hcHTTP {
	lc := hcDialLine(t, l, src, dst)
	return &hcHTTP{c: lc.c, r: lc.r}
}

// get sends GET / on the held connection and returns the server that answered.
func (c *hcHTTP) get() (string, error) {
	c.c.SetDeadline(time.Now().Add(3 * time.Second))
	if _, err := io.WriteString(c.c, "GET / HTTP/1.1\r\nHost: vip\r\n\r\n"); err != nil {
		return "", err
	}
	resp, err := http.ReadResponse(c.r, nil)
	if err != nil {
		return "", err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return "", err
	}
	r, err := probe.Parse(strings.TrimSpace(string(body)))
	return r.Server, err
}

// closedWithin tells whether the peer closes the connection within d (a read sees EOF
// or a reset), without sending anything on it.
func (c *hcHTTP) closedWithin(d time.Duration) bool {
	c.c.SetReadDeadline(time.Now().Add(d))
	_, err := c.r.ReadByte()
	if err == nil {
		return false
	}
	var ne net.Error
	return !(errors.As(err, &ne) && ne.Timeout())
}
