// Package probe sends one request per flow through a VIP of the namespace lab (or, with
// lab.Local, of the Vagrant lab's VMs) and reads which real server answered and which client
// address it saw. The simulated VOS
// servers (lab/vos) answer every TCP line, UDP datagram and HTTP(S) request with
// "server=NAME client=IP:PORT". The demo and the lab tests use it to see, from the
// client's side, what the load balancer did.
package probe

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"
)

// Dialer opens the probes' connections from a source address: *lab.Lab from the namespace
// lab's client, lab.Local from the machine the program runs on.
type Dialer interface {
	DialTCP(ctx context.Context, src netip.Addr, dst netip.AddrPort) (*net.TCPConn, error)
	DialUDP(src netip.Addr, dst netip.AddrPort) (*net.UDPConn, error)
	HTTPClient(src netip.Addr) *http.Client
}

// Reply is what a simulated server answered.
type Reply struct {
	Server string         // the real server's name
	Client netip.AddrPort // the peer address the server saw
}

// Parse reads "server=NAME client=IP:PORT".
func Parse(line string) (Reply, error) {
	var r Reply
	for _, f := range strings.Fields(line) {
		k, v, _ := strings.Cut(f, "=")
		switch k {
		case "server":
			r.Server = v
		case "client":
			ap, err := netip.ParseAddrPort(v)
			if err != nil {
				return r, fmt.Errorf("parse answer %q: %w", line, err)
			}
			r.Client = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
		}
	}
	if r.Server == "" || !r.Client.IsValid() {
		return r, fmt.Errorf("parse answer %q: not a simulated server's answer", line)
	}
	return r, nil
}

// Target is one flow to probe: a protocol ("tcp", "udp", "http", "https") and a VIP
// address and port.
type Target struct {
	Proto string
	Addr  netip.AddrPort
}

func (t Target) String() string { return t.Proto + "/" + t.Addr.String() }

// Timeout bounds one probe. The VM lab's agent raises it: TCG guests on a busy host
// are slow.
var Timeout = 3 * time.Second

// One probes one target from src.
func One(ctx context.Context, l Dialer, src netip.Addr, t Target) (Reply, error) {
	ctx, cancel := context.WithTimeout(ctx, Timeout)
	defer cancel()
	switch t.Proto {
	case "tcp":
		c, err := l.DialTCP(ctx, src, t.Addr)
		if err != nil {
			return Reply{}, err
		}
		defer c.Close()
		dl, _ := ctx.Deadline()
		c.SetDeadline(dl)
		if _, err := io.WriteString(c, "hello from "+src.String()+"\n"); err != nil {
			return Reply{}, fmt.Errorf("tcp %s: write: %w", t.Addr, err)
		}
		line, err := bufio.NewReader(c).ReadString('\n')
		if err != nil {
			return Reply{}, fmt.Errorf("tcp %s: read: %w", t.Addr, err)
		}
		return Parse(line)
	case "udp":
		c, err := l.DialUDP(src, t.Addr)
		if err != nil {
			return Reply{}, err
		}
		defer c.Close()
		buf := make([]byte, 1500)
		// UDP may lose a datagram; try three times within the timeout.
		for try := 0; try < 3; try++ {
			c.SetDeadline(time.Now().Add(Timeout / 3))
			if _, err := c.Write([]byte("hello from " + src.String() + "\n")); err != nil {
				return Reply{}, fmt.Errorf("udp %s: write: %w", t.Addr, err)
			}
			n, err := c.Read(buf)
			if err == nil {
				return Parse(string(buf[:n]))
			}
		}
		return Reply{}, fmt.Errorf("udp %s: no answer to 3 datagrams", t.Addr)
	case "http", "https":
		resp, err := l.HTTPClient(src).Get(t.Proto + "://" + t.Addr.String() + "/")
		if err != nil {
			return Reply{}, err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
		if err != nil {
			return Reply{}, fmt.Errorf("%s %s: read: %w", t.Proto, t.Addr, err)
		}
		return Parse(string(body))
	}
	return Reply{}, fmt.Errorf("probe: unknown protocol %q", t.Proto)
}

// Result is one probe's outcome.
type Result struct {
	Src    netip.Addr
	Target Target
	Reply  Reply
	Err    error
}

// Sweep probes every target from every source, parallel probes at a time, and returns
// the results in source-major order.
func Sweep(ctx context.Context, l Dialer, srcs []netip.Addr, targets []Target, parallel int) []Result {
	out := make([]Result, len(srcs)*len(targets))
	sem := make(chan struct{}, max(parallel, 1))
	var wg sync.WaitGroup
	for i, s := range srcs {
		for j, t := range targets {
			k := i*len(targets) + j
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer func() { <-sem; wg.Done() }()
				r, err := One(ctx, l, s, t)
				out[k] = Result{Src: s, Target: t, Reply: r, Err: err}
			}()
		}
	}
	wg.Wait()
	return out
}

// Summary condenses a sweep.
type Summary struct {
	Answered, Failed int
	PerServer        map[string]int      // answers per real server
	ClientsOf        map[string]int      // distinct sources per real server
	Sticky           int                 // sources answered by one server on every target
	Split            []netip.Addr        // sources answered by more than one server
	SawClient        int                 // answers whose seen client address is the source
	SawOther         map[netip.Addr]int  // seen client addresses other than the source
	Errors           map[string][]string // error texts per target, a few each
}

// Summarize counts what a sweep saw.
func Summarize(rs []Result) Summary {
	s := Summary{PerServer: map[string]int{}, ClientsOf: map[string]int{}, SawOther: map[netip.Addr]int{}, Errors: map[string][]string{}}
	bySrc := map[netip.Addr]map[string]bool{}
	for _, r := range rs {
		if r.Err != nil {
			s.Failed++
			k := r.Target.String()
			if len(s.Errors[k]) < 3 {
				s.Errors[k] = append(s.Errors[k], r.Err.Error())
			}
			continue
		}
		s.Answered++
		s.PerServer[r.Reply.Server]++
		if bySrc[r.Src] == nil {
			bySrc[r.Src] = map[string]bool{}
		}
		bySrc[r.Src][r.Reply.Server] = true
		if r.Reply.Client.Addr() == r.Src {
			s.SawClient++
		} else {
			s.SawOther[r.Reply.Client.Addr()]++
		}
	}
	for src, servers := range bySrc {
		if len(servers) == 1 {
			s.Sticky++
			for name := range servers {
				s.ClientsOf[name]++
			}
		} else {
			s.Split = append(s.Split, src)
		}
	}
	return s
}
