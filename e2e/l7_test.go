package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/medialb/medialb/lab"
	"github.com/medialb/medialb/lab/lbproc"
	"github.com/medialb/medialb/lab/probe"
)

// l7Service is the guide's Harmonic_Management VIP (layer-7 SNAT proxy, 8080 and 8443,
// source-IP persistence), with a fast HTTPS health check so that a failed check takes a
// server down within a second or two.
var l7Service = management().check("{ type: https-get, port: 8443, path: /admin/status, expect: Healthy, interval: 500ms, timeout: 400ms, rise: 2, fall: 2 }")

// l7Config adds an IPv6 twin of the service.
var l7Config = config(l7Service,
	management6().check("{ type: https-get, port: 8443, path: /admin/status, expect: Healthy, interval: 500ms, timeout: 400ms }"))

var (
	l7VIP      = netip.MustParseAddr("192.168.94.100")
	l7VIPMedia = netip.MustParseAddr("192.168.94.110") // the second layer-7 VIP of the reload test
)

func l7Targets(vip netip.Addr) []probe.Target {
	return []probe.Target{
		{Proto: "http", Addr: netip.AddrPortFrom(vip, 8080)},
		{Proto: "https", Addr: netip.AddrPortFrom(vip, 8443)},
	}
}

// l7CheckSNAT asserts what the layer-7 proxy promises, from the client side: every probe
// answered, every real server saw the load balancer's address lb, each client stayed on
// one server over all its connections and both ports, and every server took clients.
// It returns the server of each source.
func l7CheckSNAT(t *testing.T, what string, rs []probe.Result, lb netip.Addr, servers ...string) map[netip.Addr]string {
	t.Helper()
	sum := probe.Summarize(rs)
	if sum.Failed > 0 {
		t.Errorf("%s: %d of %d probes failed: %v", what, sum.Failed, len(rs), sum.Errors)
	}
	if sum.SawOther[lb] != sum.Answered || sum.SawClient != 0 {
		t.Errorf("%s: real servers should see only the load balancer %s (SNAT); saw the client %d times, others %v",
			what, lb, sum.SawClient, sum.SawOther)
	}
	if len(sum.Split) > 0 {
		t.Errorf("%s: %d clients reached different servers on different connections or ports (no persistence): %v", what, len(sum.Split), sum.Split)
	}
	for _, s := range servers {
		if sum.ClientsOf[s] == 0 {
			t.Errorf("%s: %s took no client (clients per server %v)", what, s, sum.ClientsOf)
		}
	}
	t.Logf("%s: %d answers, clients per server %v", what, sum.Answered, sum.ClientsOf)
	of := map[netip.Addr]string{}
	for _, r := range rs {
		if r.Err == nil {
			of[r.Src] = r.Reply.Server
		}
	}
	return of
}

