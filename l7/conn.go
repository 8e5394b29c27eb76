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

	"github.com/medialb/medialb/internal/clientaddr"
	"github.com/medialb/medialb/internal/exhausted"
	"github.com/medialb/medialb/tables"
)

// svcState holds a service's counters and live connections. It outlives
// snapshots: it is found by service name.
type svcState struct {
	active                   atomic.Int64
	total, bytesIn, bytesOut atomic.Uint64
	rejected, noServer       atomic.Uint64
	rejectedSource           atomic.Uint64 // over MaxConnsPerSource
	exhausted                atomic.Uint64 // reset: this node out of descriptors or ports
	sources                  sourceCounts

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
	source         netip.Addr   // counted in svc.sources; invalid: not counted
	lastActive     atomic.Int64 // nanoseconds since epoch (monotonic)
	closeOnce      sync.Once
	in, out        direction    // client to server, server to client
	left           atomic.Int32 // directions still running
}

// epoch is the origin of lastActive.
var epoch = time.Now()

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

// serve serves one accepted client: pick, connect (with redispatch), relay.
func (p *Proxy) serve(client *net.TCPConn, laddr netip.AddrPort) {
	defer p.wg.Done()
	if c := p.handle(client, laddr); c != nil {
		p.relay(c)
	}
}

// handle picks a server for an accepted client and connects to it (with
// redispatch). It returns the registered connection, or nil when it reset
// the client.
func (p *Proxy) handle(client *net.TCPConn, laddr netip.AddrPort) *conn {
	reset := func() {
		client.SetLinger(0)
		client.Close()
	}
	snap := p.holder.Load()
	if snap == nil {
		reset()
		return nil
	}
	svc := snap.Lookup(laddr.Addr(), tables.ProtoTCP, laddr.Port())
	if svc == nil || svc.Layer != tables.Layer7 {
		reset()
		return nil
	}
	opts := p.options(svc.Name)
	ss := p.state(svc.Name)

	if n := ss.active.Add(1); opts.MaxConns > 0 && n > int64(opts.MaxConns) {
		ss.active.Add(-1)
		ss.rejected.Add(1)
		reset()
		return nil
	}
	registered := false
	var counted netip.Addr // the source key counted in ss.sources
	defer func() {
		if !registered {
			ss.active.Add(-1)
			if counted.IsValid() {
				ss.sources.release(counted)
			}
		}
	}()

	raddr, ok := client.RemoteAddr().(*net.TCPAddr)
	if !ok {
		reset()
		return nil
	}
	src := raddr.AddrPort()
	src = netip.AddrPortFrom(src.Addr().Unmap(), src.Port())
	if opts.MaxConnsPerSource > 0 {
		key := clientaddr.Key(src.Addr())
		if !ss.sources.acquire(key, opts.MaxConnsPerSource) {
			ss.rejectedSource.Add(1)
			reset()
			return nil
		}
		counted = key
	}
	ss.total.Add(1)

	server, srv, st := p.connect(svc, ss, &opts, src.Addr(), laddr.Port())
	if server == nil {
		ss.noServer.Add(1)
		reset()
		return nil
	}
	if opts.ProxyProtocol {
		hdr := appendProxyV2(make([]byte, 0, proxyV2MaxLen), src, laddr)
		server.SetWriteDeadline(time.Now().Add(opts.ConnectTimeout))
		if _, err := server.Write(hdr); err != nil {
			st.active.Add(-1)
			st.connectFailures.Add(1)
			server.Close()
			reset()
			return nil
		}
	}

	c := &conn{
		client:     client,
		server:     server,
		serverAddr: netip.AddrPortFrom(srv.Addr.Unmap(), 0),
		svc:        ss,
		srv:        st,
		source:     counted,
	}
	c.out = direction{c: c, dst: client, src: server, readTimeout: opts.ServerTimeout, writeTimeout: opts.ClientTimeout,
		svcBytes: &ss.bytesOut, srvBytes: &st.bytesOut}
	c.in = direction{c: c, dst: server, src: client, readTimeout: opts.ClientTimeout, writeTimeout: opts.ServerTimeout,
		svcBytes: &ss.bytesIn, srvBytes: &st.bytesIn}
	c.left.Store(2)
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

	return c
}

