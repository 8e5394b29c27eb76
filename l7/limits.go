package l7

import (
	"net/netip"
	"sync"
	"syscall"
)

// sourceCounts counts a service's connections per client address, for
// ServiceOptions.MaxConnsPerSource. IPv6 clients count per /64 (one host
// has a /64 to pick addresses from). The zero value is ready; it is safe for
// concurrent use. It is held only on accept and close, never while relaying.
type sourceCounts struct {
	mu sync.Mutex
	n  map[netip.Addr]int
}

// acquire counts one more connection of key unless it has limit already.
func (s *sourceCounts) acquire(key netip.Addr, limit int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.n[key] >= limit {
		return false
	}
	if s.n == nil {
		s.n = map[netip.Addr]int{}
	}
	s.n[key]++
	return true
}

// release counts one connection of key less.
func (s *sourceCounts) release(key netip.Addr) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.n[key] <= 1 {
		delete(s.n, key)
		return
	}
	s.n[key]--
}

// DefaultMaxConns is the max_connections of each of services layer-7
// services when the configuration leaves it out: the file descriptors of
// nofile (the process's RLIMIT_NOFILE) less a headroom for health checks,
// the API, HA sync, keepalived's pipes and the listeners (a tenth, at least
// 256), shared out equally; a proxied connection costs two. Never below 1.
func DefaultMaxConns(nofile uint64, services int) int {
	headroom := max(nofile/10, 256)
	if services < 1 || nofile <= headroom {
		return 1
	}
	return max(int((nofile-headroom)/2/uint64(services)), 1)
}

// NoFile returns the process's RLIMIT_NOFILE soft limit (1024 when it
// cannot be read).
func NoFile() uint64 {
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
		return 1024
	}
	return r.Cur
}
