package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net/netip"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/medialb/medialb/lab"
)

// The soak test (`make soak`): mixed traffic through both VIPs for a long time while
// medialb reloads every 30 s, an L7 real server's health flaps and an L4 real server is
// drained and put back; medialb's memory must stay flat, no L4 connection may break,
// and UDP may lose no more than the same stream sent straight to a real server.

// udpStream sends numbered datagrams at rate per second and counts the answers.
type udpStream struct {
	sent, answered atomic.Int64
}

func (u *udpStream) run(ctx context.Context, l *lab.Lab, src netip.Addr, dst netip.AddrPort, rate int) error {
	c, err := l.DialUDP(src, dst)
	if err != nil {
		return err
	}
	go func() {
		<-ctx.Done()
		time.Sleep(time.Second) // stragglers still count
		c.Close()
	}()
	go func() {
		buf := make([]byte, 1500)
		for {
			if _, err := c.Read(buf); err != nil {
				if ctx.Err() != nil {
					return
				}
				continue // e.g. ICMP unreachable during a move: keep reading
			}
			u.answered.Add(1)
		}
	}()
	t := time.NewTicker(time.Second / time.Duration(rate))
	defer t.Stop()
	msg := make([]byte, 200)
	for seq := uint64(0); ; seq++ {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		binary.BigEndian.PutUint64(msg, seq)
		msg[len(msg)-1] = '\n'
		if _, err := c.Write(msg); err == nil {
			u.sent.Add(1)
		}
	}
}

// tcpHold keeps one connection open and echoes a line every 100 ms; a broken
// connection or a change of server is counted.
type tcpHold struct {
	echoes, broken atomic.Int64
	server         string
}

