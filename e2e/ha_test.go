package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"text/template"
	"time"

	"github.com/medialb/medialb/lab"
	"github.com/medialb/medialb/lab/lbproc"
	"github.com/medialb/medialb/lab/probe"
)

// haTrials is how many kill -9 failovers TestHAFailover measures; make test runs
// one, BENCHMARKS.md's figure 20:
//
//	go test ./e2e/ -run TestHAFailover -count=1 -v -ha.trials=20
var haTrials = flag.Int("ha.trials", 1, "kill -9 failovers measured by TestHAFailover")

// haConfig is one node of the pair: the guide's Harmonic_Management (layer 7) and
// Harmonic_Traffic (layer 4, IPv4 and IPv6) VIPs, a 100 ms advertisement
// interval, no preemption.
var haConfig = `
node:
  name: {{.Name}}
  interface: {{.Iface}}
  state_dir: {{.StateDir}}
api:
  listen: {{.LB}}:9443
  users:
    - name: loadbalancer
      password_hash: "$2a$10$u0cqovdTwUFe8GZsu.3X/OU4fJQhpx.weaiGm3.Z4VcxMEaEsc/Pm"
ha:
  peer: {{.Peer}}
  priority: {{.Priority}}
  router_id: 51
  advert_interval: 100ms
  secret: "lab pair secret 0123456789"` + services(management(), haTraffic(), traffic6())

// haTraffic is traffic with forwarding left to its default, as the pair's file has it.
func haTraffic() service {
	s := traffic()
	s.forwarding = ""
	return s
}

// pair is the two load balancers of one lab, each running medialb with haConfig.
type pair struct {
	e     *env
	procs [2]*lbproc.Process
	cfgs  [2]string
	runs  int
}

func newPair(e *env) *pair { return newPairFrom(e, haConfig) }

// newPairFrom is newPair with another configuration template than haConfig.
func newPairFrom(e *env, tmpl string) *pair {
	p := &pair{e: e}
	for i := range 2 {
		lb, peer := e.lab.LBs[i], e.lab.LBs[1-i]
		tp := template.Must(template.New("cfg").Parse(tmpl))
		var b bytes.Buffer
		err := tp.Execute(&b, map[string]any{
			"Name": lb.Name, "Iface": lb.Link, "StateDir": filepath.Join(e.dir, lb.Name), "LB": lb.Addr4,
			"Peer": peer.Addr4, "Priority": 150 - 50*i,
		})
		if err != nil {
			e.t.Fatal(err)
		}
		p.cfgs[i] = filepath.Join(e.dir, lb.Name+".yaml")
		if err := os.WriteFile(p.cfgs[i], b.Bytes(), 0o600); err != nil {
			e.t.Fatal(err)
		}
	}
	e.t.Cleanup(func() {
		for i, pr := range p.procs {
			if pr == nil {
				continue
			}
			if err := pr.Stop(15 * time.Second); err != nil {
				e.t.Errorf("medialb on lb%d exit: %v", i+1, err)
			}
			if e.t.Failed() {
				e.t.Logf("medialb lb%d log:\n%s", i+1, pr.Log())
			}
		}
	})
	return p
}

// start runs medialb on node i and waits until it runs.
func (p *pair) start(i int) {
	t := p.e.t
	t.Helper()
	p.runs++
	log := filepath.Join(p.e.dir, fmt.Sprintf("lb%d-%d.log", i+1, p.runs))
	pr, err := lbproc.Start(p.e.lab, p.e.lab.LBs[i], filepath.Join(p.e.bin, "medialb"), p.cfgs[i], log, nil)
	if err != nil {
		t.Fatal(err)
	}
	p.procs[i] = pr
	if err := pr.WaitStarted(context.Background(), 20*time.Second); err != nil {
		t.Fatalf("%v\n%s", err, pr.Log())
	}
}

// startPrimaryFirst starts lb1, then lb2, and waits until lb1 (the higher priority) is
// master and lb2 its backup.
func (p *pair) startPrimaryFirst() {
	p.e.t.Helper()
	p.start(0)
	p.start(1)
	p.waitHA(0, 15*time.Second, "master role with a backup peer", func(o haOverview) bool {
		return o.HA.Role == "master" && o.HA.PeerState == "backup"
	})
	p.waitHA(1, 5*time.Second, "backup role with a master peer", func(o haOverview) bool {
		return o.HA.Role == "backup" && o.HA.PeerState == "master"
	})
}

type haView struct {
	Role         string `json:"role"`
	Peer         string `json:"peer"`
	PeerState    string `json:"peer_state"`
	Failovers    int    `json:"failovers"`
	Cause        string `json:"last_failover_cause"`
	SyncImported int    `json:"sync_imported"`
}

