package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/medialb/medialb/lab"
	"github.com/medialb/medialb/lab/media"
)

// mediaConfig is the guide's Harmonic_Traffic VIP with HT1 and HT2, checked every second.
var mediaConfig = config(traffic().check(httpsCheck))

// mediaUDPPort is the MPEG-TS port: in the VIP's range, not one of vossim's.
const mediaUDPPort = 50010

// TestMedia sends real media through the layer-4 VIP: ffmpeg publishes a test pattern
// over RTMP to nginx-rtmp and ffprobe pulls it back through the VIP, ffmpeg publishes
// over RTSP (TCP interleaved) to an ffmpeg receiver and as MPEG-TS over UDP to another,
// each from a client host of its own; the real servers must see the clients' own
// addresses (direct routing) and receive every frame and datagram sent.
func TestMedia(t *testing.T) {
	tools, err := media.FindTools()
	if err != nil {
		t.Skip(err)
	}
	e := newEnv(t, "md", lab.Options{Clients: 2, NoIPv6: true, Servers: []lab.ServerSpec{{Name: "HT1", Host: 115}, {Name: "HT2", Host: 116}}})
	l := e.lab
	vip := netip.MustParseAddr("192.168.94.110")
	servers := map[string]*media.Server{}
	for _, s := range l.Servers {
		if err := l.SetVOSMedia(s.Name, false); err != nil {
			t.Fatal(err)
		}
		ms, err := media.StartServer(tools, media.ServerConfig{Name: s.Name, NS: s.NS, Dir: filepath.Join(e.dir, "media-"+s.Name), UDPPorts: []uint16{mediaUDPPort}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ms.Close() })
		servers[s.Name] = ms
	}
	clients, err := media.NewClients(l, 3)
	if err != nil {
		t.Fatal(err)
	}
	e.start(mediaConfig)
	e.waitChecked(15 * time.Second)

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	pat := media.Pattern{Duration: 5 * time.Second}
	rtmpC, rtspC, udpC := clients[0], clients[1], clients[2]
	pubs := []media.Publish{
		{Proto: media.RTMP, NS: rtmpC.NS, VIP: vip, Name: "t1", Pattern: pat},
		// The RTSP receiver takes one publisher at a time and is restarted after each:
		// a refused first connection is retried.
		{Proto: media.RTSP, NS: rtspC.NS, VIP: vip, Name: "t2", Pattern: pat, Reconnect: true},
		{Proto: media.MPEGTS, NS: udpC.NS, VIP: vip, Port: mediaUDPPort, Pattern: pat},
	}
	udpBefore := map[string]media.UDPCounters{}
	for _, ns := range []string{udpC.NS, l.Servers[0].NS, l.Servers[1].NS} {
		if udpBefore[ns], err = media.Counters(ns); err != nil {
			t.Fatal(err)
		}
	}
	sent := make([]media.Published, len(pubs))
	errs := make([]error, len(pubs))
	var pulled media.Probe
	var pullErr error
	var wg sync.WaitGroup
	for i, p := range pubs {
		wg.Go(func() { sent[i], errs[i] = tools.Publish(ctx, p) })
	}
	wg.Go(func() {
		time.Sleep(time.Second) // the stream is up and has had a key frame
		pulled, pullErr = tools.Pull(ctx, rtmpC.NS, pubs[0].URL(), 2*time.Second)
	})
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("%s: %v", pubs[i].Proto, err)
		}
		t.Logf("%-10s from %s: sent %d frames, %d bytes in %d run(s) %v", pubs[i].Proto, clients[i].Addr4, sent[i].Frames, sent[i].Bytes, sent[i].Runs, sent[i].Failures)
	}
	time.Sleep(300 * time.Millisecond) // the last datagrams reach the receiver
	udpAfter := map[string]media.UDPCounters{}
	for ns := range udpBefore {
		if udpAfter[ns], err = media.Counters(ns); err != nil {
			t.Fatal(err)
		}
	}
	got := map[string][]media.Received{} // by protocol
	for name, ms := range servers {
		if err := ms.Close(); err != nil { // receivers finish their recordings
			t.Error(err)
		}
		rs, err := ms.Received(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rs {
			t.Logf("%s received %s %s from %v (players %v): %d sessions, %d video + %d audio frames, %d bytes, %s %dx%d %s, %.2fs",
				name, r.Proto, r.Key, r.Peers, r.Players, r.Sessions, r.VideoFrames, r.AudioFrames, r.Bytes, r.VideoCodec, r.Width, r.Height, r.AudioCodec, r.Duration.Seconds())
			got[string(r.Proto)] = append(got[string(r.Proto)], r)
		}
	}

	t.Run("RTMP", func(t *testing.T) {
		r := one(t, got[string(media.RTMP)])
		if !slices.Equal(r.Peers, []netip.Addr{rtmpC.Addr4}) {
			t.Errorf("nginx on %s saw publisher %v, want the client's own address %s (direct routing)", r.Server, r.Peers, rtmpC.Addr4)
		}
		if !slices.Equal(r.Players, []netip.Addr{rtmpC.Addr4}) {
			t.Errorf("nginx on %s saw players %v, want %s: the pull must reach the server the client published to (persistence)", r.Server, r.Players, rtmpC.Addr4)
		}
		checkReceived(t, r, sent[0], 0)
		if pullErr != nil {
			t.Fatal(pullErr)
		}
		t.Logf("ffprobe pulled %s through %s: %s %dx%d + %s %d Hz, %d video frames over %.2fs", pubs[0].URL(), vip, pulled.VideoCodec, pulled.Width, pulled.Height, pulled.AudioCodec, pulled.SampleRate, pulled.VideoFrames, pulled.Duration.Seconds())
		if pulled.VideoCodec != "h264" || pulled.Width != 320 || pulled.Height != 240 || pulled.AudioCodec != "aac" || pulled.SampleRate != 44100 {
			t.Errorf("pulled %s %dx%d %s %d Hz, want h264 320x240 aac 44100 Hz", pulled.VideoCodec, pulled.Width, pulled.Height, pulled.AudioCodec, pulled.SampleRate)
		}
		// ffprobe reads 2s from the first frame it gets; a slow start on a busy machine
		// leaves less before the publisher stops, so only a lower bound of 1s.
		if pulled.Duration < time.Second || pulled.Duration > 2500*time.Millisecond {
			t.Errorf("pulled %.2fs of video, want 1s to the 2s asked for", pulled.Duration.Seconds())
		}
	})
	t.Run("RTSP", func(t *testing.T) {
		r := one(t, got[string(media.RTSP)])
		if !slices.Equal(r.Peers, []netip.Addr{rtspC.Addr4}) {
			t.Errorf("the RTSP receiver on %s saw %v, want the client's own address %s", r.Server, r.Peers, rtspC.Addr4)
		}
		checkReceived(t, r, sent[1], 0)
	})
	t.Run("MPEG-TS/UDP", func(t *testing.T) {
		out := udpAfter[udpC.NS].Sub(udpBefore[udpC.NS]).OutDatagrams
		for _, s := range l.Servers {
			d := udpAfter[s.NS].Sub(udpBefore[s.NS])
			t.Logf("%s: %d datagrams in (no port %d, errors %d, buffer errors %d); client sent %d", s.Name, d.InDatagrams, d.NoPorts, d.InErrors, d.RcvbufErrors, out)
		}
		r := one(t, got[string(media.MPEGTS)])
		// Every datagram arrives (checked below); ffmpeg's MPEG-TS demuxer may still keep
		// the stream's last frame back when its input ends by a read timeout.
		checkReceived(t, r, sent[2], 1)
		// At most 7 TS packets of 188 bytes per datagram (pkt_size=1316).
		if out == 0 || out*1316 < uint64(sent[2].Bytes) {
			t.Errorf("client %s sent %d datagrams for the %d bytes ffmpeg wrote", udpC.Addr4, out, sent[2].Bytes)
		}
		for _, s := range l.Servers {
			d := udpAfter[s.NS].Sub(udpBefore[s.NS])
			switch {
			case s.Name == r.Server && d.InDatagrams != out:
				t.Errorf("%s received %d datagrams of the %d sent", s.Name, d.InDatagrams, out)
			case s.Name != r.Server && d.InDatagrams+d.NoPorts != 0:
				t.Errorf("%s received %d datagrams: the stream must go to one server only (%s)", s.Name, d.InDatagrams+d.NoPorts, r.Server)
			}
		}
	})
}

