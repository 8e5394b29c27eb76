package l7

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/medialb/medialb/tables"
)

// svcState holds a service's counters and live connections. It outlives
// snapshots: it is found by service name.
type svcState struct {
	active                   atomic.Int64
	total, bytesIn, bytesOut atomic.Uint64
	rejected, noServer       atomic.Uint64

	mu      sync.Mutex
	servers map[string]*srvState // by server name
}

// srvState holds a real server's counters and live connections.
type srvState struct {
	active                   atomic.Int64
	total, bytesIn, bytesOut atomic.Uint64
	connectFailures          atomic.Uint64
	failStreak               atomic.Uint64 // consecutive connect failures

	conns map[*conn]struct{} // guarded by the service's mu
}

func (ss *svcState) server(name string) *srvState {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	st := ss.servers[name]
	if st == nil {
		st = &srvState{conns: make(map[*conn]struct{})}
		ss.servers[name] = st
	}
	return st
}

func (ss *svcState) allConns() []*conn {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	var out []*conn
	for _, st := range ss.servers {
		out = append(out, st.connsLocked()...)
	}
	return out
}

func (st *srvState) connsLocked() []*conn {
	out := make([]*conn, 0, len(st.conns))
	for c := range st.conns {
		out = append(out, c)
	}
	return out
}

// conn is one relayed client connection.
type conn struct {
	client, server *net.TCPConn
	serverAddr     netip.AddrPort
	svc            *svcState
	srv            *srvState
	lastActive     atomic.Int64 // nanoseconds since epoch (monotonic)
	closeOnce      sync.Once
}

func monoNow() int64 { return int64(time.Since(epoch)) }

func (c *conn) touch() { c.lastActive.Store(monoNow()) }

// close closes both sides.
func (c *conn) close() {
	c.closeOnce.Do(func() {
		c.client.Close()
		c.server.Close()
	})
}

// abort closes both sides with a reset (halt, down, removed server).
func (c *conn) abort() {
	c.closeOnce.Do(func() {
		c.client.SetLinger(0)
		c.server.SetLinger(0)
		c.client.Close()
		c.server.Close()
	})
}

// handle serves one accepted client: pick, connect (with redispatch), relay.
func (p *Proxy) handle(client *net.TCPConn, laddr netip.AddrPort) {
	defer p.wg.Done()
	reset := func() {
		client.SetLinger(0)
		client.Close()
	}
	snap := p.holder.Load()
	if snap == nil {
		reset()
		return
	}
	svc := snap.Lookup(laddr.Addr(), tables.ProtoTCP, laddr.Port())
	if svc == nil || svc.Layer != 7 {
		reset()
		return
	}
	opts := p.options(svc.Name)
	ss := p.state(svc.Name)

	if n := ss.active.Add(1); opts.MaxConns > 0 && n > int64(opts.MaxConns) {
		ss.active.Add(-1)
		ss.rejected.Add(1)
		reset()
		return
	}
	ss.total.Add(1)
	registered := false
	defer func() {
		if !registered {
			ss.active.Add(-1)
		}
	}()

	raddr, ok := client.RemoteAddr().(*net.TCPAddr)
	if !ok {
		reset()
		return
	}
	src := raddr.AddrPort()
	src = netip.AddrPortFrom(src.Addr().Unmap(), src.Port())

	server, srv, st := p.connect(svc, ss, &opts, src.Addr(), laddr.Port())
	if server == nil {
		ss.noServer.Add(1)
		reset()
		return
	}
	if opts.ProxyProtocol {
		hdr := appendProxyV2(make([]byte, 0, proxyV2MaxLen), src, laddr)
		server.SetWriteDeadline(time.Now().Add(opts.ConnectTimeout))
		if _, err := server.Write(hdr); err != nil {
			st.active.Add(-1)
			st.connectFailures.Add(1)
			server.Close()
			reset()
			return
		}
	}

	c := &conn{
		client:     client,
		server:     server,
		serverAddr: netip.AddrPortFrom(srv.Addr.Unmap(), 0),
		svc:        ss,
		srv:        st,
	}
	c.touch()

	// Register, then look whether the proxy closed or the server left
	// service meanwhile: Close and Apply collect registered connections
	// after they change state, so one of the two sees this connection.
	ss.mu.Lock()
	st.conns[c] = struct{}{}
	ss.mu.Unlock()
	registered = true
	p.mu.Lock()
	closed := p.closed
	p.mu.Unlock()
	if closed || !inService(p.holder.Load(), svc.Name, srv) {
		c.abort()
	}

	p.relay(c, opts)
}

// relay runs both directions in goroutines of their own, so that the
// connecting goroutine (whose stack grew while dialling) ends and an idle
// connection costs two small stacks. The direction that ends last closes the
// connection and releases its counts.
func (p *Proxy) relay(c *conn, opts ServiceOptions) {
	var left atomic.Int32
	left.Store(2)
	finish := func(err error) {
		if err != nil {
			c.close()
		}
		if left.Add(-1) > 0 {
			return
		}
		c.svc.mu.Lock()
		delete(c.srv.conns, c)
		c.svc.mu.Unlock()
		c.close()
		c.srv.active.Add(-1)
		c.svc.active.Add(-1)
	}
	p.wg.Add(2)
	go func() {
		defer p.wg.Done()
		// server -> client: waits on the server, the client must read.
		finish(c.pipe(c.client, c.server, opts.ServerTimeout, opts.ClientTimeout, &c.svc.bytesOut, &c.srv.bytesOut))
	}()
	go func() {
		defer p.wg.Done()
		// client -> server: waits on the client, the server must read.
		finish(c.pipe(c.server, c.client, opts.ClientTimeout, opts.ServerTimeout, &c.svc.bytesIn, &c.srv.bytesIn))
	}()
}

