// Package vos simulates a Harmonic VOS real server for the namespace lab and for tests.
//
// A Server answers:
//   - HTTP and HTTPS (self-signed certificate generated at start): GET /admin/status answers
//     according to the current Mode; every other path answers
//     "server=NAME client=IP:PORT\n" with the peer address the server saw.
//   - TCP media ports: every line received is answered with "server=NAME client=IP:PORT\n".
//   - UDP media ports: every datagram is answered with the same line. The reply leaves from
//     the address the datagram was sent to (a direct-routing VIP held on lo, say): one
//     socket is bound per local address, and new local addresses are picked up by a rescan.
//   - A control listener (plain HTTP): POST /status?mode=MODE, GET /status, GET /stats
//     (JSON, see Stats) and POST /stats/reset.
//
// Traffic is counted per protocol and port and per client address.
package vos

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
)

// Mode is what GET /admin/status answers.
type Mode string

// The modes of /admin/status.
const (
	Healthy   Mode = "healthy"   // 200, body "Healthy\n"
	Unhealthy Mode = "unhealthy" // 200, body "Unhealthy\n": only a body check notices
	Hang      Mode = "hang"      // the request is read, no answer ever comes
	Slow      Mode = "slow"      // 200, body "Healthy\n" sent one byte per second
	Garbage   Mode = "garbage"   // bytes that are not HTTP, then the connection is closed
)

// GarbageReply is what the Garbage mode writes instead of an HTTP response.
const GarbageReply = "\x00\x16\x03garbage: this is not HTTP\r\n\xff\xfe"

// ParseMode returns the Mode named s.
func ParseMode(s string) (Mode, error) {
	switch m := Mode(s); m {
	case Healthy, Unhealthy, Hang, Slow, Garbage:
		return m, nil
	}
	return "", fmt.Errorf("parse mode %q: want healthy, unhealthy, hang, slow or garbage", s)
}

// Counter counts what one client sent to one listener.
type Counter struct {
	Packets uint64 `json:"packets"` // lines (TCP), datagrams (UDP) or requests (HTTP, HTTPS)
	Bytes   uint64 `json:"bytes"`   // bytes received (HTTP: request body bytes)
	Conns   uint64 `json:"conns"`   // TCP connections accepted (TCP, HTTP, HTTPS)
}

// Stats is the answer of GET /stats.
type Stats struct {
	Server string `json:"server"`
	Mode   Mode   `json:"mode"`
	// Ports maps "PROTO/PORT" (proto: tcp, udp, http, https) to client address (no port)
	// to counters. Listeners nobody talked to yet are absent.
	Ports map[string]map[string]Counter `json:"ports"`
}

// Config configures a Server. The zero value of a listen address disables that listener.
type Config struct {
	Name    string // the server's name in answers; required
	HTTP    string // plain HTTP listen address, e.g. ":8080"
	HTTPS   string // HTTPS listen address, e.g. ":8443"
	Control string // control listen address, e.g. ":9901"
	// MediaPorts get a TCP listener on every address and UDP sockets per local address.
	// Port 0 picks a free port (tests; needs UDPAddrs, and picks one port per address and
	// protocol); see TCPAddrs and UDPAddrs.
	MediaPorts []uint16
	// MediaHost is the address TCP media listeners bind to; empty means all.
	MediaHost string
	// UDPAddrs are the local addresses UDP sockets bind to. Nil: every address of every
	// interface (IPv6 link-local ones excepted), rescanned every RescanInterval.
	UDPAddrs []netip.Addr
	// RescanInterval is how often new local addresses are looked for; default 1s.
	RescanInterval time.Duration
	Mode           Mode // initial mode; default Healthy
	// Agent is the load-feedback agent's TCP listen address, e.g. ":3333";
	// empty: none (GET /load still answers; see agent.go).
	Agent  string
	Logger zerolog.Logger
}

type statKey struct {
	listener string // "udp/554"
	client   netip.Addr
}

