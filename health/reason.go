package health

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/medialb/medialb/internal/exhausted"
)

// describe turns the error of a check into a short reason that says what was
// seen: "timeout after 3s (waiting for response)", "connection refused",
// "tls handshake: ...". ctx is the check's context (with the check's
// deadline), timeout the check's timeout and phase what the check was doing.
func describe(ctx context.Context, err error, timeout time.Duration, phase string) string {
	if errors.Is(ctx.Err(), context.Canceled) {
		return "canceled (" + phase + ")"
	}
	if isTimeout(ctx, err) {
		return fmt.Sprintf("timeout after %s (%s)", timeout, phase)
	}
	var (
		rec tls.RecordHeaderError
		ver *tls.CertificateVerificationError
	)
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET):
		return "connection reset by peer (" + phase + ")"
	case errors.Is(err, syscall.EHOSTUNREACH):
		return "host unreachable"
	case errors.Is(err, syscall.ENETUNREACH):
		return "network unreachable"
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		return "cannot use source address: " + err.Error()
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		return fmt.Sprintf("body larger than %d bytes", MaxBodySize)
	case errors.Is(err, fasthttp.ErrConnectionClosed), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "connection closed by server (" + phase + ")"
	case errors.As(err, &rec):
		return fmt.Sprintf("tls handshake: not a TLS server (it sent %q)", rec.RecordHeader[:])
	case errors.As(err, &ver):
		return "tls handshake: " + ver.Err.Error()
	}
	msg := err.Error()
	if rest, ok := strings.CutPrefix(msg, "error when reading response headers: "); ok {
		return "malformed response header: " + cut(rest)
	}
	return phase + ": " + cut(msg)
}

// LocalError tells whether err says that this node, not the server, is out
// of something: file descriptors (EMFILE, ENFILE), ephemeral ports or a
// usable source address (EADDRNOTAVAIL), or buffer space (ENOBUFS). Such a
// check says nothing about the server.
func LocalError(err error) bool { return exhausted.Is(err) }

// noAnswer reports whether a check's error means the server did not answer at all:
// a timeout, or its host or network unreachable (no ARP/ND answer).
func noAnswer(ctx context.Context, err error) bool {
	if errors.Is(ctx.Err(), context.Canceled) {
		return false
	}
	return isTimeout(ctx, err) || errors.Is(err, syscall.EHOSTUNREACH) || errors.Is(err, syscall.ENETUNREACH)
}

// cut shortens an error message for a reason: fasthttp's messages can quote
// kilobytes of what the server sent.
func cut(msg string) string {
	const max = 160
	if len(msg) <= max {
		return msg
	}
	return strings.ToValidUTF8(msg[:max], "") + "..."
}

// isTimeout tells whether err is a timeout or ctx's deadline has passed.
func isTimeout(ctx context.Context, err error) bool {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) ||
		errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, fasthttp.ErrTimeout) ||
		errors.Is(err, fasthttp.ErrTLSHandshakeTimeout) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
