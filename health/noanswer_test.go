package health

import (
	"context"
	"net"
	"net/netip"
	"testing"
	"time"
)

// A check that times out got no answer; one refused or answered badly did.
func TestNoAnswer(t *testing.T) {
	silent, err := net.Listen("tcp", "127.0.0.1:0") // accepts, never answers
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	go func() {
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refusing := netip.MustParseAddrPort(closed.Addr().String())
	closed.Close()
	for _, tt := range []struct {
		name, typ string
		target    netip.AddrPort
		noAnswer  bool
	}{
		{"http timeout", "http-get", netip.MustParseAddrPort(silent.Addr().String()), true},
		{"http refused", "http-get", refusing, false},
		{"tcp refused", "tcp-connect", refusing, false},
	} {
		c, err := NewChecker(Spec{Type: tt.typ, Path: "/", Timeout: 200 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		r := c.Check(context.Background(), tt.target)
		if r.OK || r.NoAnswer != tt.noAnswer {
			t.Errorf("%s: %+v, want failed with NoAnswer %v", tt.name, r, tt.noAnswer)
		}
	}
}
