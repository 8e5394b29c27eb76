package l7

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/medialb/medialb/tables"
)

func TestRelayBothWaysAndHalfClose(t *testing.T) {
	l := newLab(t, 1, []uint32{100}, ServiceOptions{})
	client := loopAddr()
	c, r, name := l.hello(client, 0)
	defer c.Close()
	if name != "RS1" {
		t.Fatalf("greeting %q, want RS1", name)
	}
	payload := strings.Repeat("media", 200000) // 1 MB
	go func() {
		io.WriteString(c, payload)
		c.CloseWrite() // half-close: the server must see EOF and answer the rest
	}()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	got, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("read echo: %v", err)
	}
	if string(got) != payload {
		t.Fatalf("echo: got %d bytes, want %d", len(got), len(payload))
	}
	waitFor(t, "connection end", func() bool { return l.stats("RS1").Active == 0 })
	st := l.stats("RS1")
	if st.Total != 1 || st.BytesIn != uint64(len(payload)) || st.BytesOut != uint64(len(payload)+4) {
		t.Fatalf("stats %+v, want total 1, in %d, out %d", st, len(payload), len(payload)+4)
	}
}

// TestHalfCloseFromServer: the server closes its side first; the client can
// still send and the server still reads.
func TestHalfCloseFromServer(t *testing.T) {
	l := newLab(t, 1, []uint32{100}, ServiceOptions{})
	got := make(chan string, 1)
	l.backends[0].setHandler(func(c net.Conn) {
		defer c.Close()
		io.WriteString(c, "bye")
		c.(*net.TCPConn).CloseWrite()
		b, _ := io.ReadAll(c)
		got <- string(b)
	})
	c, err := l.dial(loopAddr(), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	b, err := io.ReadAll(c) // EOF arrives while our side stays open
	if err != nil || string(b) != "bye" {
		t.Fatalf("read %q, %v", b, err)
	}
	io.WriteString(c, "still here")
	c.CloseWrite()
	if s := <-got; s != "still here" {
		t.Fatalf("server read %q", s)
	}
}

func TestPersistenceAcrossConnectionsAndPorts(t *testing.T) {
	l := newLab(t, 2, []uint32{100, 100, 100}, ServiceOptions{})
	for range 10 {
		client := loopAddr()
		first := l.serverOf(client, 0)
		for i := range 6 {
			if got := l.serverOf(client, i%2); got != first {
				t.Fatalf("client %v: connection %d on port %d went to %s, first to %s", client, i, l.ports[i%2], got, first)
			}
		}
	}
}

func TestWeightsSpread(t *testing.T) {
	l := newLab(t, 1, []uint32{100, 300, 0}, ServiceOptions{})
	count := map[string]int{}
	const n = 400
	for range n {
		count[l.serverOf(loopAddr(), 0)]++
	}
	if count["RS3"] != 0 {
		t.Fatalf("weight-0 server got %d clients", count["RS3"])
	}
	// Expect 1:3 (100 vs 300 of 400); allow a wide margin for hashing.
	if count["RS1"] < 60 || count["RS1"] > 140 || count["RS2"] < 260 || count["RS2"] > 340 {
		t.Fatalf("spread %v, want about RS1:100 RS2:300", count)
	}
}

func TestDrainKeepsEstablishedAndPersistent(t *testing.T) {
	l := newLab(t, 1, []uint32{100, 100}, ServiceOptions{})
	// Find a client on RS1 and keep its connection open.
	var client netip.Addr
	for {
		client = loopAddr()
		if l.serverOf(client, 0) == "RS1" {
			break
		}
	}
	c, r, _ := l.hello(client, 0)
	defer c.Close()
	l.setState("RS1", tables.StateDrain)

	io.WriteString(c, "ping\n")
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if line, err := r.ReadString('\n'); err != nil || line != "ping\n" {
		t.Fatalf("established connection after drain: %q, %v", line, err)
	}
	if got := l.serverOf(client, 0); got != "RS1" {
		t.Fatalf("persistent client after drain went to %s, want RS1", got)
	}
	for range 20 {
		if got := l.serverOf(loopAddr(), 0); got != "RS2" {
			t.Fatalf("new client after drain went to %s, want RS2", got)
		}
	}
}

func TestHaltClosesAtOnce(t *testing.T) {
	for _, how := range []string{"halt", "down", "OnSnapshot halt", "OnSnapshot down"} {
		t.Run(how, func(t *testing.T) {
			l := newLab(t, 1, []uint32{100}, ServiceOptions{})
			var conns []net.Conn
			for range 3 {
				c, _, _ := l.hello(loopAddr(), 0)
				defer c.Close()
				conns = append(conns, c)
			}
			waitFor(t, "3 active", func() bool { return l.stats("RS1").Active == 3 })
			switch how {
			case "halt":
				l.setState("RS1", tables.StateHalt)
			case "down":
				l.setState("RS1", tables.StateDown)
			case "OnSnapshot halt":
				l.swapState("RS1", tables.StateHalt)
			case "OnSnapshot down":
				l.swapState("RS1", tables.StateDown)
			}
			for _, c := range conns {
				expectClosed(t, c, time.Second)
			}
			waitFor(t, "0 active", func() bool { return l.stats("RS1").Active == 0 })
		})
	}
}

func TestRedispatchOnRefused(t *testing.T) {
	l := newLab(t, 1, []uint32{100, 100}, ServiceOptions{})
	l.backends[0].close() // RS1 refuses from now on
	for range 20 {
		if got := l.serverOf(loopAddr(), 0); got != "RS2" {
			t.Fatalf("went to %s, want RS2", got)
		}
	}
	st := l.stats("RS1")
	if st.ConnectFailures == 0 || st.ConnectFailures != st.FailStreak {
		t.Fatalf("RS1 stats %+v: want connect failures counted", st)
	}
	// Redispatch is deterministic: the same client gets the same answer.
	svc := l.snap.Service("svc")
	c := loopAddr()
	a := redispatch(svc, c, []*tables.Server{svc.Servers[1]}, 42)
	b := redispatch(svc, c, []*tables.Server{svc.Servers[1]}, 42)
	if a != b || a != svc.Servers[0] {
		t.Fatalf("redispatch %v %v", a, b)
	}
	if s := redispatch(svc, c, svc.Servers, 42); s != nil {
		t.Fatalf("redispatch with all tried: %v", s)
	}
}

func TestNoServerResets(t *testing.T) {
	l := newLab(t, 1, []uint32{100}, ServiceOptions{})
	l.backends[0].close()
	l.expectReset(loopAddr())
	waitFor(t, "no-server count", func() bool { return l.proxy.Stats()[0].NoServer == 1 })
}

func TestConnectTimeoutRedispatch(t *testing.T) {
	l := newLab(t, 1, []uint32{100, 100}, ServiceOptions{ConnectTimeout: 200 * time.Millisecond})
	// RS1 never answers: the hook waits for the dial context like a SYN
	// that gets no reply (no packet may leave the machine, so it is simulated).
	hook := dialFunc(func(ctx context.Context, laddr, raddr netip.AddrPort) (*net.TCPConn, error) {
		if raddr.Addr() == l.backends[0].addr {
			<-ctx.Done()
			return nil, ctx.Err()
		}
		return l.proxy.dialTCP(ctx, laddr, raddr)
	})
	l.dialHook.Store(&hook)
	var client netip.Addr
	for {
		client = loopAddr()
		s, _ := l.snap.Service("svc").Pick(client, l.proxy.now())
		if s.Name == "RS1" {
			break
		}
	}
	start := time.Now()
	if got := l.serverOf(client, 0); got != "RS2" {
		t.Fatalf("went to %s, want RS2", got)
	}
	if d := time.Since(start); d < 200*time.Millisecond || d > 2*time.Second {
		t.Fatalf("took %v, want about the 200ms connect timeout", d)
	}
	if st := l.stats("RS1"); st.ConnectFailures != 1 {
		t.Fatalf("RS1 connect failures %d, want 1", st.ConnectFailures)
	}
}

func TestIdleTimeouts(t *testing.T) {
	l := newLab(t, 1, []uint32{100}, ServiceOptions{ClientTimeout: 400 * time.Millisecond, ServerTimeout: 400 * time.Millisecond})

	// Silent client: closed after about the timeout.
	silent, _, _ := l.hello(loopAddr(), 0)
	defer silent.Close()
	start := time.Now()
	expectClosed(t, silent, 3*time.Second)
	if d := time.Since(start); d < 300*time.Millisecond {
		t.Fatalf("idle connection closed after %v, before the 400ms timeout", d)
	}

	// Active client: a byte every 100ms for 1.5s keeps it open.
	c, r, _ := l.hello(loopAddr(), 0)
	defer c.Close()
	for range 15 {
		time.Sleep(100 * time.Millisecond)
		io.WriteString(c, "x")
		c.SetReadDeadline(time.Now().Add(time.Second))
		if _, err := r.ReadByte(); err != nil {
			t.Fatalf("active connection: %v", err)
		}
	}
}

// TestServerNeverReads: a server that accepts and never reads stalls only
// its own connection, which the write deadline ends.
func TestServerNeverReads(t *testing.T) {
	l := newLab(t, 1, []uint32{100, 100}, ServiceOptions{ServerTimeout: 500 * time.Millisecond, ClientTimeout: 500 * time.Millisecond})
	hold := make(chan struct{})
	defer close(hold)
	l.backends[0].setHandler(func(c net.Conn) {
		defer c.Close()
		select {
		case <-hold:
		case <-time.After(10 * time.Second):
		}
	})
	var client netip.Addr
	for {
		client = loopAddr()
		s, _ := l.snap.Service("svc").Pick(client, l.proxy.now())
		if s.Name == "RS1" {
			break
		}
	}
	c, err := l.dial(client, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	writeErr := make(chan error, 1)
	go func() {
		buf := make([]byte, 64<<10)
		c.SetWriteDeadline(time.Now().Add(10 * time.Second))
		for {
			if _, err := c.Write(buf); err != nil {
				writeErr <- err
				return
			}
		}
	}()
	// Other clients are served meanwhile.
	for range 5 {
		for {
			cl := loopAddr()
			s, _ := l.snap.Service("svc").Pick(cl, l.proxy.now())
			if s.Name == "RS2" {
				if got := l.serverOf(cl, 0); got != "RS2" {
					t.Fatalf("got %s", got)
				}
				break
			}
		}
	}
	select {
	case err := <-writeErr:
		if errors.Is(err, context.DeadlineExceeded) || isTimeout(err) {
			t.Fatalf("client write timed out instead of the proxy closing: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the stalled connection was not closed")
	}
	waitFor(t, "0 active on RS1", func() bool { return l.stats("RS1").Active == 0 })
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func TestMaxConns(t *testing.T) {
	t.Run("service", func(t *testing.T) {
		l := newLab(t, 1, []uint32{100}, ServiceOptions{MaxConns: 2})
		a, _, _ := l.hello(loopAddr(), 0)
		defer a.Close()
		b, _, _ := l.hello(loopAddr(), 0)
		defer b.Close()
		l.expectReset(loopAddr())
		if s := l.proxy.Stats()[0]; s.Rejected != 1 || s.Active != 2 {
			t.Fatalf("stats %+v, want 1 rejected, 2 active", s)
		}
		a.Close()
		waitFor(t, "1 active", func() bool { return l.proxy.Stats()[0].Active == 1 })
		d, _, _ := l.hello(loopAddr(), 0)
		d.Close()
	})
	t.Run("server", func(t *testing.T) {
		l := newLab(t, 1, []uint32{100, 100}, ServiceOptions{ServerMaxConns: map[string]int{"RS1": 1, "RS2": 1}})
		a, _, first := l.hello(loopAddr(), 0)
		defer a.Close()
		// Every further client lands on the other server; the third has none.
		for {
			cl := loopAddr()
			s, _ := l.snap.Service("svc").Pick(cl, l.proxy.now())
			if s.Name == first {
				b, _, got := l.hello(cl, 0)
				defer b.Close()
				if got == first {
					t.Fatalf("second client went to full server %s", got)
				}
				break
			}
		}
		l.expectReset(loopAddr())
	})
}

// parseProxyV2 is an independent reader of the binary PROXY v2 header.
func parseProxyV2(r io.Reader) (src, dst netip.AddrPort, err error) {
	var h [16]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return src, dst, err
	}
	if string(h[:12]) != "\r\n\r\n\x00\r\nQUIT\n" {
		return src, dst, errors.New("bad signature")
	}
	if h[12] != 0x21 {
		return src, dst, fmt.Errorf("version/command %#x", h[12])
	}
	n := binary.BigEndian.Uint16(h[14:])
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		return src, dst, err
	}
	switch h[13] {
	case 0x11:
		if n < 12 {
			return src, dst, errors.New("short tcp4 body")
		}
		s, d := netip.AddrFrom4([4]byte(body[0:4])), netip.AddrFrom4([4]byte(body[4:8]))
		return netip.AddrPortFrom(s, binary.BigEndian.Uint16(body[8:])), netip.AddrPortFrom(d, binary.BigEndian.Uint16(body[10:])), nil
	case 0x21:
		if n < 36 {
			return src, dst, errors.New("short tcp6 body")
		}
		s, d := netip.AddrFrom16([16]byte(body[0:16])), netip.AddrFrom16([16]byte(body[16:32]))
		return netip.AddrPortFrom(s, binary.BigEndian.Uint16(body[32:])), netip.AddrPortFrom(d, binary.BigEndian.Uint16(body[34:])), nil
	}
	return src, dst, fmt.Errorf("family %#x", h[13])
}

func TestAppendProxyV2(t *testing.T) {
	for _, tc := range []struct{ src, dst string }{
		{"192.168.94.200:40000", "192.168.94.100:8080"},
		{"[2001:db8::1]:1", "[2001:db8::100]:8443"},
		{"10.0.0.1:65535", "[2001:db8::100]:443"},
	} {
		src, dst := netip.MustParseAddrPort(tc.src), netip.MustParseAddrPort(tc.dst)
		b := appendProxyV2(nil, src, dst)
		gs, gd, err := parseProxyV2(strings.NewReader(string(b)))
		if err != nil {
			t.Fatalf("%s: %v", tc.src, err)
		}
		gs = netip.AddrPortFrom(gs.Addr().Unmap(), gs.Port())
		gd = netip.AddrPortFrom(gd.Addr().Unmap(), gd.Port())
		if gs != src || gd != dst {
			t.Fatalf("got %v -> %v, want %v -> %v", gs, gd, src, dst)
		}
	}
	if n := testing.AllocsPerRun(100, func() {
		var buf [proxyV2MaxLen]byte
		appendProxyV2(buf[:0], netip.MustParseAddrPort("1.2.3.4:5"), netip.MustParseAddrPort("5.6.7.8:9"))
	}); n != 0 {
		t.Fatalf("appendProxyV2 allocates %v", n)
	}
}

func FuzzProxyV2RoundTrip(f *testing.F) {
	f.Add([]byte{192, 168, 94, 200}, uint16(40000), []byte{192, 168, 94, 100}, uint16(8080))
	f.Add(make([]byte, 16), uint16(0), make([]byte, 16), uint16(1))
	f.Fuzz(func(t *testing.T, s []byte, sp uint16, d []byte, dp uint16) {
		sa, ok1 := netip.AddrFromSlice(s)
		da, ok2 := netip.AddrFromSlice(d)
		if !ok1 || !ok2 {
			return
		}
		src, dst := netip.AddrPortFrom(sa.Unmap(), sp), netip.AddrPortFrom(da.Unmap(), dp)
		gs, gd, err := parseProxyV2(strings.NewReader(string(appendProxyV2(nil, src, dst))))
		if err != nil {
			t.Fatal(err)
		}
		if netip.AddrPortFrom(gs.Addr().Unmap(), gs.Port()) != src || netip.AddrPortFrom(gd.Addr().Unmap(), gd.Port()) != dst {
			t.Fatalf("round trip %v %v -> %v %v", src, dst, gs, gd)
		}
	})
}

func TestProxyProtocolToServer(t *testing.T) {
	l := newLab(t, 1, []uint32{100}, ServiceOptions{ProxyProtocol: true})
	type hdr struct {
		src, dst netip.AddrPort
		err      error
		rest     string
	}
	got := make(chan hdr, 1)
	l.backends[0].setHandler(func(c net.Conn) {
		defer c.Close()
		r := bufio.NewReader(c)
		s, d, err := parseProxyV2(r)
		line, _ := r.ReadString('\n')
		got <- hdr{s, d, err, line}
	})
	c, err := l.dial(loopAddr(), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET /\n")
	h := <-got
	if h.err != nil {
		t.Fatal(h.err)
	}
	wantSrc := c.LocalAddr().(*net.TCPAddr).AddrPort()
	wantDst := netip.AddrPortFrom(l.vip, l.ports[0])
	if h.src != wantSrc || h.dst != wantDst || h.rest != "GET /\n" {
		t.Fatalf("header %v -> %v then %q; want %v -> %v then the payload", h.src, h.dst, h.rest, wantSrc, wantDst)
	}
}

func TestReloadKeepsConnections(t *testing.T) {
	l := newLab(t, 2, []uint32{100, 100}, ServiceOptions{})
	c, r, _ := l.hello(loopAddr(), 0)
	defer c.Close()

	// Drop the second port and change options: the listener goes, the
	// connection on the first port stays.
	l.spec.Services[0].Ports = l.spec.Services[0].Ports[:1]
	l.opts = map[string]ServiceOptions{"svc": {MaxConns: 100}}
	l.apply()
	if addrs := l.proxy.Addrs(); len(addrs) != 1 || addrs[0].Port() != l.ports[0] {
		t.Fatalf("listeners %v after removing a port", addrs)
	}
	if _, err := l.dial(loopAddr(), 1); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("dial removed port: %v, want connection refused", err)
	}
	io.WriteString(c, "still\n")
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if line, err := r.ReadString('\n'); err != nil || line != "still\n" {
		t.Fatalf("connection after reload: %q, %v", line, err)
	}
	// Add it back.
	l.spec.Services[0].Ports = append(l.spec.Services[0].Ports, tables.PortRange{Lo: l.ports[1], Hi: l.ports[1]})
	l.apply()
	l.serverOf(loopAddr(), 1)

	// Removing the service closes its listeners and connections.
	l.spec.Services = nil
	l.apply()
	expectClosed(t, c, 2*time.Second)
	if addrs := l.proxy.Addrs(); len(addrs) != 0 {
		t.Fatalf("listeners %v after removing the service", addrs)
	}
}

func TestApplyErrors(t *testing.T) {
	l := newLab(t, 1, []uint32{100}, ServiceOptions{})
	// A second proxy cannot bind the same VIP port: the error names it.
	var h tables.Holder
	p2 := New(&h, l.proxy.log)
	defer p2.Close()
	err := p2.Apply(l.snap, nil)
	want := fmt.Sprintf("listen %s:%d: address already in use", l.vip, l.ports[0])
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("Apply: %v, want %q", err, want)
	}
}

// TestFreebind binds a listener to an address this host does not have (TEST-NET-1,
// nothing is sent to it), as a backup HA node does before it holds the VIP.
func TestFreebind(t *testing.T) {
	ln, err := listenFreebind(context.Background(), netip.MustParseAddrPort("192.0.2.77:18080"))
	if err != nil {
		t.Fatalf("listen on a non-local address: %v", err)
	}
	ln.Close()
}

// TestBadClients: clients that send nothing, connect and reset, or connect
// and leave, do not stall others and leave nothing behind (goleak in TestMain).
func TestBadClients(t *testing.T) {
	l := newLab(t, 1, []uint32{100}, ServiceOptions{ClientTimeout: time.Second})
	var silent []net.Conn
	for i := range 200 {
		c, err := l.dial(loopAddr(), 0)
		if err != nil {
			t.Fatal(err)
		}
		switch i % 3 {
		case 0:
			silent = append(silent, c)
		case 1:
			c.SetLinger(0)
			c.Close() // reset
		case 2:
			c.Close()
		}
	}
	start := time.Now()
	c, r, _ := l.hello(loopAddr(), 0)
	io.WriteString(c, "ok\n")
	if line, err := r.ReadString('\n'); err != nil || line != "ok\n" {
		t.Fatalf("good client: %q %v", line, err)
	}
	c.Close()
	if d := time.Since(start); d > time.Second {
		t.Fatalf("good client took %v among bad ones", d)
	}
	for _, c := range silent {
		c.Close()
	}
	waitFor(t, "all connections gone", func() bool { return l.proxy.Stats()[0].Active == 0 })
}

// TestPortTranslationIPv6SourceAddr: a server with its own port, over IPv6,
// connected to from a configured source address.
func TestPortTranslationIPv6SourceAddr(t *testing.T) {
	srvLn, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	defer srvLn.Close()
	from := make(chan netip.Addr, 1)
	go func() {
		c, err := srvLn.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		from <- c.RemoteAddr().(*net.TCPAddr).AddrPort().Addr()
		io.Copy(c, c)
	}()
	vipLn, err := net.Listen("tcp", "[::1]:0") // find a free port for the VIP
	if err != nil {
		t.Fatal(err)
	}
	vip := vipLn.Addr().(*net.TCPAddr).AddrPort()
	vipLn.Close()
	srvPort := uint16(srvLn.Addr().(*net.TCPAddr).Port)

	var h tables.Holder
	snap, err := tables.Build(tables.Spec{Services: []tables.ServiceSpec{{
		Name: "v6", VIP: vip.Addr(), Ports: []tables.PortRange{{Lo: vip.Port(), Hi: vip.Port()}},
		TCP: true, Layer: 7,
		Servers: []tables.ServerSpec{{Name: "S", Addr: netip.MustParseAddr("::1"), Port: srvPort, Weight: 1}},
	}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	h.Store(snap)
	p := New(&h, zerologTest(t))
	defer p.Close()
	src := netip.MustParseAddr("::1")
	if err := p.Apply(snap, map[string]ServiceOptions{"v6": {SourceAddr: src}}); err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", vip.String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "v6\n")
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || line != "v6\n" {
		t.Fatalf("echo %q, %v", line, err)
	}
	if got := <-from; got != src {
		t.Fatalf("server saw the proxy from %v, want %v", got, src)
	}
}

// TestSourceAddr: the proxy connects from the configured address.
func TestSourceAddr(t *testing.T) {
	src := loopAddr()
	l := newLab(t, 1, []uint32{100}, ServiceOptions{SourceAddr: src})
	from := make(chan netip.Addr, 1)
	l.backends[0].setHandler(func(c net.Conn) {
		from <- c.RemoteAddr().(*net.TCPAddr).AddrPort().Addr()
		c.Close()
	})
	c, err := l.dial(loopAddr(), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got := <-from; got != src {
		t.Fatalf("server saw the proxy from %v, want %v", got, src)
	}
}

// TestFallback: with every server out of service the fallback server gets
// new clients.
func TestFallback(t *testing.T) {
	l := newLab(t, 1, []uint32{100, 100}, ServiceOptions{})
	fb := l.spec.Services[0].Servers[1]
	fb.Name = "sorry"
	l.spec.Services[0].Servers = l.spec.Services[0].Servers[:1]
	l.spec.Services[0].Fallback = &fb
	l.apply()
	l.setState("RS1", tables.StateHalt)
	if got := l.serverOf(loopAddr(), 0); got != "RS2" { // RS2's listener answers for "sorry"
		t.Fatalf("went to %s, want the fallback (RS2's address)", got)
	}
	if st := l.stats("sorry"); st.Total != 1 {
		t.Fatalf("fallback stats %+v", st)
	}
}

func TestCloseWithLiveConnections(t *testing.T) {
	l := newLab(t, 2, []uint32{100}, ServiceOptions{})
	var conns []net.Conn
	for i := range 4 {
		c, _, _ := l.hello(loopAddr(), i%2)
		defer c.Close()
		conns = append(conns, c)
	}
	done := make(chan struct{})
	go func() {
		l.proxy.Close()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(3 * time.Second):
		t.Fatal("Close did not return with live connections")
	}
	for _, c := range conns {
		expectClosed(t, c, time.Second)
	}
	if err := l.proxy.Apply(l.snap, nil); err == nil {
		t.Fatal("Apply after Close succeeded")
	}
}

func TestMaxConnsPerSource(t *testing.T) {
	l := newLab(t, 1, []uint32{100}, ServiceOptions{MaxConnsPerSource: 2})
	greedy, other := loopAddr(), loopAddr()
	a, _, _ := l.hello(greedy, 0)
	defer a.Close()
	b, _, _ := l.hello(greedy, 0)
	defer b.Close()
	l.expectReset(greedy)
	c, _, _ := l.hello(other, 0) // another address is not held back
	defer c.Close()
	if s := l.proxy.Stats()[0]; s.RejectedSource != 1 || s.Rejected != 0 || s.Active != 3 {
		t.Fatalf("stats %+v, want 1 rejected by source, 3 active", s)
	}
	a.Close()
	waitFor(t, "2 active", func() bool { return l.proxy.Stats()[0].Active == 2 })
	d, _, _ := l.hello(greedy, 0)
	d.Close()
}

func TestDefaultMaxConns(t *testing.T) {
	tests := []struct {
		nofile   uint64
		services int
		want     int
	}{
		{1024, 1, 384},       // 1024 - 256 headroom, two fds a connection
		{1 << 20, 2, 235929}, // a tenth kept back, shared by two services
		{200, 1, 1},          // nothing left: still takes one
		{65536, 0, 1},
	}
	for _, tt := range tests {
		if got := DefaultMaxConns(tt.nofile, tt.services); got != tt.want {
			t.Errorf("DefaultMaxConns(%d, %d) = %d, want %d", tt.nofile, tt.services, got, tt.want)
		}
	}
}

// TestConnectExhausted: a connection to a server that fails for want of this
// node's resources (here EADDRNOTAVAIL: a source address the host lacks) resets
// the client without a count against the server or a redispatch.
func TestConnectExhausted(t *testing.T) {
	l := newLab(t, 1, []uint32{100, 100}, ServiceOptions{SourceAddr: netip.MustParseAddr("192.0.2.1")})
	l.expectReset(loopAddr())
	waitFor(t, "the reset counted", func() bool { return l.proxy.Stats()[0].Exhausted == 1 })
	for _, srv := range []string{"RS1", "RS2"} {
		if s := l.stats(srv); s.ConnectFailures != 0 || s.FailStreak != 0 {
			t.Errorf("%s: %+v, want no connect failure counted", srv, s)
		}
	}
}
