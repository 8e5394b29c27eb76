package e2e

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/medialb/medialb/lab"
)

// floodOnly skips TestHardeningPair's checks before the flood, so that the
// flood's figures can be taken of another build side by side (main's):
//
//	MEDIALB_BIN=/path/to/main/bin go test ./e2e/ -run TestHardeningPair -count=1 -v -hardening.flood-only
var floodOnly = flag.Bool("hardening.flood-only", false, "TestHardeningPair: only the flood and its figures")

// hardeningVIPs are haConfig's VIPs.
var hardeningVIPs = []string{"192.168.94.100", "192.168.94.110", "fd94::110"}

// rssOf returns the resident set size of process pid, in bytes.
func rssOf(pid int) (int64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(data)) {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}

// rssPeak samples a process's RSS every 20 ms until stopped.
type rssPeak struct {
	peak atomic.Int64
	stop chan struct{}
	done chan struct{}
}

func watchRSS(pid int) *rssPeak {
	w := &rssPeak{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		for {
			if r, err := rssOf(pid); err == nil && r > w.peak.Load() {
				w.peak.Store(r)
			}
			select {
			case <-w.stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	return w
}

func (w *rssPeak) close() int64 { close(w.stop); <-w.done; return w.peak.Load() }

// answers reports whether anything accepts a TCP connection at dst from the
// client namespace within a second.
func answers(l *lab.Lab, src netip.Addr, dst netip.AddrPort) bool {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	c, err := l.DialTCP(ctx, src, dst)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// TestHardeningPair runs an HA pair with api.listen left out (the default) and
// checks that no management plane (API, metrics, HA sync) answers on a VIP;
// then floods the master's sync port and configuration-push endpoint from a
// client and checks that its memory stays put, the pair stays in sync and
// forwarding loses nothing. BENCHMARKS.md's "hardening" figures:
//
//	go test ./e2e/ -run TestHardeningPair -count=1 -v
func TestHardeningPair(t *testing.T) {
	if _, err := exec.LookPath("keepalived"); err != nil && os.Geteuid() == 0 {
		t.Fatalf("keepalived is not installed (make deps-test installs it): %v", err)
	}
	e := newEnv(t, "hd", lab.Options{LoadBalancers: 2, Clients: 60})
	tmpl := strings.Replace(haConfig, "  listen: {{.LB}}:9443\n", "", 1)
	if tmpl == haConfig {
		t.Fatal("haConfig has no api.listen line to leave out")
	}
	p := newPairFrom(e, tmpl)
	p.startPrimaryFirst()
	e.proc = p.procs[0] // the API answers on the node's own address (the default)
	e.waitChecked(15 * time.Second)

	if *floodOnly {
		floodPair(t, e, p)
		return
	}
	src4, src6 := e.lab.Client.Sources4[0], e.lab.Client.Sources6[0]
	for _, v := range hardeningVIPs {
		vip := netip.MustParseAddr(v)
		src := src4
		if vip.Is6() {
			src = src6
		}
		for _, port := range []uint16{9443, 7778} {
			if answers(e.lab, src, netip.AddrPortFrom(vip, port)) {
				t.Errorf("VIP %s answers on port %d (a management plane on a VIP)", vip, port)
			}
		}
	}
	// The sync port is on the node's own address, and closes a client at once.
	lb1 := e.lab.LBs[0].Addr4
	if c, err := e.lab.DialTCP(context.Background(), src4, netip.AddrPortFrom(lb1, 7778)); err == nil {
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		n, err := c.Read(make([]byte, 16))
		c.Close()
		var ne net.Error
		if n > 0 || (errors.As(err, &ne) && ne.Timeout()) {
			t.Errorf("the sync port kept a client's connection open (read %d bytes, %v)", n, err)
		}
	}
	if t.Failed() {
		return
	}
	floodPair(t, e, p)
}

// floodPair floods lb1 (the master) and reports its memory, the pair's sync
// and forwarding through both VIPs meanwhile.
func floodPair(t *testing.T, e *env, p *pair) {
	pid := p.procs[0].Cmd.Process.Pid
	lb1 := e.lab.LBs[0].Addr4
	ov0, err := p.overview(0)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	before, err := rssOf(pid)
	if err != nil {
		t.Fatal(err)
	}
	peak := watchRSS(pid)
	stream := startUDP(t, e.lab, e.lab.Client.Sources4[50], netip.AddrPortFrom(netip.MustParseAddr("192.168.94.110"), e.lab.MediaPorts[0]), 2*time.Millisecond)
	var l7ok, l7fail atomic.Int64
	stopL7 := make(chan struct{})
	var l7wg sync.WaitGroup
	l7wg.Go(func() {
		c := e.lab.HTTPClient(e.lab.Client.Sources4[51])
		for {
			select {
			case <-stopL7:
				return
			default:
			}
			resp, err := c.Get("http://192.168.94.100:8080/")
			if err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			if err == nil && resp.StatusCode == 200 {
				l7ok.Add(1)
			} else {
				l7fail.Add(1)
				t.Logf("layer-7 request during the flood: %v", err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	})

	t0 := time.Now()
	syncConns := floodSync(t, e, netip.AddrPortFrom(lb1, 7778), 500)
	codes := floodConfigPush(e, netip.AddrPortFrom(lb1, 9443), 50)
	time.Sleep(2 * time.Second) // the pair keeps syncing, forwarding goes on
	for _, c := range syncConns {
		c.Close()
	}
	floodTime := time.Since(t0)
	close(stopL7)
	l7wg.Wait()
	stream.close()
	top := peak.close()
	after, _ := rssOf(pid)

	const mib = 1 << 20
	t.Logf("hardening flood on the master: 500 sync connections claiming 16 MiB frames + 50 concurrent 8 MiB config pushes in %s", floodTime.Round(time.Millisecond))
	t.Logf("hardening flood: RSS before %.1f MiB, peak %.1f MiB (+%.1f MiB), after %.1f MiB", float64(before)/mib, float64(top)/mib, float64(top-before)/mib, float64(after)/mib)
	t.Logf("hardening flood: config pushes answered %v", codes)
	lost := stream.sent.Load() - stream.got.Load()
	t.Logf("hardening flood: UDP through the layer-4 VIP: %d sent, %d answered; layer-7 requests: %d ok, %d failed", stream.sent.Load(), stream.got.Load(), l7ok.Load(), l7fail.Load())
	if top-before >= 20*mib {
		t.Errorf("RSS grew by %.1f MiB during the flood, want < 20 MiB", float64(top-before)/mib)
	}
	if lost > 2 || stream.got.Load() == 0 { // the last datagrams may be in flight at stop
		t.Errorf("the layer-4 VIP lost %d of %d datagrams during the flood", lost, stream.sent.Load())
	}
	if l7fail.Load() > 0 || l7ok.Load() == 0 {
		t.Errorf("layer-7 requests during the flood: %d ok, %d failed", l7ok.Load(), l7fail.Load())
	}
	if n := codes[http.StatusOK]; n > 0 {
		t.Errorf("%d unauthenticated config pushes were taken", n)
	}
	ov, err := p.overview(0)
	if err != nil || ov.HA.PeerState != "backup" || ov.HA.Failovers != ov0.HA.Failovers {
		t.Errorf("after the flood lb1 sees %+v (%v); want its peer backup and no failover", ov.HA, err)
	}
	if ov1, err := p.overview(1); err != nil || ov1.HA.PeerState != "master" {
		t.Errorf("after the flood lb2 sees %+v (%v); want its peer master", ov1.HA, err)
	}
	_, body, err := p.procs[0].API(context.Background(), "GET", "9443", "/metrics", "loadbalancer", "loadbalancer")
	if err != nil || !strings.Contains(string(body), "medialb_ha_sync_refused_connections_total") {
		t.Errorf("metrics: %v, no medialb_ha_sync_refused_connections_total", err)
	}
	for line := range strings.Lines(string(body)) {
		if strings.HasPrefix(line, "medialb_ha_sync_refused_connections_total ") {
			t.Logf("hardening flood: %s", strings.TrimSpace(line))
		}
	}
}

// floodSync opens n connections from the client to dst, each sending a
// frame header that claims a 16 MiB payload and 64 KiB of it; it returns
// the connections still open (the caller closes them).
func floodSync(t *testing.T, e *env, dst netip.AddrPort, n int) []net.Conn {
	hdr := []byte{'H', 0x01, 0, 0, 0} // 16 MiB
	junk := make([]byte, 64<<10)
	var (
		mu    sync.Mutex
		conns []net.Conn
		wg    sync.WaitGroup
	)
	srcs := e.lab.Client.Sources4
	for i := range n {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			c, err := e.lab.DialTCP(ctx, srcs[i%len(srcs)], dst)
			if err != nil {
				return
			}
			c.SetWriteDeadline(time.Now().Add(2 * time.Second))
			c.Write(hdr)
			c.Write(junk)
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		})
	}
	wg.Wait()
	t.Logf("hardening flood: %d sync connections opened", len(conns))
	return conns
}

// floodConfigPush sends n concurrent unauthenticated 8 MiB POSTs to the
// configuration-push endpoint at dst and counts the answers by status (0:
// no answer, the connection closed).
func floodConfigPush(e *env, dst netip.AddrPort, n int) map[int]int {
	body := make([]byte, 8<<20)
	var (
		mu       sync.Mutex
		codes    = map[int]int{}
		wg       sync.WaitGroup
		firstErr error
	)
	srcs := e.lab.Client.Sources4
	for i := range n {
		wg.Go(func() {
			req, _ := http.NewRequest("POST", "https://"+dst.String()+"/api/v1/ha/config", bytes.NewReader(body))
			req.Header.Set("X-Medialb-HA-Time", strconv.FormatInt(time.Now().UnixNano(), 10))
			req.Header.Set("X-Medialb-HA-Length", strconv.Itoa(len(body)))
			req.Header.Set("X-Medialb-HA-Body", strings.Repeat("00", 32))
			req.Header.Set("X-Medialb-HA-MAC", strings.Repeat("00", 32))
			code := 0
			resp, err := e.lab.HTTPClient(srcs[i%len(srcs)]).Do(req)
			if err == nil {
				code = resp.StatusCode
				resp.Body.Close()
			}
			mu.Lock()
			codes[code]++
			if err != nil && firstErr == nil {
				firstErr = err
			}
			mu.Unlock()
		})
	}
	wg.Wait()
	if firstErr != nil {
		e.t.Logf("hardening flood: a config push without an answer: %v", firstErr)
	}
	return codes
}

// nofileOf returns the soft and hard RLIMIT_NOFILE of process pid.
func nofileOf(pid int) (string, string, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/limits", pid))
	if err != nil {
		return "", "", err
	}
	for line := range strings.Lines(string(data)) {
		if rest, ok := strings.CutPrefix(line, "Max open files"); ok {
			f := strings.Fields(rest)
			if len(f) >= 2 {
				return f[0], f[1], nil
			}
		}
	}
	return "", "", fmt.Errorf("no open files limit in /proc/%d/limits", pid)
}

// TestHardeningFDExhaustion lowers the file descriptor limit of a running
// medialb (prlimit) and holds idle layer-7 connections until its accepts
// fail, then takes every descriptor left (limit 3) for two seconds: the health
// checks fail for want of descriptors, and must not take a real server down.
func TestHardeningFDExhaustion(t *testing.T) {
	e := newEnv(t, "hf", lab.Options{Clients: 40})
	p := e.start(config(l7Service))
	e.waitChecked(15 * time.Second)
	pid := p.Cmd.Process.Pid
	soft, hard, err := nofileOf(pid)
	if err != nil {
		t.Fatal(err)
	}
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	limit := len(fds) + 20
	prlimit := func(soft string) {
		t.Helper()
		if out, err := exec.Command("prlimit", "--pid", strconv.Itoa(pid), "--nofile="+soft+":").CombinedOutput(); err != nil {
			t.Fatalf("prlimit (util-linux; make deps-test installs it): %v %s", err, out)
		}
	}
	restored := false
	restore := func() {
		if !restored {
			restored = true
			prlimit(soft)
		}
	}
	mark := p.Mark()
	prlimit(strconv.Itoa(limit))
	defer restore()
	t.Logf("medialb: %d open files, RLIMIT_NOFILE lowered from %s (hard %s) to %d", len(fds), soft, hard, limit)

	// Idle client connections until medialb logs that accept fails.
	var held []net.Conn
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	acceptFailed := func() bool {
		for _, ev := range p.Events()[mark:] {
			if strings.HasPrefix(ev.Msg(), "accept failed") {
				return true
			}
		}
		return false
	}
	srcs := e.lab.Client.Sources4
	// Until accepts fail, and as many again, so that the listen backlog keeps
	// medialb's accept loop taking every descriptor that frees.
	extra := -1
	for i := 0; extra != 0; i++ {
		if i == 200 {
			t.Fatalf("accepts still succeed after %d idle connections under a limit of %d", i, limit)
		}
		if extra < 0 && acceptFailed() {
			extra = i
		}
		if extra > 0 {
			extra--
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		c, err := e.lab.DialTCP(ctx, srcs[i%len(srcs)], netip.AddrPortFrom(l7VIP, 8080))
		cancel()
		if err == nil {
			held = append(held, c)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// A descriptor that frees (a client reset because its server could not
	// be dialled, a finished check) may still go to a health check now and
	// then. To make the window deterministic, the limit then goes down to 3:
	// stdin, stdout and stderr are open, so every new descriptor fails. Four
	// health check intervals of 500 ms with fall 2: long enough to take every
	// server down twice if the failures counted.
	prlimit("3")
	time.Sleep(2 * time.Second)
	prlimit(strconv.Itoa(limit))
	localErrors := 0
	for _, ev := range p.Events()[mark:] {
		if ev.Msg() == "real server state" && ev.Str("state") == "down" {
			t.Errorf("real server %s went down while medialb was out of file descriptors: %v", ev.Str("server"), ev)
		}
		if strings.HasPrefix(ev.Msg(), "health check not made") {
			localErrors++
		}
	}
	if localErrors == 0 {
		t.Error("no health check was logged as not made for want of file descriptors")
	}
	t.Logf("%d idle connections held; %d local health check errors logged", len(held), localErrors)

	for _, c := range held {
		c.Close()
	}
	held = nil
	restore()
	e.waitChecked(10 * time.Second)
	code, body, err := p.API(context.Background(), "GET", "9443", "/metrics", "loadbalancer", "loadbalancer")
	if err != nil || code != 200 {
		t.Fatalf("metrics after the limit was restored: %d %v", code, err)
	}
	for line := range strings.Lines(string(body)) {
		if rest, ok := strings.CutPrefix(line, "medialb_health_check_local_errors_total "); ok {
			if n, _ := strconv.ParseFloat(strings.TrimSpace(rest), 64); n == 0 {
				t.Error("medialb_health_check_local_errors_total is 0")
			}
			t.Logf("%s", strings.TrimSpace(line))
		}
		if strings.HasPrefix(line, `medialb_real_server_state{`) && strings.Contains(line, `state="down"} 1`) {
			t.Errorf("after the limit was restored: %s", strings.TrimSpace(line))
		}
	}
}
