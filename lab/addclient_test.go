package lab

import (
	"context"
	"io"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// TestAddClientAndVOSMedia adds a client host and checks that a real server sees its own
// address, then switches a vossim's media listeners off and on again.
func TestAddClientAndVOSMedia(t *testing.T) {
	l := NewForTest(t, Options{Prefix: Prefix("lc"), Clients: 2, NoIPv6: true, Servers: DefaultServers(1)})
	if err := l.StartVOS(vossimBin(t)); err != nil {
		t.Fatal(err)
	}
	src := netip.MustParseAddr("192.168.95.50")
	c, err := l.AddClient("m1", src)
	if err != nil {
		t.Fatal(err)
	}
	if c.NS != l.Prefix+"m1" || c.Addr4 != src || len(c.Sources4) != 1 {
		t.Errorf("client %+v", c)
	}
	for _, bad := range []struct {
		name string
		addr netip.Addr
	}{
		{"m1", netip.MustParseAddr("192.168.95.51")}, // name taken
		{"m2", src}, // address taken
		{"m3", netip.MustParseAddr("192.168.95.1")},  // the lab client's
		{"m4", netip.MustParseAddr("192.168.94.51")}, // not a client subnet
		{"cl", netip.MustParseAddr("192.168.95.52")}, // reserved
		{"Mx", netip.MustParseAddr("192.168.95.53")}, // upper case
	} {
		if _, err := l.AddClient(bad.name, bad.addr); err == nil {
			t.Errorf("AddClient(%s, %s): want an error", bad.name, bad.addr)
		}
	}
	srv := l.Servers[0]
	who := func(port uint16) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		conn, err := dialIn(ctx, c.NS, "tcp", netip.AddrPort{}, netip.AddrPortFrom(srv.Addr4, port))
		if err != nil {
			return "", err
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.WriteString(conn, "hello\n"); err != nil {
			return "", err
		}
		b := make([]byte, 200)
		n, err := conn.Read(b)
		return string(b[:n]), err
	}
	got, err := who(1935)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(got, "client="+src.String()+":") {
		t.Errorf("%s answered %q, want it to see the added client's %s", srv.Name, got, src)
	}
	if err := l.SetVOSMedia(srv.Name, false); err != nil {
		t.Fatal(err)
	}
	if _, err := who(1935); err == nil {
		t.Error("media off: port 1935 still answers")
	} else if !strings.Contains(err.Error(), "refused") {
		t.Errorf("media off: %v, want connection refused", err)
	}
	if err := l.SetStatus(srv.Name, Healthy); err != nil {
		t.Errorf("control listener after the restart: %v", err)
	}
	if err := l.SetVOSMedia(srv.Name, true); err != nil {
		t.Fatal(err)
	}
	if _, err := who(554); err != nil {
		t.Errorf("media on again: %v", err)
	}
}