func (h *tcpHold) run(ctx context.Context, l *lab.Lab, src netip.Addr, dst netip.AddrPort) {
	c, err := l.DialTCP(ctx, src, dst)
	if err != nil {
		h.broken.Add(1)
		return
	}
	defer c.Close()
	r := bufio.NewReader(c)
	for ctx.Err() == nil {
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.WriteString(c, "soak\n"); err != nil {
			h.broken.Add(1)
			return
		}
		line, err := r.ReadString('\n')
		if err != nil {
			h.broken.Add(1)
			return
		}
		f := strings.Fields(line)
		if len(f) > 0 {
			if h.server == "" {
				h.server = f[0]
			} else if f[0] != h.server {
				h.broken.Add(1)
				return
			}
		}
		h.echoes.Add(1)
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// rss returns a process's resident set size in KiB.
func rss(pid int) int64 {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(l, "VmRSS:") {
			f := strings.Fields(l)
			v, _ := strconv.ParseInt(f[1], 10, 64)
			return v
		}
	}
	return 0
}

func (d *demo) runSoak(cfg string) error {
	l4, l7, err := d.services()
	if err != nil {
		return err
	}
	const rate, udpClients = 100, 8
	baseDur := min(30*time.Second, d.soak/10)
	step(fmt.Sprintf("soak: baseline, %d UDP streams at %d/s straight to a real server for %s", udpClients, rate, baseDur))
	ht := l4.RealServers[0].Address
	base := d.udpRound(baseDur, netip.AddrPortFrom(ht, d.lab.MediaPorts[0]), rate, udpClients)
	fmt.Printf("   sent %d, answered %d (loss %.3f%%)\n", base.sent.Load(), base.answered.Load(), lossPct(base))

	step(fmt.Sprintf("soak: %s of UDP, long TCP and HTTP through both VIPs; reload every 30s, %s health flaps, %s drained and back",
		d.soak, l7.RealServers[1].Name, l4.RealServers[1].Name))
	ctx, cancel := context.WithTimeout(d.ctx, d.soak)
	defer cancel()
	var wg sync.WaitGroup
	udp := &udpStream{}
	srcs := d.lab.Client.Sources4
	for i := 0; i < udpClients; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			udp.run(ctx, d.lab, srcs[i], netip.AddrPortFrom(l4.Address, d.lab.MediaPorts[0]), rate/udpClients)
		}()
	}
	holds := make([]*tcpHold, 6)
	for i := range holds {
		holds[i] = &tcpHold{}
		wg.Add(1)
		go func() { defer wg.Done(); holds[i].run(ctx, d.lab, srcs[10+i], netip.AddrPortFrom(l4.Address, 1935)) }()
	}
	var httpOK, httpFail atomic.Int64
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ctx.Err() == nil; i++ {
			resp, err := d.lab.HTTPClient(srcs[20+i%40]).Get("http://" + netip.AddrPortFrom(l7.Address, 8080).String() + "/")
			if err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				httpOK.Add(1)
			} else if ctx.Err() == nil {
				httpFail.Add(1)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}()

	pid := d.medialb.Cmd.Process.Pid
	type sample struct {
		at  time.Duration
		rss int64
	}
	var samples []sample
	start := time.Now()
	tick := time.NewTicker(5 * time.Second)
	defer tick.Stop()
	reloads, flaps, drains := 0, 0, 0
	for n := 1; ctx.Err() == nil; n++ {
		select {
		case <-ctx.Done():
		case <-tick.C:
		}
		if ctx.Err() != nil {
			break
		}
		el := time.Since(start)
		runtime.GC()
		samples = append(samples, sample{el, rss(pid)})
		switch {
		case n%6 == 0: // every 30 s
			d.medialb.Signal(syscall.SIGHUP)
			reloads++
		case n%6 == 3: // between reloads: flap the L7 server's health
			mode := lab.Unhealthy
			if flaps%2 == 1 {
				mode = lab.Healthy
			}
			d.lab.SetStatus(l7.RealServers[1].Name, mode)
			flaps++
		case n%12 == 1 && n > 1: // every minute: drain the L4 server, then put it back
			state := "drain"
			if drains%2 == 1 {
				state = "online"
			}
			d.medialb.API(d.ctx, "POST", "9443", "/api/v1/services/"+l4.Name+"/real-servers/"+l4.RealServers[1].Name+"/"+state, demoUser, demoPassword)
			drains++
		}
		if n%12 == 0 {
			fmt.Printf("   %4.0fs rss %d KiB, udp %d/%d answered, http %d ok %d failed\n",
				el.Seconds(), samples[len(samples)-1].rss, udp.answered.Load(), udp.sent.Load(), httpOK.Load(), httpFail.Load())
		}
	}
	wg.Wait()
	d.lab.SetStatus(l7.RealServers[1].Name, lab.Healthy)
	if done, err := d.medialb.Exited(); done {
		return fmt.Errorf("medialb exited during the soak: %v", err)
	}
	var echoes, broken int64
	for _, h := range holds {
		echoes += h.echoes.Load()
		broken += h.broken.Load()
	}
	if len(samples) == 0 {
		return fmt.Errorf("soak of %s too short to sample memory (at least 10s)", d.soak)
	}
	// Memory after warm-up (the persistence tables' pages touched, the heap grown to its
	// working size): the sample at a fifth of the run, at least a minute in.
	warm := 0
	for warm < len(samples)-1 && samples[warm].at < max(time.Minute, d.soak/5) {
		warm++
	}
	first, last, peak := samples[warm].rss, samples[len(samples)-1].rss, int64(0)
	for _, s := range samples {
		peak = max(peak, s.rss)
	}
	res := fmt.Sprintf(`Command: `+"`make soak`"+` (`+"`bin/medialb-demo --soak %s --soak-out BENCHMARKS.md`"+`), %s, nproc %d, shared machine.
Traffic: %d UDP streams at %d datagrams/s in all through VIP 2 (port %d), %d TCP connections echoing every 100 ms
through VIP 2:1935, one HTTP request every 200 ms through VIP 1:8080. Events: %d reloads (SIGHUP, every 30 s),
%d health flaps of %s (layer 7), %d drain/online changes of %s (layer 4).

| figure | value |
| --- | --- |
| UDP baseline, straight to %s for %s | %d sent, %d answered, loss %.3f%% |
| UDP through VIP 2 during the soak | %d sent, %d answered, loss %.3f%% |
| L4 TCP connections broken or moved | %d of %d (%d echoes) |
| HTTP requests through VIP 1 | %d answered, %d failed (a server going down closes its connections) |
| medialb RSS (after warm-up at %s / end / peak) | %d / %d / %d KiB |
`, d.soak, time.Now().UTC().Format(time.RFC3339), runtime.NumCPU(),
		udpClients, rate, d.lab.MediaPorts[0], len(holds), reloads, flaps, l7.RealServers[1].Name, drains, l4.RealServers[1].Name,
		ht, baseDur, base.sent.Load(), base.answered.Load(), lossPct(base),
		udp.sent.Load(), udp.answered.Load(), lossPct(udp), broken, len(holds), echoes,
		httpOK.Load(), httpFail.Load(), samples[warm].at.Round(time.Second), first, last, peak)
	fmt.Println(res)
	var problems []string
	if broken > 0 {
		problems = append(problems, fmt.Sprintf("%d L4 TCP connections broke", broken))
	}
	if lossPct(udp) > lossPct(base)+0.5 {
		problems = append(problems, fmt.Sprintf("UDP loss %.3f%% above the baseline's %.3f%%", lossPct(udp), lossPct(base)))
	}
	if last > first+first/5+8192 {
		problems = append(problems, fmt.Sprintf("RSS grew from %d to %d KiB", first, last))
	}
	verdict := "Result: pass (memory flat, no L4 connection broken, UDP loss within the baseline + 0.5 points)."
	if len(problems) > 0 {
		verdict = "Result: FAIL: " + strings.Join(problems, "; ") + "."
	}
	fmt.Println("   " + verdict)
	if d.soakOut != "" {
		if err := replaceSection(d.soakOut, "soak", "## soak (make soak)\n\n"+res+"\n"+verdict+"\n"); err != nil {
			return err
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("soak failed: %s", strings.Join(problems, "; "))
	}
	return nil
}

func (d *demo) udpRound(dur time.Duration, dst netip.AddrPort, rate, clients int) *udpStream {
	ctx, cancel := context.WithTimeout(d.ctx, dur)
	defer cancel()
	u := &udpStream{}
	var wg sync.WaitGroup
	for i := 0; i < clients; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); u.run(ctx, d.lab, d.lab.Client.Sources4[i], dst, rate/clients) }()
	}
	wg.Wait()
	time.Sleep(1200 * time.Millisecond)
	return u
}

func lossPct(u *udpStream) float64 {
	s := u.sent.Load()
	if s == 0 {
		return 0
	}
	return 100 * float64(s-u.answered.Load()) / float64(s)
}

// replaceSection rewrites the text between <!-- NAME:begin --> and <!-- NAME:end --> in
// path, appending the section when the markers are missing.
func replaceSection(path, name, body string) error {
	data, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	begin, end := "<!-- "+name+":begin -->", "<!-- "+name+":end -->"
	s := string(data)
	block := begin + "\n" + body + end
	i, j := strings.Index(s, begin), strings.Index(s, end)
	if i >= 0 && j > i {
		s = s[:i] + block + s[j+len(end):]
	} else {
		s = strings.TrimRight(s, "\n") + "\n\n" + block + "\n"
	}
	return os.WriteFile(path, []byte(s), 0o644)
}
