package vm

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/medialb/medialb/lab"
	"github.com/medialb/medialb/lab/probe"
)

// agentPort is medialb-vmagent's port.
const agentPort = 7000

// client is an HTTP client whose connections are made in the switch namespace.
func (l *Lab) client(timeout time.Duration) *http.Client {
	return &http.Client{Timeout: timeout, Transport: &http.Transport{
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			var c net.Conn
			err := lab.Do(l.NS, func() error {
				var err error
				c, err = (&net.Dialer{Timeout: 5 * time.Second}).DialContext(ctx, network, addr)
				return err
			})
			return c, err
		},
	}}
}

// call sends a request to g's agent; in (if not nil) is sent as JSON, out (if not nil)
// receives the JSON answer (a *[]byte: the answer as it is).
func (g *Guest) call(ctx context.Context, method, path string, in, out any, timeout time.Duration) error {
	var body io.Reader
	if b, ok := in.([]byte); ok {
		body = bytes.NewReader(b)
	} else if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	u := "http://" + netip.AddrPortFrom(g.Addr, agentPort).String() + path
	var resp *http.Response
	// A TCG guest on a busy host sometimes misses a connection attempt (the dial
	// times out after 5 s) or drops a connection (EOF): retry for half a minute.
	// Every agent request may be repeated: /start of a running process with the
	// same argv answers as the first did, a signal twice is a signal, a probe
	// probes again.
	for deadline := time.Now().Add(30 * time.Second); ; {
		req, err := http.NewRequestWithContext(ctx, method, u, body)
		if err != nil {
			return err
		}
		resp, err = g.l.client(timeout).Do(req)
		if err == nil {
			break
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("%s: agent %s %s: %w", g.Name, method, path, err)
		}
		if s, ok := body.(io.Seeker); ok {
			s.Seek(0, io.SeekStart)
		}
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: agent %s %s: %s", g.Name, method, path, strings.TrimSpace(string(b)))
	}
	if raw, ok := out.(*[]byte); ok {
		*raw = b
		return nil
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}

// WaitReady waits until g's agent answers, or QEMU exits, or timeout passes.
func (g *Guest) WaitReady(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		var p struct{}
		err := g.call(ctx, "GET", "/proc?name=-", nil, &p, 2*time.Second)
		if err == nil || strings.Contains(err.Error(), "no process") {
			return nil
		}
		select {
		case <-g.done:
			return fmt.Errorf("%s: QEMU exited during boot; console: %s", g.Name, g.ConsoleTail(20))
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: agent not up after %s: %v; console: %s", g.Name, timeout, err, g.ConsoleTail(20))
		}
	}
}

// ConsoleTail returns the last n lines of g's serial console.
func (g *Guest) ConsoleTail(n int) string {
	b, _ := os.ReadFile(g.Console)
	return lastLines(string(b), n)
}

// Run runs argv in g and returns its combined output and exit code.
func (g *Guest) Run(ctx context.Context, timeout time.Duration, argv ...string) (string, int, error) {
	var r struct {
		Out  string `json:"out"`
		Code int    `json:"code"`
	}
	err := g.call(ctx, "POST", "/run", map[string]any{"argv": argv, "timeout_ms": timeout.Milliseconds()}, &r, timeout+10*time.Second)
	return r.Out, r.Code, err
}

// Start starts argv in g in the background under name (its output: /tmp/NAME.log).
func (g *Guest) Start(ctx context.Context, name string, argv ...string) error {
	return g.call(ctx, "POST", "/start", map[string]any{"name": name, "argv": argv}, nil, 30*time.Second)
}

// Signal sends sig to the process started as name and waits up to wait for it to exit;
// it reports whether it did.
func (g *Guest) Signal(ctx context.Context, name string, sig int, wait time.Duration) (bool, error) {
	var r struct {
		Exited bool `json:"exited"`
	}
	err := g.call(ctx, "POST", "/signal", map[string]any{"name": name, "signal": sig, "wait_ms": wait.Milliseconds()}, &r, wait+30*time.Second)
	return r.Exited, err
}

