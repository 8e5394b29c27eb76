// Package lbproc runs bin/medialb in a load-balancer namespace of the lab, the way a
// user runs it, and gives its callers (the demo, the lab tests) what they need to
// watch it from outside: the JSON log as events, waits on them, and the REST API
// reached from the client namespace.
package lbproc

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/medialb/medialb/lab"
)

// Event is one line of medialb's JSON log.
type Event map[string]any

// Msg returns the event's message.
func (e Event) Msg() string { s, _ := e["message"].(string); return s }

// Str returns field k as a string.
func (e Event) Str(k string) string { return fmt.Sprint(e[k]) }

// Process is a running `medialb run`.
type Process struct {
	Cmd     *exec.Cmd
	LogPath string
	// Echo, if set, is called for every event as it is read.
	Echo func(Event)

	lab    *lab.Lab
	lb     lab.Node
	done   chan struct{}
	err    error
	killed bool

	mu     sync.Mutex
	events []Event
	lines  []string
}

// Start runs `medialb run --config cfg` in load balancer lb's namespace, its log in
// logPath. The process is killed if the caller dies.
func Start(l *lab.Lab, lb lab.Node, bin, cfg, logPath string, echo func(Event)) (*Process, error) {
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	p := &Process{LogPath: logPath, Echo: echo, lab: l, lb: lb, done: make(chan struct{})}
	p.Cmd = lab.Exec(lb.NS, bin, "run", "--config", cfg)
	p.Cmd.Stderr = f
	p.Cmd.Stdout = f
	p.Cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.Cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start medialb: %w", err)
	}
	go func() {
		p.err = p.Cmd.Wait()
		f.Close()
		close(p.done)
	}()
	go p.follow()
	return p, nil
}

// follow reads the log as it grows until the process has exited and the file is read.
func (p *Process) follow() {
	f, err := os.Open(p.LogPath)
	if err != nil {
		return
	}
	defer f.Close()
	r := bufio.NewReader(f)
	var partial string
	exited := false
	for {
		line, err := r.ReadString('\n')
		partial += line
		if err != nil {
			if exited {
				return
			}
			select {
			case <-p.done:
				exited = true // one more pass reads what was written last
			case <-time.After(20 * time.Millisecond):
			}
			continue
		}
		line, partial = partial, ""
		var ev Event
		if json.Unmarshal([]byte(line), &ev) != nil {
			ev = Event{"message": strings.TrimSpace(line), "level": "raw"}
		}
		p.mu.Lock()
		p.events = append(p.events, ev)
		p.lines = append(p.lines, line)
		p.mu.Unlock()
		if p.Echo != nil {
			p.Echo(ev)
		}
	}
}

// Mark returns the number of events so far, to wait for events after it.
func (p *Process) Mark() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.events)
}

// Events returns a copy of the events so far.
func (p *Process) Events() []Event {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]Event(nil), p.events...)
}

// Log returns the log so far.
func (p *Process) Log() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.lines, "")
}

// Exited reports whether the process has exited, and its error.
func (p *Process) Exited() (bool, error) {
	select {
	case <-p.done:
		return true, p.err
	default:
		return false, nil
	}
}

// WaitFor waits until an event at or after index from matches fn.
func (p *Process) WaitFor(ctx context.Context, from int, timeout time.Duration, what string, fn func(Event) bool) (Event, error) {
	deadline := time.Now().Add(timeout)
	for {
		p.mu.Lock()
		for i := from; i < len(p.events); i++ {
			if fn(p.events[i]) {
				ev := p.events[i]
				p.mu.Unlock()
				return ev, nil
			}
		}
		from = len(p.events)
		p.mu.Unlock()
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("no %s within %s; log: %s", what, timeout, p.LogPath)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-p.done:
			time.Sleep(50 * time.Millisecond) // let follow read the last lines
			p.mu.Lock()
			for i := from; i < len(p.events); i++ {
				if fn(p.events[i]) {
					ev := p.events[i]
					p.mu.Unlock()
					return ev, nil
				}
			}
			p.mu.Unlock()
			return nil, fmt.Errorf("medialb exited (%v) while waiting for %s; log: %s", p.err, what, p.LogPath)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// WaitServerState waits for the log to say that real server went to state (a "real
// server state" event at or after index from).
func (p *Process) WaitServerState(ctx context.Context, from int, timeout time.Duration, server, state string) error {
	_, err := p.WaitFor(ctx, from, timeout, server+" "+state, func(e Event) bool {
		return e.Msg() == "real server state" && e.Str("server") == server && e.Str("state") == state
	})
	return err
}

// WaitStarted waits for "medialb running".
func (p *Process) WaitStarted(ctx context.Context, timeout time.Duration) error {
	_, err := p.WaitFor(ctx, 0, timeout, "start", func(e Event) bool { return e.Msg() == "medialb running" })
	return err
}

// Signal sends sig to medialb.
func (p *Process) Signal(sig os.Signal) error { return p.Cmd.Process.Signal(sig) }

// Stop sends SIGTERM and waits up to timeout (then SIGKILL). It returns the exit error
// (none after Kill).
func (p *Process) Stop(timeout time.Duration) error {
	if done, err := p.Exited(); done {
		if p.killed {
			return nil
		}
		return err
	}
	p.Cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(timeout):
		p.Cmd.Process.Kill()
		<-p.done
		return fmt.Errorf("medialb did not stop within %s of SIGTERM; killed", timeout)
	}
	time.Sleep(50 * time.Millisecond)
	return p.err
}

// Kill sends SIGKILL and waits; Stop then reports no error for it.
func (p *Process) Kill() {
	if done, _ := p.Exited(); done {
		return
	}
	p.killed = true
	p.Cmd.Process.Kill()
	<-p.done
}

// API calls medialb's REST API at https://LB:port from the client namespace with basic
// auth and returns the status code and body.
func (p *Process) API(ctx context.Context, method, port, path, user, pass string) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, "https://"+p.lb.Addr4.String()+":"+port+path, nil)
	if err != nil {
		return 0, nil, err
	}
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	resp, err := p.lab.HTTPClient(p.lab.Client.Sources4[0]).Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	return resp.StatusCode, body, err
}
