package l7

import (
	"bufio"
	"io"
	"net"
	"syscall"
	"testing"
	"time"
)

// BenchmarkRelay measures a bulk transfer (1 MiB per op) client -> server on
// loopback: direct, through the proxy (splice), and through a user-space
// io.Copy relay for comparison. cpu-ns/op is the CPU time of the whole
// process (client writes and server reads included, the same in every case),
// so the difference to "direct" is the relay's cost.
//
//	go test -run '^$' -bench Relay -benchtime 2s ./l7/
func BenchmarkRelay(b *testing.B) {
	const chunk = 1 << 20
	run := func(b *testing.B, c net.Conn, got <-chan int64) {
		buf := make([]byte, chunk)
		b.SetBytes(chunk)
		b.ReportAllocs()
		var ru0 syscall.Rusage
		syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
		n := 0
		for b.Loop() {
			if _, err := c.Write(buf); err != nil {
				b.Fatal(err)
			}
			n++
		}
		c.(*net.TCPConn).CloseWrite()
		if m := <-got; m != int64(n)*chunk {
			b.Fatalf("server got %d bytes, want %d", m, n*chunk)
		}
		var ru1 syscall.Rusage
		syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
		cpu := time.Duration(ru1.Utime.Nano() - ru0.Utime.Nano() + ru1.Stime.Nano() - ru0.Stime.Nano())
		b.ReportMetric(float64(cpu.Nanoseconds())/float64(n), "cpu-ns/op")
	}
	sink := func(got chan<- int64) func(net.Conn) {
		return func(c net.Conn) {
			defer c.Close()
			n, _ := io.Copy(io.Discard, bufio.NewReaderSize(c, chunk))
			got <- n
		}
	}
	listen := func(b *testing.B, h func(net.Conn)) net.Listener {
		ln, err := net.Listen("tcp", loopAddr().String()+":0")
		if err != nil {
			b.Fatal(err)
		}
		go func() {
			c, err := ln.Accept()
			if err == nil {
				h(c)
			}
		}()
		return ln
	}

	b.Run("direct", func(b *testing.B) {
		got := make(chan int64, 1)
		ln := listen(b, sink(got))
		defer ln.Close()
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		run(b, c, got)
	})
	b.Run("proxy-splice", func(b *testing.B) {
		l := newLab(b, 1, []uint32{100}, ServiceOptions{})
		got := make(chan int64, 1)
		l.backends[0].setHandler(sink(got))
		c, err := l.dial(loopAddr(), 0)
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		run(b, c, got)
	})
	b.Run("userspace-copy", func(b *testing.B) {
		got := make(chan int64, 1)
		back := listen(b, sink(got))
		defer back.Close()
		done := make(chan struct{})
		front := listen(b, func(c net.Conn) {
			defer close(done)
			defer c.Close()
			s, err := net.Dial("tcp", back.Addr().String())
			if err != nil {
				return
			}
			defer s.Close()
			io.Copy(struct{ io.Writer }{s}, struct{ io.Reader }{c})
			s.(*net.TCPConn).CloseWrite()
		})
		defer front.Close()
		c, err := net.Dial("tcp", front.Addr().String())
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		run(b, c, got)
		<-done
	})
}