func TestL7SNAT(t *testing.T) {
	e := newEnv(t, "l7", lab.Options{Clients: 100})
	e.start(l7Config)
	e.waitChecked(15 * time.Second)
	ctx := context.Background()

	for _, fam := range []struct {
		name    string
		vip, lb netip.Addr
		srcs    []netip.Addr
	}{
		{"ipv4", l7VIP, e.lab.LBs[0].Addr4, e.lab.Client.Sources4},
		{"ipv6", netip.MustParseAddr("fd94::100"), e.lab.LBs[0].Addr6, e.lab.Client.Sources6},
	} {
		t.Run(fam.name, func(t *testing.T) {
			// Each probe is a new connection: two sweeps give every source four
			// connections over both ports, all of which must reach one server.
			ts := l7Targets(fam.vip)
			first := l7CheckSNAT(t, "first sweep", probe.Sweep(ctx, e.lab, fam.srcs, ts, 32), fam.lb, "HM1", "HM2")
			second := l7CheckSNAT(t, "second sweep", probe.Sweep(ctx, e.lab, fam.srcs, ts, 32), fam.lb, "HM1", "HM2")
			moved := 0
			for src, s := range first {
				if second[src] != s {
					moved++
				}
			}
			if moved > 0 {
				t.Errorf("%d of %d clients changed server between two sweeps (persistence)", moved, len(first))
			}
		})
	}

	t.Run("https-passthrough", func(t *testing.T) {
		// The certificate the client sees through the VIP is the real server's own:
		// the same DER bytes as on a direct connection to that server's address.
		seen := map[string]bool{}
		for _, src := range e.lab.Client.Sources4[:20] {
			viaVIP, server := l7TLSPeer(t, e.lab, src, netip.AddrPortFrom(l7VIP, 8443))
			if server == "" || seen[server] {
				continue
			}
			seen[server] = true
			node, err := e.lab.Server(server)
			if err != nil {
				t.Fatal(err)
			}
			direct, name := l7TLSPeer(t, e.lab, src, netip.AddrPortFrom(node.Addr4, 8443))
			if name != server {
				t.Fatalf("direct connection to %s answered as %q", node.Addr4, name)
			}
			if !bytes.Equal(viaVIP.Raw, direct.Raw) {
				t.Errorf("%s: certificate through the VIP (subject %q, issuer %q) differs from the server's own (subject %q, issuer %q)",
					server, viaVIP.Subject, viaVIP.Issuer, direct.Subject, direct.Issuer)
			}
			if viaVIP.Subject.CommonName != server || !strings.Contains(viaVIP.Subject.String(), "vossim") {
				t.Errorf("%s: certificate subject %q, want the vossim certificate of %s", server, viaVIP.Subject, server)
			}
			t.Logf("%s: through the VIP the client sees subject %q issuer %q, identical to the direct connection", server, viaVIP.Subject, viaVIP.Issuer)
		}
		if len(seen) < 2 {
			t.Errorf("TLS through the VIP reached only %v in 20 clients", seen)
		}
	})
}

// l7TLSPeer opens a TLS connection from src to dst, returns the server's certificate and
// the server name its answer to GET / carries ("" and a test error on failure).
func l7TLSPeer(t *testing.T, l *lab.Lab, src netip.Addr, dst netip.AddrPort) (*x509.Certificate, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := l7Dial(ctx, l, src, dst, true)
	if err != nil {
		t.Errorf("TLS %s from %s: %v", dst, src, err)
		return &x509.Certificate{}, ""
	}
	defer c.Close()
	return c.tls.ConnectionState().PeerCertificates[0], c.server
}

// l7Conn is a kept-alive HTTP(S) connection to a VIP, with the server that answered
// its first request.
type l7Conn struct {
	src    netip.Addr
	dst    netip.AddrPort
	tcp    *net.TCPConn
	tls    *tls.Conn
	rw     io.ReadWriter
	r      *bufio.Reader
	server string
}

// l7Dial connects from src to dst, sends one request and records who answered.
func l7Dial(ctx context.Context, l *lab.Lab, src netip.Addr, dst netip.AddrPort, useTLS bool) (*l7Conn, error) {
	tc, err := l.DialTCP(ctx, src, dst)
	if err != nil {
		return nil, err
	}
	k := &l7Conn{src: src, dst: dst, tcp: tc, rw: tc}
	if useTLS {
		k.tls = tls.Client(tc, &tls.Config{InsecureSkipVerify: true}) // vossim's certificates are self-signed
		dl, _ := ctx.Deadline()
		tc.SetDeadline(dl)
		if err := k.tls.HandshakeContext(ctx); err != nil {
			tc.Close()
			return nil, fmt.Errorf("TLS handshake: %w", err)
		}
		k.rw = k.tls
	}
	k.r = bufio.NewReader(k.rw)
	rep, err := k.get()
	if err != nil {
		tc.Close()
		return nil, err
	}
	k.server = rep.Server
	return k, nil
}

