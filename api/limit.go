package api

import (
	"net"
	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/medialb/medialb/internal/clientaddr"
)

// Connection limits of the API listener: whoever can reach api.listen must
// not be able to take the process's file descriptors (which the layer-7
// proxy and the health checks need) before authenticating. A browser opens
// about six connections; the pair's configuration sync one.
const (
	maxConns          = 256
	maxConnsPerSource = 32
)

// limitListener closes at accept a connection beyond total open ones, or
// beyond perSource from one client (clientaddr.Key). Safe for concurrent use.
type limitListener struct {
	net.Listener
	total, perSource int
	refused          *atomic.Uint64 // connections closed at accept

	mu    sync.Mutex
	n     int
	bySrc map[netip.Addr]int
}

func newLimitListener(ln net.Listener, total, perSource int, refused *atomic.Uint64) *limitListener {
	return &limitListener{Listener: ln, total: total, perSource: perSource, refused: refused, bySrc: map[netip.Addr]int{}}
}

// Accept returns the next connection within the limits; the others are
// closed and counted.
func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		var key netip.Addr
		if ap, err := netip.ParseAddrPort(c.RemoteAddr().String()); err == nil {
			key = clientaddr.Key(ap.Addr())
		}
		if l.acquire(key) {
			return &limitConn{Conn: c, l: l, key: key}, nil
		}
		l.refused.Add(1)
		c.Close()
	}
}

func (l *limitListener) acquire(key netip.Addr) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.n >= l.total || l.bySrc[key] >= l.perSource {
		return false
	}
	l.n++
	l.bySrc[key]++
	return true
}

func (l *limitListener) release(key netip.Addr) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.n--
	if l.bySrc[key]--; l.bySrc[key] <= 0 {
		delete(l.bySrc, key)
	}
}

// limitConn gives its slot back when closed (once).
type limitConn struct {
	net.Conn
	l    *limitListener
	key  netip.Addr
	once sync.Once
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.l.release(c.key) })
	return err
}
