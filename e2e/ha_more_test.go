package e2e

import (
	"bufio"
	"bytes"
	"context"
	"flag"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"

	"github.com/medialb/medialb/lab"
	"github.com/medialb/medialb/lab/lbproc"
)

// haMoreTrials is how many failures of each kind the tests of this file
// measure; make test runs one, BENCHMARKS.md's figures more:
//
//	go test ./e2e/ -run 'TestHA(LinkDown|Unhealthy)' -count=1 -v -ha.more.trials=5
var haMoreTrials = flag.Int("ha.more.trials", 1, "failures measured by TestHALinkDown and TestHAUnhealthy")

const haVIP4 = "192.168.94.110"

// startedPair builds a lab with two load balancers running haConfig and waits
// until lb1 is master and lb2 its backup, with every real server checked.
func startedPair(t *testing.T, clients int) (*env, *pair) {
	t.Helper()
	e := newEnv(t, "hm", lab.Options{LoadBalancers: 2, Clients: clients})
	p := newPair(e)
	p.startPrimaryFirst()
	for i := range 2 {
		p.e.proc = p.procs[i]
		e.waitChecked(15 * time.Second)
	}
	return e, p
}

// haStream is a UDP stream to the layer-4 VIP, a datagram every 2 ms, whose
// sending stops before its receiving, so that its loss counts no datagram
// still in flight.
type haStream struct {
	sent, got atomic.Int64
	mu        sync.Mutex
	replies   []time.Time
	stopSend  chan struct{}
	stopRecv  chan struct{}
	sender    sync.WaitGroup
	receiver  sync.WaitGroup
}

// stream starts a stream from the last client source and waits until it gets
// replies.
func (p *pair) stream() *haStream {
	t := p.e.t
	t.Helper()
	l := p.e.lab
	src := l.Client.Sources4[len(l.Client.Sources4)-1]
	c, err := l.ListenUDP(netip.AddrPortFrom(src, 0)) // unconnected: an ICMP error does not stop it
	if err != nil {
		t.Fatal(err)
	}
	s := &haStream{stopSend: make(chan struct{}), stopRecv: make(chan struct{})}
	s.receiver.Add(1)
	go func() {
		defer s.receiver.Done()
		buf := make([]byte, 512)
		for {
			c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
			n, _, err := c.ReadFrom(buf)
			if err == nil && bytes.HasPrefix(buf[:n], []byte("server=")) {
				now := time.Now()
				s.got.Add(1)
				s.mu.Lock()
				s.replies = append(s.replies, now)
				s.mu.Unlock()
			}
			select {
			case <-s.stopRecv:
				return
			default:
			}
		}
	}()
	s.sender.Add(1)
	go func() {
		defer s.sender.Done()
		tk := time.NewTicker(2 * time.Millisecond)
		defer tk.Stop()
		to := net.UDPAddrFromAddrPort(netip.AddrPortFrom(netip.MustParseAddr(haVIP4), l.MediaPorts[0]))
		for {
			select {
			case <-s.stopSend:
				return
			case <-tk.C:
			}
			if _, err := c.WriteTo([]byte("media\n"), to); err == nil {
				s.sent.Add(1)
			}
		}
	}()
	t.Cleanup(func() { s.stop(); c.Close() })
	time.Sleep(300 * time.Millisecond)
	if s.got.Load() == 0 {
		t.Fatal("the UDP stream gets no replies")
	}
	return s
}

// stop stops sending, waits for the last replies and stops receiving.
func (s *haStream) stop() {
	select {
	case <-s.stopSend:
		return
	default:
	}
	close(s.stopSend)
	s.sender.Wait()
	time.Sleep(100 * time.Millisecond)
	close(s.stopRecv)
	s.receiver.Wait()
}

// firstAfter returns the first reply received after t0+skip.
func (s *haStream) firstAfter(t0 time.Time, skip time.Duration) (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range s.replies {
		if r.After(t0.Add(skip)) {
			return r, true
		}
	}
	return time.Time{}, false
}

