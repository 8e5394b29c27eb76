package health

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"
)

// Media-protocol check types (see also TypeRTMP).
const (
	// TypeRTSP sends OPTIONS, or DESCRIBE of Spec.Path when one is given,
	// and expects "RTSP/1.0 200".
	TypeRTSP = "rtsp"
	// TypeUDP sends Spec.Send in one datagram and expects a reply; with
	// Spec.Expect, the reply must contain it.
	TypeUDP = "udp"
)

// Modes of a check with further checks (Spec.Mode).
const (
	ModeAll = "all" // every check must pass
	ModeAny = "any" // one passing check is enough
)

type rtspChecker struct {
	spec     Spec
	describe bool // DESCRIBE spec.Path rather than OPTIONS
}

func (c *rtspChecker) Check(ctx context.Context, target netip.AddrPort) Result {
	start := time.Now()
	target = resolvePort(target, c.spec.Port)
	method, url := "OPTIONS", "rtsp://"+target.String()+"/"
	if c.describe {
		method, url = "DESCRIBE", "rtsp://"+target.String()+c.spec.Path
	}
	label := fmt.Sprintf("rtsp %s %s", method, url)
	ctx, conn, done, r := session(ctx, c.spec, "tcp", target, label, start)
	if conn == nil {
		return r
	}
	defer done()
	req := method + " " + url + " RTSP/1.0\r\nCSeq: 1\r\nUser-Agent: medialb health check\r\n"
	if c.describe {
		req += "Accept: application/sdp\r\n"
	}
	if _, err := conn.Write([]byte(req + "\r\n")); err != nil {
		return Result{Reason: label + ": " + describe(ctx, err, c.spec.Timeout, "sending request"), Duration: time.Since(start)}
	}
	line, err := bufio.NewReaderSize(conn, 512).ReadSlice('\n')
	d := time.Since(start)
	if err != nil && len(line) == 0 {
		return Result{Reason: label + ": " + describe(ctx, err, c.spec.Timeout, "waiting for response"), Duration: d}
	}
	status := strings.TrimSpace(string(line))
	if !strings.HasPrefix(status, "RTSP/1.0 200") {
		return Result{Reason: fmt.Sprintf("%s: answered %s, want RTSP/1.0 200", label, quote([]byte(status))), Duration: d}
	}
	return Result{OK: true, Reason: label + ": " + status + " in " + round(d).String(), Duration: d}
}

type udpChecker struct{ spec Spec }

func (c *udpChecker) Check(ctx context.Context, target netip.AddrPort) Result {
	start := time.Now()
	target = resolvePort(target, c.spec.Port)
	label := "udp " + target.String()
	ctx, conn, done, r := session(ctx, c.spec, "udp", target, label, start)
	if conn == nil {
		return r
	}
	defer done()
	if _, err := conn.Write([]byte(c.spec.Send)); err != nil {
		return Result{Reason: label + ": " + describe(ctx, err, c.spec.Timeout, "sending"), Duration: time.Since(start)}
	}
	buf := make([]byte, 2048)
	n, err := conn.Read(buf)
	dur := time.Since(start)
	if err != nil {
		// A closed port answers ICMP port unreachable: "connection refused".
		return Result{Reason: label + ": " + describe(ctx, err, c.spec.Timeout, "waiting for a reply"), Duration: dur}
	}
	if c.spec.Expect != "" && !strings.Contains(string(buf[:n]), c.spec.Expect) {
		return Result{Reason: fmt.Sprintf("%s: reply %s does not contain %q", label, quote(buf[:n]), c.spec.Expect), Duration: dur}
	}
	return Result{OK: true, Reason: fmt.Sprintf("%s: %d-byte reply in %s", label, n, round(dur)), Duration: dur}
}

