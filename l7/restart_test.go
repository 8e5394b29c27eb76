package l7

import (
	"testing"
)

// TestRestartListenersKeepsConnections: after a restart the same ports accept
// again, and a connection established before it still relays.
func TestRestartListenersKeepsConnections(t *testing.T) {
	l := newLab(t, 2, []uint32{100}, ServiceOptions{})
	client := loopAddr()
	before, r, name := l.hello(client, 0)
	defer before.Close()
	if name != "RS1" {
		t.Fatalf("greeting %q", name)
	}
	addrs := l.proxy.Addrs()
	n, err := l.proxy.RestartListeners()
	if err != nil || n != len(addrs) || len(addrs) != 2 {
		t.Fatalf("restart: %d listeners, %v; want %d", n, err, len(addrs))
	}
	if got := l.proxy.Addrs(); len(got) != 2 || got[0] != addrs[0] || got[1] != addrs[1] {
		t.Fatalf("listeners after restart %v, want %v", got, addrs)
	}
	for i := range 2 {
		c, _, name := l.hello(loopAddr(), i)
		c.Close()
		if name != "RS1" {
			t.Fatalf("port %d after restart: greeting %q", i, name)
		}
	}
	if _, err := before.Write([]byte("ping")); err != nil {
		t.Fatalf("established connection after restart: %v", err)
	}
	buf := make([]byte, 4)
	if _, err := r.Read(buf); err != nil || string(buf) != "ping" {
		t.Fatalf("established connection after restart: read %q, %v", buf, err)
	}
	l.proxy.Close()
	if _, err := l.proxy.RestartListeners(); err == nil {
		t.Error("restart of a closed proxy did not fail")
	}
}