// hold opens n TCP connections through the layer-4 VIP and reads the server
// each reached.
func (p *pair) hold(n int) []*heldConn {
	t := p.e.t
	t.Helper()
	l := p.e.lab
	var held []*heldConn
	for _, src := range l.Client.Sources4[:n] {
		c, err := l.DialTCP(context.Background(), src, netip.AddrPortFrom(netip.MustParseAddr(haVIP4), 1935))
		if err != nil {
			t.Fatalf("connect from %s: %v", src, err)
		}
		t.Cleanup(func() { c.Close() })
		h := &heldConn{c: c, r: bufio.NewReader(c)}
		if h.server, err = h.ask(); err != nil {
			t.Fatalf("first line from %s: %v", src, err)
		}
		held = append(held, h)
	}
	return held
}

// broken asks every held connection again and returns how many no longer
// answer, or answer from another server.
func broken(t *testing.T, held []*heldConn, what string) int {
	t.Helper()
	nb := 0
	for _, h := range held {
		if srv, err := h.ask(); err != nil || srv != h.server {
			nb++
			t.Errorf("%s: held connection from %s (on %s): %q, %v", what, h.c.LocalAddr(), h.server, srv, err)
		}
	}
	return nb
}

// takeover waits until node i logs that it became master (from mark) and then
// for the stream's first reply after t0, and returns the time from t0 to it.
func (p *pair) takeover(i, mark int, s *haStream, t0 time.Time) time.Duration {
	t := p.e.t
	t.Helper()
	if _, err := p.procs[i].WaitFor(context.Background(), mark, 10*time.Second, "master role", func(ev lbproc.Event) bool {
		return ev.Msg() == "HA role changed" && ev.Str("role") == "master"
	}); err != nil {
		t.Fatalf("lb%d did not take over: %v", i+1, err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if first, ok := s.firstAfter(t0, 5*time.Millisecond); ok {
			return first.Sub(t0)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no UDP reply through lb%d within 5s of the failure", i+1)
	return 0
}

// settle stops the stream a moment after the last event and returns the
// datagrams lost and sent.
func settle(s *haStream) (lost, sent int64) {
	time.Sleep(300 * time.Millisecond)
	s.stop()
	return s.sent.Load() - s.got.Load(), s.sent.Load()
}

// checkReturn checks what the failed node (returned) must not do when it comes
// back as the backup: interrupt the stream, take the VIP, or break a held
// connection; it closes the held connections and returns the datagrams lost.
func checkReturn(t *testing.T, p *pair, trial, returned int, s *haStream, held []*heldConn, what string) int64 {
	t.Helper()
	other := 1 - returned
	lost, sent := settle(s)
	t.Logf("trial %d: lb%d %s: %d of %d datagrams lost", trial, returned+1, what, lost, sent)
	if lost != 0 {
		t.Errorf("trial %d: the returning lb%d interrupted the stream: %d datagrams lost", trial, returned+1, lost)
	}
	if p.hasVIP(returned, haVIP4) || !p.hasVIP(other, haVIP4) {
		t.Errorf("trial %d: VIP on the returned lb%d %v, on lb%d %v", trial, returned+1, p.hasVIP(returned, haVIP4), other+1, p.hasVIP(other, haVIP4))
	}
	broken(t, held, "after lb"+strconv.Itoa(returned+1)+" returned")
	for _, h := range held {
		h.c.Close()
	}
	return lost
}

// run runs a command in namespace ns and fails the test if it fails.
func run(t *testing.T, ns string, args ...string) string {
	t.Helper()
	out, err := lab.Exec(ns, args[0], args[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s in %s: %v\n%s", strings.Join(args, " "), ns, err, out)
	}
	return string(out)
}

// summary logs min, median and max of the figures.
func summary[T int64 | time.Duration](t *testing.T, what string, v []T) {
	t.Helper()
	slices.Sort(v)
	t.Logf("%s over %d trials: min %v median %v max %v", what, len(v), v[0], v[len(v)/2], v[len(v)-1])
}

// TestHALinkDown takes the master's link down (its port on the lab's bridge,
// as a pulled cable or a failed switch port would): keepalived on it goes
// FAULT and the backup, hearing no more advertisements, takes over after the
// master-down interval. The link comes back: the old master must return as the
// backup (no preemption) without a second interruption, and pass traffic again.
func TestHALinkDown(t *testing.T) {
	e, p := startedPair(t, 8)
	master := 0
	var takeovers []time.Duration
	var losses, returns []int64
	for trial := range *haMoreTrials {
		backup := 1 - master
		lb := e.lab.LBs[master]
		held := p.hold(4)
		s := p.stream()
		mark, fmark := p.procs[backup].Mark(), p.procs[master].Mark()
		t0 := time.Now()
		run(t, e.lab.Switch, "ip", "link", "set", "dev", lb.SwitchPort, "down")
		took := p.takeover(backup, mark, s, t0)
		lost, sent := settle(s)
		nb := broken(t, held, "after the link went down")
		// Its API is out of reach too: its log says it.
		if _, err := p.procs[master].WaitFor(context.Background(), fmark, 5*time.Second, "fault role", func(ev lbproc.Event) bool {
			return ev.Msg() == "HA role changed" && ev.Str("role") == "fault"
		}); err != nil {
			t.Errorf("trial %d: lb%d with its link down: %v", trial, master+1, err)
		}
		t.Logf("trial %d: lb%d's link down: first UDP reply through lb%d after %s; %d of %d datagrams lost; %d of %d held connections broken",
			trial, master+1, backup+1, took.Round(time.Millisecond), lost, sent, nb, len(held))
		takeovers, losses = append(takeovers, took), append(losses, lost)

		s = p.stream()
		run(t, e.lab.Switch, "ip", "link", "set", "dev", lb.SwitchPort, "up")
		p.waitHA(master, 10*time.Second, "backup role with a master peer after the link came back", func(o haOverview) bool {
			return o.HA.Role == "backup" && o.HA.PeerState == "master"
		})
		time.Sleep(500 * time.Millisecond)
		returns = append(returns, checkReturn(t, p, trial, master, s, held, "link back"))
		master = backup
	}
	summary(t, "link down: takeover", takeovers)
	summary(t, "link down: UDP datagrams lost", losses)
	summary(t, "link back: UDP datagrams lost", returns)
}

// TestHAUnhealthy makes the master unhealthy from outside, as an operator's
// mistake or another tool would: its XDP program's BPF link is detached (as
// `bpftool link detach` does), so it would hold the VIPs and forward nothing.
// medialb's health check must see it and keepalived go FAULT, releasing the VIPs; the backup
// takes over. The failed node, restarted, comes back as the backup (no
// preemption) without a second interruption.
func TestHAUnhealthy(t *testing.T) {
	e, p := startedPair(t, 8)
	ctx := context.Background()
	master := 0
	var takeovers []time.Duration
	var losses, returns []int64
	for trial := range *haMoreTrials {
		backup := 1 - master
		lb := e.lab.LBs[master]
		held := p.hold(4)
		s := p.stream()
		mark, fmark := p.procs[backup].Mark(), p.procs[master].Mark()
		t0 := time.Now()
		detachXDP(t, lb)
		took := p.takeover(backup, mark, s, t0)
		lost, sent := settle(s)
		nb := broken(t, held, "after the master's XDP program was detached")
		if _, err := p.procs[master].WaitFor(ctx, fmark, 5*time.Second, "unhealthy", func(ev lbproc.Event) bool {
			return ev.Msg() == "HA: this node is unhealthy; keepalived releases the VIPs to the peer" && strings.Contains(ev.Str("reason"), "no XDP program")
		}); err != nil {
			t.Errorf("trial %d: %v", trial, err)
		}
		ov := p.waitHA(master, 5*time.Second, "fault role", func(o haOverview) bool { return o.HA.Role == "fault" })
		if !strings.Contains(ov.HA.Cause, "this node unhealthy") {
			t.Errorf("trial %d: lb%d's failover cause %q, want this node unhealthy", trial, master+1, ov.HA.Cause)
		}
		if p.hasVIP(master, haVIP4) {
			t.Errorf("trial %d: the unhealthy lb%d keeps the VIP", trial, master+1)
		}
		t.Logf("trial %d: lb%d's XDP link detached: first UDP reply through lb%d after %s; %d of %d datagrams lost; %d of %d held connections broken",
			trial, master+1, backup+1, took.Round(time.Millisecond), lost, sent, nb, len(held))
		takeovers, losses = append(takeovers, took), append(losses, lost)

		// The operator restarts it: it attaches again and returns as the backup.
		s = p.stream()
		if err := p.procs[master].Stop(15 * time.Second); err != nil {
			t.Errorf("trial %d: stop lb%d: %v", trial, master+1, err)
		}
		p.start(master)
		p.waitHA(master, 15*time.Second, "backup role with a master peer after the restart", func(o haOverview) bool {
			return o.HA.Role == "backup" && o.HA.PeerState == "master"
		})
		time.Sleep(time.Second) // several advertisement intervals
		returns = append(returns, checkReturn(t, p, trial, master, s, held, "back as the backup"))
		master = backup
	}
	summary(t, "XDP detached: takeover", takeovers)
	summary(t, "XDP detached: UDP datagrams lost", losses)
	summary(t, "restarted node back: UDP datagrams lost", returns)
}

// detachXDP detaches the BPF link holding the XDP program on lb's interface,
// as `bpftool link detach` would, through cilium/ebpf (no bpftool needed): the
// program id comes from the interface (netlink, inside lb's namespace), the
// link from the kernel's global list of BPF links.
func detachXDP(t *testing.T, lb lab.Node) {
	t.Helper()
	var prog uint32
	err := lab.Do(lb.NS, func() error {
		l, err := netlink.LinkByName(lb.Link)
		if err != nil {
			return err
		}
		if x := l.Attrs().Xdp; x != nil && x.Attached {
			prog = x.ProgId
		}
		return nil
	})
	if err != nil || prog == 0 {
		t.Fatalf("no XDP program on %s in %s (%v)", lb.Link, lb.NS, err)
	}
	var it link.Iterator
	defer it.Close()
	for it.Next() {
		info, err := it.Link.Info()
		if err != nil || info.Type != link.XDPType || uint32(info.Program) != prog {
			continue
		}
		if err := it.Link.Detach(); err != nil {
			t.Fatalf("detach BPF link %d (XDP program %d on %s): %v", it.ID, prog, lb.Link, err)
		}
		return
	}
	t.Fatalf("no BPF link holds XDP program %d on %s (%v)", prog, lb.Link, it.Err())
}

// TestHASplitBrain drops the master's VRRP advertisements (IP protocol 112)
// where they reach the backup: the backup hears no master, becomes master too and announces the VIPs, so
// the clients' traffic moves to it while the old master still holds them.
// Held TCP connections through the layer-4 VIP must not break (both nodes pick
// the same server for a client), nor after the heal, when the higher priority
// stays the only master.
func TestHASplitBrain(t *testing.T) {
	e, p := startedPair(t, 16)
	ctx := context.Background()
	lb1, lb2 := e.lab.LBs[0], e.lab.LBs[1]
	held := p.hold(12)
	s := p.stream()

	mark := p.procs[1].Mark()
	t0 := time.Now()
	// (The lab's kernel has no tc drop action nor netfilter: a policy rule in
	// lb2 drops what arrives from lb1 with IP protocol 112; everything else,
	// the sync channel too, still passes. The local table's rule moves after
	// it, or local delivery would be decided first.)
	run(t, lb2.NS, "ip", "rule", "add", "priority", "200", "lookup", "local")
	run(t, lb2.NS, "ip", "rule", "del", "priority", "0")
	rule := []string{"ip", "rule", "add", "from", lb1.Addr4.String(), "iif", lb2.Link, "ipproto", "112", "priority", "100", "blackhole"}
	run(t, lb2.NS, rule...)
	if _, err := p.procs[1].WaitFor(ctx, mark, 10*time.Second, "lb2 master", func(ev lbproc.Event) bool {
		return ev.Msg() == "HA role changed" && ev.Str("role") == "master"
	}); err != nil {
		t.Fatalf("lb2 cut off from VRRP: %v", err)
	}
	split := time.Since(t0)
	time.Sleep(time.Second)
	if ov, err := p.overview(0); err != nil || ov.HA.Role != "master" || !p.hasVIP(0, haVIP4) || !p.hasVIP(1, haVIP4) {
		t.Fatalf("split brain: lb1 %+v %v; VIP on lb1 %v, on lb2 %v; want both master with the VIP", ov.HA, err, p.hasVIP(0, haVIP4), p.hasVIP(1, haVIP4))
	}
	// Both nodes answer for the VIP now; the lab's one client stays with lb1,
	// so it is moved to lb2 by hand, as a part of the clients would move: the
	// held connections opened through lb1 go on through lb2.
	before := p.clientVia()
	run(t, e.lab.Client.NS, "ip", "neigh", "replace", haVIP4, "lladdr", lb2.MAC.String(), "dev", e.lab.Client.Link, "nud", "permanent")
	time.Sleep(200 * time.Millisecond)
	nb := broken(t, held, "during the split brain, through lb2")
	t.Logf("split brain %s after VRRP was cut; the client was sending through %s, now through %s; held connections broken %d of %d",
		split.Round(time.Millisecond), before, p.clientVia(), nb, len(held))

	// Heal: lb2 hears lb1's higher priority again and goes back to backup.
	mark = p.procs[1].Mark()
	rule[2] = "del"
	run(t, lb2.NS, rule...)
	if _, err := p.procs[1].WaitFor(ctx, mark, 10*time.Second, "lb2 backup again", func(ev lbproc.Event) bool {
		return ev.Msg() == "HA role changed" && ev.Str("role") == "backup"
	}); err != nil {
		t.Fatalf("after the heal: %v", err)
	}
	// The client resolves the VIP again: only lb1 answers.
	run(t, e.lab.Client.NS, "ip", "neigh", "del", haVIP4, "dev", e.lab.Client.Link)
	time.Sleep(time.Second)
	lost, sent := settle(s)
	if via := p.clientVia(); via != lb1.Name {
		t.Errorf("after the heal the client sends to the VIP through %s, want lb1", via)
	}
	if p.hasVIP(1, haVIP4) || !p.hasVIP(0, haVIP4) {
		t.Errorf("after the heal: VIP on lb1 %v, on lb2 %v; want only on lb1", p.hasVIP(0, haVIP4), p.hasVIP(1, haVIP4))
	}
	p.waitHA(0, 5*time.Second, "master with a backup peer after the heal", func(o haOverview) bool {
		return o.HA.Role == "master" && o.HA.PeerState == "backup"
	})
	nb += broken(t, held, "after the heal")
	t.Logf("healed; UDP datagrams lost over the split and the heal %d of %d; held connections broken %d; the client sends through %s",
		lost, sent, nb, p.clientVia())
	// New connections go through lb1 again and reach a server.
	for _, h := range p.hold(4) {
		if h.server == "" {
			t.Error("a new connection after the heal reached no server")
		}
	}
}

// clientVia returns the name of the load balancer whose MAC address the
// client's neighbour entry of the VIP holds.
func (p *pair) clientVia() string {
	out := run(p.e.t, p.e.lab.Client.NS, "ip", "neigh", "show", haVIP4)
	for _, lb := range p.e.lab.LBs {
		if strings.Contains(out, "lladdr "+lb.MAC.String()) {
			return lb.Name
		}
	}
	return "no load balancer (" + strings.TrimSpace(out) + ")"
}
