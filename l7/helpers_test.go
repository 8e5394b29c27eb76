package l7

import (
	"bufio"
	"context"

	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"go.uber.org/goleak"

	"github.com/medialb/medialb/tables"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// addrSeq hands out distinct loopback addresses (all of 127/8 is on lo).
var addrSeq atomic.Uint32

// loopNet is the second octet of this process's loopback addresses, so that
// test processes running side by side rarely share addresses.
var loopNet = byte(100 + os.Getpid()%100)

func loopAddr() netip.Addr {
	n := addrSeq.Add(1)
	return netip.AddrFrom4([4]byte{127, loopNet, byte(n >> 8), byte(n)})
}

// backend is a simulated real server: on accept it writes its name and a
// newline, then echoes, and passes on the client's half-close.
type backend struct {
	name string
	addr netip.Addr
	lns  []net.Listener
	wg   sync.WaitGroup

	mu    sync.Mutex
	conns []net.Conn
	// handler replaces the echo behaviour when set.
	handler func(c net.Conn)
}

func (b *backend) serve(t testing.TB, ln net.Listener) {
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			b.mu.Lock()
			b.conns = append(b.conns, c)
			h := b.handler
			b.mu.Unlock()
			b.wg.Add(1)
			go func() {
				defer b.wg.Done()
				if h != nil {
					h(c)
					return
				}
				defer c.Close()
				fmt.Fprintf(c, "%s\n", b.name)
				io.Copy(c, c)
				c.(*net.TCPConn).CloseWrite()
			}()
		}
	}()
}

func (b *backend) setHandler(h func(net.Conn)) {
	b.mu.Lock()
	b.handler = h
	b.mu.Unlock()
}

func (b *backend) close() {
	for _, ln := range b.lns {
		ln.Close()
	}
	b.mu.Lock()
	for _, c := range b.conns {
		c.Close()
	}
	b.mu.Unlock()
	b.wg.Wait()
}

// lab is a VIP with real servers on loopback addresses, a proxy and the
// snapshot it serves.
type lab struct {
	t        testing.TB
	vip      netip.Addr
	ports    []uint16
	backends []*backend
	holder   tables.Holder
	proxy    *Proxy
	spec     tables.Spec
	snap     *tables.Snapshot
	opts     map[string]ServiceOptions
	dialHook atomic.Pointer[dialFunc] // replaces the proxy's dialler when set
}

// newLab starts nports ports and len(weights) real servers listening on them.
func newLab(t testing.TB, nports int, weights []uint32, opts ServiceOptions) *lab {
	t.Helper()
	l := &lab{t: t, vip: loopAddr()}
	for i := range weights {
		l.backends = append(l.backends, &backend{name: fmt.Sprintf("RS%d", i+1), addr: loopAddr()})
	}
	// Find ports free on every address.
	for len(l.ports) < nports {
		ln, err := net.Listen("tcp", netip.AddrPortFrom(l.backends[0].addr, 0).String())
		if err != nil {
			t.Fatal(err)
		}
		port := uint16(ln.Addr().(*net.TCPAddr).Port)
		lns := []net.Listener{ln}
		ok := true
		if probe, err := net.Listen("tcp", netip.AddrPortFrom(l.vip, port).String()); err != nil {
			ok = false
		} else {
			probe.Close()
		}
		for _, b := range l.backends[1:] {
			if !ok {
				break
			}
			ln, err := net.Listen("tcp", netip.AddrPortFrom(b.addr, port).String())
			if err != nil {
				ok = false
				break
			}
			lns = append(lns, ln)
		}
		if !ok {
			for _, ln := range lns {
				ln.Close()
			}
			continue
		}
		for i, b := range l.backends {
			b.lns = append(b.lns, lns[i])
			b.serve(t, lns[i])
		}
		l.ports = append(l.ports, port)
	}
	svc := tables.ServiceSpec{
		Name: "svc", VIP: l.vip, TCP: true, Layer: 7, PersistTimeout: 30 * time.Minute,
		AffinityCap: 4096,
	}
	for _, p := range l.ports {
		svc.Ports = append(svc.Ports, tables.PortRange{Lo: p, Hi: p})
	}
	for i, b := range l.backends {
		svc.Servers = append(svc.Servers, tables.ServerSpec{Name: b.name, Addr: b.addr, Weight: weights[i]})
	}
	l.spec = tables.Spec{HashSeed: 42, Services: []tables.ServiceSpec{svc}}
	l.opts = map[string]ServiceOptions{"svc": opts}
	l.proxy = New(&l.holder, zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel))
	realDial := l.proxy.dial
	l.proxy.dial = func(ctx context.Context, laddr, raddr netip.AddrPort) (*net.TCPConn, error) {
		if h := l.dialHook.Load(); h != nil {
			return (*h)(ctx, laddr, raddr)
		}
		return realDial(ctx, laddr, raddr)
	}
	l.apply()
	t.Cleanup(func() {
		l.proxy.Close()
		for _, b := range l.backends {
			b.close()
		}
	})
	return l
}