// relay runs each direction in a goroutine of its own, so that the
// connecting goroutine (whose stack grew while dialling) ends and an idle
// connection costs two small stacks. (Relaying one direction in the
// connecting goroutine instead, handing it to a fresh goroutine after a
// second, measured the same CPU per connection in the lab, so the simpler
// form stays.)
func (p *Proxy) relay(c *conn) {
	p.wg.Add(2)
	go func() {
		defer p.wg.Done()
		// server -> client: waits on the server, the client must read.
		c.finish(c.out.pipe())
	}()
	go func() {
		defer p.wg.Done()
		// client -> server: waits on the client, the server must read.
		c.finish(c.in.pipe())
	}()
}

// finish is called by each direction when it ends, with its error (nil
// after a clean EOF). An error closes both sides at once; the direction that
// ends last closes the connection and releases its counts.
func (c *conn) finish(err error) {
	if err != nil {
		c.close()
	}
	if c.left.Add(-1) > 0 {
		return
	}
	c.svc.mu.Lock()
	delete(c.srv.conns, c)
	c.svc.mu.Unlock()
	c.close()
	c.srv.active.Add(-1)
	c.svc.active.Add(-1)
	if c.source.IsValid() {
		c.svc.sources.release(c.source)
	}
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
	cur := svc.Server(srv.Name)
	return cur != nil && cur.Addr == srv.Addr && cur.Generation == srv.Generation && cur.State.InService()
}

