// Package health checks whether real servers are able to serve, and turns
// the results of repeated checks into up and down transitions.
//
// A [Checker] runs one check of one target: an HTTP or HTTPS GET whose status
// and body are compared with what is expected, a TCP connect, or nothing at
// all. Each check is bounded as a whole (dial, TLS handshake, request and
// response) by the [Spec]'s Timeout, so a misbehaving server (one that accepts
// and never answers, dribbles a byte a second, sends an endless body or talks
// garbage) fails the check within the timeout and never stalls its caller.
//
// A [Monitor] runs checks for many targets, each in its own goroutine on a
// jittered interval, applies rise and fall, and reports transitions.
package health

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/medialb/medialb/config"
)

// Check types, as written in the configuration's health_check.type.
const (
	TypeHTTPSGet   = "https-get"
	TypeHTTPGet    = "http-get"
	TypeTCPConnect = "tcp-connect"
	TypeNone       = "none"
)

// Defaults used for zero fields of a [Spec]: the configuration's own, which
// package config keeps in one place and applies before a Spec reaches this
// package; they apply here too so that a zero Spec is usable.
const (
	DefaultInterval = config.DefaultCheckInterval
	DefaultTimeout  = config.DefaultCheckTimeout
	DefaultRise     = config.DefaultCheckRise
	DefaultFall     = config.DefaultCheckFall
)

// MaxBodySize is the largest response body an HTTP(S) check reads. A larger
// body fails the check: a status page is small, and a server that sends
// megabytes is not answering the health check.
const MaxBodySize = 64 << 10

// Spec describes one kind of check. Zero fields take defaults (see
// [NewChecker]); an empty Type is invalid.
//
// Spec is comparable; the [Monitor] compares Specs to tell whether a target
// changed across a reload.
type Spec struct {
	// Type is one of TypeHTTPSGet, TypeHTTPGet, TypeTCPConnect, TypeNone.
	Type string
	// Port, if not zero, replaces the port of the target passed to Check.
	// The caller normally resolves it already (the check's port or, when
	// absent, the service's first port) and passes it in the target.
	Port uint16
	// Path is the request path, with an optional query; default "/".
	Path string
	// Expect, if not empty, must equal the response body; white space around
	// either is ignored. Empty: any body.
	Expect string
	// Host is the HTTP Host header; default the target's address and port.
	Host string
	// SNI is the TLS server name sent by https-get; default Host without its
	// port, or none when Host is empty.
	SNI string
	// CAFile is a PEM file of certificates to verify the server's certificate
	// against instead of the system roots; only with TLSVerify.
	CAFile string
	// ExpectStatus is the status code the response must have; 0 means any 2xx.
	ExpectStatus int
	// TLSVerify turns certificate verification on (https-get). It is off by
	// default because real servers usually have self-signed certificates.
	// With TLSVerify, the certificate must be valid for SNI or, without SNI,
	// for the target's IP address.
	TLSVerify bool
	// Interval is the time between the starts of two checks of one target;
	// default DefaultInterval.
	Interval time.Duration
	// Timeout bounds one whole check; default DefaultTimeout.
	Timeout time.Duration
	// Jitter is the largest random delay added to each interval (and the
	// largest delay before a target's first check), so that checks of many
	// servers do not fire in step. Zero means none.
	Jitter time.Duration
	// Rise is the number of consecutive passed checks that bring a down
	// target up; default DefaultRise.
	Rise int
	// Fall is the number of consecutive failed checks that take an up target
	// down; default DefaultFall.
	Fall int
	// SourceAddr, if valid, is the local address checks are sent from.
	SourceAddr netip.Addr
	// App is the RTMP application an rtmp check connects to; default
	// DefaultRTMPApp.
	App string
	// Send is the payload of a udp check's datagram.
	Send string
	// Mode and More are further checks that run with this one (see
	// [Spec.WithMore]); More is empty when there are none.
	Mode, More string
}

// withDefaults returns s with zero fields set to their defaults.
func (s Spec) withDefaults() Spec {
	if s.Interval <= 0 {
		s.Interval = DefaultInterval
	}
	if s.Timeout <= 0 {
		s.Timeout = DefaultTimeout
	}
	if s.Rise <= 0 {
		s.Rise = DefaultRise
	}
	if s.Fall <= 0 {
		s.Fall = DefaultFall
	}
	if s.Jitter < 0 {
		s.Jitter = 0
	}
	if s.Path == "" {
		s.Path = "/"
	}
	return s
}

