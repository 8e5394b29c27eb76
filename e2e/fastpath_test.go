package e2e

import (
	"context"
	"net/netip"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/medialb/medialb/lab"
	"github.com/medialb/medialb/lab/probe"
	"github.com/medialb/medialb/perf/xdpref"
)

// fpConfig is Harmonic_Traffic with the XDP fast path forced on and a short
// persistence timeout, so that the test can outlive it.
var fpConfig = nodeSection + "  xdp_fastpath: \"on\"\n" + apiSection +
	services(traffic().persist("{ mode: source-ip, timeout: 5s }"))

// TestL4FastPath checks the XDP fast path from outside: once a client's server is
// decided, its frames no longer reach the pipeline (the dataplane's forwarded counter
// stays put) yet keep reaching the same server; its persistence outlives the timeout
// while it sends only through the fast path; a drain keeps it (persistent) while new
// clients go elsewhere; a halt moves it.
func TestL4FastPath(t *testing.T) {
	e := newEnv(t, "fp", lab.Options{Clients: 20})
	// On veth, frames sent back with XDP_TX reach the bridge only if the bridge port has
	// an XDP program (a NIC needs nothing).
	lb := e.lab.LBs[0]
	var pass *xdpref.Attachment
	if err := lab.Do(e.lab.Switch, func() (err error) { pass, err = xdpref.AttachPass(lb.SwitchPort); return err }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pass.Close() })
	e.start(fpConfig)
	e.waitChecked(15 * time.Second)
	ctx := context.Background()
	vip := netip.AddrPortFrom(netip.MustParseAddr("192.168.94.110"), 1935)
	target := probe.Target{Proto: "udp", Addr: vip}
	client := e.lab.Client.Sources4[0]
	ask := func(src netip.Addr) string {
		t.Helper()
		r, err := probe.One(ctx, e.lab, src, target)
		if err != nil {
			t.Fatalf("probe from %s: %v", src, err)
		}
		if r.Client.Addr() != src {
			t.Errorf("server %s saw client %v, want %s", r.Server, r.Client, src)
		}
		return r.Server
	}
	fwdRE := regexp.MustCompile(`(?m)^medialb_dataplane_forwarded_packets_total (\d+)$`)
	forwarded := func() uint64 {
		t.Helper()
		code, body := e.apiDo("GET", "/metrics")
		m := fwdRE.FindSubmatch(body)
		if code != 200 || m == nil {
			t.Fatalf("GET /metrics: %d, no forwarded counter", code)
		}
		n, _ := strconv.ParseUint(string(m[1]), 10, 64)
		return n
	}

	// Frames sent to a real server, the pipeline's and the fast path's.
	serverPackets := func(name string) uint64 {
		t.Helper()
		re := regexp.MustCompile(`(?m)^medialb_real_server_packets_total\{server="` + name + `",service="Harmonic_Traffic"\} (\d+)$`)
		code, body := e.apiDo("GET", "/metrics")
		m := re.FindSubmatch(body)
		if code != 200 || m == nil {
			t.Fatalf("GET /metrics: %d, no packet counter for %s", code, name)
		}
		n, _ := strconv.ParseUint(string(m[1]), 10, 64)
		return n
	}

	s := ask(client)
	time.Sleep(200 * time.Millisecond)
	f0 := forwarded()
	p0 := serverPackets(s)
	const n = 20
	for range n {
		if got := ask(client); got != s {
			t.Fatalf("client moved from %s to %s with nothing changed", s, got)
		}
	}
	if d := serverPackets(s) - p0; d < n {
		t.Errorf("%s's packet counter rose by %d for %d frames sent to it (fast path not counted?)", s, d, n)
	}
	if d := forwarded() - f0; d > 1 {
		t.Errorf("the pipeline forwarded %d of %d frames of a decided client; want them on the fast path", d, n)
	} else {
		t.Logf("client %s on %s: the pipeline forwarded %d of its next %d frames", client, s, d, n)
	}

	// Only the fast path sees the client for longer than the persistence timeout.
	start := time.Now()
	deadline := start.Add(8 * time.Second)
	for time.Now().Before(deadline) {
		if got := ask(client); got != s {
			t.Fatalf("client moved from %s to %s while sending", s, got)
		}
		time.Sleep(400 * time.Millisecond)
	}
	f1 := forwarded()
	t.Logf("%s of fast-path-only traffic (persistence timeout 5s), pipeline forwarded %d in all", time.Since(start).Round(time.Millisecond), f1-f0)
	// Drain: a new generation, so the next frame goes through the pipeline, whose
	// persistence entry (kept alive from the fast path's last-seen times) keeps it.
	e.setState("Harmonic_Traffic", s, "drain")
	if got := ask(client); got != s {
		t.Errorf("after drain of %s, the persistent client went to %s (persistence expired while on the fast path?)", s, got)
	}
	if forwarded() == f1 {
		t.Error("after the drain the client's frame did not go through the pipeline (stale fast-path decision used)")
	}
	for _, src := range e.lab.Client.Sources4[1:] {
		if got := ask(src); got == s {
			t.Errorf("new client %s went to drained %s", src, got)
		}
	}
	// Halt: the client moves.
	e.setState("Harmonic_Traffic", s, "halt")
	if got := ask(client); got == s {
		t.Errorf("after halt of %s the client still reaches it", s)
	}
}