// Server is a running simulated real server. Its methods are safe for concurrent use.
type Server struct {
	cfg     Config
	log     zerolog.Logger
	mode    atomic.Value // Mode
	agent   atomic.Value // string: the feedback agent's answer
	agentLn net.Listener // nil without Config.Agent

	done chan struct{} // closed by Shutdown
	wg   sync.WaitGroup

	mu                           sync.Mutex
	stats                        map[statKey]*Counter
	tcpLns                       []net.Listener
	udpConns                     map[netip.AddrPort]*net.UDPConn // by configured (address, port)
	conns                        map[net.Conn]struct{}
	httpSrvs                     []*http.Server
	httpAddr, httpsAddr, ctlAddr net.Addr
}

// Start opens every configured listener and serves them until Shutdown. It fails if any
// listener cannot be opened (UDP addresses found by a rescan are retried instead).
func Start(cfg Config) (*Server, error) {
	if cfg.Name == "" {
		return nil, errors.New("start vos: empty server name (set Config.Name)")
	}
	if cfg.Mode == "" {
		cfg.Mode = Healthy
	}
	if _, err := ParseMode(string(cfg.Mode)); err != nil {
		return nil, fmt.Errorf("start vos: %w", err)
	}
	if cfg.UDPAddrs == nil && slices.Contains(cfg.MediaPorts, 0) {
		return nil, errors.New("start vos: media port 0 needs explicit UDPAddrs (a rescan would bind new ports)")
	}
	if cfg.RescanInterval <= 0 {
		cfg.RescanInterval = time.Second
	}
	s := &Server{
		cfg:      cfg,
		log:      cfg.Logger.With().Str("server", cfg.Name).Logger(),
		done:     make(chan struct{}),
		stats:    make(map[statKey]*Counter),
		udpConns: make(map[netip.AddrPort]*net.UDPConn),
		conns:    make(map[net.Conn]struct{}),
	}
	s.mode.Store(cfg.Mode)
	if err := s.start(); err != nil {
		s.Shutdown(context.Background()) //nolint:errcheck // already failing
		return nil, err
	}
	return s, nil
}

func (s *Server) start() error {
	if err := s.startAgent(); err != nil {
		return err
	}
	for _, p := range s.cfg.MediaPorts {
		ln, err := net.Listen("tcp", net.JoinHostPort(s.cfg.MediaHost, strconv.Itoa(int(p))))
		if err != nil {
			return fmt.Errorf("listen tcp media port %d: %w", p, err)
		}
		s.tcpLns = append(s.tcpLns, ln)
		s.wg.Add(1)
		go s.acceptMedia(ln)
	}
	if len(s.cfg.MediaPorts) > 0 {
		if s.cfg.UDPAddrs != nil {
			if err := s.bindUDP(s.cfg.UDPAddrs, true); err != nil {
				return err
			}
		} else {
			addrs, err := localAddrs()
			if err != nil {
				return err
			}
			if err := s.bindUDP(addrs, false); err != nil {
				return err
			}
			s.wg.Add(1)
			go s.rescan()
		}
	}
	if s.cfg.HTTP != "" || s.cfg.HTTPS != "" {
		mux := http.NewServeMux()
		mux.HandleFunc("/admin/status", s.handleAdminStatus)
		mux.HandleFunc("/", s.handleWho)
		s.agentRoutes(mux, nil)
		if s.cfg.HTTP != "" {
			ln, err := net.Listen("tcp", s.cfg.HTTP)
			if err != nil {
				return fmt.Errorf("listen http %s: %w", s.cfg.HTTP, err)
			}
			s.httpAddr = ln.Addr()
			s.serveHTTP(ln, s.countingHandler("http", ln, mux))
		}
		if s.cfg.HTTPS != "" {
			cert, err := selfSigned(s.cfg.Name)
			if err != nil {
				return err
			}
			ln, err := net.Listen("tcp", s.cfg.HTTPS)
			if err != nil {
				return fmt.Errorf("listen https %s: %w", s.cfg.HTTPS, err)
			}
			s.httpsAddr = ln.Addr()
			tln := tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
			s.serveHTTP(tln, s.countingHandler("https", ln, mux))
		}
	}
	if s.cfg.Control != "" {
		ln, err := net.Listen("tcp", s.cfg.Control)
		if err != nil {
			return fmt.Errorf("listen control %s: %w", s.cfg.Control, err)
		}
		s.ctlAddr = ln.Addr()
		s.serveHTTP(ln, s.controlHandler())
	}
	return nil
}

