package media

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"time"

	"github.com/medialb/medialb/lab"
)

// NewClients adds n client hosts to the lab (lab.AddClient) for publishers, named "m1",
// "m2", … (the first free numbers) with one address each: the lab client's last source
// address plus the host's number (192.168.95.101 for m1 in the default lab). IPv4 unless
// the lab has none.
func NewClients(l *lab.Lab, n int) ([]lab.Client, error) {
	base := l.Client.Sources4
	if len(base) == 0 {
		base = l.Client.Sources6
	}
	if len(base) == 0 {
		return nil, errors.New("add media clients: the lab has no client source address")
	}
	last := base[len(base)-1]
	nss := l.Namespaces()
	var out []lab.Client
	for i := 1; len(out) < n; i++ {
		name := "m" + strconv.Itoa(i)
		if slices.Contains(nss, l.Prefix+name) {
			continue
		}
		a := last
		for range i {
			a = a.Next()
		}
		c, err := l.AddClient(name, a)
		if err != nil {
			return out, fmt.Errorf("add media client: %w", err)
		}
		out = append(out, c)
	}
	return out, nil
}

// Publish is one ffmpeg publisher.
type Publish struct {
	Proto Proto
	NS    string     // the client namespace it runs in (its address is the source)
	VIP   netip.Addr // where it publishes
	// Port defaults to 1935 for RTMP and 554 for RTSP; MPEG-TS needs one (and a receiver
	// on it: ServerConfig.UDPPorts).
	Port    uint16
	Name    string // stream name ([a-z0-9]+): RTMP rtmp://VIP/live/NAME, RTSP rtsp://VIP/live/NAME
	Pattern Pattern
	// Reconnect runs ffmpeg again after a failure (a connection refused or reset: the
	// server went away or the load balancer moved the client) until the pattern's
	// duration has been sent, or twice that time and 5 seconds have passed.
	Reconnect bool
}

var streamNameRE = regexp.MustCompile(`^[a-z0-9]{1,32}$`)

// URL returns where p publishes.
func (p Publish) URL() string {
	port := p.Port
	switch {
	case port != 0:
	case p.Proto == RTMP:
		port = RTMPPort
	case p.Proto == RTSP:
		port = RTSPPort
	}
	dst := netip.AddrPortFrom(p.VIP, port).String()
	switch p.Proto {
	case RTMP:
		return "rtmp://" + dst + "/live/" + p.Name
	case RTSP:
		return "rtsp://" + dst + "/live/" + p.Name
	default:
		return "udp://" + dst + "?pkt_size=1316"
	}
}

// Published is what a publisher sent, from ffmpeg's own progress reports (summed over
// its runs; a run that failed counts up to its last report, made every half second).
type Published struct {
	Runs     int           // ffmpeg runs: 1 + reconnections
	Failures []string      // why runs failed (ffmpeg's last words), in order
	Frames   int           // video frames sent
	Bytes    int64         // bytes written to the protocol (FLV, MPEG-TS); RTSP: 0, ffmpeg does not count them
	Media    time.Duration // media time sent
	Elapsed  time.Duration // wall-clock time from the first start to the last exit
}

