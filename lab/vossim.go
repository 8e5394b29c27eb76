package lab

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/medialb/medialb/lab/vos"
)

// Mode is the answer of a simulated server's /admin/status; see package lab/vos.
type Mode = vos.Mode

// The modes of /admin/status (see vos.Mode).
const (
	Healthy   = vos.Healthy
	Unhealthy = vos.Unhealthy
	Hang      = vos.Hang
	Slow      = vos.Slow
	Garbage   = vos.Garbage
)

// VOSControl is where StartVOS makes each vossim listen for control requests: loopback of
// the real server's namespace, out of reach of clients and load balancers.
const VOSControl = "127.0.0.1:9901"

type vosProc struct {
	cmd   *exec.Cmd
	bin   string        // the vossim binary
	media bool          // serving the media ports
	done  chan struct{} // closed when the process has exited
	err   error         // its exit error, set before done is closed
	tail  *TailBuffer
}

// StartVOS starts binPath (the vossim command) in every real-server namespace, named after
// the server, with HTTP on 8080, HTTPS on 8443, media ports 1935, 554 and Lab.MediaPorts,
// and control on VOSControl. It returns once every one answers its control listener (all
// its listeners are open by then), or an error with the failing one's last output. Close
// stops them (SIGTERM, then SIGKILL); they are also killed if this process dies.
func (l *Lab) StartVOS(binPath string) error {
	for _, s := range l.Servers {
		l.mu.Lock()
		_, running := l.vos[s.Name]
		closed := l.closed
		l.mu.Unlock()
		if closed {
			return errors.New("start vossim: lab is closed")
		}
		if running {
			continue
		}
		if err := l.startVOS(s, binPath, true); err != nil {
			return err
		}
	}
	for _, s := range l.Servers {
		if err := l.waitVOS(s); err != nil {
			return err
		}
	}
	return nil
}

// startVOS starts vossim in real server s's namespace, with its media listeners or
// (media false) with none, and does not wait for it.
func (l *Lab) startVOS(s Node, binPath string, media bool) error {
	ports := make([]string, len(l.MediaPorts))
	for i, p := range l.MediaPorts {
		ports[i] = strconv.Itoa(int(p))
	}
	args := []string{"--name", s.Name, "--control", VOSControl,
		"--media-ports", strings.Join(ports, ","), "--log-format", "json"}
	if !media {
		args = append(args, "--no-media")
	}
	cmd := Exec(s.NS, binPath, args...)
	// ip execs vossim in place, so the death signal reaches vossim itself.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	p := &vosProc{cmd: cmd, bin: binPath, media: media, done: make(chan struct{}), tail: &TailBuffer{Max: 4096}}
	logw := &lineLogger{l: l, server: s.Name, tail: p.tail}
	cmd.Stdout, cmd.Stderr = logw, logw
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start vossim %s in %s: %w", binPath, s.NS, err)
	}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	l.mu.Lock()
	l.vos[s.Name] = p
	l.mu.Unlock()
	return nil
}