func (s *Server) serveHTTP(ln net.Listener, h http.Handler) {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		// An empty, non-nil map turns HTTP/2 off: the garbage mode hijacks connections.
		TLSNextProto: map[string]func(*http.Server, *tls.Conn, http.Handler){},
	}
	s.mu.Lock()
	s.httpSrvs = append(s.httpSrvs, srv)
	s.mu.Unlock()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error().Err(err).Str("addr", ln.Addr().String()).Msg("http server stopped")
		}
	}()
}

// Mode returns the current mode of /admin/status.
func (s *Server) Mode() Mode { return s.mode.Load().(Mode) }

// SetMode switches the answer of /admin/status; requests already waiting keep their mode.
func (s *Server) SetMode(m Mode) { s.mode.Store(m) }

// HTTPAddr, HTTPSAddr and ControlAddr return the bound listener addresses (nil if disabled).
func (s *Server) HTTPAddr() net.Addr { return s.httpAddr }

// HTTPSAddr returns the bound HTTPS address, nil if disabled.
func (s *Server) HTTPSAddr() net.Addr { return s.httpsAddr }

// ControlAddr returns the bound control address, nil if disabled.
func (s *Server) ControlAddr() net.Addr { return s.ctlAddr }

// TCPAddrs returns the bound TCP media listener addresses, in MediaPorts order.
func (s *Server) TCPAddrs() []netip.AddrPort {
	var out []netip.AddrPort
	for _, ln := range s.tcpLns {
		out = append(out, ln.Addr().(*net.TCPAddr).AddrPort())
	}
	return out
}

// UDPAddrs returns the addresses the UDP media sockets are bound to now.
func (s *Server) UDPAddrs() []netip.AddrPort {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []netip.AddrPort
	for _, c := range s.udpConns {
		out = append(out, c.LocalAddr().(*net.UDPAddr).AddrPort())
	}
	return out
}

// Stats returns a copy of the counters.
func (s *Server) Stats() Stats {
	st := Stats{Server: s.cfg.Name, Mode: s.Mode(), Ports: map[string]map[string]Counter{}}
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, c := range s.stats {
		m := st.Ports[k.listener]
		if m == nil {
			m = map[string]Counter{}
			st.Ports[k.listener] = m
		}
		m[k.client.String()] = *c
	}
	return st
}

// ResetStats sets every counter back to zero.
func (s *Server) ResetStats() {
	s.mu.Lock()
	clear(s.stats)
	s.mu.Unlock()
}

func (s *Server) count(listener string, client netip.Addr, packets, bytes, conns uint64) {
	k := statKey{listener, client.Unmap()}
	s.mu.Lock()
	c := s.stats[k]
	if c == nil {
		c = new(Counter)
		s.stats[k] = c
	}
	c.Packets += packets
	c.Bytes += bytes
	c.Conns += conns
	s.mu.Unlock()
}

// Shutdown closes every listener and connection, lets hanging and slow answers end, and
// waits for the HTTP servers until ctx is done. It may be called more than once.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	select {
	case <-s.done:
		s.mu.Unlock()
		return nil
	default:
	}
	close(s.done)
	if s.agentLn != nil {
		s.agentLn.Close()
	}
	for _, ln := range s.tcpLns {
		ln.Close()
	}
	for _, c := range s.udpConns {
		c.Close()
	}
	for c := range s.conns {
		c.Close()
	}
	srvs := s.httpSrvs
	s.mu.Unlock()
	var errs []error
	for _, srv := range srvs {
		if err := srv.Shutdown(ctx); err != nil {
			srv.Close()
			errs = append(errs, fmt.Errorf("shut down http server: %w", err))
		}
	}
	s.wg.Wait()
	return errors.Join(errs...)
}

