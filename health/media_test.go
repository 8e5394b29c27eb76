package health

import (
	"bufio"
	"context"
	"encoding/binary"
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
)

// rtmpServer is a minimal RTMP server: the handshake, then, for a connect
// to app, a Window Acknowledgement Size, a Set Chunk Size of 60 (so that
// its answer comes in several chunks) and _result; for another
// application, _error with a description (reject) or a closed connection.
func rtmpServer(app string, reject bool) handler {
	return func(c, _ net.Conn, done <-chan struct{}) {
		r := bufio.NewReader(c)
		c0c1 := make([]byte, 1+rtmpHandshakeSize)
		if _, err := io.ReadFull(r, c0c1); err != nil {
			return
		}
		s := make([]byte, 1+2*rtmpHandshakeSize)
		s[0] = 3
		copy(s[1+rtmpHandshakeSize:], c0c1[1:])
		c.Write(s)
		if _, err := io.ReadFull(r, make([]byte, rtmpHandshakeSize)); err != nil { // C2
			return
		}
		// The connect command: one message in 128-byte chunks of stream 3.
		var h [12]byte
		if _, err := io.ReadFull(r, h[:]); err != nil {
			return
		}
		n := int(h[4])<<16 | int(h[5])<<8 | int(h[6])
		msg := make([]byte, 0, n)
		for len(msg) < n {
			if len(msg) > 0 {
				r.ReadByte() // type-3 header
			}
			part := make([]byte, min(128, n-len(msg)))
			if _, err := io.ReadFull(r, part); err != nil {
				return
			}
			msg = append(msg, part...)
		}
		got := amfFindString(msg, "app")
		if got != app && !reject {
			return // nginx-rtmp closes the connection: "application not found"
		}
		c.Write(rtmpChunks(2, 5, 0, binary.BigEndian.AppendUint32(nil, 2500000), 128))
		c.Write(rtmpChunks(2, 1, 0, binary.BigEndian.AppendUint32(nil, 60), 128))
		name, desc := "_result", "Connection succeeded."
		if got != app {
			name, desc = "_error", "Application not found: "+got
		}
		body := amfString(nil, name)
		body = amfNumber(body, 1)
		body = append(body, 3)
		body = amfKey(body, "fmsVer")
		body = amfString(body, "FMS/3,0,1,123")
		body = append(body, 0, 0, 9, 3)
		body = amfKey(body, "level")
		body = amfString(body, "status")
		body = amfKey(body, "description")
		body = amfString(body, desc)
		body = append(body, 0, 0, 9)
		c.Write(rtmpChunks(3, 20, 0, body, 60))
		<-done
	}
}

// rtspServer answers every request with status.
func rtspServer(status string) handler {
	return func(c, _ net.Conn, done <-chan struct{}) {
		r := bufio.NewReader(c)
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			if strings.TrimSpace(line) == "" {
				break
			}
		}
		c.Write([]byte(status + "\r\nCSeq: 1\r\n\r\n"))
		<-done
	}
}

// udpServer answers every datagram with what reply returns for it (nothing
// for nil).
func udpServer(t *testing.T, reply func([]byte) []byte) netip.AddrPort {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			if r := reply(buf[:n]); r != nil {
				pc.WriteTo(r, from)
			}
		}
	}()
	return netip.MustParseAddrPort(pc.LocalAddr().String())
}

// udpEcho answers every datagram with "echo:" and the datagram.
func udpEcho(t *testing.T) netip.AddrPort {
	return udpServer(t, func(b []byte) []byte { return append([]byte("echo:"), b...) })
}

