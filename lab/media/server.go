package media

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"text/template"
	"time"

	"github.com/medialb/medialb/lab"
)

// Ports the media servers listen on, on every address (so on the VIPs held on lo).
const (
	RTMPPort uint16 = 1935
	RTSPPort uint16 = 554
	// statAddr is nginx's HTTP listener for the RTMP statistics page, on the real
	// server namespace's loopback: out of reach of clients and load balancers.
	statAddr = "127.0.0.1:8935"
)

// ServerConfig says where a media server runs.
type ServerConfig struct {
	Name string // the real server's name, for reports (e.g. "HT1")
	NS   string // its network namespace
	// Dir holds nginx's configuration, pid file, logs and temporary files and every
	// recording; it is created if missing and left in place by Close.
	Dir string
	// UDPPorts get one ffmpeg MPEG-TS receiver each (bound to all addresses).
	UDPPorts []uint16
	// App is nginx-rtmp's application name; default "live" (what publishers
	// use). Another name makes a server whose "live" application is gone.
	App string
}

// Server is the media software of one real server: nginx-rtmp on 1935 (application
// "live", every published stream recorded), an ffmpeg RTSP receiver on 554 (listen mode:
// one publisher at a time, restarted after each, each session recorded), and an ffmpeg
// MPEG-TS receiver per UDP port (recorded). Its methods are safe for concurrent use.
type Server struct {
	cfg   ServerConfig
	tools Tools
	nginx *proc
	stop  chan struct{}
	wg    sync.WaitGroup

	mu        sync.Mutex
	closed    bool
	sessions  []*session
	publisher map[string][]netip.Addr // RTMP stream name → publishing addresses seen in /stat
}

// session is one run of a receiver: one recording.
type session struct {
	proto   Proto
	port    uint16
	file    string
	peer    netip.Addr // RTSP: the TCP peer while it was connected
	running bool
}

var nginxConf = template.Must(template.New("nginx").Parse(`# written by medialb's lab/media: nothing of the system's nginx is used
load_module {{.Module}};
user root root;
worker_processes 1;
pid {{.Dir}}/nginx.pid;
error_log {{.Dir}}/error.log info;
events { worker_connections 1024; }
rtmp {
	log_format medialb '{{.LogFormat}}';
	access_log {{.Dir}}/access.log medialb;
	server {
		listen {{.Port}};
		ping 2s;
		ping_timeout 2s;
		timeout 6s;
		drop_idle_publisher 4s;
		application {{.App}} {
			live on;
			wait_key on;
			record all;
			record_path {{.Dir}}/rec;
			record_unique on;
		}
	}
}
http {
	access_log off;
	client_body_temp_path {{.Dir}}/tmp/body;
	proxy_temp_path {{.Dir}}/tmp/proxy;
	fastcgi_temp_path {{.Dir}}/tmp/fastcgi;
	uwsgi_temp_path {{.Dir}}/tmp/uwsgi;
	scgi_temp_path {{.Dir}}/tmp/scgi;
	server {
		listen {{.Stat}};
		location /stat { rtmp_stat all; }
	}
}
`))

// StartServer starts nginx-rtmp, the RTSP receiver and the MPEG-TS receivers in cfg.NS and
// returns once nginx answers. Ports 1935 and 554 must be free there (lab.SetVOSMedia).
// Close stops everything.
func StartServer(t Tools, cfg ServerConfig) (_ *Server, err error) {
	for _, d := range []string{cfg.Dir, filepath.Join(cfg.Dir, "rec"), filepath.Join(cfg.Dir, "tmp")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("start media server %s: %w", cfg.Name, err)
		}
	}
	conf := filepath.Join(cfg.Dir, "nginx.conf")
	f, err := os.Create(conf)
	if err != nil {
		return nil, fmt.Errorf("start media server %s: %w", cfg.Name, err)
	}
	err = nginxConf.Execute(f, map[string]any{"Module": t.RTMPModule, "Dir": cfg.Dir, "LogFormat": accessLogFormat, "Port": RTMPPort, "Stat": statAddr, "App": cmp.Or(cfg.App, "live")})
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("write %s: %w", conf, err)
	}
	s := &Server{cfg: cfg, tools: t, stop: make(chan struct{}), publisher: map[string][]netip.Addr{}}
	defer func() {
		if err != nil {
			s.Close() //nolint:errcheck // already failing
		}
	}()
	s.nginx, err = startIn(cfg.NS, nil, t.Nginx, "-c", conf, "-p", cfg.Dir, "-e", filepath.Join(cfg.Dir, "error.log"), "-g", "daemon off;")
	if err != nil {
		return nil, err
	}
	if err := s.waitNginx(10 * time.Second); err != nil {
		return nil, err
	}
	s.wg.Add(2 + len(cfg.UDPPorts))
	go s.receiverLoop(RTSP, RTSPPort)
	for _, port := range cfg.UDPPorts {
		go s.receiverLoop(MPEGTS, port)
	}
	go s.watchStat()
	// ffmpeg's RTSP receiver takes a while to start on a loaded machine: a check or a
	// publisher must not find the port closed.
	if err := s.waitListen(RTSPPort, 15*time.Second); err != nil {
		return nil, err
	}
	return s, nil
}