// session opens a connection (network "tcp" or "udp") to target for a
// check that started at start, bounded by spec.Timeout: reads and writes
// fail at the deadline or when ctx ends. It returns the check's context,
// the connection and what closes both; when the connection fails, conn is
// nil and r says why.
func session(ctx context.Context, spec Spec, network string, target netip.AddrPort, label string, start time.Time) (context.Context, net.Conn, func(), Result) {
	ctx, cancel := context.WithTimeout(ctx, spec.Timeout)
	d := dialer(spec.SourceAddr)
	if network == "udp" && spec.SourceAddr.IsValid() {
		d.LocalAddr = &net.UDPAddr{IP: spec.SourceAddr.AsSlice()}
	}
	conn, err := d.DialContext(ctx, network, target.String())
	if err != nil {
		r := Result{Reason: label + ": " + describe(ctx, err, spec.Timeout, "connecting"), Duration: time.Since(start)}
		cancel()
		return ctx, nil, nil, r
	}
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	return ctx, conn, func() { stop(); conn.Close(); cancel() }, Result{}
}

// WithMore returns s with further checks that run with it, all of which
// (mode ModeAll) or one of which (ModeAny) must pass. The further checks use
// s's timing (interval, timeout, rise, fall); give each its Port. s stays
// comparable: the checks are kept in a canonical text form.
func (s Spec) WithMore(mode string, more ...Spec) Spec {
	s.Mode = mode
	if len(more) == 0 {
		s.More = ""
		return s
	}
	b, _ := json.Marshal(more) // a []Spec always marshals
	s.More = string(b)
	return s
}

// moreChecks decodes s.More.
func (s Spec) moreChecks() ([]Spec, error) {
	if s.More == "" {
		return nil, nil
	}
	var out []Spec
	if err := json.Unmarshal([]byte(s.More), &out); err != nil {
		return nil, fmt.Errorf("decode further checks: %w", err)
	}
	return out, nil
}

// multiChecker runs several checks at once and combines them by mode.
type multiChecker struct {
	mode   string
	checks []Checker
}

func newMultiChecker(spec Spec) (Checker, error) {
	more, err := spec.moreChecks()
	if err != nil {
		return nil, err
	}
	if spec.Mode != ModeAll && spec.Mode != ModeAny {
		return nil, fmt.Errorf("create checker: mode %q (want all or any)", spec.Mode)
	}
	first := spec
	first.More, first.Mode = "", ""
	m := &multiChecker{mode: spec.Mode}
	for _, s := range append([]Spec{first}, more...) {
		s.Interval, s.Timeout, s.Jitter, s.Rise, s.Fall, s.SourceAddr = spec.Interval, spec.Timeout, spec.Jitter, spec.Rise, spec.Fall, spec.SourceAddr
		c, err := NewChecker(s)
		if err != nil {
			return nil, err
		}
		m.checks = append(m.checks, c)
	}
	return m, nil
}

// Check runs every check concurrently. Its reason lists the failed checks'
// reasons (mode all) or, when none passed, all of them (mode any); when it
// passes, the passed checks' reasons.
func (m *multiChecker) Check(ctx context.Context, target netip.AddrPort) Result {
	start := time.Now()
	results := make([]Result, len(m.checks))
	done := make(chan struct{}, len(m.checks))
	for i, c := range m.checks {
		go func() {
			results[i] = c.Check(ctx, target)
			done <- struct{}{}
		}()
	}
	for range m.checks {
		<-done
	}
	var ok, failed []string
	for _, r := range results {
		if r.OK {
			ok = append(ok, r.Reason)
		} else {
			failed = append(failed, r.Reason)
		}
	}
	d := time.Since(start)
	pass := len(failed) == 0 || m.mode == ModeAny && len(ok) > 0
	switch {
	case pass:
		return Result{OK: true, Reason: fmt.Sprintf("%s of %d checks passed: %s", m.mode, len(results), strings.Join(ok, "; ")), Duration: d}
	case m.mode == ModeAny:
		return Result{Reason: fmt.Sprintf("none of %d checks passed: %s", len(results), strings.Join(failed, "; ")), Duration: d}
	}
	return Result{Reason: fmt.Sprintf("%d of %d checks failed: %s", len(failed), len(results), strings.Join(failed, "; ")), Duration: d}
}
