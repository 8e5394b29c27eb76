package health

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/valyala/fasthttp"
)

// httpChecker checks with an HTTP or HTTPS GET through fasthttp.
//
// Every check uses a new fasthttp.HostClient and a new connection, and asks
// the server to close it (Connection: close), for these reasons:
//
//   - A check must show that the server accepts new connections: a kept-alive
//     connection can still be served by a server whose listener is stuck.
//     HAProxy and ldirectord also open a connection per check.
//   - A connection that saw a timeout, a reset or half a response is never
//     reused, because nothing is reused.
//   - The dial function of a HostClient has no context; a HostClient made
//     for one check can capture the check's context, so cancelling it (for
//     example Monitor.Close) aborts the dial, the TLS handshake and the
//     response read at once.
//
// The cost is one TCP (and TLS) handshake per check and interval, which is
// small next to the interval (see BenchmarkCheck).
//
// The TLS handshake is done by our dial function, bounded by the check's
// context, and the HostClient is told the connection is plain HTTP: when
// fasthttp does the handshake itself, it is bounded by HostClient.WriteTimeout
// only, and with WriteTimeout zero it happens lazily inside the first write,
// when only a write deadline is set, so a server that accepts and never
// answers the ClientHello stalls the check forever.
type httpChecker struct {
	spec   Spec
	expect []byte
	// tls is the TLS configuration for https-get, nil for http-get. Its
	// ServerName is set when it does not depend on the target.
	tls *tls.Config
	// tlsPerTarget tells that ServerName must be set to the target's
	// address for each check (TLSVerify without SNI or Host).
	tlsPerTarget bool
}

