package ha

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/medialb/medialb/config"
)

// guardedSyncer serves a syncer on 127.0.0.1 that takes its peer 127.0.0.2.
func guardedSyncer(t *testing.T) *syncer {
	t.Helper()
	n := testNode(t, "pair secret 0123456789", RoleBackup, nil, 0, nil)
	s := listenSync(t, n, netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("127.0.0.2"))
	done := make(chan struct{})
	go func() { defer close(done); s.serve() }()
	t.Cleanup(func() { s.close(); <-done })
	return s
}

// dialFrom connects to s from source address src.
func dialFrom(t *testing.T, s *syncer, src string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: time.Second}
	c, err := d.Dial("tcp", s.ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// nonceOf reads the acceptor's nonce; an error when the connection is closed first.
func nonceOf(c net.Conn) error {
	c.SetReadDeadline(time.Now().Add(time.Second))
	var b [nonceLen]byte
	_, err := io.ReadFull(c, b[:])
	return err
}

// closedWithin reports whether the acceptor closes c within d (nothing read).
func closedWithin(c net.Conn, d time.Duration) bool {
	c.SetReadDeadline(time.Now().Add(d))
	var b [1]byte
	_, err := c.Read(b[:])
	var ne net.Error
	return err != nil && !(errors.As(err, &ne) && ne.Timeout())
}

func TestSyncListenerOwnAddressOnly(t *testing.T) {
	n := testNode(t, "pair secret 0123456789", RoleBackup, nil, 0, nil)
	for _, listen := range []string{"0.0.0.0:0", "[::]:0"} {
		if s, err := newSyncerAt(n, netip.MustParseAddrPort(listen), netip.MustParseAddrPort("127.0.0.2:7778"), n.opts.HA.Secret); err == nil {
			s.ln.Close()
			t.Errorf("newSyncer listened on %s (every address, the VIPs too)", listen)
		}
	}
	s := guardedSyncer(t)
	if a := s.ln.Addr().(*net.TCPAddr); !a.IP.Equal(net.ParseIP("127.0.0.1")) {
		t.Errorf("listening on %s, want 127.0.0.1", a)
	}
}

func TestSyncListenerRefusesStrangers(t *testing.T) {
	s := guardedSyncer(t)
	stranger := dialFrom(t, s, "127.0.0.3")
	if err := nonceOf(stranger); err == nil {
		t.Error("a connection from 127.0.0.3 (not ha.peer) got a nonce")
	}
	if err := nonceOf(dialFrom(t, s, "127.0.0.2")); err != nil {
		t.Errorf("the peer's connection got no nonce: %v", err)
	}
	if s.refused.Load() != 1 {
		t.Errorf("refused = %d, want 1", s.refused.Load())
	}
}

func TestSyncListenerPendingLimit(t *testing.T) {
	s := guardedSyncer(t)
	var held []net.Conn
	for range maxPending {
		c := dialFrom(t, s, "127.0.0.2")
		if err := nonceOf(c); err != nil {
			t.Fatalf("pending connection %d: %v", len(held)+1, err)
		}
		held = append(held, c)
	}
	if err := nonceOf(dialFrom(t, s, "127.0.0.2")); err == nil {
		t.Errorf("connection %d waiting for authentication was taken (limit %d)", maxPending+1, maxPending)
	}
	held[0].Close()
	deadline := time.Now().Add(2 * time.Second)
	for {
		err := nonceOf(dialFrom(t, s, "127.0.0.2"))
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no slot after a pending connection closed: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestSyncListenerHandshakeDeadline(t *testing.T) {
	s := guardedSyncer(t)
	c := dialFrom(t, s, "127.0.0.2")
	if err := nonceOf(c); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if !closedWithin(c, handshakeTimeout+time.Second) {
		t.Fatalf("a silent connection is still open after %v", time.Since(start))
	}
}

func TestSyncListenerBigFirstFrame(t *testing.T) {
	s := guardedSyncer(t)
	c := dialFrom(t, s, "127.0.0.2")
	if err := nonceOf(c); err != nil {
		t.Fatal(err)
	}
	hdr := []byte{msgHello, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(hdr[1:], maxPayload)
	c.Write(hdr)
	if !closedWithin(c, handshakeTimeout/2) {
		t.Error("a first frame claiming 16 MiB did not close the connection at once")
	}
}

// TestFrameReaderAllocation: a header's claimed length costs nothing before the
// connection is authenticated, and only what arrives after.
func TestFrameReaderAllocation(t *testing.T) {
	hdr := []byte{msgEntries, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(hdr[1:], maxPayload)
	in := append(hdr, make([]byte, 1000)...)
	tests := []struct {
		name  string
		limit uint32
		want  error
	}{
		{"unauthenticated", maxFirstFrame, errTooLarge},
		{"authenticated, bytes missing", maxPayload, io.ErrUnexpectedEOF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &frameReader{r: bufio.NewReader(bytes.NewReader(in)), key: []byte("k"), limit: tt.limit}
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			_, _, err := r.read()
			runtime.ReadMemStats(&after)
			if !errors.Is(err, tt.want) {
				t.Errorf("read: %v, want %v", err, tt.want)
			}
			if grown := after.TotalAlloc - before.TotalAlloc; grown > 2*readChunk {
				t.Errorf("read allocated %d bytes for a frame of which 1000 arrived", grown)
			}
		})
	}
}

func TestSyncerFamily(t *testing.T) {
	n := testNode(t, "pair secret 0123456789", RoleBackup, nil, 0, nil)
	n.opts.Local = netip.MustParseAddr("127.0.0.1")
	if s, err := newSyncer(n, config.HA{Peer: netip.MustParseAddr("::1"), SyncPort: 7778, Secret: "pair secret 0123456789"}); err == nil {
		s.ln.Close()
		t.Error("a syncer on an IPv4 address took an IPv6 peer")
	}
}