// apply builds l.spec, stores it and applies it.
func (l *lab) apply() {
	l.t.Helper()
	snap, err := tables.Build(l.spec, l.snap)
	if err != nil {
		l.t.Fatal(err)
	}
	l.snap = snap
	l.holder.Store(snap)
	if err := l.proxy.Apply(snap, l.opts); err != nil {
		l.t.Fatal(err)
	}
}

// setState sets a server's state as a reload would: through Apply.
func (l *lab) setState(server string, st tables.State) {
	l.specState(server, st)
	l.apply()
}

// swapState sets a server's state as the control plane does on a health or
// operator change: a new snapshot swapped in, then the OnSnapshot hook.
func (l *lab) swapState(server string, st tables.State) {
	l.t.Helper()
	l.specState(server, st)
	prev := l.snap
	next, err := tables.Build(l.spec, prev)
	if err != nil {
		l.t.Fatal(err)
	}
	l.snap = next
	l.holder.Store(next)
	l.proxy.OnSnapshot(prev, next)
}

func (l *lab) specState(server string, st tables.State) {
	for i := range l.spec.Services[0].Servers {
		s := &l.spec.Services[0].Servers[i]
		if s.Name == server {
			if !st.InService() {
				s.Generation++
			}
			s.State = st
		}
	}
}

// dial connects from client (a loopback address) to the VIP's i-th port.
func (l *lab) dial(client netip.Addr, i int) (*net.TCPConn, error) {
	d := net.Dialer{LocalAddr: net.TCPAddrFromAddrPort(netip.AddrPortFrom(client, 0)), Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", netip.AddrPortFrom(l.vip, l.ports[i]).String())
	if err != nil {
		return nil, err
	}
	return c.(*net.TCPConn), nil
}

// hello connects and reads the server's greeting line.
func (l *lab) hello(client netip.Addr, i int) (*net.TCPConn, *bufio.Reader, string) {
	l.t.Helper()
	c, err := l.dial(client, i)
	if err != nil {
		l.t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	r := bufio.NewReader(c)
	line, err := r.ReadString('\n')
	if err != nil {
		c.Close()
		l.t.Fatalf("read greeting via %v: %v", l.vip, err)
	}
	c.SetReadDeadline(time.Time{})
	return c, r, line[:len(line)-1]
}

// serverOf returns which server a fresh connection from client lands on.
func (l *lab) serverOf(client netip.Addr, i int) string {
	l.t.Helper()
	c, _, name := l.hello(client, i)
	c.Close()
	return name
}

func (l *lab) stats(server string) ServerStats {
	for _, s := range l.proxy.Stats() {
		for _, r := range s.Servers {
			if r.Name == server {
				return r
			}
		}
	}
	return ServerStats{}
}

// waitFor polls cond for up to 5 s.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// expectClosed checks that c is closed by the far end within d.
func expectClosed(t testing.TB, c net.Conn, d time.Duration) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(d))
	buf := make([]byte, 4096)
	for {
		_, err := c.Read(buf)
		if err == nil {
			continue
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("connection still open after %v", d)
		}
		return
	}
}

// expectReset dials the VIP and checks that the proxy closes the connection
// at once (the reset may even beat connect's return).
func (l *lab) expectReset(client netip.Addr) {
	l.t.Helper()
	c, err := l.dial(client, 0)
	switch {
	case errors.Is(err, syscall.ECONNRESET):
	case err != nil:
		l.t.Fatal(err)
	default:
		defer c.Close()
		expectClosed(l.t, c, 2*time.Second)
	}
}

func zerologTest(t testing.TB) zerolog.Logger {
	return zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)
}