func (s *Server) who(remote netip.AddrPort) string {
	remote = netip.AddrPortFrom(remote.Addr().Unmap(), remote.Port())
	return "server=" + s.cfg.Name + " client=" + remote.String() + "\n"
}

// --- TCP media ---

func (s *Server) acceptMedia(ln net.Listener) {
	defer s.wg.Done()
	name := "tcp/" + strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	for {
		c, err := ln.Accept()
		if err != nil {
			select {
			case <-s.done:
			default:
				s.log.Error().Err(err).Str("listener", name).Msg("accept failed, listener stopped")
			}
			return
		}
		s.mu.Lock()
		select {
		case <-s.done:
			s.mu.Unlock()
			c.Close()
			return
		default:
		}
		s.conns[c] = struct{}{}
		s.mu.Unlock()
		s.wg.Add(1)
		go s.serveMedia(name, c)
	}
}

func (s *Server) serveMedia(name string, c net.Conn) {
	defer s.wg.Done()
	defer func() {
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
		c.Close()
	}()
	remote := c.RemoteAddr().(*net.TCPAddr).AddrPort()
	client := remote.Addr().Unmap()
	reply := []byte(s.who(remote))
	s.count(name, client, 0, 0, 1)
	r := bufio.NewReaderSize(c, 4096)
	for {
		line, err := r.ReadSlice('\n')
		if len(line) > 0 {
			complete := line[len(line)-1] == '\n'
			var pkts uint64
			if complete {
				pkts = 1
			}
			s.count(name, client, pkts, uint64(len(line)), 0)
			if complete {
				if _, werr := c.Write(reply); werr != nil {
					return
				}
			}
		}
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			return
		}
	}
}

// --- UDP media ---

// localAddrs lists the addresses of every interface, IPv6 link-local ones excepted (they
// would need a zone per socket and the lab does not use them).
func localAddrs() ([]netip.Addr, error) {
	ifAddrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil, fmt.Errorf("list local addresses: %w", err)
	}
	var out []netip.Addr
	for _, a := range ifAddrs {
		n, ok := a.(*net.IPNet)
		if !ok {
			continue
		}
		ip, ok := netip.AddrFromSlice(n.IP)
		if !ok {
			continue
		}
		ip = ip.Unmap()
		if ip.IsLinkLocalUnicast() && ip.Is6() || ip.IsMulticast() {
			continue
		}
		out = append(out, ip)
	}
	return out, nil
}

// bindUDP opens a socket per address and media port not bound yet. With strict, the first
// failure is returned; otherwise failures are logged and retried at the next rescan (an
// IPv6 address still in duplicate address detection cannot be bound yet).
func (s *Server) bindUDP(addrs []netip.Addr, strict bool) error {
	for _, a := range addrs {
		for _, p := range s.cfg.MediaPorts {
			key := netip.AddrPortFrom(a, p)
			s.mu.Lock()
			_, have := s.udpConns[key]
			s.mu.Unlock()
			if have {
				continue
			}
			c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(key))
			if err != nil {
				if strict {
					return fmt.Errorf("listen udp %s: %w", key, err)
				}
				s.log.Debug().Err(err).Str("addr", key.String()).Msg("udp bind failed, retrying at next rescan")
				continue
			}
			s.mu.Lock()
			select {
			case <-s.done:
				s.mu.Unlock()
				c.Close()
				return nil
			default:
			}
			s.udpConns[key] = c
			s.mu.Unlock()
			s.wg.Add(1)
			go s.serveUDP(c)
		}
	}
	return nil
}