// Publish runs ffmpeg in p.NS sending the test pattern to p.URL() in real time (-re).
// Without Reconnect a failed run is an error; with it, failures are retried and only
// listed (Published.Failures). An error is also returned when nothing at all was sent.
func (t Tools) Publish(ctx context.Context, p Publish) (Published, error) {
	var res Published
	pat := p.Pattern.withDefaults()
	if (p.Proto == RTMP || p.Proto == RTSP) && !streamNameRE.MatchString(p.Name) {
		return res, fmt.Errorf("publish: stream name %q: want 1 to 32 characters of [a-z0-9]", p.Name)
	}
	if p.Proto == MPEGTS && p.Port == 0 {
		return res, errors.New("publish MPEG-TS: no UDP port given")
	}
	t0 := time.Now()
	deadline := t0.Add(2*pat.Duration + 5*time.Second)
	for {
		left := pat.Duration - res.Media
		if left < time.Second/time.Duration(pat.Rate) {
			break
		}
		res.Runs++
		prog, err := t.publishOnce(ctx, p, pat, left)
		res.Frames += prog.Frames
		res.Bytes += prog.Bytes
		res.Media += prog.OutTime
		if err == nil && !prog.End {
			err = errors.New("ffmpeg exited without finishing")
		}
		if err == nil {
			break
		}
		res.Failures = append(res.Failures, err.Error())
		if !p.Reconnect || ctx.Err() != nil || time.Now().After(deadline) {
			res.Elapsed = time.Since(t0)
			return res, fmt.Errorf("publish %s from %s: %w", p.URL(), p.NS, err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(300 * time.Millisecond):
		}
	}
	res.Elapsed = time.Since(t0)
	if res.Frames == 0 {
		return res, fmt.Errorf("publish %s from %s: no frame sent", p.URL(), p.NS)
	}
	return res, nil
}

func (t Tools) publishOnce(ctx context.Context, p Publish, pat Pattern, d time.Duration) (Progress, error) {
	args := []string{"-hide_banner", "-nostdin", "-v", "error",
		"-re", "-f", "lavfi", "-i", fmt.Sprintf("testsrc=size=%dx%d:rate=%d", pat.Width, pat.Height, pat.Rate),
		"-re", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100",
		"-t", strconv.FormatFloat(d.Seconds(), 'f', 3, 64),
		"-map", "0:v", "-map", "1:a",
		"-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-g", strconv.Itoa(pat.Rate), "-pix_fmt", "yuv420p",
		"-c:a", "aac", "-b:a", "64k",
		"-progress", "pipe:1", "-stats_period", "0.5"}
	switch p.Proto {
	case RTMP:
		args = append(args, "-f", "flv", "-flvflags", "no_duration_filesize")
	case RTSP:
		args = append(args, "-f", "rtsp", "-rtsp_transport", "tcp")
	case MPEGTS:
		args = append(args, "-f", "mpegts")
	default:
		return Progress{}, fmt.Errorf("publish: unknown protocol %q", p.Proto)
	}
	args = append(args, p.URL())
	var stdout bytes.Buffer
	pr, err := startIn(p.NS, &stdout, t.FFmpeg, args...)
	if err != nil {
		return Progress{}, err
	}
	err = pr.wait(ctx)
	prog := parseProgress(stdout.Bytes())
	if err != nil {
		return prog, fmt.Errorf("ffmpeg: %w: %s", err, lastLines(pr.out.String(), 2))
	}
	return prog, nil
}

// Pull plays url with ffprobe from namespace ns for d of media and returns what came:
// codecs, resolution, frames and the duration between the first and the last frame.
func (t Tools) Pull(ctx context.Context, ns, url string, d time.Duration) (Probe, error) {
	out, err := runIn(ctx, ns, t.FFprobe, "-hide_banner", "-v", "error", "-rw_timeout", "5000000",
		"-read_intervals", "%+"+strconv.FormatFloat(d.Seconds(), 'f', 3, 64),
		"-show_entries", probeEntries, "-of", "json", url)
	if err != nil {
		return Probe{}, fmt.Errorf("pull %s: %w", url, err)
	}
	p, err := parseProbe(out)
	if err != nil {
		return p, fmt.Errorf("pull %s: %w", url, err)
	}
	if p.VideoFrames == 0 {
		return p, fmt.Errorf("pull %s from %s: no video frame came", url, ns)
	}
	return p, nil
}

// ProbeFile reads a recording with ffprobe (run in namespace ns, which it does not use).
func (t Tools) ProbeFile(ctx context.Context, ns, file string) (Probe, error) {
	out, err := runIn(ctx, ns, t.FFprobe, "-hide_banner", "-v", "error", "-show_entries", probeEntries, "-of", "json", file)
	if err != nil {
		return Probe{}, fmt.Errorf("probe %s: %w", file, err)
	}
	return parseProbe(out)
}
