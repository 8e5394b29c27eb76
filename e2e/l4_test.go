package e2e

import (
	"context"
	"net/netip"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/medialb/medialb/lab"
	"github.com/medialb/medialb/lab/probe"
)

// l4Config is the guide's Harmonic_Traffic VIP, in IPv4 and IPv6, with HT1 weighted
// three times HT2, and health checks that never fail here (tcp-connect to 8443).
var l4Config = config(
	traffic().withServers("{ name: HT1, address: 192.168.94.115, weight: 300 }", "{ name: HT2, address: 192.168.94.116, weight: 100 }"),
	traffic6())

func l4Targets(vip netip.Addr, udpPorts []uint16) []probe.Target {
	ts := []probe.Target{
		{Proto: "tcp", Addr: netip.AddrPortFrom(vip, 1935)},
		{Proto: "tcp", Addr: netip.AddrPortFrom(vip, 554)},
	}
	for _, p := range udpPorts {
		ts = append(ts, probe.Target{Proto: "udp", Addr: netip.AddrPortFrom(vip, p)})
	}
	return ts
}

// checkDR asserts what direct routing promises, from the client side.
func checkDR(t *testing.T, what string, rs []probe.Result, wantShare map[string]float64) {
	t.Helper()
	sum := probe.Summarize(rs)
	if sum.Failed > 0 {
		t.Errorf("%s: %d of %d probes failed: %v", what, sum.Failed, len(rs), sum.Errors)
	}
	if sum.SawClient != sum.Answered {
		t.Errorf("%s: %d answers saw another address than the client's own: %v", what, sum.Answered-sum.SawClient, sum.SawOther)
	}
	if len(sum.Split) > 0 {
		t.Errorf("%s: %d clients reached different servers on different ports/protocols: %v", what, len(sum.Split), sum.Split)
	}
	clients := 0
	for _, n := range sum.ClientsOf {
		clients += n
	}
	for name, share := range wantShare {
		got := float64(sum.ClientsOf[name]) / float64(max(clients, 1))
		// 100 clients: a binomial share wanders by a few points; 0.15 is far outside chance.
		if got < share-0.15 || got > share+0.15 {
			t.Errorf("%s: %s took %.2f of clients, want about %.2f (weights)", what, name, got, share)
		}
	}
	t.Logf("%s: %d answers, clients per server %v", what, sum.Answered, sum.ClientsOf)
}

func TestL4DirectRouting(t *testing.T) {
	e := newEnv(t, "l4", lab.Options{Clients: 100})
	e.start(l4Config)
	e.waitChecked(15 * time.Second)
	ctx := context.Background()
	udp := []uint16{e.lab.MediaPorts[0], e.lab.MediaPorts[len(e.lab.MediaPorts)-1]}

	t.Run("ipv4", func(t *testing.T) {
		rs := probe.Sweep(ctx, e.lab, e.lab.Client.Sources4, l4Targets(netip.MustParseAddr("192.168.94.110"), udp), 32)
		checkDR(t, "IPv4 VIP", rs, map[string]float64{"HT1": 0.75, "HT2": 0.25})
	})
	t.Run("ipv6", func(t *testing.T) {
		rs := probe.Sweep(ctx, e.lab, e.lab.Client.Sources6, l4Targets(netip.MustParseAddr("fd94::110"), udp), 32)
		checkDR(t, "IPv6 VIP", rs, map[string]float64{"HT1": 0.5, "HT2": 0.5})
	})
	t.Run("kernel-answers-the-rest", func(t *testing.T) {
		for _, vip := range []string{"192.168.94.110", "fd94::110"} {
			start := time.Now()
			out, err := lab.Exec(e.lab.Client.NS, "ping", "-c", "1", "-W", "2", vip).CombinedOutput()
			if err != nil {
				t.Errorf("ping %s (the load balancer's kernel should answer): %v\n%s", vip, err, out)
			}
			// A port outside the VIP's ports: the load balancer's kernel refuses at once.
			c, err := e.lab.DialTCP(ctx, e.lab.Client.Sources4[0], netip.AddrPortFrom(netip.MustParseAddr("192.168.94.110"), 1936))
			if err == nil {
				c.Close()
				t.Errorf("port 1936 accepted a connection; nothing listens there")
			} else if !strings.Contains(err.Error(), "refused") {
				t.Errorf("port 1936: %v, want connection refused at once (not black-holed)", err)
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("ping and refused connect to %s took %s: black-holed?", vip, d)
			}
		}
	})
}

