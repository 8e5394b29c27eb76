package feedback

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/medialb/medialb/tables"
)

// Protocols, as written in the configuration's feedback.protocol.
const (
	ProtoAgent = "agent" // HAProxy agent-check: connect, read one line
	ProtoLBOrg = "lborg" // Loadbalancer.org agent: connect, read the idle percentage
	ProtoHTTP  = "http"  // GET http://ADDR:PORT/PATH, the body is the answer
)

// Target is one agent to poll. It is comparable: [Poller.Set] keeps polling
// a target whose Target is unchanged.
type Target struct {
	Key      tables.Key     // the real server the answers are about
	Addr     netip.AddrPort // the agent's address and port
	Protocol string         // ProtoAgent, ProtoLBOrg or ProtoHTTP
	Path     string         // ProtoHTTP: the URL path
	Interval time.Duration  // between two polls
	Timeout  time.Duration  // bounds one poll
}

// Result is the outcome of one poll: an answer, or Err saying why none came.
type Result struct {
	Answer Answer
	Err    error
	At     time.Time
}

// Poller polls many agents, each in its own goroutine, and passes every
// result to a callback. It is safe for concurrent use.
type Poller struct {
	onResult func(tables.Key, Result)

	mu      sync.Mutex
	running map[Target]context.CancelFunc
	closed  bool
	wg      sync.WaitGroup
}

// NewPoller returns a Poller without targets; onResult is called after every
// poll, from the targets' goroutines, concurrently for different targets.
func NewPoller(onResult func(tables.Key, Result)) *Poller {
	return &Poller{onResult: onResult, running: map[Target]context.CancelFunc{}}
}

// Set makes targets the polled set: new targets start (after a random delay
// of up to their interval, so polls spread out), removed and changed ones
// stop, unchanged ones go on. Set after Close does nothing.
func (p *Poller) Set(targets []Target) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	want := make(map[Target]bool, len(targets))
	for _, t := range targets {
		want[t] = true
	}
	for t, cancel := range p.running {
		if !want[t] {
			cancel()
			delete(p.running, t)
		}
	}
	for t := range want {
		if _, ok := p.running[t]; ok {
			continue
		}
		ctx, cancel := context.WithCancel(context.Background())
		p.running[t] = cancel
		p.wg.Go(func() { p.run(ctx, t) })
	}
}

// Close stops every poll and waits for them to return.
func (p *Poller) Close() {
	p.mu.Lock()
	p.closed = true
	for _, cancel := range p.running {
		cancel()
	}
	p.running = nil
	p.mu.Unlock()
	p.wg.Wait()
}

func (p *Poller) run(ctx context.Context, t Target) {
	timer := time.NewTimer(rand.N(t.Interval/4 + 1))
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		start := time.Now()
		r := Poll(ctx, t)
		if ctx.Err() != nil {
			return
		}
		p.onResult(t.Key, r)
		timer.Reset(max(t.Interval-time.Since(start), 0))
	}
}

// Poll asks t's agent once, within t.Timeout.
func Poll(ctx context.Context, t Target) Result {
	ctx, cancel := context.WithTimeout(ctx, t.Timeout)
	defer cancel()
	var text string
	var err error
	if t.Protocol == ProtoHTTP {
		text, err = pollHTTP(ctx, t)
	} else {
		text, err = pollTCP(ctx, t)
	}
	r := Result{At: time.Now()}
	if err != nil {
		r.Err = fmt.Errorf("%s agent %s: %w", t.Protocol, t.Addr, err)
		return r
	}
	r.Answer, r.Err = Parse(text)
	if r.Err != nil {
		r.Err = fmt.Errorf("%s agent %s: %w", t.Protocol, t.Addr, r.Err)
	}
	return r
}

// pollTCP connects and reads the agent's line: up to a newline, the end of
// the connection or MaxAnswer bytes.
func pollTCP(ctx context.Context, t Target) (string, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", t.Addr.String())
	if err != nil {
		return "", fmt.Errorf("connect: %w", err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	buf := make([]byte, MaxAnswer)
	n := 0
	for n < len(buf) {
		m, err := conn.Read(buf[n:])
		n += m
		if i := indexNL(buf[:n]); i >= 0 {
			return string(buf[:i]), nil
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return "", fmt.Errorf("read answer (%d bytes so far): %w", n, err)
		}
	}
	return string(buf[:n]), nil
}

func indexNL(b []byte) int {
	for i, c := range b {
		if c == '\n' {
			return i
		}
	}
	return -1
}

// pollHTTP GETs the agent's URL; a status other than 200 is an error.
func pollHTTP(ctx context.Context, t Target) (string, error) {
	url := "http://" + t.Addr.String() + t.Path
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", fmt.Errorf("make request %s: %w", url, err)
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return "", fmt.Errorf("GET %s: %w", t.Path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxAnswer))
	if err != nil {
		return "", fmt.Errorf("GET %s: read body: %w", t.Path, err)
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET %s: status %d", t.Path, resp.StatusCode)
	}
	return string(body), nil
}

// httpClient keeps no idle connections: one poll per interval per server.
var httpClient = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
