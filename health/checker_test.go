package health

import (
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const (
	testTimeout = time.Second
	// slack is how much later than the timeout a check may return: the
	// machine is small and shared, and tests run with -race.
	slack = 750 * time.Millisecond
)

// TestMisbehaving runs every checker against every misbehaving server: each
// check must fail (or, for tcp-connect, pass where a TCP connect does)
// within the timeout, with a reason that names what was seen.
func TestMisbehaving(t *testing.T) {
	pki := newPKI(t)
	type server struct {
		name string
		h    handler // nil: refused
		// noTLS: the server talks the same whether or not the check
		// uses TLS (it never handshakes).
		noTLS bool
	}
	servers := []server{
		{name: "silent", h: silent, noTLS: true},
		{name: "slow", h: slow},
		{name: "huge-content-length", h: huge("HTTP/1.1 200 OK\r\nContent-Length: 104857600\r\n\r\n", false)},
		{name: "huge-chunked", h: huge("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", true)},
		{name: "huge-unframed", h: huge("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n", false)},
		{name: "garbage", h: garbage, noTLS: true},
		{name: "refused"},
		{name: "reset-at-once", h: resetAfter("")},
		{name: "reset-mid-answer", h: resetAfter("HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\nHea")},
		{name: "status-503", h: respond("HTTP/1.1 503 Service Unavailable\r\nContent-Length: 7\r\n\r\nHealthy")},
		{name: "wrong-body", h: respond("HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n Unhealthy\n")},
	}
	// want maps checker type and server name to the expected reason (after
	// "type addr/path: "); a reason of "connected" means the check passes.
	httpWant := map[string][]string{
		"silent":              {"timeout after 1s (waiting for response)"},
		"slow":                {"timeout after 1s (waiting for response)"},
		"huge-content-length": {"body larger than 65536 bytes"},
		"huge-chunked":        {"body larger than 65536 bytes"},
		"huge-unframed":       {"body larger than 65536 bytes"},
		"garbage":             {"malformed response header: "},
		"refused":             {"connection refused"},
		"reset-at-once":       {"connection closed by server (waiting for response)", "connection reset by peer"},
		"reset-mid-answer":    {"connection reset by peer (waiting for response)"},
		"status-503":          {`status 503, want 2xx, body "Healthy"`},
		"wrong-body":          {`body "Unhealthy", want "Healthy"`},
	}
	httpsWant := map[string][]string{
		"silent":  {"timeout after 1s (tls handshake)"},
		"garbage": {"tls handshake: not a TLS server"},
	}
	tcpWant := map[string][]string{"refused": {"connection refused"}}

	for _, typ := range []string{TypeHTTPGet, TypeHTTPSGet, TypeTCPConnect} {
		for _, srv := range servers {
			t.Run(typ+"/"+srv.name, func(t *testing.T) {
				t.Parallel()
				var addr netip.AddrPort
				switch {
				case srv.h == nil:
					addr = refused(t)
				case typ == TypeHTTPSGet && !srv.noTLS:
					addr = startRaw(t, pki.serverConfig(), srv.h)
				default:
					addr = startRaw(t, nil, srv.h)
				}
				want, ok := map[string]map[string][]string{TypeHTTPGet: httpWant, TypeHTTPSGet: httpsWant, TypeTCPConnect: tcpWant}[typ][srv.name]
				if !ok && typ == TypeHTTPSGet {
					want, ok = httpWant[srv.name]
				}
				c, err := NewChecker(Spec{Type: typ, Path: "/admin/status", Expect: "Healthy", Timeout: testTimeout})
				if err != nil {
					t.Fatal(err)
				}
				r := c.Check(context.Background(), addr)
				t.Logf("%v %v %q", r.OK, r.Duration, r.Reason)
				if r.Duration > testTimeout+slack {
					t.Errorf("check took %v, want at most %v", r.Duration, testTimeout+slack)
				}
				prefix := typ + " " + addr.String()
				if typ != TypeTCPConnect {
					prefix += "/admin/status"
				}
				if !strings.HasPrefix(r.Reason, prefix+": ") {
					t.Errorf("reason %q does not start with %q", r.Reason, prefix+": ")
				}
				if !ok { // tcp-connect to a server that accepts
					if !r.OK || !strings.Contains(r.Reason, ": connected in ") {
						t.Errorf("got OK=%v %q, want a passed connect", r.OK, r.Reason)
					}
					return
				}
				if r.OK {
					t.Fatalf("check passed (%q), want a failure", r.Reason)
				}
				for _, w := range want {
					if strings.Contains(r.Reason, w) {
						return
					}
				}
				t.Errorf("reason %q contains none of %q", r.Reason, want)
			})
		}
	}
}

// echoServer answers 200 with the Host header and the TLS server name it
// saw, "host|sni".
func echoServer(t testing.TB, pki *testPKI) netip.AddrPort {
	t.Helper()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sni := ""
		if r.TLS != nil {
			sni = r.TLS.ServerName
		}
		fmt.Fprintf(w, "%s|%s\n", r.Host, sni)
	}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // handshakes that tests fail on purpose
	if pki != nil {
		srv.TLS = pki.serverConfig()
		srv.StartTLS()
	} else {
		srv.Start()
	}
	t.Cleanup(srv.Close)
	return netip.MustParseAddrPort(srv.Listener.Addr().String())
}

