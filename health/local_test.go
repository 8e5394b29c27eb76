package health

import (
	"context"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// TestLocalExhaustionKeepsVerdict: while this process is out of file
// descriptors, checks fail for its own want; the server stays up, the checks
// are counted as local errors, and checks decide again once fds are back.
func TestLocalExhaustionKeepsVerdict(t *testing.T) {
	srv, addr := newSwitchServer(t, true)
	ch := make(chan seen, 16)
	m := NewMonitor(zerolog.New(zerolog.NewTestWriter(t)), func(tr Transition) { ch <- seen{tr, srv.count()} })
	defer m.Close()
	spec := fastSpec()
	spec.Fall = 1
	m.Set([]Target{{Key: tk("svc/a"), Addr: addr, Spec: spec}})
	if s := wait(t, ch); !s.Up {
		t.Fatalf("first transition %+v, want up", s.Transition)
	}

	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &old); err != nil {
		t.Fatal(err)
	}
	// New descriptors take the lowest free number: with a limit of 3 (stdin,
	// stdout and stderr stay open) every new one fails with EMFILE.
	low := syscall.Rlimit{Cur: 3, Max: old.Max}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &low); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // about 25 checks at a 10ms interval
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &old); err != nil {
		t.Fatal(err)
	}
	select {
	case s := <-ch:
		t.Errorf("transition %+v while this process was out of file descriptors", s.Transition)
	default:
	}
	if n := m.LocalErrors(); n == 0 {
		t.Error("no check counted as a local error while out of file descriptors")
	}
	if st, _ := m.Status(tk("svc/a")); !st.Up {
		t.Errorf("status %+v, want still up", st)
	}

	// Resources back: a real failure is a verdict again.
	srv.set(false)
	if s := wait(t, ch); s.Up {
		t.Errorf("transition %+v, want down", s.Transition)
	}
}

func TestLocalError(t *testing.T) {
	// A source address this host does not have: EADDRNOTAVAIL.
	spec := Spec{Type: TypeTCPConnect, Timeout: time.Second, SourceAddr: netip.MustParseAddr("192.0.2.1")}
	c, err := NewChecker(spec)
	if err != nil {
		t.Fatal(err)
	}
	r := c.Check(context.Background(), netip.MustParseAddrPort("127.0.0.1:9"))
	if r.OK || !r.Local {
		t.Errorf("check from an address not on this host: %+v, want a local error", r)
	}
	// A refused connection is the server's answer.
	r = c.Check(context.Background(), netip.MustParseAddrPort("127.0.0.1:1"))
	spec.SourceAddr = netip.Addr{}
	if c, err = NewChecker(spec); err != nil {
		t.Fatal(err)
	}
	if r = c.Check(context.Background(), netip.MustParseAddrPort("127.0.0.1:1")); r.OK || r.Local {
		t.Errorf("refused connection: %+v, want a failure that is not local", r)
	}
}
