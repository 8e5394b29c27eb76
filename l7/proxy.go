package l7

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/medialb/medialb/config"
	"github.com/medialb/medialb/tables"
)

// Defaults for ServiceOptions fields left zero: the configuration's own
// (connect_timeout, client_timeout, server_timeout), which package config
// keeps in one place and says why. A short connect timeout, so that a dead
// server costs the client little before it is redispatched, and idle
// timeouts of ten minutes: longer than management sessions sit idle between
// requests, short enough that abandoned connections give their descriptors
// back (config.DefaultIdleTimeout).
const (
	DefaultConnectTimeout = config.DefaultConnectTimeout
	DefaultClientTimeout  = config.DefaultIdleTimeout
	DefaultServerTimeout  = config.DefaultIdleTimeout
)

// checkInterval is the longest a relay direction sleeps in the kernel before
// it wakes to check the idle timeout and publish its byte counts; the counters
// in [Proxy.Stats] lag an active connection by at most this much.
const checkInterval = 10 * time.Second

// ServiceOptions are the per-service settings of the proxy that the table
// snapshot does not carry. The zero value means: the kernel chooses the
// source address, no PROXY header, default timeouts, no connection limits.
type ServiceOptions struct {
	// SourceAddr is the address the proxy connects to real servers from (for
	// example the VIP). The zero Addr lets the kernel choose the address of
	// the outgoing interface. An address of the other family than a server's
	// is ignored for that server.
	SourceAddr netip.Addr
	// ProxyProtocol makes the proxy send a PROXY protocol v2 header with the
	// client's and the VIP's address and port before any payload.
	ProxyProtocol bool
	// ConnectTimeout bounds one connection attempt to a real server; 0 means
	// DefaultConnectTimeout.
	ConnectTimeout time.Duration
	// ClientTimeout closes a connection when nothing has moved in either
	// direction for this long while the proxy waits for the client, or when
	// the client does not read for this long; 0 means DefaultClientTimeout.
	ClientTimeout time.Duration
	// ServerTimeout is the same for the real-server side; 0 means
	// DefaultServerTimeout.
	ServerTimeout time.Duration
	// LeastConn sends new clients to the eligible server with the fewest
	// connections per unit of weight (scheduler wlc) instead of by Maglev;
	// persistent clients keep their server either way.
	LeastConn bool
	// MaxConns limits the service's established connections; a client over
	// the limit is reset at once. 0: no limit (see DefaultMaxConns).
	MaxConns int
	// MaxConnsPerSource limits the connections of one client address (IPv6:
	// one /64); a client over it is reset at once. 0: no limit.
	MaxConnsPerSource int
	// MaxConnsPerServer limits the connections of each real server; a server
	// at its limit is skipped as if it refused (the client goes to another
	// eligible server). 0: no limit. ServerMaxConns overrides it per server.
	MaxConnsPerServer int
	// ServerMaxConns is the per-server limit by real-server name.
	ServerMaxConns map[string]int
}

func (o ServiceOptions) withDefaults() ServiceOptions {
	if o.ConnectTimeout <= 0 {
		o.ConnectTimeout = DefaultConnectTimeout
	}
	if o.ClientTimeout <= 0 {
		o.ClientTimeout = DefaultClientTimeout
	}
	if o.ServerTimeout <= 0 {
		o.ServerTimeout = DefaultServerTimeout
	}
	return o
}

func (o *ServiceOptions) serverLimit(name string) int {
	if n, ok := o.ServerMaxConns[name]; ok {
		return n
	}
	return o.MaxConnsPerServer
}

// dialFunc opens the connection to a real server. Tests replace it to
// simulate servers that never answer.
type dialFunc func(ctx context.Context, laddr, raddr netip.AddrPort) (*net.TCPConn, error)

// Option configures a [Proxy] in [New].
type Option func(*Proxy)

// WithClock sets the coarse clock (seconds, monotonic) passed to
// [tables.Service.Pick]. It must be the clock the rest of the process uses
// with the same tables (for example for ActiveClients). The default is
// [tables.Now], the clock they share.
func WithClock(now func() uint32) Option { return func(p *Proxy) { p.now = now } }

// Proxy is the layer-7 proxy of one load balancer. It is safe for concurrent
// use. The zero value is not usable; create one with [New].
type Proxy struct {
	holder *tables.Holder
	log    zerolog.Logger
	now    func() uint32
	dial   dialFunc

	ctx    context.Context // cancelled by Close: aborts dials
	cancel context.CancelFunc
	wg     sync.WaitGroup // accept loops and connections

	opts atomic.Pointer[map[string]ServiceOptions] // with defaults applied

	mu        sync.Mutex
	closed    bool
	listeners map[netip.AddrPort]*listener
	reserved  map[netip.AddrPort]*net.TCPListener // bound by Reserve, not yet served
	services  map[string]*svcState
}