func TestHTTPS(t *testing.T) {
	pki := newPKI(t)
	addr := echoServer(t, &pki)
	self := addr.String() + "|"
	tests := []struct {
		name   string
		spec   Spec
		ok     bool
		reason string
	}{
		{name: "no verify", spec: Spec{Expect: self}, ok: true, reason: "status 200"},
		{name: "verify with CA file", spec: Spec{Expect: self, TLSVerify: true, CAFile: pki.caFile}, ok: true},
		{name: "verify without CA", spec: Spec{TLSVerify: true}, reason: "tls handshake: x509: certificate signed by unknown authority"},
		{name: "verify wrong name", spec: Spec{TLSVerify: true, CAFile: pki.caFile, SNI: "other.example"}, reason: "tls handshake: x509: certificate is valid for status.example, not other.example"},
		{name: "verify SNI", spec: Spec{Expect: self + "status.example", TLSVerify: true, CAFile: pki.caFile, SNI: "status.example"}, ok: true},
		{name: "host and SNI", spec: Spec{Expect: "vos.example:8443|sni.example", Host: "vos.example:8443", SNI: "sni.example"}, ok: true},
		{name: "SNI from host", spec: Spec{Expect: "status.example:8443|status.example", Host: "status.example:8443", TLSVerify: true, CAFile: pki.caFile}, ok: true},
		{name: "host sent", spec: Spec{Expect: "wrong|", Host: "vos.example"}, reason: `body "vos.example|vos.example", want "wrong|"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.spec.Type = TypeHTTPSGet
			tt.spec.Timeout = testTimeout
			c, err := NewChecker(tt.spec)
			if err != nil {
				t.Fatal(err)
			}
			r := c.Check(context.Background(), addr)
			t.Logf("%q", r.Reason)
			if r.OK != tt.ok || !strings.Contains(r.Reason, tt.reason) {
				t.Errorf("got OK=%v %q, want OK=%v and %q", r.OK, r.Reason, tt.ok, tt.reason)
			}
		})
	}
}

func TestHTTP(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/ok", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, "\t Healthy \r\n") })
	mux.HandleFunc("/404", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(404); fmt.Fprint(w, "Healthy") })
	mux.HandleFunc("/empty", func(w http.ResponseWriter, _ *http.Request) {})
	mux.HandleFunc("/remote", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, netip.MustParseAddrPort(r.RemoteAddr).Addr())
	})
	mux.HandleFunc("/redirect", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/ok", http.StatusFound) })
	srv := httptest.NewServer(mux)
	defer srv.Close()
	addr := netip.MustParseAddrPort(srv.Listener.Addr().String())
	tests := []struct {
		name   string
		spec   Spec
		target netip.AddrPort
		ok     bool
		reason string
	}{
		{name: "expect with spaces", spec: Spec{Path: "/ok", Expect: " Healthy\n"}, ok: true, reason: `status 200, body "Healthy"`},
		{name: "any body", spec: Spec{Path: "/404", ExpectStatus: 404}, ok: true},
		{name: "expect status", spec: Spec{Path: "/404", ExpectStatus: 404, Expect: "Healthy"}, ok: true},
		{name: "not 2xx", spec: Spec{Path: "/404", Expect: "Healthy"}, reason: "status 404, want 2xx"},
		{name: "wrong status", spec: Spec{Path: "/ok", ExpectStatus: 204}, reason: "status 200, want 204"},
		{name: "empty body", spec: Spec{Path: "/empty", Expect: "Healthy"}, reason: `body "", want "Healthy"`},
		{name: "empty body, no expect", spec: Spec{Path: "/empty"}, ok: true},
		{name: "redirect not followed", spec: Spec{Path: "/redirect"}, reason: "status 302, want 2xx"},
		{name: "port from spec", spec: Spec{Path: "/ok", Port: addr.Port()}, target: netip.AddrPortFrom(addr.Addr(), 1), ok: true},
		{name: "source address", spec: Spec{Path: "/remote", Expect: "127.0.0.2", SourceAddr: netip.MustParseAddr("127.0.0.2")}, ok: true},
		// 192.0.2.1 (TEST-NET-1) is not on this machine: binding fails
		// locally and nothing is sent.
		{name: "source address not here", spec: Spec{Path: "/remote", SourceAddr: netip.MustParseAddr("192.0.2.1")}, reason: "cannot use source address"},
		{name: "no port", spec: Spec{Path: "/ok"}, target: netip.AddrPortFrom(addr.Addr(), 0), reason: "no port to check"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.spec.Type = TypeHTTPGet
			tt.spec.Timeout = testTimeout
			c, err := NewChecker(tt.spec)
			if err != nil {
				t.Fatal(err)
			}
			target := addr
			if tt.target.IsValid() {
				target = tt.target
			}
			r := c.Check(context.Background(), target)
			t.Logf("%q", r.Reason)
			if r.OK != tt.ok || !strings.Contains(r.Reason, tt.reason) {
				t.Errorf("got OK=%v %q, want OK=%v and %q", r.OK, r.Reason, tt.ok, tt.reason)
			}
		})
	}
}

func TestNewCheckerErrors(t *testing.T) {
	pki := newPKI(t)
	tests := []struct {
		spec Spec
		err  string // empty: no error
	}{
		{Spec{Type: TypeNone}, ""},
		{Spec{Type: TypeTCPConnect}, ""},
		{Spec{Type: TypeHTTPSGet, TLSVerify: true, CAFile: pki.caFile}, ""},
		{Spec{}, "empty type"},
		{Spec{Type: "udp-ping"}, `unknown type "udp-ping"`},
		{Spec{Type: TypeHTTPGet, Path: "admin/status"}, `path "admin/status" does not start with "/"`},
		{Spec{Type: TypeHTTPGet, ExpectStatus: 2000}, "expect_status 2000 is not an HTTP status"},
		{Spec{Type: TypeHTTPSGet, CAFile: pki.caFile}, "tls_verify is false"},
		{Spec{Type: TypeHTTPSGet, TLSVerify: true, CAFile: "/nonexistent/ca.pem"}, "read ca_file: open /nonexistent/ca.pem"},
		{Spec{Type: TypeHTTPSGet, TLSVerify: true, CAFile: "servers_test.go"}, "holds no PEM certificate"},
	}
	for _, tt := range tests {
		_, err := NewChecker(tt.spec)
		switch {
		case tt.err == "" && err != nil:
			t.Errorf("NewChecker(%+v): %v", tt.spec, err)
		case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
			t.Errorf("NewChecker(%+v) = %v, want error with %q", tt.spec, err, tt.err)
		}
	}
}

func TestNone(t *testing.T) {
	c, err := NewChecker(Spec{Type: TypeNone})
	if err != nil {
		t.Fatal(err)
	}
	// Nothing listens on port 1; none does not look.
	if r := c.Check(context.Background(), netip.MustParseAddrPort("127.0.0.1:1")); !r.OK {
		t.Errorf("none failed: %q", r.Reason)
	}
}

// TestCancel checks that cancelling the context ends a check at once, in
// each phase.
func TestCancel(t *testing.T) {
	pki := newPKI(t)
	tests := []struct {
		typ   string
		tls   bool
		phase string
	}{
		{TypeHTTPGet, false, "waiting for response"},
		{TypeHTTPSGet, false, "tls handshake"},
		{TypeHTTPSGet, true, "waiting for response"},
	}
	for _, tt := range tests {
		t.Run(tt.typ+"/"+tt.phase, func(t *testing.T) {
			var cfg = pki.serverConfig()
			if !tt.tls {
				cfg = nil
			}
			addr := startRaw(t, cfg, func(c, _ net.Conn, done <-chan struct{}) {
				if tt.tls {
					readRequest(c)
				}
				<-done
			})
			c, err := NewChecker(Spec{Type: tt.typ, Timeout: 10 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			time.AfterFunc(200*time.Millisecond, cancel)
			r := c.Check(ctx, addr)
			if r.OK || !strings.Contains(r.Reason, "canceled ("+tt.phase+")") || r.Duration > 200*time.Millisecond+slack {
				t.Errorf("got OK=%v %q in %v, want canceled (%s) soon after 200ms", r.OK, r.Reason, r.Duration, tt.phase)
			}
		})
	}
}

// BenchmarkCheck measures checks per second against a local healthy server
// (the server's work counts too: it runs in this process).
func BenchmarkCheck(b *testing.B) {
	pki := newPKI(b)
	for _, bb := range []struct {
		typ string
		pki *testPKI
	}{
		{TypeHTTPSGet, &pki},
		{TypeHTTPGet, nil},
		{TypeTCPConnect, nil},
	} {
		b.Run(bb.typ, func(b *testing.B) {
			addr := echoServer(b, bb.pki)
			c, err := NewChecker(Spec{Type: bb.typ, Timeout: testTimeout})
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				if r := c.Check(ctx, addr); !r.OK {
					b.Fatal(r.Reason)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "checks/s")
		})
	}
}

// TestTimeoutSendsNothing: a check that gives up on a server that has not
// answered closes the TCP connection without sending anything first. With a
// TLS close_notify before the close, a server whose handler is cancelled by
// it answers in the gap (Go's net/http writes an empty 200 for a handler that
// returns), and a hanging server's check read `body ""` instead of a timeout
// (the e2e health test's hang case flaked that way under load).
func TestTimeoutSendsNothing(t *testing.T) {
	pki := newPKI(t)
	after := make(chan string, 1)
	addr := startRaw(t, pki.serverConfig(), func(c, raw net.Conn, done <-chan struct{}) {
		readRequest(c)
		raw.SetReadDeadline(time.Now().Add(5 * time.Second)) //nolint:errcheck // a test server
		n, err := raw.Read(make([]byte, 512))
		after <- fmt.Sprintf("%d bytes, then %v", n, err)
	})
	c, err := NewChecker(Spec{Type: TypeHTTPSGet, Timeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	r := c.Check(context.Background(), addr)
	if r.OK || !strings.Contains(r.Reason, "timeout after 300ms (waiting for response)") {
		t.Errorf("got OK=%v %q, want a timeout waiting for the response", r.OK, r.Reason)
	}
	if got := <-after; got != "0 bytes, then EOF" {
		t.Errorf("after the request the server read %s; want 0 bytes, then EOF (the check sent something before closing)", got)
	}
}
