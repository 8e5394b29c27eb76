package main

import (
	"context"
	"fmt"
	"net/netip"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/medialb/medialb/config"
	"github.com/medialb/medialb/lab"
	"github.com/medialb/medialb/lab/media"
)

// mediaUDPPorts are the MPEG-TS ports: in the VIP's range, not the simulator's.
var mediaUDPPorts = []uint16{50010, 50011}

// media sends real media through the layer-4 VIP: nginx-rtmp and ffmpeg receivers on the
// real servers (the simulator keeps only /admin/status there for the time), ffmpeg
// publishers in client hosts of their own, ffprobe pulling a stream back; then one real
// server turns Unhealthy mid-stream, its clients reconnect to the other, and it comes back.
func (d *demo) media() error {
	l4, _, err := d.services()
	if err != nil {
		return err
	}
	step(fmt.Sprintf("4b. real media through VIP 2 %s: RTMP, RTSP and MPEG-TS/UDP from ffmpeg to nginx-rtmp and ffmpeg on the real servers", l4.Address))
	tools, err := media.FindTools()
	if err != nil {
		fmt.Printf("   skipped: %v\n", err)
		return nil
	}
	servers := map[string]*media.Server{}
	defer func() {
		for _, s := range servers {
			s.Close() //nolint:errcheck // closed on the normal path already
		}
	}()
	for _, rs := range l4.RealServers {
		n, err := d.lab.Server(rs.Name)
		if err != nil {
			return err
		}
		if err := d.lab.SetVOSMedia(rs.Name, false); err != nil {
			return err
		}
		ms, err := media.StartServer(tools, media.ServerConfig{Name: rs.Name, NS: n.NS, Dir: filepath.Join(d.tmp, "media-"+rs.Name), UDPPorts: mediaUDPPorts})
		if err != nil {
			return err
		}
		servers[rs.Name] = ms
		fmt.Printf("   %s: nginx-rtmp on :1935 (%s), ffmpeg RTSP receiver on :554, ffmpeg MPEG-TS receivers on udp %v; vossim keeps /admin/status\n",
			rs.Name, media.DefaultRTMPModule, mediaUDPPorts)
	}
	clients, err := media.NewClients(d.lab, 6)
	if err != nil {
		return err
	}
	pat := media.Pattern{Duration: 16 * time.Second}
	var pubs []media.Publish
	for i, c := range clients {
		p := media.Publish{NS: c.NS, VIP: l4.Address, Name: fmt.Sprintf("cam%d", i+1), Pattern: pat, Reconnect: true}
		switch {
		case i < 3:
			p.Proto = media.RTMP
		case i < 4:
			p.Proto = media.RTSP
		default:
			p.Proto = media.MPEGTS
			p.Port = mediaUDPPorts[i-4]
		}
		pubs = append(pubs, p)
	}
	fmt.Printf("   %d clients, each a host of its own on the client segment (ffmpeg cannot pick a TCP source address):\n", len(clients))
	for i, p := range pubs {
		fmt.Printf("     %s %-15s ffmpeg testsrc 320x240@25 H.264 + sine AAC, %s -> %s\n", clients[i].NS, clients[i].Addr4, pat.Duration, p.URL())
	}
	before := map[string]media.UDPCounters{}
	for _, rs := range l4.RealServers {
		n, _ := d.lab.Server(rs.Name)
		before[rs.Name], _ = media.Counters(n.NS)
	}
	for _, c := range clients {
		before[c.NS], _ = media.Counters(c.NS)
	}

	ctx, cancel := context.WithCancel(d.ctx)
	defer cancel()
	sent := make([]media.Published, len(pubs))
	errs := make([]error, len(pubs))
	var wg sync.WaitGroup
	for i, p := range pubs {
		wg.Go(func() { sent[i], errs[i] = tools.Publish(ctx, p) })
	}
	failErr := d.mediaFailover(l4, servers, clients[0], pubs[0], tools)
	if failErr != nil {
		cancel()
	}
	wg.Wait()
	if failErr != nil {
		return failErr
	}
	for i, err := range errs {
		if err != nil {
			return fmt.Errorf("client %s: %w", clients[i].Addr4, err)
		}
	}
	time.Sleep(300 * time.Millisecond)
	after := map[string]media.UDPCounters{}
	for _, rs := range l4.RealServers {
		n, _ := d.lab.Server(rs.Name)
		after[rs.Name], _ = media.Counters(n.NS)
	}
	for _, c := range clients {
		after[c.NS], _ = media.Counters(c.NS)
	}
	var got []media.Received
	for _, rs := range l4.RealServers {
		ms := servers[rs.Name]
		if err := ms.Close(); err != nil { // the receivers finish their recordings
			return err
		}
		r, err := ms.Received(d.ctx)
		if err != nil {
			return err
		}
		got = append(got, r...)
	}
	d.mediaReport(pubs, clients, sent, got, before, after, l4)
	for _, rs := range l4.RealServers {
		if err := d.lab.SetVOSMedia(rs.Name, true); err != nil {
			return err
		}
	}
	fmt.Println("   media servers stopped; the simulator serves the media ports again")
	return nil
}