type listener struct {
	addr netip.AddrPort
	ln   *net.TCPListener
	done chan struct{} // closed when the accept loop has returned
}

// New returns a proxy that picks servers from the snapshot currently in
// holder. It listens nowhere until [Proxy.Apply].
func New(holder *tables.Holder, log zerolog.Logger, opts ...Option) *Proxy {
	ctx, cancel := context.WithCancel(context.Background())
	p := &Proxy{
		holder:    holder,
		log:       log,
		now:       tables.Now,
		ctx:       ctx,
		cancel:    cancel,
		listeners: make(map[netip.AddrPort]*listener),
		services:  make(map[string]*svcState),
	}
	p.dial = p.dialTCP
	empty := map[string]ServiceOptions{}
	p.opts.Store(&empty)
	for _, o := range opts {
		o(p)
	}
	return p
}

// Apply makes the proxy match snap: it opens a listener on every port of the
// VIP of each layer-7 TCP service and closes listeners whose address left
// the set; listeners that stay, and their established connections, are not
// touched. Connections of services that are gone, of servers that are gone
// or changed address, and of servers in state halt or down are closed. opts
// are the per-service options by service name (a missing name gets the
// defaults); new options apply to new connections.
//
// Accepted clients are given servers from holder.Load(), so the caller should
// store snap in the holder before calling Apply. Listeners are bound with
// IP_FREEBIND, so a backup node can listen before it holds the VIP. Apply
// opens every listener it can and returns one error naming each address that
// failed.
func (p *Proxy) Apply(snap *tables.Snapshot, opts map[string]ServiceOptions) error {
	withDef := make(map[string]ServiceOptions, len(opts))
	for name, o := range opts {
		withDef[name] = o.withDefaults()
	}

	want := make(map[netip.AddrPort]bool)
	if snap != nil {
		for _, svc := range snap.Services() {
			if svc.Layer != tables.Layer7 || !svc.TCP {
				continue
			}
			for _, r := range svc.Ports {
				for port := int(r.Lo); port <= int(r.Hi); port++ {
					want[netip.AddrPortFrom(svc.VIP.Unmap(), uint16(port))] = true
				}
			}
		}
	}

	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return errors.New("apply layer-7 configuration: proxy is closed")
	}
	p.opts.Store(&withDef)

	var errs []error
	var stale []*listener
	for addr, l := range p.listeners {
		if !want[addr] {
			stale = append(stale, l)
			delete(p.listeners, addr)
		}
	}
	added := make([]netip.AddrPort, 0)
	for addr := range want {
		if _, ok := p.listeners[addr]; !ok {
			added = append(added, addr)
		}
	}
	slices.SortFunc(added, func(a, b netip.AddrPort) int { return a.Compare(b) })
	for _, addr := range added {
		ln, ok := p.reserved[addr]
		delete(p.reserved, addr)
		var err error
		if !ok {
			ln, err = listenFreebind(p.ctx, addr)
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		l := &listener{addr: addr, ln: ln, done: make(chan struct{})}
		p.listeners[addr] = l
		p.wg.Add(1)
		go p.acceptLoop(l)
	}

	kill := p.staleConnsLocked(snap)
	p.mu.Unlock()

	for _, l := range stale {
		l.ln.Close()
		<-l.done
	}
	for _, c := range kill {
		c.abort()
	}
	if len(added) > 0 || len(stale) > 0 || len(kill) > 0 {
		p.log.Info().Int("listeners", len(want)).Int("opened", len(added)-len(errs)).
			Int("closed", len(stale)).Int("connections_closed", len(kill)).Msg("layer-7 configuration applied")
	}
	return errors.Join(errs...)
}

// OnSnapshot closes at once (with a reset) the established connections that
// next no longer allows, by the rule Apply follows: connections of services
// that are gone or not layer 7, of servers that are gone or changed address,
// and of servers out of service (halt, down). Listeners and options are left
// as they are. Give it to the control plane's OnSnapshot, so that a halt or a
// failed health check closes a server's connections the moment it is in force.
func (p *Proxy) OnSnapshot(_, next *tables.Snapshot) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	kill := p.staleConnsLocked(next)
	p.mu.Unlock()
	for _, c := range kill {
		c.abort()
	}
}