func newHTTPChecker(spec Spec) (*httpChecker, error) {
	if !strings.HasPrefix(spec.Path, "/") {
		return nil, fmt.Errorf("create %s checker: path %q does not start with \"/\"", spec.Type, spec.Path)
	}
	if spec.ExpectStatus != 0 && (spec.ExpectStatus < 100 || spec.ExpectStatus > 599) {
		return nil, fmt.Errorf("create %s checker: expect_status %d is not an HTTP status (100..599, or 0 for any 2xx)", spec.Type, spec.ExpectStatus)
	}
	c := &httpChecker{spec: spec, expect: []byte(strings.TrimSpace(spec.Expect))}
	if spec.Type != TypeHTTPSGet {
		return c, nil
	}
	if spec.CAFile != "" && !spec.TLSVerify {
		return nil, fmt.Errorf("create %s checker: ca_file %s is set but tls_verify is false (set tls_verify: true to verify against it)", spec.Type, spec.CAFile)
	}
	c.tls = &tls.Config{
		// Real servers usually have self-signed certificates: verification
		// is off unless asked for.
		InsecureSkipVerify: !spec.TLSVerify, //nolint:gosec // documented default, see Spec.TLSVerify
		ServerName:         spec.SNI,
		// A check is a new connection every interval. Resuming the session (the cache
		// is keyed by server name or address) and a classic key exchange make it cheap:
		// the TLS handshake was two thirds of the checker's CPU, and Go's default
		// post-quantum hybrid a third of that (BENCHMARKS.md, health).
		ClientSessionCache: tls.NewLRUClientSessionCache(1024),
		CurvePreferences:   []tls.CurveID{tls.X25519, tls.CurveP256},
	}
	if c.tls.ServerName == "" && spec.Host != "" {
		c.tls.ServerName = hostOnly(spec.Host)
	}
	c.tlsPerTarget = spec.TLSVerify && c.tls.ServerName == ""
	if spec.CAFile != "" {
		pem, err := os.ReadFile(spec.CAFile)
		if err != nil {
			return nil, fmt.Errorf("create %s checker: read ca_file: %w", spec.Type, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("create %s checker: ca_file %s holds no PEM certificate (is it a PEM file?)", spec.Type, spec.CAFile)
		}
		c.tls.RootCAs = pool
	}
	return c, nil
}

// check holds the state of one running check.
type check struct {
	c      *httpChecker
	ctx    context.Context
	target netip.AddrPort
	phase  string
	conn   net.Conn
	stop   func() bool // stops closing conn when ctx is done
	local  bool        // the dial failed for want of this node's resources (LocalError)
}

// dial connects to the target and does the TLS handshake, both bounded by
// the check's context. It is fasthttp's dial function, called in the
// goroutine that runs the check.
func (k *check) dial(string, time.Duration) (net.Conn, error) {
	k.phase = "connecting"
	raw, err := dialer(k.c.spec.SourceAddr).DialContext(k.ctx, "tcp", k.target.String())
	if err != nil {
		k.local = LocalError(err)
		return nil, err
	}
	conn := raw
	if k.c.tls != nil {
		k.phase = "tls handshake"
		cfg := k.c.tls
		if k.c.tlsPerTarget {
			cfg = cfg.Clone()
			cfg.ServerName = k.target.Addr().WithZone("").String()
		}
		tc := tls.Client(raw, cfg)
		if err := tc.HandshakeContext(k.ctx); err != nil {
			raw.Close()
			return nil, err
		}
		conn = noCloseNotify{tc}
	}
	k.phase = "waiting for response"
	k.conn = conn
	// fasthttp bounds writes and reads with deadlines; closing the
	// connection when the context is done bounds them too, and makes
	// cancellation immediate (see noCloseNotify for how TLS closes).
	k.stop = context.AfterFunc(k.ctx, func() { conn.Close() })
	return conn, nil
}

// noCloseNotify is a TLS connection whose Close closes the TCP connection
// without sending close_notify first. A check closes when it gives up (its
// context, or fasthttp on a read timeout) and after the answer; the alert
// tells a server nothing it needs, and when the check gives up it does harm:
// a server whose handler is cancelled by the alert (Go's net/http then writes
// an empty 200) can answer in the gap before the close, and a hanging
// server's check then read `body ""` instead of a timeout.
type noCloseNotify struct{ *tls.Conn }

// Close closes the underlying TCP connection.
func (c noCloseNotify) Close() error { return c.NetConn().Close() }

func (c *httpChecker) Check(ctx context.Context, target netip.AddrPort) Result {
	start := time.Now()
	target = resolvePort(target, c.spec.Port)
	label := c.spec.Type + " " + target.String() + c.spec.Path
	if target.Port() == 0 {
		return Result{Reason: label + ": no port to check", Duration: time.Since(start)}
	}
	deadline := start.Add(c.spec.Timeout)
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()

	k := &check{c: c, ctx: ctx, target: target, phase: "connecting"}
	hc := &fasthttp.HostClient{
		Addr:        target.String(),
		Name:        "medialb-health",
		DialTimeout: k.dial,
		// One connection, one attempt: fasthttp retries idempotent
		// requests up to 5 times by default, which would hide a flaky
		// server and stretch the check past its timeout.
		MaxConns:                  1,
		MaxIdemponentCallAttempts: 1,
		RetryIfErr:                func(*fasthttp.Request, int, error) (bool, bool) { return false, false },
		ReadTimeout:               c.spec.Timeout,
		WriteTimeout:              c.spec.Timeout,
		MaxResponseBodySize:       MaxBodySize,
		ReadBufferSize:            8 << 10,
		DisablePathNormalizing:    true,
		// Keeps error messages short: without it, a malformed header's
		// error quotes the whole read buffer.
		SecureErrorLogMessage: true,
	}
	req := fasthttp.AcquireRequest()
	defer fasthttp.ReleaseRequest(req)
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseResponse(resp)
	// The scheme is http even for https-get: k.dial returns a connection
	// that is already TLS (see httpChecker).
	req.SetRequestURI("http://" + target.String() + c.spec.Path)
	req.SetConnectionClose()
	if c.spec.Host != "" {
		req.UseHostHeader = true
		req.Header.SetHost(c.spec.Host)
	}

	err := hc.DoDeadline(req, resp, deadline)
	if k.stop != nil {
		k.stop()
	}
	if k.conn != nil {
		k.conn.Close() // fasthttp closed it already (Connection: close); be sure
	}
	d := time.Since(start)
	if err == nil && ctx.Err() != nil {
		// The answer came after the check gave up: a timeout, whatever it says.
		err = ctx.Err()
	}
	if err != nil {
		return Result{Reason: label + ": " + describe(ctx, err, c.spec.Timeout, k.phase), Duration: d,
			Local: k.local || LocalError(err), NoAnswer: noAnswer(ctx, err)}
	}

	status := resp.StatusCode()
	body := bytes.TrimSpace(resp.Body())
	switch {
	case c.spec.ExpectStatus != 0 && status != c.spec.ExpectStatus:
		return Result{Reason: fmt.Sprintf("%s: status %d, want %d%s", label, status, c.spec.ExpectStatus, bodyNote(body)), Duration: d}
	case c.spec.ExpectStatus == 0 && (status < 200 || status > 299):
		return Result{Reason: fmt.Sprintf("%s: status %d, want 2xx%s", label, status, bodyNote(body)), Duration: d}
	}
	if len(c.expect) > 0 && !bytes.Equal(body, c.expect) {
		return Result{Reason: fmt.Sprintf("%s: body %s, want %q", label, quote(body), c.expect), Duration: d}
	}
	return Result{OK: true, Reason: fmt.Sprintf("%s: status %d%s in %s", label, status, bodyNote(body), round(d)), Duration: d}
}

// bodyNote returns ", body ..." for a reason, or nothing for an empty body.
func bodyNote(body []byte) string {
	if len(body) == 0 {
		return ""
	}
	return ", body " + quote(body)
}