func (l *Lab) waitVOS(s Node) error {
	l.mu.Lock()
	p := l.vos[s.Name]
	l.mu.Unlock()
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := l.control(s.Name, http.MethodGet, "/status")
		if err == nil {
			return nil
		}
		select {
		case <-p.done:
			return fmt.Errorf("start vossim %s: exited: %s", s.Name, p.tail.String())
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("start vossim %s: not answering on %s after 10s: %w; output: %s", s.Name, VOSControl, err, p.tail.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// SetAgent sets what real server server's load-feedback agent answers (port
// VOSAgentPort, and GET /load on HTTP): "90%", "drain", "up 50%".
func (l *Lab) SetAgent(server, answer string) error {
	_, err := l.control(server, http.MethodPost, "/agent?answer="+url.QueryEscape(answer))
	return err
}

// VOSAgentPort is the port of every vossim's load-feedback agent.
const VOSAgentPort = 3333

// SetStatus switches what real server server's /admin/status answers.
func (l *Lab) SetStatus(server string, mode Mode) error {
	_, err := l.control(server, http.MethodPost, "/status?mode="+string(mode))
	return err
}

// Stats returns the traffic counters of real server server's vossim.
func (l *Lab) Stats(server string) (vos.Stats, error) {
	var st vos.Stats
	b, err := l.control(server, http.MethodGet, "/stats")
	if err != nil {
		return st, err
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return st, fmt.Errorf("decode stats of %s: %w", server, err)
	}
	return st, nil
}

// ResetStats sets real server server's counters back to zero.
func (l *Lab) ResetStats(server string) error {
	_, err := l.control(server, http.MethodPost, "/stats/reset")
	return err
}

// control sends a request to server's vossim control listener from inside its namespace.
func (l *Lab) control(server, method, path string) ([]byte, error) {
	s, err := l.Server(server)
	if err != nil {
		return nil, err
	}
	dst := netip.MustParseAddrPort(VOSControl)
	c := &http.Client{
		Timeout: 5 * time.Second,
		Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				return dialIn(ctx, s.NS, "tcp", netip.AddrPort{}, dst)
			},
			DisableKeepAlives: true,
		},
	}
	req, err := http.NewRequest(method, "http://"+VOSControl+path, nil)
	if err != nil {
		return nil, fmt.Errorf("ask vossim %s: %w", server, err)
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, fmt.Errorf("ask vossim %s %s %s: %w (is it started? StartVOS)", server, method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("read vossim %s answer: %w", server, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("ask vossim %s %s %s: %s: %s", server, method, path, resp.Status, strings.TrimSpace(string(b)))
	}
	return b, nil
}

// stopVOS sends SIGTERM to every vossim, waits up to 3 s, then kills what is left.
func (l *Lab) stopVOS() error {
	l.mu.Lock()
	procs := l.vos
	l.vos = map[string]*vosProc{}
	l.mu.Unlock()
	var errs []error
	for _, p := range procs {
		p.cmd.Process.Signal(syscall.SIGTERM) //nolint:errcheck // may have exited
	}
	timeout := time.After(3 * time.Second)
	for name, p := range procs {
		if err := p.wait(name, timeout); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// wait waits for a vossim sent SIGTERM until timeout fires, then kills it.
func (p *vosProc) wait(name string, timeout <-chan time.Time) error {
	select {
	case <-p.done:
		if p.err != nil {
			return fmt.Errorf("stop vossim %s: %w: %s", name, p.err, p.tail.String())
		}
		return nil
	case <-timeout:
		p.cmd.Process.Kill() //nolint:errcheck // may have exited
		<-p.done
		return fmt.Errorf("stop vossim %s: killed after 3s without exiting on SIGTERM", name)
	}
}

// lineLogger forwards a vossim's output lines to the lab's logger and keeps their tail.
type lineLogger struct {
	l      *Lab
	server string
	tail   *TailBuffer
	mu     sync.Mutex
	part   []byte
}

func (w *lineLogger) Write(b []byte) (int, error) {
	w.tail.Write(b) //nolint:errcheck // never fails
	w.mu.Lock()
	defer w.mu.Unlock()
	w.part = append(w.part, b...)
	for {
		i := bytes.IndexByte(w.part, '\n')
		if i < 0 {
			break
		}
		w.l.log.Debug().Str("vossim", w.server).Msg(string(w.part[:i]))
		w.part = w.part[i+1:]
	}
	return len(b), nil
}

// TailBuffer keeps the last Max bytes written to it: the end of a helper process's
// output, for error messages. It is safe for concurrent use.
type TailBuffer struct {
	Max int

	mu sync.Mutex
	b  []byte
}

// Write appends b, dropping what falls out of the window.
func (t *TailBuffer) Write(b []byte) (int, error) {
	t.mu.Lock()
	t.b = append(t.b, b...)
	if len(t.b) > t.Max {
		t.b = append(t.b[:0], t.b[len(t.b)-t.Max:]...)
	}
	t.mu.Unlock()
	return len(b), nil
}

// String returns the kept bytes, surrounding white space trimmed.
func (t *TailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.TrimSpace(string(t.b))
}