// Result is the outcome of one check.
type Result struct {
	// OK tells whether the check passed.
	OK bool
	// Reason says what was seen, starting with the check type and target,
	// e.g. `https-get 192.0.2.5:8443/admin/status: body "Unhealthy", want "Healthy"`.
	Reason string
	// Duration is how long the check took.
	Duration time.Duration
	// Local tells that the check could not be made because this node is out
	// of file descriptors, ephemeral ports or buffer space (see LocalError):
	// a fault of the load balancer, not a verdict on the server. OK is false.
	Local bool
	// NoAnswer tells that a failed check got no answer at all (a timeout, the host
	// or network unreachable), as opposed to an answer that says the server is not
	// well (refused, a wrong status or body). A panic threshold suspects the load
	// balancer itself when many checks fail without an answer at once.
	NoAnswer bool
}

// Checker checks one target. Implementations are safe for concurrent use;
// Check returns within the Spec's Timeout (plus scheduling slack) or soon
// after ctx is done, and never panics on what a server sends.
type Checker interface {
	Check(ctx context.Context, target netip.AddrPort) Result
}

// NewChecker returns a Checker for spec, with defaults applied to its zero
// fields. It fails on an unknown type, a path that does not start with "/",
// or a CA file that cannot be used.
func NewChecker(spec Spec) (Checker, error) {
	describePath := spec.Path != "" && spec.Path != "/" // rtsp: DESCRIBE rather than OPTIONS
	spec = spec.withDefaults()
	switch spec.Type {
	case TypeNone:
		return noneChecker{}, nil
	}
	if spec.More != "" {
		return newMultiChecker(spec)
	}
	switch spec.Type {
	case TypeTCPConnect:
		return &tcpChecker{spec: spec}, nil
	case TypeHTTPGet, TypeHTTPSGet:
		return newHTTPChecker(spec)
	case TypeRTMP:
		return &rtmpChecker{spec: spec}, nil
	case TypeRTSP:
		return &rtspChecker{spec: spec, describe: describePath}, nil
	case TypeUDP:
		return &udpChecker{spec: spec}, nil
	case TypeSRT:
		return &srtChecker{spec: spec}, nil
	case "":
		return nil, errors.New("create checker: empty type (want https-get, http-get, tcp-connect, rtmp, rtsp, udp, srt or none)")
	default:
		return nil, fmt.Errorf("create checker: unknown type %q (want https-get, http-get, tcp-connect, rtmp, rtsp, udp, srt or none)", spec.Type)
	}
}

// noneChecker passes every check without contacting the target.
type noneChecker struct{}

func (noneChecker) Check(context.Context, netip.AddrPort) Result {
	return Result{OK: true, Reason: "none: not checked"}
}

// tcpChecker passes when a TCP connection is established.
type tcpChecker struct {
	spec Spec
}

func (c *tcpChecker) Check(ctx context.Context, target netip.AddrPort) Result {
	start := time.Now()
	target = resolvePort(target, c.spec.Port)
	label := c.spec.Type + " " + target.String()
	if target.Port() == 0 {
		return Result{Reason: label + ": no port to check", Duration: time.Since(start)}
	}
	ctx, cancel := context.WithTimeout(ctx, c.spec.Timeout)
	defer cancel()
	conn, err := dialer(c.spec.SourceAddr).DialContext(ctx, "tcp", target.String())
	d := time.Since(start)
	if err != nil {
		return Result{Reason: label + ": " + describe(ctx, err, c.spec.Timeout, "connecting"), Duration: d,
			Local: LocalError(err), NoAnswer: noAnswer(ctx, err)}
	}
	conn.Close()
	return Result{OK: true, Reason: label + ": connected in " + round(d).String(), Duration: d}
}

// resolvePort returns target with port, if not zero.
func resolvePort(target netip.AddrPort, port uint16) netip.AddrPort {
	if port != 0 {
		return netip.AddrPortFrom(target.Addr(), port)
	}
	return target
}

// dialer returns a dialer that connects from src, if valid.
func dialer(src netip.Addr) *net.Dialer {
	d := &net.Dialer{KeepAlive: -1}
	if src.IsValid() {
		d.LocalAddr = &net.TCPAddr{IP: src.AsSlice(), Zone: src.Zone()}
	}
	return d
}

// round rounds d for reasons: milliseconds, or microseconds below one.
func round(d time.Duration) time.Duration {
	if d < time.Millisecond {
		return d.Round(time.Microsecond)
	}
	return d.Round(time.Millisecond)
}

// quote quotes at most 64 bytes of b for a reason, saying how long b was
// when it is cut.
func quote(b []byte) string {
	const max = 64
	if len(b) <= max {
		return fmt.Sprintf("%q", b)
	}
	return fmt.Sprintf("%q... (%d bytes)", b[:max], len(b))
}

// hostOnly returns host without a port.
func hostOnly(host string) string {
	if h, _, err := net.SplitHostPort(host); err == nil {
		return h
	}
	return strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
}