// inService reports whether srv is still a server of service in snap, at the
// same address and not halted or down.
func inService(snap *tables.Snapshot, service string, srv *tables.Server) bool {
	if snap == nil {
		return false
	}
	svc := snap.Service(service)
	if svc == nil {
		return false
	}
	cur := serverByName(svc, srv.Name)
	return cur != nil && cur.Addr == srv.Addr && cur.Generation == srv.Generation &&
		cur.State != tables.StateHalt && cur.State != tables.StateDown
}

// connect picks a server for client and connects to it, redispatching to
// other eligible servers when one refuses, times out or is at its limit. It
// returns the connection with the server's active count already raised.
func (p *Proxy) connect(svc *tables.Service, ss *svcState, opts *ServiceOptions, client netip.Addr, port uint16) (*net.TCPConn, *tables.Server, *srvState) {
	srv, verdict := svc.Pick(client, p.now())
	if verdict == tables.VerdictNoServer || srv == nil {
		return nil, nil, nil
	}
	var tried []*tables.Server
	for srv != nil {
		st := ss.server(srv.Name)
		limit := opts.serverLimit(srv.Name)
		if n := st.active.Add(1); limit > 0 && n > int64(limit) {
			st.active.Add(-1)
		} else {
			c, err := p.dialServer(srv, opts, port)
			if err == nil {
				st.total.Add(1)
				st.failStreak.Store(0)
				return c, srv, st
			}
			st.active.Add(-1)
			if p.ctx.Err() != nil {
				return nil, nil, nil
			}
			st.connectFailures.Add(1)
			// Logged on the first failure of a streak and every 100th after:
			// a dead server under load must not flood the log.
			if streak := st.failStreak.Add(1); streak == 1 || streak%100 == 0 {
				p.log.Warn().Err(err).Str("service", svc.Name).Str("server", srv.Name).
					Uint64("consecutive_failures", streak).Msg("connect to real server failed; redispatching")
			}
		}
		tried = append(tried, srv)
		srv = redispatch(svc, client, tried, p.seed())
	}
	return nil, nil, nil
}

func (p *Proxy) seed() uint64 {
	if s := p.holder.Load(); s != nil {
		return s.HashSeed()
	}
	return 0
}

func (p *Proxy) dialServer(srv *tables.Server, opts *ServiceOptions, port uint16) (*net.TCPConn, error) {
	if srv.Port != 0 {
		port = srv.Port
	}
	raddr := netip.AddrPortFrom(srv.Addr.Unmap(), port)
	var laddr netip.AddrPort
	if a := opts.SourceAddr.Unmap(); a.IsValid() && a.Is4() == raddr.Addr().Is4() {
		laddr = netip.AddrPortFrom(a, 0)
	}
	ctx, cancel := context.WithTimeout(p.ctx, opts.ConnectTimeout)
	defer cancel()
	return p.dial(ctx, laddr, raddr)
}

var errIdle = errors.New("idle timeout")

// pipe copies src to dst until EOF, which it passes on with CloseWrite.
//
// io.Copy(dst, src) with both *net.TCPConn runs dst.ReadFrom(src), which
// splices through a pipe on Linux; do not wrap either conn. A splice holds
// its pipe (two file descriptors and the kernel's pipe ring) for as long as
// io.Copy runs, so pipe first waits, without a pipe, until src is readable,
// and ends each copy by a read deadline about a second after the data stops:
// an idle connection holds only its two sockets. The read deadline also
// wakes the loop at most every checkInterval to check the idle timeout; a read
// timeout leaves no data in flight (the splice pipe is empty while waiting for
// the source), so the copy resumes. The write deadline is terminal: a peer
// that has not taken data for writeTimeout is dropped, with what was in the
// pipe for it.
func (c *conn) pipe(dst, src *net.TCPConn, readTimeout, writeTimeout time.Duration, svcBytes, srvBytes *atomic.Uint64) error {
	rc, err := src.SyscallConn()
	if err != nil {
		return err
	}
	interval := min(checkInterval, readTimeout/4, writeTimeout/4)
	linger := min(time.Second, interval)
	for {
		idle := time.Duration(monoNow() - c.lastActive.Load())
		if idle >= readTimeout {
			return errIdle
		}
		src.SetReadDeadline(time.Now().Add(min(interval, readTimeout-idle)))
		if err := waitReadable(rc); err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				continue
			}
			return err
		}
		wall := time.Now()
		src.SetReadDeadline(wall.Add(linger))
		writeLimit := wall.Add(writeTimeout)
		dst.SetWriteDeadline(writeLimit)
		n, err := io.Copy(dst, src)
		if n > 0 {
			c.touch()
			svcBytes.Add(uint64(n))
			srvBytes.Add(uint64(n))
		}
		if err == nil { // EOF from src
			return dst.CloseWrite()
		}
		if !errors.Is(err, os.ErrDeadlineExceeded) || !time.Now().Before(writeLimit) {
			return err
		}
	}
}

// waitReadable blocks until the socket behind rc has data, EOF or an error,
// or its read deadline passes. It consumes nothing: the callback peeks at one
// byte (MSG_PEEK|MSG_DONTWAIT) and, on EAGAIN, lets the runtime's poller wait
// for read readiness. (Declining without looking would lose a readiness edge
// that arrived before the call: the poller resets it when a read starts.)
// This uses the standard library's syscall package through RawConn, as the
// IP_FREEBIND option does; golang.org/x/sys/unix is reserved for afxdp.
func waitReadable(rc syscall.RawConn) error {
	return rc.Read(func(fd uintptr) bool {
		var b [1]byte
		_, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		return err != syscall.EAGAIN && err != syscall.EINTR
	})
}