func (s *Server) rescan() {
	defer s.wg.Done()
	t := time.NewTicker(s.cfg.RescanInterval)
	defer t.Stop()
	for {
		select {
		case <-s.done:
			return
		case <-t.C:
		}
		addrs, err := localAddrs()
		if err != nil {
			s.log.Warn().Err(err).Msg("rescan of local addresses failed")
			continue
		}
		s.bindUDP(addrs, false) //nolint:errcheck // not strict: never fails
	}
}

func (s *Server) serveUDP(c *net.UDPConn) {
	defer s.wg.Done()
	name := "udp/" + strconv.Itoa(c.LocalAddr().(*net.UDPAddr).Port)
	buf := make([]byte, 65536)
	for {
		n, from, err := c.ReadFromUDPAddrPort(buf)
		if err != nil {
			select {
			case <-s.done:
			default:
				s.log.Error().Err(err).Str("local", c.LocalAddr().String()).Msg("udp read failed, socket stopped")
			}
			return
		}
		s.count(name, from.Addr(), 1, uint64(n), 0)
		// The socket is bound to one address: the reply's source is the address the
		// datagram was sent to.
		if _, err := c.WriteToUDPAddrPort([]byte(s.who(from)), from); err != nil {
			s.log.Debug().Err(err).Str("to", from.String()).Msg("udp reply failed")
		}
	}
}

// --- HTTP and HTTPS ---

func (s *Server) countingHandler(proto string, ln net.Listener, next http.Handler) http.Handler {
	name := proto + "/" + strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
			var body uint64
			if r.ContentLength > 0 {
				body = uint64(r.ContentLength)
			}
			s.count(name, ap.Addr(), 1, body, 0)
		}
		next.ServeHTTP(w, r)
	})
}

func (s *Server) handleWho(w http.ResponseWriter, r *http.Request) {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		http.Error(w, "bad remote address "+r.RemoteAddr, http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprint(w, s.who(ap))
}

func (s *Server) handleAdminStatus(w http.ResponseWriter, r *http.Request) {
	switch s.Mode() {
	case Healthy:
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprint(w, "Healthy\n")
	case Unhealthy:
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprint(w, "Unhealthy\n")
	case Hang:
		select {
		case <-r.Context().Done():
		case <-s.done:
		}
	case Slow:
		const body = "Healthy\n"
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.WriteHeader(http.StatusOK)
		rc := http.NewResponseController(w)
		for i := range len(body) {
			if i > 0 {
				select {
				case <-r.Context().Done():
					return
				case <-s.done:
					return
				case <-time.After(time.Second):
				}
			}
			if _, err := w.Write([]byte{body[i]}); err != nil {
				return
			}
			if err := rc.Flush(); err != nil {
				return
			}
		}
	case Garbage:
		conn, buf, err := http.NewResponseController(w).Hijack()
		if err != nil {
			http.Error(w, "hijack: "+err.Error(), http.StatusInternalServerError)
			return
		}
		buf.WriteString(GarbageReply) //nolint:errcheck // closing anyway
		buf.Flush()                   //nolint:errcheck // closing anyway
		conn.Close()
	}
}

// --- control ---

func (s *Server) controlHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "mode=%s\n", s.Mode())
	})
	mux.HandleFunc("POST /status", func(w http.ResponseWriter, r *http.Request) {
		m, err := ParseMode(r.URL.Query().Get("mode"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		s.SetMode(m)
		s.log.Info().Str("mode", string(m)).Msg("status mode switched")
		fmt.Fprintf(w, "mode=%s\n", m)
	})
	mux.HandleFunc("GET /stats", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.Encode(s.Stats()) //nolint:errcheck // client gone
	})
	mux.HandleFunc("POST /stats/reset", func(w http.ResponseWriter, r *http.Request) {
		s.ResetStats()
		fmt.Fprint(w, "reset\n")
	})
	s.agentRoutes(nil, mux)
	return mux
}

// selfSigned makes a fresh ECDSA P-256 certificate for name, valid for a year.
func selfSigned(name string) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("generate tls key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 64))
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("generate certificate serial: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: name, Organization: []string{"medialb vossim"}},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(365 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{name, "localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("create self-signed certificate: %w", err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}