func TestL4MalformedBarrage(t *testing.T) {
	e := newEnv(t, "l4m", lab.Options{Clients: 20})
	e.start(l4Config)
	e.waitChecked(15 * time.Second)
	ctx := context.Background()
	vip := netip.MustParseAddr("192.168.94.110")
	targets := l4Targets(vip, []uint16{e.lab.MediaPorts[0]})
	checkDR(t, "before", probe.Sweep(ctx, e.lab, e.lab.Client.Sources4, targets, 16), nil)

	before := metric(t, e, "medialb_dataplane_forwarded_packets_total")
	frames := lab.MalformedFrames(e.lab.Client.MAC, e.lab.LBs[0].MAC, e.lab.Client.Sources4[0], vip, netip.MustParseAddr("fd95::1"), netip.MustParseAddr("fd94::110"), 3000)
	if err := sendRaw(e.lab.Client.NS, e.lab.Client.Link, frames); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	after := metric(t, e, "medialb_dataplane_forwarded_packets_total")
	if after != before {
		t.Errorf("%d malformed frames were forwarded (forwarded counter %v -> %v)", int(after-before), before, after)
	}
	if done, err := e.proc.Exited(); done {
		t.Fatalf("medialb exited during the barrage: %v", err)
	}
	checkDR(t, "after", probe.Sweep(ctx, e.lab, e.lab.Client.Sources4, targets, 16), nil)
	malformed := 0.0
	for _, r := range []string{"malformed_ethernet", "malformed_ipv4", "malformed_ipv6", "malformed_l4"} {
		n := metricLabel(t, e, "medialb_dataplane_dropped_packets_total", `reason="`+r+`"`)
		t.Logf("%s: %.0f", r, n)
		// Broken IPv4 headers must reach the dataplane: a bridge with br_netfilter's
		// hooks on drops them on the way (lab.PlainSwitch), and the test would judge
		// only IPv6 and VLAN frames.
		if r == "malformed_ipv4" && n == 0 {
			t.Error("no malformed IPv4 frame counted: did the barrage's IPv4 frames reach the load balancer?")
		}
		malformed += n
	}
	t.Logf("%d frames sent; the dataplane counted %.0f malformed (the rest the XDP program passed to the kernel)", len(frames), malformed)
	if malformed == 0 {
		t.Error("no malformed frame counted by the dataplane: did the barrage reach it?")
	}
}

func TestL4RestartAfterKill(t *testing.T) {
	e := newEnv(t, "l4k", lab.Options{Clients: 10})
	p := e.start(l4Config)
	e.waitChecked(15 * time.Second)
	ctx := context.Background()
	targets := l4Targets(netip.MustParseAddr("192.168.94.110"), []uint16{e.lab.MediaPorts[0]})
	checkDR(t, "first run", probe.Sweep(ctx, e.lab, e.lab.Client.Sources4, targets, 8), nil)
	p.Kill()
	// The BPF link dies with the process: no XDP program is left on the interface.
	out, _ := exec.Command("ip", "-n", e.lab.LBs[0].NS, "link", "show", e.lab.LBs[0].Link).CombinedOutput()
	if strings.Contains(string(out), "xdp") {
		t.Errorf("XDP program left after kill -9:\n%s", out)
	}
	e.start(l4Config)
	e.waitChecked(15 * time.Second)
	checkDR(t, "after kill -9 and restart", probe.Sweep(ctx, e.lab, e.lab.Client.Sources4, targets, 8), nil)
	e.proc.Signal(syscall.SIGTERM)
	e.proc.Stop(15 * time.Second)
	out, _ = exec.Command("ip", "-n", e.lab.LBs[0].NS, "addr", "show", e.lab.LBs[0].Link).CombinedOutput()
	if strings.Contains(string(out), "192.168.94.110") || strings.Contains(string(out), "xdp") {
		t.Errorf("after a clean exit the interface still has the VIP or a program:\n%s", out)
	}
}