// one returns the only stream received, failing the test otherwise.
func one(t *testing.T, rs []media.Received) media.Received {
	t.Helper()
	if len(rs) != 1 {
		t.Fatalf("want the stream received by exactly one real server, got %d: %+v", len(rs), rs)
	}
	return rs[0]
}

// checkReceived compares what a real server recorded with what ffmpeg sent: slack frames
// may be missing.
func checkReceived(t *testing.T, r media.Received, sent media.Published, slack int) {
	t.Helper()
	if r.VideoCodec != "h264" || r.Width != 320 || r.Height != 240 || r.AudioCodec != "aac" {
		t.Errorf("%s recorded %s %dx%d %s, want h264 320x240 aac", r.Server, r.VideoCodec, r.Width, r.Height, r.AudioCodec)
	}
	if r.VideoFrames > sent.Frames || r.VideoFrames < sent.Frames-slack {
		t.Errorf("%s recorded %d video frames of the %d sent (%s)", r.Server, r.VideoFrames, sent.Frames, lossText(sent.Frames, r.VideoFrames))
	}
	if r.Open != 0 {
		t.Errorf("%s: %d sessions still open after the publisher finished", r.Server, r.Open)
	}
}

func lossText(sent, got int) string {
	if sent == 0 {
		return "nothing sent"
	}
	return fmt.Sprintf("loss %.1f%%", 100*float64(sent-got)/float64(sent))
}