func TestMediaChecks(t *testing.T) {
	echo := udpEcho(t)
	silentUDP := udpServer(t, func([]byte) []byte { return nil }) // bound, never answers
	for _, tc := range []struct {
		name string
		spec Spec
		addr netip.AddrPort
		ok   bool
		want string
	}{
		{"rtmp _result", Spec{Type: TypeRTMP, App: "live"}, startRaw(t, nil, rtmpServer("live", false)), true, "connect answered _result"},
		{"rtmp default application", Spec{Type: TypeRTMP}, startRaw(t, nil, rtmpServer("live", false)), true, "/live: connect answered _result"},
		{"rtmp application gone: closed", Spec{Type: TypeRTMP, App: "live"}, startRaw(t, nil, rtmpServer("ingest", false)), false, `connection closed by server (waiting for the answer to connect): no application "live" on the server?`},
		{"rtmp _error", Spec{Type: TypeRTMP, App: "live"}, startRaw(t, nil, rtmpServer("ingest", true)), false, "connect answered _error (Application not found: live)"},
		{"rtmp to an http server", Spec{Type: TypeRTMP}, startRaw(t, nil, respond("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")), false, "reading S0/S1/S2 (not an RTMP server?)"},
		{"rtmp silent", Spec{Type: TypeRTMP}, startRaw(t, nil, silent), false, "timeout after 1s (reading S0/S1/S2"},
		{"rtmp garbage", Spec{Type: TypeRTMP}, startRaw(t, nil, garbage), false, "rtmp "},
		{"rtmp refused", Spec{Type: TypeRTMP}, refused(t), false, "connection refused"},
		{"rtsp OPTIONS", Spec{Type: TypeRTSP}, startRaw(t, nil, rtspServer("RTSP/1.0 200 OK")), true, "rtsp OPTIONS rtsp://"},
		{"rtsp DESCRIBE 404", Spec{Type: TypeRTSP, Path: "/live/ch1"}, startRaw(t, nil, rtspServer("RTSP/1.0 404 Not Found")), false, `/live/ch1: answered "RTSP/1.0 404 Not Found", want RTSP/1.0 200`},
		{"rtsp to http", Spec{Type: TypeRTSP}, startRaw(t, nil, respond("HTTP/1.1 200 OK\r\n\r\n")), false, "want RTSP/1.0 200"},
		{"rtsp silent", Spec{Type: TypeRTSP}, startRaw(t, nil, silent), false, "timeout after 1s (waiting for response)"},
		{"udp reply", Spec{Type: TypeUDP, Send: "ping", Expect: "echo:ping"}, echo, true, "byte reply"},
		{"udp wrong reply", Spec{Type: TypeUDP, Send: "ping", Expect: "pong"}, echo, false, `does not contain "pong"`},
		{"udp no reply", Spec{Type: TypeUDP, Send: "ping"}, silentUDP, false, "timeout after 1s (waiting for a reply)"},
		{"udp port closed", Spec{Type: TypeUDP, Send: "ping"}, netip.MustParseAddrPort("127.0.0.1:9"), false, "connection refused"},
		{"srt induction", Spec{Type: TypeSRT}, srtListener(t, 1), true, "induction answered (SRT handshake version 5, cookie 0x"},
		{"srt wrong handshake type", Spec{Type: TypeSRT}, srtListener(t, 0xffffffff), false, "handshake type 0xffffffff, want the induction response (1)"},
		{"srt to an echo", Spec{Type: TypeSRT}, echo, false, "timeout after 1s (waiting for the induction response)"},
		{"srt port closed", Spec{Type: TypeSRT}, netip.MustParseAddrPort("127.0.0.1:9"), false, "connection refused"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.spec.Timeout = testTimeout
			c, err := NewChecker(tc.spec)
			if err != nil {
				t.Fatal(err)
			}
			r := c.Check(context.Background(), tc.addr)
			t.Logf("%v %v %q", r.OK, r.Duration, r.Reason)
			if r.OK != tc.ok || !strings.Contains(r.Reason, tc.want) {
				t.Errorf("got OK=%v %q, want OK=%v and %q", r.OK, r.Reason, tc.ok, tc.want)
			}
			if r.Duration > testTimeout+slack {
				t.Errorf("check took %v", r.Duration)
			}
		})
	}
}

func TestSeveralChecks(t *testing.T) {
	good := startRaw(t, nil, rtmpServer("live", false))
	gone := startRaw(t, nil, rtmpServer("other", false))
	status := startRaw(t, nil, respond("HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nHealthy\n"))
	httpSpec := Spec{Type: TypeHTTPGet, Path: "/admin/status", Expect: "Healthy", Timeout: testTimeout}
	for _, tc := range []struct {
		name string
		mode string
		rtmp netip.AddrPort
		ok   bool
		want string
	}{
		{"all pass", ModeAll, good, true, "all of 2 checks passed: http-get"},
		{"all: rtmp application gone", ModeAll, gone, false, "1 of 2 checks failed: rtmp "},
		{"any: rtmp application gone", ModeAny, gone, true, "any of 2 checks passed: http-get"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spec := httpSpec.WithMore(tc.mode, Spec{Type: TypeRTMP, App: "live", Port: tc.rtmp.Port()})
			if spec != httpSpec.WithMore(tc.mode, Spec{Type: TypeRTMP, App: "live", Port: tc.rtmp.Port()}) {
				t.Fatal("equal specs with further checks compare unequal")
			}
			c, err := NewChecker(spec)
			if err != nil {
				t.Fatal(err)
			}
			r := c.Check(context.Background(), status)
			if r.OK != tc.ok || !strings.Contains(r.Reason, tc.want) {
				t.Errorf("got OK=%v %q, want OK=%v and %q", r.OK, r.Reason, tc.ok, tc.want)
			}
		})
	}
	if _, err := NewChecker(httpSpec.WithMore("most", Spec{Type: TypeTCPConnect})); err == nil {
		t.Error("mode most accepted")
	}
}

// srtListener answers an induction as an SRT listener does (version 5,
// the SRT magic in the extension field, a cookie), with handshake type typ.
func srtListener(t *testing.T, typ uint32) netip.AddrPort {
	return udpServer(t, func(b []byte) []byte {
		if len(b) < srtHandshakeSize || binary.BigEndian.Uint32(b[16+20:]) != 1 {
			return nil
		}
		resp := make([]byte, srtHandshakeSize)
		binary.BigEndian.PutUint32(resp[0:], 0x80000000)
		copy(resp[12:16], b[16+24:16+28]) // to the caller's socket id
		h := resp[16:]
		binary.BigEndian.PutUint32(h[0:], 5)
		binary.BigEndian.PutUint16(h[6:], 0x4A17)
		binary.BigEndian.PutUint32(h[20:], typ)
		binary.BigEndian.PutUint32(h[24:], 0x1234)
		binary.BigEndian.PutUint32(h[28:], 0xC00C1E)
		return resp
	})
}
