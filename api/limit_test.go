package api

import (
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"
)

func TestLimitListener(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var refused atomic.Uint64
	ln := newLimitListener(inner, 3, 2, &refused)
	defer ln.Close()
	accepted := make(chan net.Conn, 16)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Write([]byte("x"))
			accepted <- c
		}
	}()
	dial := func(src string) (net.Conn, bool) {
		t.Helper()
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
		c, err := d.Dial("tcp", inner.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		_, err = io.ReadFull(c, make([]byte, 1))
		return c, err == nil
	}
	tests := []struct {
		src  string
		want bool
	}{
		{"127.0.0.1", true},
		{"127.0.0.1", true},
		{"127.0.0.1", false}, // a third from one source
		{"127.0.0.2", true},
		{"127.0.0.3", false}, // a fourth in all
	}
	for i, tt := range tests {
		if _, ok := dial(tt.src); ok != tt.want {
			t.Errorf("connection %d from %s taken %v, want %v", i+1, tt.src, ok, tt.want)
		}
	}
	if n := refused.Load(); n != 2 {
		t.Errorf("refused %d, want 2", n)
	}
	(<-accepted).Close() // a slot frees
	if _, ok := dial("127.0.0.3"); !ok {
		t.Error("no connection taken after one closed")
	}
}