// waitListen waits until a socket listens on TCP port in the server's namespace.
func (s *Server) waitListen(port uint16, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		if procTCPListening(s.procTCP(), port) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("start media server %s: nothing listens on TCP port %d after %s (ffmpeg's RTSP receiver)", s.cfg.Name, port, timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Name returns the real server's name.
func (s *Server) Name() string { return s.cfg.Name }

func (s *Server) waitNginx(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		_, err := s.Live(context.Background())
		if err == nil {
			return nil
		}
		select {
		case <-s.nginx.done:
			return fmt.Errorf("start nginx-rtmp on %s: exited: %s", s.cfg.Name, s.errorLog())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("start nginx-rtmp on %s: no answer on %s after %s: %w: %s", s.cfg.Name, statAddr, timeout, err, s.errorLog())
		}
	}
}

func (s *Server) errorLog() string {
	b, _ := os.ReadFile(filepath.Join(s.cfg.Dir, "error.log"))
	return lastLines(s.nginx.out.String()+"\n"+string(b), 4)
}

// Live returns the streams nginx-rtmp serves now, from its statistics page.
func (s *Server) Live(ctx context.Context) ([]LiveStream, error) {
	c := &http.Client{
		Timeout: 3 * time.Second,
		Transport: &http.Transport{
			DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				var c net.Conn
				err := lab.Do(s.cfg.NS, func() error {
					var err error
					c, err = (&net.Dialer{}).DialContext(ctx, network, addr)
					return err
				})
				return c, err
			},
			DisableKeepAlives: true,
		},
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+statAddr+"/stat", nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, fmt.Errorf("get nginx-rtmp stat on %s: %w", s.cfg.Name, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return nil, fmt.Errorf("get nginx-rtmp stat on %s: %w", s.cfg.Name, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("get nginx-rtmp stat on %s: %s", s.cfg.Name, resp.Status)
	}
	return parseStat(b)
}

// watchStat remembers the publishing addresses nginx shows, for sessions that never end
// cleanly (their access log line comes late or never).
func (s *Server) watchStat() {
	defer s.wg.Done()
	for {
		select {
		case <-s.stop:
			return
		case <-time.After(300 * time.Millisecond):
		}
		live, err := s.Live(context.Background())
		if err != nil {
			continue
		}
		s.mu.Lock()
		for _, l := range live {
			if l.Publisher.IsValid() && !slices.Contains(s.publisher[l.Name], l.Publisher) {
				s.publisher[l.Name] = append(s.publisher[l.Name], l.Publisher)
			}
		}
		s.mu.Unlock()
	}
}

// receiverLoop keeps an ffmpeg receiver on port, each run recording to a file of its
// own. RTSP: ffmpeg's listen mode takes one publisher and ends with it, so a new one is
// started for the next; while one runs, the TCP peer is read from the namespace's
// /proc/net/tcp (the client address the real server saw). MPEG-TS over UDP: a run ends
// 1.5 s after the last datagram (or, idle, 1.5 s after it started): the end of input is
// what makes ffmpeg's demuxer hand over the stream's last frames.
func (s *Server) receiverLoop(proto Proto, port uint16) {
	defer s.wg.Done()
	for i := 1; ; i++ {
		sess := &session{proto: proto, port: port, running: true}
		var in []string
		switch proto {
		case RTSP:
			sess.file = filepath.Join(s.cfg.Dir, fmt.Sprintf("rtsp-%d-%03d.ts", port, i))
			// -timeout: a publisher gone silent (moved to another server) ends the run.
			in = []string{"-rtsp_flags", "listen", "-timeout", "3000000", "-i", fmt.Sprintf("rtsp://0.0.0.0:%d/live", port)}
		default:
			sess.file = filepath.Join(s.cfg.Dir, fmt.Sprintf("udp-%d-%03d.ts", port, i))
			in = []string{"-analyzeduration", "500000", "-probesize", "65536", "-f", "mpegts",
				"-i", fmt.Sprintf("udp://0.0.0.0:%d?timeout=1500000&fifo_size=65536&overrun_nonfatal=1", port)}
		}
		args := append([]string{"-hide_banner", "-nostdin", "-v", "error"}, in...)
		args = append(args, "-map", "0", "-c", "copy", "-copyinkf", "-flush_packets", "1", "-f", "mpegts", sess.file)
		p, err := startIn(s.cfg.NS, nil, s.tools.FFmpeg, args...)
		if err != nil {
			select {
			case <-s.stop:
				return
			case <-time.After(time.Second):
				continue
			}
		}
		s.mu.Lock()
		s.sessions = append(s.sessions, sess)
		s.mu.Unlock()
		t0 := time.Now()
	watch:
		for {
			select {
			case <-s.stop:
				p.stopFFmpeg() //nolint:errcheck // stopping
				break watch
			case <-p.done:
				break watch
			case <-time.After(100 * time.Millisecond):
			}
			if proto != RTSP {
				continue
			}
			s.mu.Lock()
			known := sess.peer.IsValid()
			s.mu.Unlock()
			if !known {
				if peers := s.tcpPeers(port); len(peers) > 0 {
					s.mu.Lock()
					sess.peer = peers[0]
					s.mu.Unlock()
				}
			}
		}
		s.mu.Lock()
		sess.running = false
		s.mu.Unlock()
		select {
		case <-s.stop:
			return
		default:
		}
		if time.Since(t0) < 300*time.Millisecond { // failing at once (port taken?): not too fast
			time.Sleep(500 * time.Millisecond)
		}
	}
}

// tcpPeers returns the peers of the established TCP connections to port in the server's
// namespace.
func (s *Server) tcpPeers(port uint16) []netip.Addr {
	return parseProcTCP(s.procTCP(), port)
}

// procTCP reads /proc/net/tcp in the server's namespace (empty when it cannot).
func (s *Server) procTCP() []byte {
	var b []byte
	lab.Do(s.cfg.NS, func() error { //nolint:errcheck // nothing found is the answer then
		var err error
		b, err = os.ReadFile("/proc/thread-self/net/tcp")
		return err
	})
	return b
}

// Close stops the receivers (ffmpeg finishes its recordings) and nginx. What was
// received stays readable with Received.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	close(s.stop)
	var errs []error
	s.wg.Wait()
	if s.nginx != nil {
		if err := s.nginx.stop(syscall.SIGTERM, 5*time.Second); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("stop media server %s: %w", s.cfg.Name, err)
	}
	return nil
}

// Received is what one real server received from one client stream.
type Received struct {
	Server string
	Proto  Proto
	// Key names the stream: the RTMP stream name, the RTSP publisher's address, or
	// "udp/PORT" for MPEG-TS.
	Key string
	// Peers are the client addresses the server saw (RTMP: nginx's access log and
	// statistics; RTSP: the TCP peer). MPEG-TS over UDP: none (the receiver does not tell).
	Peers []netip.Addr
	// Players are the addresses that played the RTMP stream from this server (access log).
	Players  []netip.Addr
	Sessions int   // publishing sessions (recordings)
	Open     int   // sessions still going (RTMP publishers in /stat, a running RTSP receiver)
	Wire     int64 // RTMP: bytes nginx received in its finished sessions (access log); else 0
	// Probe sums the recordings: frames and payload bytes received, with the first
	// recording's codecs and resolution.
	Probe
}

// Received returns what the server received, per stream, from its recordings (ffprobe),
// nginx's access log and what it saw while running. After Close the counts are final;
// before, an MPEG-TS recording may lack its last few packets (ffmpeg writes them at exit).
func (s *Server) Received(ctx context.Context) ([]Received, error) {
	byKey := map[string]*Received{}
	get := func(proto Proto, key string) *Received {
		k := string(proto) + " " + key
		if r, ok := byKey[k]; ok {
			return r
		}
		r := &Received{Server: s.cfg.Name, Proto: proto, Key: key}
		byKey[k] = r
		return r
	}
	addPeer := func(r *Received, a netip.Addr) {
		if a.IsValid() && !slices.Contains(r.Peers, a) {
			r.Peers = append(r.Peers, a)
		}
	}
	var errs []error
	add := func(r *Received, file string) {
		p, err := s.tools.ProbeFile(ctx, s.cfg.NS, file)
		if err != nil {
			errs = append(errs, err)
			return
		}
		r.Sessions++
		if r.VideoCodec == "" {
			r.VideoCodec, r.Width, r.Height, r.AudioCodec, r.SampleRate = p.VideoCodec, p.Width, p.Height, p.AudioCodec, p.SampleRate
		}
		r.VideoFrames += p.VideoFrames
		r.AudioFrames += p.AudioFrames
		r.Bytes += p.Bytes
		r.Duration += p.Duration
	}

	// RTMP: recordings NAME-UNIXTIME.flv, the access log, what /stat showed.
	recs, _ := filepath.Glob(filepath.Join(s.cfg.Dir, "rec", "*.flv"))
	sort.Strings(recs)
	for _, f := range recs {
		base := strings.TrimSuffix(filepath.Base(f), ".flv")
		name := base
		if i := strings.LastIndexByte(base, '-'); i > 0 {
			if _, err := strconv.Atoi(base[i+1:]); err == nil {
				name = base[:i]
			}
		}
		if st, err := os.Stat(f); err != nil || st.Size() == 0 {
			continue
		}
		add(get(RTMP, name), f)
	}
	logb, _ := os.ReadFile(filepath.Join(s.cfg.Dir, "access.log"))
	for _, e := range parseAccessLog(logb) {
		r := get(RTMP, e.Name)
		switch e.Command {
		case "PUBLISH":
			addPeer(r, e.Peer)
			r.Wire += e.BytesReceived
		case "PLAY":
			if !slices.Contains(r.Players, e.Peer) {
				r.Players = append(r.Players, e.Peer)
			}
		}
	}
	s.mu.Lock()
	for name, addrs := range s.publisher {
		r := get(RTMP, name)
		for _, a := range addrs {
			addPeer(r, a)
		}
	}
	sessions := make([]session, len(s.sessions))
	for i, r := range s.sessions {
		sessions[i] = *r
	}
	closed := s.closed
	s.mu.Unlock()
	if !closed {
		if live, err := s.Live(ctx); err == nil {
			for _, l := range live {
				if l.Publisher.IsValid() {
					r := get(RTMP, l.Name)
					r.Open++
					addPeer(r, l.Publisher)
				}
			}
		}
	}

	// RTSP and MPEG-TS: one recording per receiver run; RTSP keyed by the publisher's
	// address, MPEG-TS by port.
	for _, sess := range sessions {
		if st, err := os.Stat(sess.file); err != nil || st.Size() == 0 {
			continue
		}
		key := fmt.Sprintf("udp/%d", sess.port)
		if sess.proto == RTSP {
			key = "unknown"
			if sess.peer.IsValid() {
				key = sess.peer.String()
			}
		}
		r := get(sess.proto, key)
		addPeer(r, sess.peer)
		if sess.running {
			r.Open++
		}
		add(r, sess.file)
	}

	out := make([]Received, 0, len(byKey))
	for _, r := range byKey {
		out = append(out, *r)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Proto != out[j].Proto {
			return out[i].Proto < out[j].Proto
		}
		return out[i].Key < out[j].Key
	})
	return out, errors.Join(errs...)
}

// Counters returns the kernel UDP counters of namespace ns.
func Counters(ns string) (UDPCounters, error) {
	var b []byte
	err := lab.Do(ns, func() error {
		var err error
		b, err = os.ReadFile("/proc/thread-self/net/snmp")
		return err
	})
	if err != nil {
		return UDPCounters{}, fmt.Errorf("read UDP counters of %s: %w", ns, err)
	}
	return parseSNMP(b)
}
