package l7

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"os"
	"strconv"
	"testing"
	"time"
)

// procIO returns rchar and wchar of this process: the bytes that went
// through read/write-family system calls. splice(2) moves data without them,
// so a relay that splices adds nothing here, while a user-space copy adds the
// relayed bytes to both counters.
func procIO(t testing.TB) (rchar, wchar uint64) {
	t.Helper()
	b, err := os.ReadFile("/proc/self/io")
	if err != nil {
		t.Skipf("no /proc/self/io (kernel without task I/O accounting): %v", err)
	}
	for _, line := range bytes.Split(b, []byte("\n")) {
		k, v, ok := bytes.Cut(line, []byte(": "))
		if !ok {
			continue
		}
		n, _ := strconv.ParseUint(string(v), 10, 64)
		switch string(k) {
		case "rchar":
			rchar = n
		case "wchar":
			wchar = n
		}
	}
	return rchar, wchar
}

// transfer writes n bytes (rounded up to MiB) to c.
func transfer(t *testing.T, c net.Conn, n int) {
	t.Helper()
	buf := make([]byte, 1<<20)
	for sent := 0; sent < n; sent += len(buf) {
		if _, err := c.Write(buf); err != nil {
			t.Fatal(err)
		}
	}
}

// TestRelaySplices shows that a bulk transfer's payload does not pass through
// read/write system calls in this process (it is spliced in the kernel): 64 MiB
// sent by the test client (wchar) and read by the test server (rchar) are
// counted once, plus the first bulkThreshold (64 KiB) bytes, which the relay
// copies before it switches to splice; a user-space relay, measured the same
// way as a control, counts them twice.
func TestRelaySplices(t *testing.T) {
	const size = 64 << 20
	measure := func(t *testing.T, dial func() net.Conn, got <-chan int64) (rdelta, wdelta uint64) {
		c := dial()
		defer c.Close()
		r0, w0 := procIO(t)
		transfer(t, c, size)
		c.(*net.TCPConn).CloseWrite()
		select {
		case n := <-got:
			if n != size {
				t.Fatalf("server read %d bytes, want %d", n, size)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("transfer did not finish")
		}
		r1, w1 := procIO(t)
		return r1 - r0, w1 - w0
	}

	t.Run("proxy", func(t *testing.T) {
		l := newLab(t, 1, []uint32{100}, ServiceOptions{})
		got := make(chan int64, 1)
		l.backends[0].setHandler(func(c net.Conn) {
			defer c.Close()
			n, _ := io.Copy(io.Discard, bufio.NewReaderSize(c, 1<<20))
			got <- n
		})
		rd, wd := measure(t, func() net.Conn {
			c, err := l.dial(loopAddr(), 0)
			if err != nil {
				t.Fatal(err)
			}
			return c
		}, got)
		t.Logf("through the proxy: rchar +%d MiB, wchar +%d MiB for %d MiB relayed", rd>>20, wd>>20, size>>20)
		if rd > size+size/4 || wd > size+size/4 {
			t.Fatalf("rchar +%d, wchar +%d: the relay copied %d bytes through user space", rd, wd, size)
		}
		if st := l.stats("RS1"); st.BytesIn != size {
			t.Fatalf("BytesIn %d, want %d", st.BytesIn, size)
		}
	})

	t.Run("control-userspace", func(t *testing.T) {
		// The same measurement over a relay that hides the conns from
		// io.Copy (what wrapping them would do): the counters double.
		front, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer front.Close()
		back, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer back.Close()
		got := make(chan int64, 1)
		done := make(chan struct{})
		go func() {
			defer close(done)
			c, err := back.Accept()
			if err != nil {
				return
			}
			defer c.Close()
			n, _ := io.Copy(io.Discard, bufio.NewReaderSize(c, 1<<20))
			got <- n
		}()
		relayDone := make(chan struct{})
		go func() {
			defer close(relayDone)
			c, err := front.Accept()
			if err != nil {
				return
			}
			defer c.Close()
			s, err := net.Dial("tcp", back.Addr().String())
			if err != nil {
				return
			}
			defer s.Close()
			io.Copy(struct{ io.Writer }{s}, struct{ io.Reader }{c})
			s.(*net.TCPConn).CloseWrite()
		}()
		rd, wd := measure(t, func() net.Conn {
			c, err := net.Dial("tcp", front.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			return c
		}, got)
		<-relayDone
		<-done
		t.Logf("through a user-space relay: rchar +%d MiB, wchar +%d MiB", rd>>20, wd>>20)
		if rd < 2*size || wd < 2*size {
			t.Fatalf("control: rchar +%d, wchar +%d; the measurement cannot tell the relays apart", rd, wd)
		}
	})
}

// TestSmallExchangesDoNotSplice holds connections that have each relayed a
// greeting and a 100-byte echo and counts the process's file descriptors:
// 4 per connection (client, the proxy's two sockets, server) and no splice
// pipes, which a relay splicing these few bytes would hold (2 per direction
// while a copy runs, about a second after the data stops).
func TestSmallExchangesDoNotSplice(t *testing.T) {
	const n = 20
	l := newLab(t, 1, []uint32{100}, ServiceOptions{})
	// The lab's echo (io.Copy between TCPConns) would splice itself.
	l.backends[0].setHandler(func(c net.Conn) {
		defer c.Close()
		io.WriteString(c, "RS1\n")
		buf := make([]byte, 512)
		for {
			k, err := c.Read(buf)
			if err != nil {
				return
			}
			if _, err := c.Write(buf[:k]); err != nil {
				return
			}
		}
	})
	base := countFDs()
	msg := bytes.Repeat([]byte("x"), 100)
	for range n {
		c, r, _ := l.hello(loopAddr(), 0)
		defer c.Close()
		if _, err := c.Write(msg); err != nil {
			t.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		got := make([]byte, len(msg))
		if _, err := io.ReadFull(r, got); err != nil {
			t.Fatalf("read echo: %v", err)
		}
	}
	if got, want := countFDs()-base, 4*n; got > want {
		t.Fatalf("%d file descriptors for %d connections, want %d: splice pipes for a 100-byte exchange?", got, n, want)
	}
	// The proxy counts a copy after its write to the server returns, which can be
	// after the echo has come back: wait for the count.
	deadline := time.Now().Add(5 * time.Second)
	for l.stats("RS1").BytesIn != n*100 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if st := l.stats("RS1"); st.BytesIn != n*100 {
		t.Fatalf("BytesIn %d, want %d", st.BytesIn, n*100)
	}
}
