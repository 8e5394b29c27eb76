package lab

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
)

// TestLocalDials: Local's connections leave from the source address asked for, on the
// caller's own network (no namespace), for TCP, UDP and HTTP.
func TestLocalDials(t *testing.T) {
	src := netip.MustParseAddr("127.0.0.2") // any 127/8 address is local on Linux
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		if c, err := ln.Accept(); err == nil {
			io.WriteString(c, c.RemoteAddr().String()) //nolint:errcheck // the test reads it
			c.Close()
		}
	}()
	c, err := Local{}.DialTCP(context.Background(), src, netip.MustParseAddrPort(ln.Addr().String()))
	if err != nil {
		t.Fatal(err)
	}
	seen, _ := io.ReadAll(c)
	c.Close()
	if ap, err := netip.ParseAddrPort(string(seen)); err != nil || ap.Addr() != src {
		t.Errorf("tcp: server saw %q, want %s", seen, src)
	}

	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	u, err := Local{}.DialUDP(src, netip.MustParseAddrPort(pc.LocalAddr().String()))
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	if _, err := u.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	_, from, err := pc.ReadFrom(make([]byte, 16))
	if err != nil || netip.MustParseAddrPort(from.String()).Addr() != src {
		t.Errorf("udp: datagram from %v (%v), want %s", from, err, src)
	}

	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.RemoteAddr) //nolint:errcheck // the test reads it
	}))
	defer srv.Close()
	resp, err := Local{}.HTTPClient(src).Get(srv.URL) // self-signed: accepted, as the lab's
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if ap, err := netip.ParseAddrPort(string(body)); err != nil || ap.Addr() != src {
		t.Errorf("https: server saw %q, want %s", body, src)
	}
}