// get sends one request on the kept-alive connection and parses the answer.
func (k *l7Conn) get() (probe.Reply, error) {
	k.tcp.SetDeadline(time.Now().Add(5 * time.Second))
	defer k.tcp.SetDeadline(time.Time{})
	if _, err := io.WriteString(k.rw, "GET /who HTTP/1.1\r\nHost: vip\r\n\r\n"); err != nil {
		return probe.Reply{}, fmt.Errorf("%s from %s: write: %w", k.dst, k.src, err)
	}
	resp, err := http.ReadResponse(k.r, nil)
	if err != nil {
		return probe.Reply{}, fmt.Errorf("%s from %s: read response: %w", k.dst, k.src, err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return probe.Reply{}, fmt.Errorf("%s from %s: read body: %w", k.dst, k.src, err)
	}
	return probe.Parse(strings.TrimSpace(string(body)))
}

// closedWithin reports whether the connection is closed by the other end (EOF or reset)
// within d without the client sending anything; a timeout means it is still open.
func (k *l7Conn) closedWithin(d time.Duration) (bool, error) {
	k.tcp.SetReadDeadline(time.Now().Add(d))
	defer k.tcp.SetReadDeadline(time.Time{})
	var b [1]byte
	_, err := k.tcp.Read(b[:])
	switch {
	case err == nil:
		return false, errors.New("unexpected data from the server")
	case errors.Is(err, os.ErrDeadlineExceeded):
		return false, nil
	case errors.Is(err, io.EOF), errors.Is(err, syscall.ECONNRESET):
		return true, nil
	}
	return true, err
}

func (k *l7Conn) Close() error { return k.tcp.Close() }

// l7DialMany opens one kept-alive connection per source to dst and returns them by server.
func l7DialMany(t *testing.T, l *lab.Lab, srcs []netip.Addr, dst netip.AddrPort, useTLS bool) map[string][]*l7Conn {
	t.Helper()
	out := map[string][]*l7Conn{}
	for _, src := range srcs {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		k, err := l7Dial(ctx, l, src, dst, useTLS)
		cancel()
		if err != nil {
			t.Errorf("kept-alive connection: %v", err)
			continue
		}
		t.Cleanup(func() { k.Close() })
		out[k.server] = append(out[k.server], k)
	}
	return out
}

// l7ServersOf probes every source once (a new connection each) and returns the server
// that answered each.
func l7ServersOf(t *testing.T, l *lab.Lab, srcs []netip.Addr, target probe.Target) map[netip.Addr]string {
	t.Helper()
	out := map[netip.Addr]string{}
	for _, r := range probe.Sweep(context.Background(), l, srcs, []probe.Target{target}, 16) {
		if r.Err != nil {
			t.Errorf("probe %s from %s: %v", target, r.Src, r.Err)
			continue
		}
		out[r.Src] = r.Reply.Server
	}
	return out
}

// l7Action calls a real-server action and fails the test unless it answers 200.
func (e *env) l7Action(t *testing.T, service, server, action string) {
	t.Helper()
	code, body, err := e.proc.API(context.Background(), "POST", "9443",
		"/api/v1/services/"+service+"/real-servers/"+server+"/"+action, "loadbalancer", "loadbalancer")
	if err != nil || code != 200 {
		t.Fatalf("POST %s %s %s: %d %s %v", service, server, action, code, body, err)
	}
}

// l7WaitState waits until the overview shows server of service in state.
func (e *env) l7WaitState(t *testing.T, service, server, state string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last string
	for time.Now().Before(deadline) {
		code, body, err := e.proc.API(context.Background(), "GET", "9443", "/api/v1/overview", "loadbalancer", "loadbalancer")
		if err == nil && code == 200 {
			var ov struct {
				Services []struct {
					Name        string `json:"name"`
					RealServers []struct {
						Name  string `json:"name"`
						State string `json:"state"`
					} `json:"real_servers"`
				} `json:"services"`
			}
			if json.Unmarshal(body, &ov) == nil {
				for _, s := range ov.Services {
					for _, r := range s.RealServers {
						if s.Name == service && r.Name == server {
							last = r.State
						}
					}
				}
				if last == state {
					return
				}
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s/%s not %s within %s (last state %q)", service, server, state, timeout, last)
}

// l7CheckClosed asserts that every connection in closed is closed by the load balancer
// at once and that every one in open still answers, from the same server.
func l7CheckClosed(t *testing.T, what string, closed, open []*l7Conn) {
	t.Helper()
	start := time.Now()
	n := 0
	for _, k := range closed {
		// "At once": generous for a loaded machine, far below any idle timeout.
		ok, err := k.closedWithin(3 * time.Second)
		if !ok {
			t.Errorf("%s: connection from %s to %s (%s) still open after %s (%v)", what, k.src, k.server, k.dst, time.Since(start).Round(time.Millisecond), err)
			continue
		}
		n++
	}
	for _, k := range open {
		rep, err := k.get()
		if err != nil || rep.Server != k.server {
			t.Errorf("%s: established connection from %s to %s (%s) broken: %v %v", what, k.src, k.server, k.dst, rep, err)
		}
	}
	t.Logf("%s: %d connections closed by the load balancer within %s; %d others still answer",
		what, n, time.Since(start).Round(time.Millisecond), len(open))
}

func TestL7DrainHaltDown(t *testing.T) {
	e := newEnv(t, "l7d", lab.Options{Clients: 100, Servers: lab.DefaultServers(2)})
	p := e.start(config(l7Service))
	e.waitChecked(15 * time.Second)
	const svc = "Harmonic_Management"
	srcs := e.lab.Client.Sources4
	http8080 := probe.Target{Proto: "http", Addr: netip.AddrPortFrom(l7VIP, 8080)}
	https8443 := probe.Target{Proto: "https", Addr: netip.AddrPortFrom(l7VIP, 8443)}

	t.Run("drain", func(t *testing.T) {
		// Sources 0-29: established (kept-alive) connections on both ports.
		// Sources 30-59: persistent clients (connected before, then closed).
		// Sources 60-79: new clients, first seen after the drain.
		est := l7DialMany(t, e.lab, srcs[:15], http8080.Addr, false)
		for s, ks := range l7DialMany(t, e.lab, srcs[15:30], https8443.Addr, true) {
			est[s] = append(est[s], ks...)
		}
		before := l7ServersOf(t, e.lab, srcs[30:60], http8080)
		if len(est["HM1"]) == 0 || len(est["HM2"]) == 0 {
			t.Fatalf("want established connections on both servers, have HM1 %d HM2 %d", len(est["HM1"]), len(est["HM2"]))
		}
		e.l7Action(t, svc, "HM1", "drain")
		e.l7WaitState(t, svc, "HM1", "drain", 5*time.Second)

		for _, k := range append(est["HM1"], est["HM2"]...) {
			if rep, err := k.get(); err != nil || rep.Server != k.server {
				t.Errorf("drain: established connection from %s to %s broke: %v %v", k.src, k.server, rep, err)
			}
		}
		persistent := 0
		for _, target := range []probe.Target{http8080, https8443} {
			after := l7ServersOf(t, e.lab, srcs[30:60], target)
			for src, s := range before {
				if after[src] != s {
					t.Errorf("drain: persistent client %s moved from %s to %s on %s", src, s, after[src], target)
				}
				if s == "HM1" {
					persistent++
				}
			}
		}
		if persistent == 0 {
			t.Errorf("no persistent client was on HM1 before the drain: nothing checked")
		}
		for src, s := range l7ServersOf(t, e.lab, srcs[60:80], http8080) {
			if s != "HM2" {
				t.Errorf("drain: new client %s went to %s", src, s)
			}
		}
		t.Logf("drain: %d+%d established connections kept, %d persistent connections to HM1 kept their server, 20 new clients all on HM2",
			len(est["HM1"]), len(est["HM2"]), persistent)
	})

	t.Run("halt", func(t *testing.T) {
		e.l7Action(t, svc, "HM1", "online")
		e.l7WaitState(t, svc, "HM1", "online", 5*time.Second)
		srcs := srcs[80:]
		est := l7DialMany(t, e.lab, srcs, http8080.Addr, false)
		for s, ks := range l7DialMany(t, e.lab, srcs, https8443.Addr, true) {
			est[s] = append(est[s], ks...)
		}
		if len(est["HM1"]) == 0 || len(est["HM2"]) == 0 {
			t.Fatalf("want established connections on both servers, have HM1 %d HM2 %d", len(est["HM1"]), len(est["HM2"]))
		}
		e.l7Action(t, svc, "HM1", "halt")
		l7CheckClosed(t, "halt", est["HM1"], est["HM2"])
		for src, s := range l7ServersOf(t, e.lab, srcs, http8080) {
			if s != "HM2" {
				t.Errorf("halt: client %s still reaches %s", src, s)
			}
		}
	})

	t.Run("down", func(t *testing.T) {
		e.l7Action(t, svc, "HM1", "online")
		e.l7WaitState(t, svc, "HM1", "online", 5*time.Second)
		// Fresh connections from every source: about half land on HM1.
		est := l7DialMany(t, e.lab, srcs[:40], http8080.Addr, false)
		if len(est["HM1"]) == 0 || len(est["HM2"]) == 0 {
			t.Fatalf("want established connections on both servers, have HM1 %d HM2 %d", len(est["HM1"]), len(est["HM2"]))
		}
		mark := p.Mark()
		if err := e.lab.SetStatus("HM1", lab.Unhealthy); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { e.lab.SetStatus("HM1", lab.Healthy) })
		if _, err := p.WaitFor(context.Background(), mark, 10*time.Second, "HM1 down", func(ev lbproc.Event) bool {
			return ev.Msg() == "real server state" && ev.Str("server") == "HM1" && ev.Str("state") == "down"
		}); err != nil {
			t.Fatal(err)
		}
		l7CheckClosed(t, "health check down", est["HM1"], est["HM2"])
	})
}

// l7ReloadConfig has the unchanged Harmonic_Management and a second layer-7 service
// whose port set the test changes (vossim serves TCP lines on 1935 and 554).
func l7ReloadConfig(mediaPorts string) string {
	media := service{name: "Media7", address: "192.168.94.110", ports: mediaPorts, layer: "7", protocol: "tcp",
		healthCheck: "{ type: tcp-connect, port: 8080, interval: 1s, timeout: 500ms }", servers: management().servers}
	return config(l7Service, media)
}

func TestL7Reload(t *testing.T) {
	e := newEnv(t, "l7r", lab.Options{Clients: 10, Servers: lab.DefaultServers(2)})
	p := e.start(l7ReloadConfig("1935"))
	e.waitChecked(15 * time.Second)
	ctx := context.Background()
	src := e.lab.Client.Sources4
	line := func(port uint16) error {
		_, err := probe.One(ctx, e.lab, src[0], probe.Target{Proto: "tcp", Addr: netip.AddrPortFrom(l7VIPMedia, port)})
		return err
	}
	reload := func(ports string) {
		t.Helper()
		e.writeConfig(l7ReloadConfig(ports))
		mark := p.Mark()
		p.Signal(syscall.SIGHUP)
		ev, err := p.WaitFor(ctx, mark, 10*time.Second, "configuration reloaded", func(ev lbproc.Event) bool {
			return ev.Msg() == "configuration reloaded" || ev.Msg() == "reload refused; running configuration kept"
		})
		if err != nil {
			t.Fatal(err)
		}
		if ev.Msg() != "configuration reloaded" {
			t.Fatalf("reload to ports %q: %v", ports, ev)
		}
	}

	if err := line(1935); err != nil {
		t.Fatalf("Media7:1935 before any reload: %v", err)
	}
	if err := line(554); err == nil {
		t.Fatalf("Media7:554 answered before it was configured")
	}
	// Established connections on the unchanged service, on both ports.
	est := l7DialMany(t, e.lab, src[1:5], netip.AddrPortFrom(l7VIP, 8080), false)
	for s, ks := range l7DialMany(t, e.lab, src[5:9], netip.AddrPortFrom(l7VIP, 8443), true) {
		est[s] = append(est[s], ks...)
	}
	var all []*l7Conn
	for _, ks := range est {
		all = append(all, ks...)
	}
	alive := func(what string) {
		t.Helper()
		for _, k := range all {
			if rep, err := k.get(); err != nil || rep.Server != k.server {
				t.Errorf("%s: established connection from %s to %s (%s) broke: %v %v", what, k.src, k.server, k.dst, rep, err)
			}
		}
	}

	reload("1935,554")
	if err := line(554); err != nil {
		t.Errorf("after adding 554 to Media7: %v", err)
	}
	if err := line(1935); err != nil {
		t.Errorf("after adding 554 to Media7, 1935: %v", err)
	}
	alive("after adding a port to another service")

	reload("554")
	err := line(1935)
	if err == nil || !strings.Contains(err.Error(), "refused") {
		t.Errorf("after removing 1935 from Media7, a connection to it: %v, want refused", err)
	}
	if err := line(554); err != nil {
		t.Errorf("after removing 1935 from Media7, 554: %v", err)
	}
	alive("after removing a port of another service")

	// A reload that changes nothing of Harmonic_Management's ports but rewrites the
	// file the same way keeps its listeners too.
	reload("554")
	alive("after an unchanged reload")
	t.Logf("%d established connections on Harmonic_Management (8080 and 8443) survived three reloads", len(all))
}