// staleConnsLocked returns the connections snap no longer allows (see
// OnSnapshot) and forgets services and servers snap no longer has. It logs
// each server taken out of service whose connections it returns.
func (p *Proxy) staleConnsLocked(snap *tables.Snapshot) []*conn {
	var kill []*conn
	for name, ss := range p.services {
		var svc *tables.Service
		if snap != nil {
			svc = snap.Service(name)
		}
		if svc == nil || svc.Layer != tables.Layer7 {
			kill = append(kill, ss.allConns()...)
			delete(p.services, name)
			continue
		}
		ss.mu.Lock()
		for sname, st := range ss.servers {
			srv := svc.Server(sname)
			switch {
			case srv == nil:
				kill = append(kill, st.connsLocked()...)
				delete(ss.servers, sname)
			case !srv.State.InService():
				if out := st.connsLocked(); len(out) > 0 {
					kill = append(kill, out...)
					p.log.Info().Str("service", name).Str("server", sname).Int("connections", len(out)).
						Str("state", srv.State.String()).Msg("closed established connections")
				}
			default:
				for c := range st.conns {
					if c.serverAddr.Addr() != srv.Addr.Unmap() {
						kill = append(kill, c)
					}
				}
			}
		}
		ss.mu.Unlock()
	}
	return kill
}

// Close closes every listener and connection and waits until all of the
// proxy's goroutines have returned. The proxy cannot be used afterwards.
func (p *Proxy) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	p.unreserveLocked()
	var kill []*conn
	for _, ss := range p.services {
		kill = append(kill, ss.allConns()...)
	}
	lns := p.listeners
	p.listeners = map[netip.AddrPort]*listener{}
	p.mu.Unlock()

	p.cancel()
	for _, l := range lns {
		l.ln.Close()
	}
	for _, c := range kill {
		c.close()
	}
	p.wg.Wait()
	return nil
}

// Addrs returns the addresses the proxy listens on, sorted.
func (p *Proxy) Addrs() []netip.AddrPort {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]netip.AddrPort, 0, len(p.listeners))
	for a := range p.listeners {
		out = append(out, a)
	}
	slices.SortFunc(out, func(a, b netip.AddrPort) int { return a.Compare(b) })
	return out
}

func (p *Proxy) acceptLoop(l *listener) {
	defer p.wg.Done()
	defer close(l.done)
	var backoff time.Duration
	for {
		c, err := l.ln.AcceptTCP()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// EMFILE, ENFILE, ENOBUFS...: wait a little instead of spinning;
			// established connections are unaffected.
			if backoff == 0 {
				backoff = 5 * time.Millisecond
			} else if backoff *= 2; backoff > time.Second {
				backoff = time.Second
			}
			p.log.Warn().Err(err).Stringer("listener", l.addr).Dur("retry_in", backoff).
				Msg("accept failed (file descriptor limit?)")
			select {
			case <-time.After(backoff):
			case <-p.ctx.Done():
				return
			}
			continue
		}
		backoff = 0
		p.wg.Add(1)
		go p.serve(c, l.addr)
	}
}

// state returns the counters of a service and registers it if needed.
func (p *Proxy) state(name string) *svcState {
	p.mu.Lock()
	defer p.mu.Unlock()
	ss := p.services[name]
	if ss == nil {
		ss = &svcState{servers: make(map[string]*srvState)}
		p.services[name] = ss
	}
	return ss
}

func (p *Proxy) options(service string) ServiceOptions {
	if o, ok := (*p.opts.Load())[service]; ok {
		return o
	}
	return ServiceOptions{}.withDefaults()
}

func (p *Proxy) dialTCP(ctx context.Context, laddr, raddr netip.AddrPort) (*net.TCPConn, error) {
	d := net.Dialer{KeepAlive: noKeepAlive}
	if laddr.Addr().IsValid() {
		d.LocalAddr = net.TCPAddrFromAddrPort(laddr)
	}
	c, err := d.DialContext(ctx, "tcp", raddr.String())
	if err != nil {
		return nil, err
	}
	return c.(*net.TCPConn), nil
}

func listenError(addr netip.AddrPort, err error) error {
	hint := ""
	switch {
	case errors.Is(err, errAddrNotAvail):
		hint = " (is the VIP up on node.interface?)"
	case errors.Is(err, errAddrInUse):
		hint = " (is another process listening on this port?)"
	case errors.Is(err, errAccess):
		hint = " (ports below 1024 need root or CAP_NET_BIND_SERVICE)"
	}
	return fmt.Errorf("listen %s: %w%s", addr, err, hint)
}
