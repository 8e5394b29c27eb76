package perf

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"time"
)

// echoPort is the UDP port the real servers' echo listens on, in the VIP's media range.
const echoPort = 50000

// startEcho listens on every real server, on the VIP and on the server's own address,
// and answers each datagram with "server=NAME client=IP:PORT\n" (what vossim answers)
// followed by the datagram itself (so that a late answer is not taken for the next
// one), from the address it was sent to. The returned func stops it.
func startEcho(t *topo) (func(), error) {
	var conns []*net.UDPConn
	stop := func() {
		for _, c := range conns {
			c.Close()
		}
	}
	for i, n := range t.rs {
		name := fmt.Sprintf("HT%d", i+1)
		for _, a := range []netip.Addr{vipAddr, rsAddrs[i]} {
			var c *net.UDPConn
			err := inNS(n.ns, func() (err error) {
				c, err = net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(a, echoPort)))
				return err
			})
			if err != nil {
				stop()
				return nil, fmt.Errorf("listen for ping-pongs on %s in %s: %w", a, n.ns, err)
			}
			conns = append(conns, c)
			go func() {
				buf := make([]byte, 2048)
				reply := make([]byte, 0, 4096)
				for {
					n, from, err := c.ReadFromUDPAddrPort(buf)
					if err != nil {
						return
					}
					reply = fmt.Appendf(reply[:0], "server=%s client=%s\n", name, from)
					reply = append(reply, buf[:n]...)
					c.WriteToUDPAddrPort(reply, from) //nolint:errcheck // a lost reply is a lost ping
				}
			}()
		}
	}
	return stop, nil
}

// ping sends n ping-pongs one at a time (a pause of gap between them: a low rate) from
// the client to dst and returns their round-trip times.
func ping(ctx context.Context, t *topo, dst netip.Addr, n int, gap time.Duration) (Latency, error) {
	var c *net.UDPConn
	err := inNS(t.client.ns, func() (err error) {
		c, err = net.DialUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(clientAddr, 0)),
			net.UDPAddrFromAddrPort(netip.AddrPortFrom(dst, echoPort)))
		return err
	})
	if err != nil {
		return Latency{}, fmt.Errorf("open ping-pong socket: %w", err)
	}
	defer c.Close()
	buf := make([]byte, 4096)
	var rtts []time.Duration
	l := Latency{}
	// one sends ping seq and waits for its own answer (the answer ends with the ping),
	// skipping late answers to earlier pings; ok is false after a timeout.
	one := func(seq int) (rtt time.Duration, ok bool, err error) {
		msg := fmt.Appendf(nil, "medialb-perf ping %d", seq)
		start := time.Now()
		c.SetDeadline(start.Add(200 * time.Millisecond))
		if _, err := c.Write(msg); err != nil {
			return 0, false, fmt.Errorf("send ping-pong to %s: %w", dst, err)
		}
		for {
			m, err := c.Read(buf)
			if err != nil {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					return 0, false, nil
				}
				return 0, false, fmt.Errorf("receive ping-pong from %s: %w", dst, err)
			}
			if bytes.HasSuffix(buf[:m], msg) && bytes.HasPrefix(buf[:m], []byte("server=")) {
				return time.Since(start), true, nil
			}
		}
	}
	// Warm-up: ARP, the forwarder's persistence entry, caches.
	for i := 0; i < n/10+5; i++ {
		if _, _, err := one(-1 - i); err != nil {
			return l, err
		}
	}
	for i := 0; i < n && ctx.Err() == nil; i++ {
		rtt, ok, err := one(i)
		if err != nil {
			return l, err
		}
		l.Sent++
		if !ok {
			l.Lost++
			continue
		}
		rtts = append(rtts, rtt)
		time.Sleep(gap)
	}
	if len(rtts) == 0 {
		return l, fmt.Errorf("ping-pong to %s: no answer in %d tries", dst, l.Sent)
	}
	slices.Sort(rtts)
	l.P50 = rtts[len(rtts)/2]
	l.P99 = rtts[min(len(rtts)-1, len(rtts)*99/100)]
	l.Max = rtts[len(rtts)-1]
	return l, nil
}

// measureLatency measures ping-pongs directly to the first real server and through the
// VIP with each forwarder attached (queue threads on cpus).
func measureLatency(ctx context.Context, t *topo, cfg Config, cpus []int) ([]Latency, error) {
	stop, err := startEcho(t)
	if err != nil {
		return nil, err
	}
	defer stop()
	const gap = 200 * time.Microsecond
	var out []Latency
	l, err := ping(ctx, t, rsAddrs[0], cfg.LatencyPings, gap)
	if err != nil {
		return out, err
	}
	l.Path = "direct"
	out = append(out, l)
	for _, name := range cfg.Forwarders {
		f, err := startForwarder(t, name, cpus, cfg)
		if err != nil {
			return out, err
		}
		l, err := ping(ctx, t, vipAddr, cfg.LatencyPings, gap)
		l.Path = name
		if f0 := f.forwarded(); err == nil && f0 == 0 {
			err = fmt.Errorf("ping-pong through %s: the forwarder forwarded nothing (answered by the load balancer?)", name)
		}
		err = errors.Join(err, f.close())
		if err != nil {
			return out, err
		}
		out = append(out, l)
	}
	return out, nil
}