// mediaFailover pulls the first RTMP stream back with ffprobe, then fails the server
// that holds it, shows its clients moving, and brings it back.
func (d *demo) mediaFailover(l4 *config.Service, servers map[string]*media.Server, c lab.Client, p media.Publish, tools media.Tools) error {
	sleep := func(t time.Duration) error {
		select {
		case <-d.ctx.Done():
			return d.ctx.Err()
		case <-time.After(t):
			return nil
		}
	}
	if err := sleep(1500 * time.Millisecond); err != nil {
		return err
	}
	pr, err := tools.Pull(d.ctx, c.NS, p.URL(), 2*time.Second)
	if err != nil {
		return err
	}
	fmt.Printf("   $ ip netns exec %s ffprobe -read_intervals %%+2 %s\n", c.NS, p.URL())
	fmt.Printf("     %s %dx%d + %s %d Hz: %d video frames over %.2fs, pulled back through the VIP from %s\n",
		pr.VideoCodec, pr.Width, pr.Height, pr.AudioCodec, pr.SampleRate, pr.VideoFrames, pr.Duration.Seconds(), c.Addr4)
	live := d.printLive(servers, "streams on the real servers now (nginx-rtmp /stat, publisher address as nginx saw it)")
	victim := ""
	for _, rs := range l4.RealServers {
		if len(live[rs.Name]) > 0 {
			victim = rs.Name
			break
		}
	}
	if victim == "" {
		return fmt.Errorf("no RTMP stream on any real server")
	}
	hc := l4.HealthCheck
	fmt.Printf("   failure: %s's /admin/status answers Unhealthy mid-stream (its clients: %s)\n", victim, strings.Join(live[victim], ", "))
	mark := d.medialb.Mark()
	t0 := time.Now()
	if err := d.lab.SetStatus(victim, lab.Unhealthy); err != nil {
		return err
	}
	if err := d.medialb.WaitServerState(d.ctx, mark, 5*hc.Interval*time.Duration(hc.Fall), victim, "down"); err != nil {
		return err
	}
	fmt.Printf("   %s marked down %.1fs later; the other server answers its clients' packets with RST, ffmpeg reconnects\n", victim, time.Since(t0).Seconds())
	if err := d.printServiceStates(l4.Name); err != nil {
		return err
	}
	// The moved clients' old sessions stay on the failed server until nginx-rtmp's ping
	// (2 s, answer within 2 s) finds their client gone.
	if err := sleep(4500 * time.Millisecond); err != nil {
		return err
	}
	d.printLive(servers, "streams after the reconnects (the old sessions timed out)")
	mark = d.medialb.Mark()
	t0 = time.Now()
	if err := d.lab.SetStatus(victim, lab.Healthy); err != nil {
		return err
	}
	if err := d.medialb.WaitServerState(d.ctx, mark, 5*hc.Interval*time.Duration(hc.Rise), victim, "online"); err != nil {
		return err
	}
	fmt.Printf("   %s back online %.1fs after it recovered; moved streams stay where they are (persistence)\n", victim, time.Since(t0).Seconds())
	return d.printServiceStates(l4.Name)
}

