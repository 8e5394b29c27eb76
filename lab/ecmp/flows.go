package ecmp

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/medialb/medialb/lab"
	"github.com/medialb/medialb/lab/probe"
)

// Flows are established client flows through the VIP: per source one TCP
// connection to TCPPort that exchanges a line every Interval, and one UDP
// stream to UDPPort that sends a datagram every Interval. Each flow records
// the real server that answered first and whether another one ever answered.
type Flows struct {
	tcp []*tcpFlow
	udp []*udpFlow

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// Interval is the time between two messages of one flow (50 per second).
const Interval = 20 * time.Millisecond

// BrokenAfter is how long a TCP connection may go without an answer before it
// counts as broken (TCP retransmits well within it).
const BrokenAfter = 10 * time.Second

type tcpFlow struct {
	src     netip.Addr
	first   string
	moved   atomic.Bool
	broken  atomic.Value // error
	answers atomic.Int64
}

type udpFlow struct {
	src         netip.Addr
	first       atomic.Value // string
	moved       atomic.Bool
	sent, recvd atomic.Int64
	last        atomic.Int64 // when the last answer came, unix nanoseconds
	maxGap      atomic.Int64 // the longest time between two answers since ResetGaps
}

// Open starts one TCP and one UDP flow from each source and waits for every
// flow's first answer.
func Open(ctx context.Context, l *lab.Lab, srcs []netip.Addr) (*Flows, error) {
	ctx, cancel := context.WithCancel(ctx)
	f := &Flows{cancel: cancel}
	for _, s := range srcs {
		c, err := l.DialTCP(ctx, s, netip.AddrPortFrom(VIP, TCPPort))
		if err != nil {
			f.Close()
			return nil, err
		}
		tf := &tcpFlow{src: s}
		r := bufio.NewReader(c)
		if tf.first, err = exchange(c, r, "open"); err != nil {
			c.Close()
			f.Close()
			return nil, fmt.Errorf("tcp from %s: %w", s, err)
		}
		f.tcp = append(f.tcp, tf)
		f.wg.Add(1)
		go func() { defer f.wg.Done(); defer c.Close(); tf.run(ctx, c, r) }()

		u, err := l.DialUDP(s, netip.AddrPortFrom(VIP, UDPPort))
		if err != nil {
			f.Close()
			return nil, err
		}
		uf := &udpFlow{src: s}
		f.udp = append(f.udp, uf)
		f.wg.Add(2)
		go func() { defer f.wg.Done(); uf.send(ctx, u) }()
		go func() { defer f.wg.Done(); uf.receive(u) }()
		go func() { <-ctx.Done(); u.Close() }()
	}
	deadline := time.Now().Add(5 * time.Second)
	for _, uf := range f.udp {
		for uf.recvd.Load() == 0 {
			if time.Now().After(deadline) {
				f.Close()
				return nil, fmt.Errorf("udp from %s: no answer within 5s", uf.src)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	return f, nil
}

// exchange writes one line and reads the answer, returning the server's name.
func exchange(c net.Conn, r *bufio.Reader, msg string) (string, error) {
	c.SetDeadline(time.Now().Add(BrokenAfter))
	if _, err := c.Write([]byte(msg + "\n")); err != nil {
		return "", err
	}
	line, err := r.ReadString('\n')
	if err != nil {
		return "", err
	}
	rep, err := probe.Parse(line)
	return rep.Server, err
}

func (tf *tcpFlow) run(ctx context.Context, c net.Conn, r *bufio.Reader) {
	for i := 0; ctx.Err() == nil; i++ {
		srv, err := exchange(c, r, strconv.Itoa(i))
		if err != nil {
			if ctx.Err() == nil {
				tf.broken.Store(err)
			}
			return
		}
		tf.answers.Add(1)
		if srv != tf.first {
			tf.moved.Store(true)
		}
		select {
		case <-ctx.Done():
		case <-time.After(Interval):
		}
	}
}

func (uf *udpFlow) send(ctx context.Context, u *net.UDPConn) {
	t := time.NewTicker(Interval)
	defer t.Stop()
	for i := 0; ; i++ {
		if _, err := u.Write([]byte(strconv.Itoa(i) + "\n")); err == nil {
			uf.sent.Add(1)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (uf *udpFlow) receive(u *net.UDPConn) {
	buf := make([]byte, 1500)
	for {
		n, err := u.Read(buf)
		if err != nil {
			if ne, ok := err.(net.Error); ok && !ne.Timeout() || !ok {
				return
			}
			continue
		}
		rep, err := probe.Parse(string(buf[:n]))
		if err != nil {
			continue
		}
		uf.recvd.Add(1)
		now := time.Now().UnixNano()
		if prev := uf.last.Swap(now); prev != 0 && now-prev > uf.maxGap.Load() {
			uf.maxGap.Store(now - prev)
		}
		if first, ok := uf.first.Load().(string); !ok {
			uf.first.Store(rep.Server)
		} else if first != rep.Server {
			uf.moved.Store(true)
		}
	}
}

// Counts are the flows' outcomes so far.
type Counts struct {
	TCP, TCPBroken, TCPMoved int   // connections; broken (no answer within BrokenAfter, or reset); answered by another server
	UDP, UDPMoved            int   // streams; answered by another server
	UDPSent, UDPLost         int64 // datagrams sent and not answered
	// UDPGap is the longest silence of one stream (time between two answers)
	// since ResetGaps: a stream's outage, unaffected by answers that only come late.
	UDPGap time.Duration
}

// Counts returns the outcomes so far; UDP datagrams still in flight count as
// lost, so take it after Settle.
func (f *Flows) Counts() Counts {
	var c Counts
	for _, tf := range f.tcp {
		c.TCP++
		if tf.broken.Load() != nil {
			c.TCPBroken++
		}
		if tf.moved.Load() {
			c.TCPMoved++
		}
	}
	for _, uf := range f.udp {
		c.UDP++
		if uf.moved.Load() {
			c.UDPMoved++
		}
		c.UDPGap = max(c.UDPGap, time.Duration(uf.maxGap.Load()))
		s, r := uf.sent.Load(), uf.recvd.Load()
		c.UDPSent += s
		c.UDPLost += max(s-r, 0)
	}
	return c
}

// ResetGaps starts a new window for Counts.UDPGap.
func (f *Flows) ResetGaps() {
	for _, uf := range f.udp {
		uf.maxGap.Store(0)
	}
}

// Broken returns the first broken TCP flow's error, nil if none.
func (f *Flows) Broken() error {
	for _, tf := range f.tcp {
		if err, ok := tf.broken.Load().(error); ok {
			return fmt.Errorf("tcp from %s: %w", tf.src, err)
		}
	}
	return nil
}

// Since returns what happened since an earlier Counts (before): the same
// connections and streams; those broken, moved, and the datagrams sent and
// lost in between.
func (c Counts) Since(before Counts) Counts {
	c.TCPBroken -= before.TCPBroken
	c.TCPMoved -= before.TCPMoved
	c.UDPMoved -= before.UDPMoved
	c.UDPSent -= before.UDPSent
	c.UDPLost -= before.UDPLost
	return c
}

// Settle waits for the answers to the datagrams in flight (two intervals and a margin).
func Settle() { time.Sleep(4*Interval + 50*time.Millisecond) }

// Close stops the flows.
func (f *Flows) Close() {
	f.cancel()
	f.wg.Wait()
}