type haOverview struct {
	HA       *haView `json:"ha"`
	Services []struct {
		Name        string `json:"name"`
		RealServers []struct {
			Name          string `json:"name"`
			State         string `json:"state"`
			ActiveClients int    `json:"active_clients"`
		} `json:"real_servers"`
	} `json:"services"`
}

// overview reads node i's overview.
func (p *pair) overview(i int) (haOverview, error) {
	var ov haOverview
	code, body, err := p.procs[i].API(context.Background(), "GET", "9443", "/api/v1/overview", "loadbalancer", "loadbalancer")
	if err != nil {
		return ov, err
	}
	if code != 200 {
		return ov, fmt.Errorf("overview: %d %s", code, body)
	}
	err = json.Unmarshal(body, &ov)
	if err == nil && ov.HA == nil {
		err = fmt.Errorf("overview has no ha field: %s", body)
	}
	return ov, err
}

// waitHA polls node i's overview until ok accepts it.
func (p *pair) waitHA(i int, timeout time.Duration, what string, ok func(haOverview) bool) haOverview {
	t := p.e.t
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last haOverview
	var err error
	for time.Now().Before(deadline) {
		if last, err = p.overview(i); err == nil && ok(last) {
			return last
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("lb%d: no %s within %s (last: %+v, %v)", i+1, what, timeout, last.HA, err)
	return last
}

// keepalivedPids returns the process ids of node i's keepalived (parent and VRRP child).
func (p *pair) keepalivedPids(i int) []int {
	var out []int
	for _, f := range []string{"keepalived.pid", "keepalived-vrrp.pid"} {
		data, err := os.ReadFile(filepath.Join(p.e.dir, p.e.lab.LBs[i].Name, "ha", f))
		if err != nil {
			p.e.t.Fatalf("keepalived pid: %v", err)
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
		if err != nil {
			p.e.t.Fatalf("keepalived pid in %s: %v", f, err)
		}
		out = append(out, pid)
	}
	return out
}

// hasVIP reports whether node i has addr on its interface.
func (p *pair) hasVIP(i int, addr string) bool {
	lb := p.e.lab.LBs[i]
	out, err := lab.Exec(lb.NS, "ip", "-br", "addr", "show", "dev", lb.Link).CombinedOutput()
	if err != nil {
		p.e.t.Fatalf("ip addr on %s: %v %s", lb.Name, err, out)
	}
	return strings.Contains(string(out), addr+"/")
}

func clientsOf(ov haOverview, service, server string) int {
	for _, s := range ov.Services {
		if s.Name != service {
			continue
		}
		for _, r := range s.RealServers {
			if r.Name == server {
				return r.ActiveClients
			}
		}
	}
	return -1
}

// heldConn is an established TCP connection through the L4 VIP and the server that
// answered on it first.
type heldConn struct {
	c      *net.TCPConn
	r      *bufio.Reader
	server string
}

func (h *heldConn) ask() (string, error) {
	h.c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := h.c.Write([]byte("hello\n")); err != nil {
		return "", err
	}
	line, err := h.r.ReadString('\n')
	if err != nil {
		return "", err
	}
	rep, err := probe.Parse(line)
	return rep.Server, err
}

// udpStream sends a datagram every interval to the VIP and records when replies
// come back.
type udpStream struct {
	sent, got atomic.Int64
	mu        sync.Mutex
	replies   []time.Time
	stop      chan struct{}
	done      sync.WaitGroup
}

func startUDP(t *testing.T, l *lab.Lab, src netip.Addr, dst netip.AddrPort, interval time.Duration) *udpStream {
	c, err := l.ListenUDP(netip.AddrPortFrom(src, 0)) // unconnected: an ICMP error does not stop it
	if err != nil {
		t.Fatal(err)
	}
	s := &udpStream{stop: make(chan struct{})}
	s.done.Add(2)
	go func() {
		defer s.done.Done()
		buf := make([]byte, 512)
		for {
			c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
			n, _, err := c.ReadFrom(buf)
			select {
			case <-s.stop:
				return
			default:
			}
			if err != nil || !bytes.HasPrefix(buf[:n], []byte("server=")) {
				continue
			}
			now := time.Now()
			s.got.Add(1)
			s.mu.Lock()
			s.replies = append(s.replies, now)
			s.mu.Unlock()
		}
	}()
	go func() {
		defer s.done.Done()
		tk := time.NewTicker(interval)
		defer tk.Stop()
		to := net.UDPAddrFromAddrPort(dst)
		for {
			select {
			case <-s.stop:
				return
			case <-tk.C:
			}
			if _, err := c.WriteTo([]byte("media\n"), to); err == nil {
				s.sent.Add(1)
			}
		}
	}()
	t.Cleanup(func() { s.close(); c.Close() })
	return s
}

func (s *udpStream) close() {
	select {
	case <-s.stop:
	default:
		close(s.stop)
		s.done.Wait()
	}
}

// firstAfter returns the first reply received after t0+skip.
func (s *udpStream) firstAfter(t0 time.Time, skip time.Duration) (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range s.replies {
		if r.After(t0.Add(skip)) {
			return r, true
		}
	}
	return time.Time{}, false
}

// TestHAFailover runs a pair with keepalived, checks that exactly the master holds
// the VIPs, that the master's drain and persistence entries reach the backup, and
// then kills the master with SIGKILL while clients stream UDP and hold TCP
// connections through the layer-4 VIP: the backup must take over, with the held
// connections unbroken and every client on the server it had (also the ones kept
// on a drained server by persistence alone). Each trial logs the takeover time
// and the UDP datagrams lost; -ha.trials=N runs N of them, killing the master of
// the moment each time and bringing it back as the backup.
func TestHAFailover(t *testing.T) {
	if _, err := exec.LookPath("keepalived"); err != nil && os.Geteuid() == 0 {
		t.Fatalf("keepalived is not installed (apt-get install keepalived; make test's deps install it): %v", err)
	}
	e := newEnv(t, "ha", lab.Options{LoadBalancers: 2, Clients: 24})
	p := newPair(e)
	p.start(0)
	p.start(1)
	ctx := context.Background()
	const vip4, vip6 = "192.168.94.110", "fd94::110"

	// lb1 has the higher priority: it becomes master, lb2 stays backup.
	p.waitHA(0, 15*time.Second, "master role with a backup peer", func(o haOverview) bool {
		return o.HA.Role == "master" && o.HA.PeerState == "backup"
	})
	p.waitHA(1, 5*time.Second, "backup role with a master peer", func(o haOverview) bool {
		return o.HA.Role == "backup" && o.HA.PeerState == "master"
	})
	for _, vip := range []string{vip4, vip6, "192.168.94.100"} {
		if !p.hasVIP(0, vip) || p.hasVIP(1, vip) {
			t.Fatalf("VIP %s: on lb1 %v, on lb2 %v; want only on the master lb1", vip, p.hasVIP(0, vip), p.hasVIP(1, vip))
		}
	}
	p.e.proc = p.procs[0]
	e.waitChecked(15 * time.Second)
	for i, want := range []string{`medialb_ha_role{role="master"} 1`, `medialb_ha_role{role="backup"} 1`} {
		code, body, err := p.procs[i].API(ctx, "GET", "9443", "/metrics", "loadbalancer", "loadbalancer")
		if err != nil || code != 200 || !strings.Contains(string(body), want) {
			t.Errorf("lb%d /metrics: %d %v, want %s", i+1, code, err, want)
		}
	}

	// A reload that changes the ha section rewrites keepalived's configuration and
	// reloads it; the master stays master and keeps the VIPs.
	cfg, err := os.ReadFile(p.cfgs[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p.cfgs[0], bytes.Replace(cfg, []byte("priority: 150"), []byte("priority: 160"), 1), 0o600); err != nil {
		t.Fatal(err)
	}
	rmark := p.procs[0].Mark()
	if err := p.procs[0].Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	for _, msg := range []string{"HA: keepalived configuration rewritten and reloaded", "configuration reloaded"} {
		if _, err := p.procs[0].WaitFor(ctx, rmark, 10*time.Second, msg, func(ev lbproc.Event) bool { return ev.Msg() == msg }); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(time.Second) // several advertisement intervals
	if ov, err := p.overview(0); err != nil || ov.HA.Role != "master" || !p.hasVIP(0, vip4) || p.hasVIP(1, vip4) {
		t.Fatalf("after the reload: lb1 %+v %v, VIP on lb1 %v, on lb2 %v", ov.HA, err, p.hasVIP(0, vip4), p.hasVIP(1, vip4))
	}
	if err := os.WriteFile(p.cfgs[0], cfg, 0o600); err != nil { // a restarted lb1 gets 150 again
		t.Fatal(err)
	}

	// Every client gets a server; then HT1 is drained on the master. Its clients
	// stay on it by persistence only, which the backup knows from the sync channel.
	udpPort := e.lab.MediaPorts[0]
	vip := netip.MustParseAddr(vip4)
	targets := []probe.Target{{Proto: "tcp", Addr: netip.AddrPortFrom(vip, 1935)}, {Proto: "udp", Addr: netip.AddrPortFrom(vip, udpPort)}}
	before := probe.Sweep(ctx, e.lab, e.lab.Client.Sources4, targets, 16)
	checkDR(t, "through the master", before, nil)
	checkL7(t, e, "through the master")
	serverOf := map[netip.Addr]string{}
	onHT1 := 0
	for _, r := range before {
		if r.Err == nil {
			serverOf[r.Src] = r.Reply.Server
		}
	}
	for _, s := range serverOf {
		if s == "HT1" {
			onHT1++
		}
	}
	if onHT1 == 0 || onHT1 == len(serverOf) {
		t.Fatalf("clients per server %v: need clients on both servers", probe.Summarize(before).ClientsOf)
	}
	mark := p.procs[1].Mark()
	code, body, err := p.procs[0].API(ctx, "POST", "9443", "/api/v1/services/Harmonic_Traffic/real-servers/HT1/drain", "loadbalancer", "loadbalancer")
	if err != nil || code != 200 {
		t.Fatalf("drain HT1 on the master: %d %s %v", code, body, err)
	}
	if _, err := p.procs[1].WaitFor(ctx, mark, 10*time.Second, "drain taken from the master", func(ev lbproc.Event) bool {
		return ev.Msg() == "HA: administrative state taken from the master" && ev.Str("server") == "HT1" && ev.Str("state") == "drain"
	}); err != nil {
		t.Fatal(err)
	}
	p.waitHA(1, 10*time.Second, "HT1's persistent clients imported", func(o haOverview) bool {
		return clientsOf(o, "Harmonic_Traffic", "HT1") == onHT1
	})

	// Failures: "kill" is kill -9 of the master's medialb (its keepalived gets
	// SIGTERM and hands over with a priority-0 advertisement); "freeze" stops
	// (SIGSTOP) the master's medialb and keepalived, as a hung or crashed host
	// would: nothing hands over, the backup waits out the master-down interval
	// (3 advertisements and its skew), and the frozen node keeps the VIPs until it
	// is killed and restarted. A link going down, an unhealthy node and split brain
	// are in ha_more_test.go.
	master := 0
	takeovers := map[string][]time.Duration{}
	lost := map[string][]int64{}
	reconnects := map[string][]time.Duration{} // layer 7: failure to the first new request answered
	broken := 0
	var kinds []string
	for range *haTrials {
		kinds = append(kinds, "kill")
	}
	for range *haTrials {
		kinds = append(kinds, "freeze")
	}
	for trial, kind := range kinds {
		backup := 1 - master
		// The client resolves the VIP afresh, so that its traffic goes through the
		// master: a frozen node's kernel (trial "freeze") keeps answering ARP for
		// the VIPs it still holds, and the backup forwards whatever reaches it too.
		if out, err := lab.Exec(e.lab.Client.NS, "ip", "neigh", "flush", "to", vip4).CombinedOutput(); err != nil {
			t.Fatalf("flush the client's neighbour entry of the VIP: %v %s", err, out)
		}
		// Held TCP connections (one per source on HT1 and a few others), a UDP stream.
		var held []*heldConn
		for _, src := range e.lab.Client.Sources4[:12] {
			c, err := e.lab.DialTCP(ctx, src, netip.AddrPortFrom(vip, 1935))
			if err != nil {
				t.Fatalf("trial %d: connect from %s: %v", trial, src, err)
			}
			h := &heldConn{c: c, r: bufio.NewReader(c)}
			if h.server, err = h.ask(); err != nil {
				t.Fatalf("trial %d: first line from %s: %v", trial, src, err)
			}
			if h.server != serverOf[src] {
				t.Errorf("trial %d: %s reached %s, had %s", trial, src, h.server, serverOf[src])
			}
			held = append(held, h)
		}
		stream := startUDP(t, e.lab, e.lab.Client.Sources4[12], netip.AddrPortFrom(vip, udpPort), 2*time.Millisecond)
		time.Sleep(500 * time.Millisecond)
		if stream.got.Load() == 0 {
			t.Fatalf("trial %d: the UDP stream gets no replies before the failover", trial)
		}

		mark := p.procs[backup].Mark()
		t0 := time.Now()
		if kind == "kill" {
			p.procs[master].Kill()
		} else {
			for _, pid := range append(p.keepalivedPids(master), p.procs[master].Cmd.Process.Pid) {
				syscall.Kill(pid, syscall.SIGSTOP)
			}
		}
		l7back := measureL7Reconnect(e, t0) // from now on: the old master serves nothing
		if _, err := p.procs[backup].WaitFor(ctx, mark, 10*time.Second, "master role", func(ev lbproc.Event) bool {
			return ev.Msg() == "HA role changed" && ev.Str("role") == "master"
		}); err != nil {
			t.Fatalf("trial %d: lb%d did not take over: %v", trial, backup+1, err)
		}
		// Replies within 5 ms of the kill may still be for datagrams the old master forwarded.
		deadline := time.Now().Add(5 * time.Second)
		var first time.Time
		for ok := false; !ok && time.Now().Before(deadline); {
			time.Sleep(50 * time.Millisecond)
			first, ok = stream.firstAfter(t0, 5*time.Millisecond)
		}
		if first.IsZero() {
			t.Fatalf("trial %d: no UDP reply through lb%d within 5s of the failure", trial, backup+1)
		}
		time.Sleep(300 * time.Millisecond)
		stream.close()
		takeover := first.Sub(t0)
		loss := stream.sent.Load() - stream.got.Load()
		takeovers[kind], lost[kind] = append(takeovers[kind], takeover), append(lost[kind], loss)

		nb := 0
		for _, h := range held {
			srv, err := h.ask()
			if err != nil || srv != h.server {
				nb++
				t.Errorf("trial %d: held connection from %s (on %s) after the failover: %q, %v", trial, h.c.LocalAddr(), h.server, srv, err)
			}
			h.c.Close()
		}
		broken += nb
		t.Logf("trial %d: %s of lb%d: first UDP reply through lb%d after %s; %d of %d datagrams lost; %d of %d held TCP connections broken",
			trial, map[string]string{"kill": "kill -9", "freeze": "SIGSTOP"}[kind], master+1, backup+1, takeover.Round(time.Millisecond), loss, stream.sent.Load(), nb, len(held))

		// Every client still reaches the server it had, HT1's by persistence alone.
		after := probe.Sweep(ctx, e.lab, e.lab.Client.Sources4, targets, 16)
		for _, r := range after {
			if r.Err != nil {
				t.Errorf("trial %d: after the failover, %s %s: %v", trial, r.Src, r.Target, r.Err)
			} else if r.Reply.Server != serverOf[r.Src] {
				t.Errorf("trial %d: after the failover %s reached %s, had %s", trial, r.Src, r.Reply.Server, serverOf[r.Src])
			}
		}
		if d := <-l7back; d < 0 {
			t.Errorf("trial %d: no new layer-7 request answered within 10s of the failure", trial)
		} else {
			reconnects[kind] = append(reconnects[kind], d)
			t.Logf("trial %d: first new layer-7 request answered %s after the failure", trial, d.Round(time.Millisecond))
		}
		checkL7(t, e, fmt.Sprintf("trial %d: after the failover", trial))
		ov := p.waitHA(backup, 5*time.Second, "master with the peer gone", func(o haOverview) bool {
			return o.HA.Role == "master" && o.HA.PeerState == "unreachable"
		})
		// The cause: a killed medialb's sync connection closes (its keepalived
		// releases the VIPs a moment later); a frozen one falls silent.
		wantCause := map[string]string{"kill": "peer medialb stopped|peer released the VIPs", "freeze": "peer silent"}[kind]
		if !slices.ContainsFunc(strings.Split(wantCause, "|"), func(c string) bool { return strings.Contains(ov.HA.Cause, c) }) || ov.HA.Failovers == 0 {
			t.Errorf("trial %d: lb%d shows failover %+v, want a cause with %q", trial, backup+1, ov.HA, wantCause)
		}
		if !p.hasVIP(backup, vip4) || (kind == "kill" && p.hasVIP(master, vip4)) {
			t.Errorf("trial %d: VIP on lb%d %v, on the failed lb%d %v", trial, backup+1, p.hasVIP(backup, vip4), master+1, p.hasVIP(master, vip4))
		}

		// The failed node comes back as the backup (no preemption) and learns the
		// new master's entries; the next trial fails the new master.
		if kind == "freeze" {
			// The frozen node is killed whole (keepalived too, so it cannot clean
			// up): the restarted one must not keep the stale VIPs.
			for _, pid := range p.keepalivedPids(master) {
				syscall.Kill(pid, syscall.SIGKILL)
			}
			p.procs[master].Kill()
			t.Logf("trial %d: frozen lb%d killed; VIP left on it: %v", trial, master+1, p.hasVIP(master, vip4))
		}
		p.start(master)
		p.waitHA(master, 15*time.Second, "backup role after restart", func(o haOverview) bool {
			return o.HA.Role == "backup" && o.HA.PeerState == "master"
		})
		p.waitHA(master, 10*time.Second, "HT1's persistent clients known after recovery", func(o haOverview) bool {
			return clientsOf(o, "Harmonic_Traffic", "HT1") >= onHT1
		})
		if p.hasVIP(master, vip4) {
			t.Errorf("trial %d: the restarted backup lb%d holds the VIP", trial, master+1)
		}
		master = backup
	}
	// keepalived itself killed on the master: medialb starts it again, and the
	// pair settles with exactly one node holding the VIP and traffic flowing.
	data, err := os.ReadFile(filepath.Join(e.dir, e.lab.LBs[master].Name, "ha", "keepalived.pid"))
	if err != nil {
		t.Fatal(err)
	}
	kmark := p.procs[master].Mark()
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatalf("kill keepalived %d: %v", pid, err)
	}
	if _, err := p.procs[master].WaitFor(ctx, kmark, 10*time.Second, "keepalived restarted", func(ev lbproc.Event) bool {
		return ev.Msg() == "keepalived started"
	}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for p.hasVIP(0, vip4) == p.hasVIP(1, vip4) && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(time.Second)
	if p.hasVIP(0, vip4) == p.hasVIP(1, vip4) {
		t.Errorf("after keepalived was killed and restarted: VIP on lb1 %v, on lb2 %v; want on exactly one", p.hasVIP(0, vip4), p.hasVIP(1, vip4))
	}
	holder := 0
	if p.hasVIP(1, vip4) {
		holder = 1
	}
	p.waitHA(holder, 10*time.Second, "master role on the VIP holder", func(o haOverview) bool { return o.HA.Role == "master" })
	p.waitHA(1-holder, 10*time.Second, "backup role on the other", func(o haOverview) bool { return o.HA.Role == "backup" })
	t.Logf("keepalived killed on lb%d: restarted; lb%d holds the VIP", master+1, holder+1)
	for _, r := range probe.Sweep(ctx, e.lab, e.lab.Client.Sources4, targets, 16) {
		if r.Err != nil {
			t.Errorf("after keepalived restart, %s %s: %v", r.Src, r.Target, r.Err)
		} else if r.Reply.Server != serverOf[r.Src] {
			t.Errorf("after keepalived restart %s reached %s, had %s", r.Src, r.Reply.Server, serverOf[r.Src])
		}
	}

	for _, kind := range []string{"kill", "freeze"} {
		tk, ls := takeovers[kind], lost[kind]
		slices.Sort(tk)
		slices.Sort(ls)
		t.Logf("HA failover by %s, %d trials at 100ms advert_interval: takeover min %s median %s max %s; UDP datagrams lost at 2ms spacing min %d median %d max %d",
			kind, len(tk), tk[0].Round(time.Millisecond), tk[len(tk)/2].Round(time.Millisecond), tk[len(tk)-1].Round(time.Millisecond),
			ls[0], ls[len(ls)/2], ls[len(ls)-1])
		if rc := reconnects[kind]; len(rc) > 0 {
			slices.Sort(rc)
			t.Logf("HA failover by %s: layer-7 clients reconnect (first new request answered) min %s median %s max %s",
				kind, rc[0].Round(time.Millisecond), rc[len(rc)/2].Round(time.Millisecond), rc[len(rc)-1].Round(time.Millisecond))
		}
	}
	t.Logf("held TCP connections broken in all %d trials: %d", len(kinds), broken)
}

// measureL7Reconnect sends a new HTTP request through the layer-7 VIP every 10 ms
// (each with a 60 ms limit, so a request sent to the old node does not hide the
// new one for long) from the failure at t0 on, as a client reconnecting
// would, and reports how long until one is answered (-1: none within 10 s). Proxied
// connections are the failed node's and end with it; this is how fast a client gets
// service again.
func measureL7Reconnect(e *env, t0 time.Time) <-chan time.Duration {
	out := make(chan time.Duration, 1)
	hc := e.lab.HTTPClient(e.lab.Client.Sources4[13])
	go func() {
		for time.Since(t0) < 10*time.Second {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Millisecond)
			req, _ := http.NewRequestWithContext(ctx, "GET", "http://192.168.94.100:8080/", nil)
			resp, err := hc.Do(req)
			if err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					cancel()
					out <- time.Since(t0)
					return
				}
			}
			cancel()
			time.Sleep(10 * time.Millisecond)
		}
		out <- -1
	}()
	return out
}

// checkL7 sends HTTP requests through the layer-7 VIP from a few sources: the
// backup had its listeners bound before it held the address (IP_FREEBIND).
func checkL7(t *testing.T, e *env, what string) {
	t.Helper()
	vip := netip.MustParseAddr("192.168.94.100")
	rs := probe.Sweep(context.Background(), e.lab, e.lab.Client.Sources4[:6],
		[]probe.Target{{Proto: "http", Addr: netip.AddrPortFrom(vip, 8080)}}, 6)
	if sum := probe.Summarize(rs); sum.Failed > 0 {
		t.Errorf("%s: %d of %d layer-7 requests failed: %v", what, sum.Failed, len(rs), sum.Errors)
	}
}

// syncView is the part of an overview TestHAConfigSync reads.
type syncView struct {
	Node     string  `json:"node"`
	HA       *haView `json:"ha"`
	Services []struct {
		Name        string `json:"name"`
		RealServers []struct {
			Name   string `json:"name"`
			Weight int    `json:"weight"`
			Admin  string `json:"admin"`
		} `json:"real_servers"`
	} `json:"services"`
}

// server returns the weight and administrative state of a real server, ok
// false when the overview has no such server.
func (v syncView) server(service, server string) (weight int, admin string, ok bool) {
	for _, s := range v.Services {
		if s.Name != service {
			continue
		}
		for _, r := range s.RealServers {
			if r.Name == server {
				return r.Weight, r.Admin, true
			}
		}
	}
	return 0, "", false
}

// TestHAConfigSync changes the primary's virtual_services (a weight, a new real
// server) and node-local settings (its priority) in its file and reloads it:
// the secondary must run the new services within seconds, as pushed through
// its API, keep its own node, api and ha settings, and keep the pushed
// services across its own reload and restart; `medialb check --peer-config`
// (two files) and `medialb check --peer` (a file and the running peer) must
// say whether the pair agrees before and after. A drain on the primary
// reaches the secondary too (the sync channel).
func TestHAConfigSync(t *testing.T) {
	if _, err := exec.LookPath("keepalived"); err != nil && os.Geteuid() == 0 {
		t.Fatalf("keepalived is not installed (apt-get install keepalived): %v", err)
	}
	e := newEnv(t, "hs", lab.Options{LoadBalancers: 2, Clients: 4})
	p := newPair(e)
	p.start(0)
	p.start(1)
	ctx := context.Background()
	view := func(i int) (syncView, error) {
		var v syncView
		code, body, err := p.procs[i].API(ctx, "GET", "9443", "/api/v1/overview", "loadbalancer", "loadbalancer")
		if err == nil && code != 200 {
			err = fmt.Errorf("overview: %d %s", code, body)
		}
		if err == nil {
			err = json.Unmarshal(body, &v)
		}
		return v, err
	}
	waitView := func(i int, timeout time.Duration, what string, ok func(syncView) bool) time.Duration {
		t.Helper()
		t0 := time.Now()
		var last syncView
		var err error
		for time.Since(t0) < timeout {
			if last, err = view(i); err == nil && ok(last) {
				return time.Since(t0)
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Fatalf("lb%d: no %s within %s (last %+v, %v)", i+1, what, timeout, last, err)
		return 0
	}
	check := func() (int, string) {
		out, err := exec.Command(filepath.Join(e.bin, "medialb"), "check", "--config", p.cfgs[1], "--peer-config", p.cfgs[0]).CombinedOutput()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatalf("medialb check: %v", err)
		}
		return code, string(out)
	}
	// checkPeer runs `medialb check --config FILE --peer` on node i: its file
	// against what the running peer runs.
	checkPeer := func(i int) (int, string) {
		out, err := lab.Exec(e.lab.LBs[i].NS, filepath.Join(e.bin, "medialb"), "check", "--config", p.cfgs[i], "--peer").CombinedOutput()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatalf("medialb check --peer: %v", err)
		}
		return code, string(out)
	}

	p.waitHA(0, 15*time.Second, "master role with a backup peer", func(o haOverview) bool {
		return o.HA.Role == "master" && o.HA.PeerState == "backup"
	})
	// Same services on both: the primary finds the digests equal.
	if _, err := p.procs[0].WaitFor(ctx, 0, 15*time.Second, "services in sync", func(ev lbproc.Event) bool {
		return ev.Msg() == "HA: the peer runs this node's virtual_services"
	}); err != nil {
		t.Fatal(err)
	}
	if code, out := check(); code != 0 || !strings.Contains(out, "the pair agrees") {
		t.Fatalf("medialb check of the pair as started: exit %d\n%s", code, out)
	}

	// The primary's file: HT1 heavier, a third layer-7 server, and a node-local
	// change (its priority), which must not reach the secondary.
	orig, err := os.ReadFile(p.cfgs[0])
	if err != nil {
		t.Fatal(err)
	}
	edited := strings.Replace(string(orig), "{ name: HT1, address: 192.168.94.115 }", "{ name: HT1, address: 192.168.94.115, weight: 300 }", 1)
	edited = strings.Replace(edited, "      - { name: HM2, address: 192.168.94.106 }\n", "      - { name: HM2, address: 192.168.94.106 }\n      - { name: HM3, address: 192.168.94.107 }\n", 1)
	edited = strings.Replace(edited, "priority: 150", "priority: 160", 1)
	if !strings.Contains(edited, "weight: 300") || !strings.Contains(edited, "HM3") || !strings.Contains(edited, "priority: 160") {
		t.Fatal("test edit did not apply; haConfig changed")
	}
	if err := os.WriteFile(p.cfgs[0], []byte(edited), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, out := check(); code != 1 || !strings.Contains(out, `virtual service "Harmonic_Traffic": real server #1 differs`) ||
		!strings.Contains(out, `virtual service "Harmonic_Management": real server "HM3" only in the second`) {
		t.Errorf("medialb check before the push: exit %d, want 1 with the differences\n%s", code, out)
	}
	if code, out := checkPeer(0); code != 1 || !strings.Contains(out, "runs other virtual_services") {
		t.Errorf("medialb check --peer on the primary before its reload: exit %d, want 1\n%s", code, out)
	}
	mark := p.procs[1].Mark()
	if err := p.procs[0].Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	took := waitView(1, 10*time.Second, "pushed services", func(v syncView) bool {
		w, _, ok := v.server("Harmonic_Traffic", "HT1")
		_, _, hm3 := v.server("Harmonic_Management", "HM3")
		return ok && w == 300 && hm3
	})
	t.Logf("the primary's new virtual_services on the secondary %s after its SIGHUP", took.Round(time.Millisecond))
	if _, err := p.procs[1].WaitFor(ctx, mark, 5*time.Second, "applied like a reload", func(ev lbproc.Event) bool {
		return ev.Msg() == "configuration reloaded"
	}); err != nil {
		t.Error(err)
	}
	// Node-local settings stay the secondary's own.
	lb2 := e.lab.LBs[1]
	v2, err := view(1)
	if err != nil {
		t.Fatal(err)
	}
	if v2.Node != lb2.Name || v2.HA == nil || v2.HA.Role != "backup" {
		t.Errorf("secondary after the push: node %q, ha %+v; want %s, backup", v2.Node, v2.HA, lb2.Name)
	}
	kconf, err := os.ReadFile(filepath.Join(e.dir, lb2.Name, "ha", "keepalived.conf"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(kconf), "priority 100\n") {
		t.Errorf("the secondary's keepalived.conf lost its own priority 100:\n%s", kconf)
	}
	overlay, err := os.ReadFile(filepath.Join(e.dir, lb2.Name, "ha", "virtual_services.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, local := range []string{"\nnode:", "\napi:", "\nha:", "password_hash", "secret", "state_dir", "interface"} {
		if strings.Contains(string(overlay), local) {
			t.Errorf("the pushed file holds %q, a node-local setting:\n%s", local, overlay)
		}
	}
	if code, out := check(); code != 0 || !strings.Contains(out, "the pair agrees") || !strings.Contains(out, "pushed by "+e.lab.LBs[0].Name) {
		t.Errorf("medialb check after the push: exit %d\n%s", code, out)
	}
	for i := range 2 {
		if code, out := checkPeer(i); code != 0 || !strings.Contains(out, "runs the same virtual_services") {
			t.Errorf("medialb check --peer on lb%d after the push: exit %d\n%s", i+1, code, out)
		}
	}

	// The secondary's own reload keeps the pushed services.
	mark = p.procs[1].Mark()
	if err := p.procs[1].Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	if _, err := p.procs[1].WaitFor(ctx, mark, 10*time.Second, "secondary reloaded", func(ev lbproc.Event) bool {
		return ev.Msg() == "configuration reloaded"
	}); err != nil {
		t.Fatal(err)
	}
	if v, err := view(1); err != nil {
		t.Fatal(err)
	} else if w, _, _ := v.server("Harmonic_Traffic", "HT1"); w != 300 {
		t.Errorf("after the secondary's own reload HT1 has weight %d, want the pushed 300", w)
	}

	// A drain on the primary (the master) reaches the secondary.
	code, body, err := p.procs[0].API(ctx, "POST", "9443", "/api/v1/services/Harmonic_Management/real-servers/HM3/drain", "loadbalancer", "loadbalancer")
	if err != nil || code != 200 {
		t.Fatalf("drain HM3 on the primary: %d %s %v", code, body, err)
	}
	took = waitView(1, 10*time.Second, "HM3 drained", func(v syncView) bool {
		_, admin, _ := v.server("Harmonic_Management", "HM3")
		return admin == "drain"
	})
	t.Logf("a drain on the primary on the secondary after %s", took.Round(time.Millisecond))

	// Restarted, the secondary runs the pushed services from the start.
	if err := p.procs[1].Stop(15 * time.Second); err != nil {
		t.Fatalf("stop lb2: %v", err)
	}
	p.start(1)
	if _, err := p.procs[1].WaitFor(ctx, 0, 5*time.Second, "start with the pushed services", func(ev lbproc.Event) bool {
		return ev.Msg() == "medialb running" && strings.Contains(ev.Str("summary"), "virtual_services pushed by "+e.lab.LBs[0].Name)
	}); err != nil {
		t.Error(err)
	}
	if v, err := view(1); err != nil {
		t.Fatal(err)
	} else if w, _, _ := v.server("Harmonic_Traffic", "HT1"); w != 300 {
		t.Errorf("restarted secondary: HT1 has weight %d, want the pushed 300", w)
	}
}