// printLive prints the RTMP streams each server has now and returns them by server.
func (d *demo) printLive(servers map[string]*media.Server, title string) map[string][]string {
	out := map[string][]string{}
	fmt.Printf("   %s:\n", title)
	var names []string
	for n := range servers {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		live, err := servers[n].Live(d.ctx)
		if err != nil {
			fmt.Printf("     %s: %v\n", n, err)
			continue
		}
		var ss []string
		for _, l := range live {
			if l.Publisher.IsValid() {
				ss = append(ss, fmt.Sprintf("%s from %s", l.Name, l.Publisher))
			}
		}
		sort.Strings(ss)
		out[n] = ss
		fmt.Printf("     %-4s rtmp: %s\n", n, strings.Join(append([]string{}, orNone(ss)...), ", "))
	}
	return out
}

func orNone(ss []string) []string {
	if len(ss) == 0 {
		return []string{"(none)"}
	}
	return ss
}

// printServiceStates prints one service's real servers as the overview shows them.
func (d *demo) printServiceStates(service string) error {
	ov, err := d.overview()
	if err != nil {
		return err
	}
	for _, s := range ov.Services {
		if s.Name != service {
			continue
		}
		var parts []string
		for _, r := range s.RealServers {
			parts = append(parts, fmt.Sprintf("%s %s (health %s)", r.Name, r.State, r.Health))
		}
		fmt.Printf("   overview %s: %s; service %s\n", s.Name, strings.Join(parts, ", "), s.State)
	}
	return nil
}

// mediaReport prints, per client, what it sent and what the real servers received.
func (d *demo) mediaReport(pubs []media.Publish, clients []lab.Client, sent []media.Published, got []media.Received,
	before, after map[string]media.UDPCounters, l4 *config.Service) {
	fmt.Println("   per client: sent = ffmpeg's own count; received = the real server's recordings (ffprobe) and logs")
	fmt.Printf("   %-15s %-10s %-8s %-15s %4s %11s %11s %10s %10s %6s\n", "client", "proto", "server", "server saw", "runs", "frames sent", "frames rcvd", "bytes sent", "bytes rcvd", "loss")
	for i, p := range pubs {
		key := p.Name
		switch p.Proto {
		case media.RTSP:
			key = clients[i].Addr4.String()
		case media.MPEGTS:
			key = fmt.Sprintf("udp/%d", p.Port)
		}
		var srv []string
		var peers []netip.Addr
		var frames int
		var bytes int64
		for _, r := range got {
			if r.Proto != p.Proto || r.Key != key {
				continue
			}
			srv = append(srv, r.Server)
			for _, a := range r.Peers {
				if !slices.Contains(peers, a) {
					peers = append(peers, a)
				}
			}
			frames += r.VideoFrames
			bytes += r.Bytes
		}
		saw := "-"
		if len(peers) > 0 {
			var ps []string
			for _, a := range peers {
				ps = append(ps, a.String())
			}
			saw = strings.Join(ps, ",")
		} else if p.Proto == media.MPEGTS {
			saw = "(udp)"
		}
		loss := "-"
		if sent[i].Frames > 0 {
			loss = fmt.Sprintf("%.1f%%", 100*float64(sent[i].Frames-frames)/float64(sent[i].Frames))
		}
		bs := "n/a"
		if sent[i].Bytes > 0 {
			bs = fmt.Sprint(sent[i].Bytes)
		}
		fmt.Printf("   %-15s %-10s %-8s %-15s %4d %11d %11d %10s %10d %6s\n", clients[i].Addr4, p.Proto, strings.Join(orNone(srv), "+"), saw,
			sent[i].Runs, sent[i].Frames, frames, bs, bytes, loss)
	}
	fmt.Println("   (bytes sent: what ffmpeg wrote to FLV/MPEG-TS, n/a for RTSP; bytes received: A/V payload recorded;")
	fmt.Println("    frames lost around a failover are those in flight when the server went away)")
	var out uint64
	for _, c := range clients {
		out += after[c.NS].Sub(before[c.NS]).OutDatagrams
	}
	var in []string
	for _, rs := range l4.RealServers {
		dd := after[rs.Name].Sub(before[rs.Name])
		in = append(in, fmt.Sprintf("%s %d", rs.Name, dd.InDatagrams))
	}
	fmt.Printf("   UDP datagrams (kernel counters): clients sent %d; real servers received %s\n", out, strings.Join(in, ", "))
}