// ProcState is a started process's state.
type ProcState struct {
	Running bool   `json:"running"`
	Code    int    `json:"code"`
	Log     string `json:"log"`
}

// Proc returns the state and output of the process started as name.
func (g *Guest) Proc(ctx context.Context, name string) (ProcState, error) {
	var p ProcState
	err := g.call(ctx, "GET", "/proc?name="+name, nil, &p, 30*time.Second)
	return p, err
}

// WriteFile writes data to path in g.
func (g *Guest) WriteFile(ctx context.Context, path string, data []byte) error {
	return g.call(ctx, "PUT", "/file?path="+path, data, nil, 30*time.Second)
}

// Probe runs probe.Sweep in g (the client) and returns the results.
func (g *Guest) Probe(ctx context.Context, srcs []netip.Addr, targets []probe.Target, parallel int) ([]probe.Result, error) {
	var rs []struct {
		Src    netip.Addr
		Target probe.Target
		Reply  probe.Reply
		Err    string
	}
	n := len(srcs) * len(targets)
	err := g.call(ctx, "POST", "/probe", map[string]any{"srcs": srcs, "targets": targets, "parallel": parallel}, &rs,
		time.Duration(n/max(parallel, 1)+1)*10*time.Second+time.Minute) // the agent's probe.Timeout
	out := make([]probe.Result, len(rs))
	for i, r := range rs {
		out[i] = probe.Result{Src: r.Src, Target: r.Target, Reply: r.Reply}
		if r.Err != "" {
			out[i].Err = fmt.Errorf("%s", r.Err)
		}
	}
	return out, err
}

// SendFrames sends raw Ethernet frames out of g's eth0 and returns how many were sent.
func (g *Guest) SendFrames(ctx context.Context, frames [][]byte) (int, error) {
	var r struct {
		Sent int `json:"sent"`
	}
	err := g.call(ctx, "POST", "/frames", map[string]any{"ifname": "eth0", "frames": frames}, &r, 2*time.Minute)
	return r.Sent, err
}

// String names the guest.
func (g *Guest) String() string { return g.Name + "(" + g.Addr.String() + ")" }

// HTTP sends a request from the host's side of the lab segment (the switch namespace) to
// url, with basic auth when user is not empty; HTTPS accepts any certificate (medialb's
// API and the simulated servers have self-signed ones).
func (l *Lab) HTTP(ctx context.Context, method, url, user, pass string, body []byte) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	c := l.client(30 * time.Second)
	c.Transport.(*http.Transport).TLSClientConfig = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // lab certificates are self-signed
	resp, err := c.Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("%s %s: %w", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	return resp.StatusCode, b, err
}

// SetChannels sets the channel count of g's interface ifname (ethtool -L IF
// combined n); drivers refuse it while an XDP program is attached.
func (g *Guest) SetChannels(ctx context.Context, ifname string, n int) error {
	return g.call(ctx, "POST", "/channels", map[string]any{"ifname": ifname, "combined": n}, nil, 30*time.Second)
}

// Pin pins every thread of g whose name matches one of patterns (path.Match) to cpus
// and returns the threads it pinned (NAME/TID).
func (g *Guest) Pin(ctx context.Context, patterns []string, cpus ...int) ([]string, error) {
	var r struct {
		Pinned []string `json:"pinned"`
	}
	err := g.call(ctx, "POST", "/affinity", map[string]any{"match": patterns, "cpus": cpus}, &r, 30*time.Second)
	return r.Pinned, err
}

// ReadFile returns the contents of path in g.
func (g *Guest) ReadFile(ctx context.Context, path string) ([]byte, error) {
	var b []byte
	err := g.call(ctx, "GET", "/file?path="+path, nil, &b, 30*time.Second)
	return b, err
}
