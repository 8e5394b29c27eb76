package l7

import (
	"bytes"
	"flag"
	"net"
	"net/netip"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

var idleConns = flag.Int("l7.idleconns", 0, "TestIdleConnsMemory: number of idle connections to hold through the proxy (0 skips the test)")

// memNow returns the Go heap in use, the goroutine stacks in use and the
// resident set size of the process, after a full collection.
func memNow(t *testing.T) (heap, stack, rss uint64) {
	runtime.GC()
	runtime.GC()
	debug.FreeOSMemory()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range bytes.Split(b, []byte("\n")) {
		if v, ok := bytes.CutPrefix(line, []byte("VmRSS:")); ok {
			kb, _ := strconv.ParseUint(string(bytes.TrimSpace(bytes.TrimSuffix(bytes.TrimSpace(v), []byte("kB")))), 10, 64)
			rss = kb << 10
		}
	}
	return ms.HeapInuse, ms.StackInuse, rss
}

// TestIdleConnsMemory holds -l7.idleconns idle client connections through the
// proxy on loopback and reports the memory each costs. Every connection is 4
// file descriptors in this process (client, proxy's two, server), so the test
// raises RLIMIT_NOFILE (it must be root to go past the hard limit). The cost
// of the test's own endpoints is measured first with the same number of
// direct connections and subtracted.
//
//	go test -run TestIdleConnsMemory -l7.idleconns=50000 -v ./l7/
func TestIdleConnsMemory(t *testing.T) {
	n := *idleConns
	if n == 0 {
		t.Skip("set -l7.idleconns=N to run (e.g. 50000)")
	}
	need := uint64(4*n + 1000)
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	if lim.Cur < need {
		old := lim
		lim.Cur = need
		if lim.Max < need {
			lim.Max = need
		}
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			// No CAP_SYS_RESOURCE: hold as many as the hard limit allows
			// and say so.
			lim = syscall.Rlimit{Cur: old.Max, Max: old.Max}
			if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
				t.Fatal(err)
			}
			reduced := int(old.Max-1000) / 4
			t.Logf("cannot raise RLIMIT_NOFILE to %d (hard limit %d: %v); holding %d connections instead of %d",
				need, old.Max, err, reduced, n)
			n = reduced
		}
		t.Cleanup(func() { syscall.Setrlimit(syscall.RLIMIT_NOFILE, &old) })
	}

	const nservers = 4 // the proxy's connections to one server share a 4-tuple space of ~28k ports
	l := newLab(t, 1, []uint32{100, 100, 100, 100}, ServiceOptions{})
	for _, b := range l.backends {
		b.setHandler(func(net.Conn) {}) // hold the connection, no goroutine
	}
	// Client source addresses: one per 100 connections, so that source-IP
	// persistence spreads them over the servers.
	var clients []netip.Addr
	for range (n + 99) / 100 {
		clients = append(clients, loopAddr())
	}

	open := func(dst func(i int) netip.AddrPort) []net.Conn {
		conns := make([]net.Conn, n)
		var wg sync.WaitGroup
		var mu sync.Mutex
		var firstErr error
		const workers = 16
		for w := range workers {
			wg.Go(func() {
				for i := w; i < n; i += workers {
					d := net.Dialer{LocalAddr: net.TCPAddrFromAddrPort(netip.AddrPortFrom(clients[i/100], 0))}
					c, err := d.Dial("tcp", dst(i).String())
					if err != nil {
						mu.Lock()
						if firstErr == nil {
							firstErr = err
						}
						mu.Unlock()
						return
					}
					conns[i] = c
				}
			})
		}
		wg.Wait()
		if firstErr != nil {
			for _, c := range conns {
				if c != nil {
					c.Close()
				}
			}
			t.Fatalf("open connection: %v", firstErr)
		}
		return conns
	}
	serverConns := func() int {
		total := 0
		for _, b := range l.backends {
			b.mu.Lock()
			total += len(b.conns)
			b.mu.Unlock()
		}
		return total
	}
	dropServerConns := func() {
		for _, b := range l.backends {
			b.mu.Lock()
			for _, c := range b.conns {
				c.Close()
			}
			b.conns = nil
			b.mu.Unlock()
		}
	}

	// Baseline: the test's endpoints alone (client and server socket).
	h0, s0, r0 := memNow(t)
	start := time.Now()
	direct := open(func(i int) netip.AddrPort {
		b := l.backends[i%nservers]
		return netip.AddrPortFrom(b.addr, l.ports[0])
	})
	waitForN(t, "server side of direct connections", func() bool { return serverConns() == n })
	h1, s1, r1 := memNow(t)
	baseHeap, baseStack, baseRSS := per(h1, h0, n), per(s1, s0, n), per(r1, r0, n)
	t.Logf("baseline: %d direct connections in %v: heap %+d B, stacks %+d B, RSS %+d B per connection",
		n, time.Since(start).Round(time.Millisecond), per(h1, h0, n), per(s1, s0, n), per(r1, r0, n))
	for _, c := range direct {
		c.Close()
	}
	dropServerConns()
	direct = nil

	// Through the proxy.
	h0, s0, r0 = memNow(t)
	t.Logf("open file descriptors before the proxied phase: %d", countFDs())
	g0 := runtime.NumGoroutine()
	start = time.Now()
	vip := netip.AddrPortFrom(l.vip, l.ports[0])
	conns := open(func(int) netip.AddrPort { return vip })
	waitForN(t, "proxied connections established", func() bool {
		return l.proxy.Stats()[0].Active == int64(n) && serverConns() == n
	})
	took := time.Since(start)
	fds := countFDs()
	t.Logf("open file descriptors while holding them: %d", fds)
	if fds > 4*n+100 {
		t.Errorf("%d file descriptors for %d connections: more than 4 each (splice pipes held while idle?)", fds, n)
	}
	h1, s1, r1 = memNow(t)
	g1 := runtime.NumGoroutine()
	t.Logf("proxied: %d idle connections held (%d fds) in %v: goroutines %+d (%.1f per connection)",
		n, 4*n, took.Round(time.Millisecond), g1-g0, float64(g1-g0)/float64(n))
	t.Logf("proxied: heap %+d B, stacks %+d B, RSS %+d B per connection (test endpoints included)",
		per(h1, h0, n), per(s1, s0, n), per(r1, r0, n))
	bh, bs, br := per(h1, h0, n), per(s1, s0, n), per(r1, r0, n)
	t.Logf("proxy alone (minus baseline): heap %+d B, stacks %+d B, RSS %+d B per connection; 2 sockets (fds) per connection",
		bh-baseHeap, bs-baseStack, br-baseRSS)
	for _, s := range l.proxy.Stats()[0].Servers {
		t.Logf("  %s: %d active", s.Name, s.Active)
	}
	// Both ends close (after a client's close alone the server could still
	// send: the proxy keeps the half-closed connection).
	for _, c := range conns {
		c.Close()
	}
	dropServerConns()
	waitForN(t, "all proxied connections closed", func() bool { return l.proxy.Stats()[0].Active == 0 })
}

func countFDs() int {
	ents, _ := os.ReadDir("/proc/self/fd")
	return len(ents)
}

func per(after, before uint64, n int) int64 { return (int64(after) - int64(before)) / int64(n) }

// waitForN polls cond for up to 5 minutes.
func waitForN(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