// connect picks a server for client and connects to it, redispatching to
// other eligible servers when one refuses, times out or is at its limit. It
// returns the connection with the server's active count already raised.
func (p *Proxy) connect(svc *tables.Service, ss *svcState, opts *ServiceOptions, client netip.Addr, port uint16) (*net.TCPConn, *tables.Server, *srvState) {
	var srv *tables.Server
	var verdict tables.Verdict
	if opts.LeastConn {
		srv, verdict = svc.PickLeast(client, p.now(), func(s *tables.Server) int64 { return ss.server(s.Name).active.Load() })
	} else {
		srv, verdict = svc.Pick(client, p.now())
	}
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
			if exhausted.Is(err) {
				// This node is out of descriptors or ports: not the server's
				// fault, and no other server would fare better.
				ss.exhausted.Add(1)
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

const (
	// bulkThreshold is how many bytes a direction copies through user space
	// before it switches to splice(2) for the rest of the connection. Short
	// request/response exchanges (management API calls, RTSP and RTMP
	// control) stay below it and never set up splice pipes: for a few hundred
	// bytes, read+write costs fewer system calls than splicing through a pipe
	// (socket to pipe, pipe to socket, and the pipe's creation). A bulk
	// transfer copies its first bulkThreshold bytes, then splices.
	bulkThreshold = 64 << 10
	// copyBufSize is the size of the pooled buffers of the user-space copy.
	copyBufSize = 16 << 10
)

// copyBufs holds the user-space copy's buffers. A direction takes one only
// when data is there to read and returns it after writing, so an idle
// connection holds none.
var copyBufs = sync.Pool{New: func() any { return new([copyBufSize]byte) }}

// reader reads a socket through its RawConn into a pooled buffer taken only
// when the read returns data (see [reader.read]). It is kept small: it is
// part of every connection, idle or not.
type reader struct {
	buf *[copyBufSize]byte
	n   int
	err syscall.Errno
}

// readFD is the RawConn callback: it reads once and, on EAGAIN, gives the
// buffer back and lets the runtime's poller wait for readability. Reading in
// the callback (not peeking first) costs one system call when data is
// already there and loses no readiness edge.
func (r *reader) readFD(fd uintptr) bool {
	b := copyBufs.Get().(*[copyBufSize]byte)
	var n int
	var err error
	for {
		n, err = syscall.Read(int(fd), b[:])
		if err != syscall.EINTR {
			break
		}
	}
	if err == syscall.EAGAIN {
		copyBufs.Put(b)
		return false
	}
	r.buf, r.n, r.err = b, max(n, 0), 0
	if err != nil {
		r.n, r.err = 0, syscall.EIO
		if e, ok := err.(syscall.Errno); ok {
			r.err = e
		}
	}
	return true
}

// read waits for data on rc and reads it; fn must be r.readFD (made once by
// the caller, so that reads allocate nothing). With n > 0 the data is in
// r.buf[:n] and the caller must call [reader.release]; n == 0 and err == nil
// is EOF.
func (r *reader) read(rc syscall.RawConn, fn func(uintptr) bool) (n int, err error) {
	r.buf, r.n, r.err = nil, 0, 0
	if err := rc.Read(fn); err != nil {
		return 0, err
	}
	if r.err != 0 {
		r.release()
		return 0, os.NewSyscallError("read", r.err)
	}
	if r.n == 0 {
		r.release()
	}
	return r.n, nil
}

func (r *reader) release() {
	if r.buf != nil {
		copyBufs.Put(r.buf)
		r.buf = nil
	}
}

// direction is one relay direction: src is read, dst written.
type direction struct {
	c                         *conn
	dst, src                  *net.TCPConn
	readTimeout, writeTimeout time.Duration
	svcBytes, srvBytes        *atomic.Uint64
	reader
}

// pipe copies src to dst until EOF, which it passes on with CloseWrite.
//
// It first copies through user space (see [bulkThreshold]): each read is
// one read(2) into a pooled buffer taken only when data has arrived, so an
// idle direction holds no buffer; the read deadline wakes it at most every
// checkInterval to check the idle timeout. Once the direction has moved more
// than bulkThreshold bytes, pipe switches to splicing for good (see
// [direction.splice]).
func (d *direction) pipe() error {
	rc, err := d.src.SyscallConn()
	if err != nil {
		return err
	}
	c, r := d.c, &d.reader
	fn := r.readFD
	moved := 0 // bytes copied through user space
	interval := min(checkInterval, d.readTimeout/4, d.writeTimeout/4)
	d.src.SetReadDeadline(time.Now().Add(interval))
	for moved <= bulkThreshold {
		n, err := r.read(rc, fn)
		if n > 0 {
			d.dst.SetWriteDeadline(time.Now().Add(d.writeTimeout))
			w, werr := d.dst.Write(r.buf[:n])
			r.release()
			if w > 0 {
				c.touch()
				d.svcBytes.Add(uint64(w))
				d.srvBytes.Add(uint64(w))
			}
			if werr != nil {
				return werr
			}
			moved += n
			continue
		}
		if err == nil { // EOF from src
			return d.eof()
		}
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			return err
		}
		// The deadline is set once and renewed only when it passes: activity
		// in either direction moves lastActive, not the deadline.
		idle := time.Duration(monoNow() - c.lastActive.Load())
		if idle >= d.readTimeout {
			return errIdle
		}
		d.src.SetReadDeadline(time.Now().Add(min(interval, d.readTimeout-idle)))
	}
	return d.splice(rc, interval)
}

// eof passes the EOF read from src on to dst. When the other direction has
// already ended, the connection is about to be closed (see [conn.finish]) and
// close sends the FIN: the shutdown call is saved. Both sockets have been
// read to EOF then, so close sends a FIN, not a reset.
func (d *direction) eof() error {
	if d.c.left.Load() == 1 {
		return nil
	}
	return d.dst.CloseWrite()
}

// splice copies src to dst until EOF, which it passes on with CloseWrite.
//
// io.Copy(dst, src) with both *net.TCPConn runs dst.ReadFrom(src), which
// splices through a pipe on Linux; do not wrap either conn. A splice holds
// its pipe (two file descriptors and the kernel's pipe ring) for as long as
// io.Copy runs, so splice first waits, without a pipe, until src is readable,
// and ends each copy by a read deadline about a second after the data stops:
// an idle connection holds only its two sockets. The read deadline also
// wakes the loop at most every checkInterval to check the idle timeout; a read
// timeout leaves no data in flight (the splice pipe is empty while waiting for
// the source), so the copy resumes. The write deadline is terminal: a peer
// that has not taken data for writeTimeout is dropped, with what was in the
// pipe for it.
func (d *direction) splice(rc syscall.RawConn, interval time.Duration) error {
	c, dst, src := d.c, d.dst, d.src
	readTimeout, writeTimeout, svcBytes, srvBytes := d.readTimeout, d.writeTimeout, d.svcBytes, d.srvBytes
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
			return d.eof()
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
// This and [reader] use the standard library's syscall package through
// RawConn, as the IP_FREEBIND option does; golang.org/x/sys/unix is reserved
// for afxdp.
func waitReadable(rc syscall.RawConn) error {
	return rc.Read(func(fd uintptr) bool {
		var b [1]byte
		_, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		return err != syscall.EAGAIN && err != syscall.EINTR
	})
}
