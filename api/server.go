package api

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rs/zerolog"

	"github.com/medialb/medialb/config"
	"github.com/medialb/medialb/control"
	"github.com/medialb/medialb/internal/logring"
)

// Realm is the HTTP basic-auth realm of the API and WebUI.
const Realm = "medialb"

// DefaultStateDir is where the generated certificate is kept when Config.StateDir
// is empty (node.state_dir's default).
const DefaultStateDir = config.DefaultStateDir

// Config configures the API server (the api section and node.state_dir).
type Config struct {
	// Listen is host:port of the HTTPS listener, such as "192.168.94.2:9443".
	Listen string
	// TLSCert and TLSKey are PEM files. When both are empty, a self-signed
	// certificate is generated and kept in StateDir.
	TLSCert, TLSKey string
	// StateDir keeps the generated certificate (CertFile, KeyFile); empty means
	// DefaultStateDir.
	StateDir string
	// Users may log in with HTTP basic auth; at least one is required.
	Users []User
	// Version is reported by medialb_build_info; empty means the main module's
	// version from the build information.
	Version string
	// ConfigFile is the configuration file the config endpoints stage changes
	// for and apply to; empty turns them off (404).
	ConfigFile string
	// SampleEvery is the reports' sampling interval; 0 means DefaultSampleEvery.
	SampleEvery time.Duration
	// Logs, when set, serves GET /api/v1/logs: the logger's last lines.
	Logs *logring.Ring
	// Peer, when set, serves every path under PeerPrefix (an HA pair's
	// configuration sync) without user authentication: it authenticates
	// requests itself, with the pair's shared secret.
	Peer http.Handler
}

// PeerPrefix is the path prefix [Config.Peer] serves.
const PeerPrefix = "/api/v1/ha/"

// User is an API account.
type User struct {
	Name         string
	PasswordHash string // bcrypt
}

// Login rate limit: a source address may fail this many times, then once per
// loginInterval; meanwhile it is answered 429.
const (
	loginBurst    = 5
	loginInterval = time.Second
)

// Server is the HTTPS server of the REST API, the WebUI and /metrics. Create it with
// [New], then [Server.Start] it; [Server.Close] stops it.
type Server struct {
	cfg  Config // as given to New; Listen, Users and TLS files may change (Prepare)
	src  Source
	log  zerolog.Logger
	auth atomic.Pointer[authenticator]
	lim  *limiter
	now  func() time.Time

	cert      atomic.Pointer[tls.Certificate]
	handler   http.Handler
	registry  *prometheus.Registry
	collector *collector
	web       webState // Cluster Configuration's staging, the reports' sampler

	mu  sync.Mutex
	srv *http.Server
	ln  net.Listener
}

// New checks cfg, loads or generates the certificate, and builds the handlers. It
// refuses to build a server without users: there is no default password.
func New(cfg Config, src Source, log zerolog.Logger) (*Server, error) {
	if src == nil {
		return nil, errors.New("start API: no source")
	}
	if cfg.Listen == "" {
		return nil, errors.New("start API: api.listen is empty")
	}
	auth, cert, generated, err := usersAndCert(&cfg)
	if err != nil {
		return nil, err
	}
	if generated {
		ev := log.Info().Str("cert", cfg.StateDir+"/"+CertFile)
		if cert.Leaf != nil {
			ev = ev.Strs("names", cert.Leaf.DNSNames).Str("not_after", cert.Leaf.NotAfter.UTC().Format(time.RFC3339))
		}
		ev.Msg("API: generated a self-signed certificate (set api.tls_cert and api.tls_key to use your own)")
	}
	s := &Server{
		cfg: cfg, src: src, log: log,
		lim: newLimiter(loginBurst, loginInterval, log),
		now: time.Now,
	}
	s.auth.Store(auth)
	s.cert.Store(&cert)
	s.collector = newCollector(src, cfg.Version)
	s.registry = prometheus.NewRegistry()
	s.registry.MustRegister(s.collector,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	s.handler = s.routes()
	return s, nil
}

// usersAndCert defaults cfg.StateDir and loads what cfg's users and certificate
// need: the authenticator and the certificate (generated is true for a new
// self-signed one).
func usersAndCert(cfg *Config) (auth *authenticator, cert tls.Certificate, generated bool, err error) {
	if cfg.StateDir == "" {
		cfg.StateDir = DefaultStateDir
	}
	if auth, err = newAuthenticator(cfg.Users); err != nil {
		return nil, cert, false, err
	}
	cert, generated, err = loadCertificate(*cfg)
	return auth, cert, generated, err
}

// Handler returns the server's handler (authentication included), for tests and for
// serving it on a listener of one's own.
func (s *Server) Handler() http.Handler { return s.handler }

// Certificate returns the certificate the listener serves.
func (s *Server) Certificate() tls.Certificate { return *s.cert.Load() }

// Start listens on cfg.Listen and serves in the background. It returns the listen
// error, if any; errors after that are logged.
func (s *Server) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv != nil {
		return errors.New("start API: already started")
	}
	ln, err := listen(s.cfg.Listen)
	if err != nil {
		return err
	}
	s.serveLocked(ln)
	return nil
}

// listen binds the API's listener.
func listen(addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("start API: listen on %s: %w (is another process using api.listen?)", addr, err)
	}
	return ln, nil
}

// serveLocked serves the API on ln in the background, with the certificate in
// force at each handshake.
func (s *Server) serveLocked(ln net.Listener) {
	// Connections beyond the limits are closed at accept (limit.go).
	ln = newLimitListener(ln, maxConns, maxConnsPerSource, &s.collector.refused)
	srv := &http.Server{
		Handler: s.handler,
		TLSConfig: &tls.Config{MinVersion: tls.VersionTLS12,
			GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return s.cert.Load(), nil }},
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		// TLS handshake failures (browsers refusing the self-signed certificate,
		// scanners) are normal; keep them out of the error log.
		ErrorLog: log.New(debugWriter{s.log}, "", 0),
	}
	s.srv, s.ln = srv, ln
	s.startSampler()
	go func() {
		if err := srv.ServeTLS(ln, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error().Err(err).Msg("API server stopped")
		}
	}()
	s.log.Info().Str("listen", ln.Addr().String()).Msg("API and WebUI listening (HTTPS)")
}

// Addr returns the listening address, nil before Start.
func (s *Server) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return nil
	}
	return s.ln.Addr()
}

// Close stops the server: it waits up to five seconds for requests in progress,
// then closes every connection.
func (s *Server) Close() error {
	s.mu.Lock()
	srv := s.srv
	s.stopSampler()
	s.mu.Unlock()
	if srv == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		return srv.Close()
	}
	return nil
}

type debugWriter struct{ log zerolog.Logger }

func (w debugWriter) Write(p []byte) (int, error) {
	w.log.Debug().Msg("API: " + strings.TrimSpace(string(p)))
	return len(p), nil
}

// routes builds the handler: cross-origin protection, login rate limit and basic
// auth in front of the API, /metrics and the WebUI.
func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/overview", s.handleOverview)
	for _, st := range []string{"online", "drain", "halt"} {
		mux.HandleFunc("POST /api/v1/services/{service}/real-servers/{server}/"+st, func(w http.ResponseWriter, r *http.Request) {
			s.handleSetState(w, r, st)
		})
	}
	mux.HandleFunc("POST /api/v1/reload", s.handleReload)
	s.nodeRoutes(mux)
	s.webRoutes(mux)
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.registry, promhttp.HandlerOpts{
		ErrorLog:      promLogger{s.log},
		ErrorHandling: promhttp.ContinueOnError,
	}))
	s.uiRoutes(mux)

	cop := http.NewCrossOriginProtection()
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusForbidden, "cross-origin request refused: use the WebUI of this node or a non-browser client")
	}))
	h := cop.Handler(s.authenticate(jsonErrors(mux)))
	if s.cfg.Peer == nil {
		return h
	}
	peer := s.limitPeer(s.cfg.Peer)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, PeerPrefix) {
			peer.ServeHTTP(w, r)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// limitPeer puts the login rate limit in front of the peer's handler: its 401
// (a request that failed the pair's authentication) counts as a failed login,
// and a source that failed too often is answered 429 before its request is
// looked at.
func (s *Server) limitPeer(peer http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		now := s.now()
		src := remoteAddr(r)
		if !s.lim.allow(src, now) {
			w.Header().Set("Connection", "close") // the body stays unread
			w.Header().Set("Retry-After", strconv.Itoa(int(max(loginInterval/time.Second, 1))))
			writeError(w, http.StatusTooManyRequests, "too many failed HA requests from your address; try again in a second")
			return
		}
		sw := &statusWriter{ResponseWriter: w}
		peer.ServeHTTP(sw, r)
		if sw.status == http.StatusUnauthorized {
			s.lim.fail(src, "(HA peer)", now)
		}
	})
}

// statusWriter remembers the status written through it.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

// authenticate lets a request through with valid basic-auth credentials. Without
// them it answers 401 (with a challenge, so that browsers prompt for a login), and
// 429 to a source address that failed too often.
func (s *Server) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		now := s.now()
		src := remoteAddr(r)
		if !s.lim.allow(src, now) {
			w.Header().Set("Retry-After", strconv.Itoa(int(max(loginInterval/time.Second, 1))))
			writeError(w, http.StatusTooManyRequests, "too many failed logins from your address; try again in a second")
			return
		}
		user, pass, ok := r.BasicAuth()
		if ok && s.auth.Load().check(user, pass, now) {
			next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), userKey{}, user)))
			return
		}
		if _, present := r.Header["Authorization"]; present {
			s.lim.fail(src, user, now)
		}
		w.Header().Set("WWW-Authenticate", `Basic realm="`+Realm+`", charset="UTF-8"`)
		writeError(w, http.StatusUnauthorized, "authentication required: log in with an api.users name and password")
	})
}

type userKey struct{}

func userOf(r *http.Request) string {
	u, _ := r.Context().Value(userKey{}).(string)
	return u
}

func remoteAddr(r *http.Request) netip.Addr {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr()
}

// jsonErrors answers the mux's own 404 and 405 with a JSON error; everything else
// passes through.
func jsonErrors(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, pattern := mux.Handler(r); pattern != "" {
			mux.ServeHTTP(w, r)
			return
		}
		rec := &recorder{header: http.Header{}}
		mux.ServeHTTP(rec, r)
		switch rec.status {
		case http.StatusNotFound:
			writeError(w, http.StatusNotFound, "no such page: "+r.URL.Path)
		case http.StatusMethodNotAllowed:
			w.Header().Set("Allow", rec.header.Get("Allow"))
			writeError(w, http.StatusMethodNotAllowed, "method "+r.Method+" not allowed on "+r.URL.Path+" (allowed: "+rec.header.Get("Allow")+")")
		default:
			for k, v := range rec.header {
				w.Header()[k] = v
			}
			w.WriteHeader(rec.status)
			w.Write(rec.body.Bytes())
		}
	})
}

type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header { return r.header }
func (r *recorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
}
func (r *recorder) Write(p []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.body.Write(p)
}

func (s *Server) overview() Overview {
	ov := s.src.Overview()
	if ov.Time.IsZero() {
		ov.Time = s.now()
	}
	ov.Time = ov.Time.UTC()
	if ov.Services == nil {
		ov.Services = []Service{}
	}
	for i := range ov.Services {
		svc := &ov.Services[i]
		if svc.RealServers == nil {
			svc.RealServers = []RealServer{}
		}
		if svc.State == "" {
			svc.State = ServiceState(svc.RealServers)
		}
	}
	return ov
}

func (s *Server) handleOverview(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.overview())
}

// StateResult is the answer to a successful state change.
type StateResult struct {
	Service    string     `json:"service"`
	Server     string     `json:"server"`
	Requested  string     `json:"requested"`
	RealServer RealServer `json:"real_server"` // as it is now
}

func (s *Server) handleSetState(w http.ResponseWriter, r *http.Request, state string) {
	service, server := r.PathValue("service"), r.PathValue("server")
	err := s.src.SetState(service, server, state)
	ev := s.log.Info()
	if err != nil {
		ev = s.log.Warn().Err(err)
	}
	ev.Str("user", userOf(r)).Str("source", remoteAddr(r).String()).Str("service", service).
		Str("server", server).Str("state", state).Msg("API: operator set real server state")
	switch {
	case errors.Is(err, control.ErrUnknown):
		writeError(w, http.StatusNotFound, err.Error())
		return
	case err != nil:
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	res := StateResult{Service: service, Server: server, Requested: state}
	for _, svc := range s.overview().Services {
		if svc.Name != service {
			continue
		}
		for _, rs := range svc.RealServers {
			if rs.Name == server {
				res.RealServer = rs
			}
		}
	}
	writeJSON(w, http.StatusOK, res)
}

// ReloadResult is the answer to POST /api/v1/reload.
type ReloadResult struct {
	Result        string   `json:"result,omitempty"` // "reloaded", or "reloaded; restart needed for: ..."
	RestartNeeded []string `json:"restart_needed,omitempty"`
	Error         string   `json:"error,omitempty"`
	Problems      []string `json:"problems,omitempty"` // "FILE:LINE: message"
}

func (s *Server) handleReload(w http.ResponseWriter, r *http.Request) {
	restart, err := s.src.Reload()
	if err == nil {
		res := ReloadResult{Result: "reloaded", RestartNeeded: restart}
		if len(restart) > 0 {
			res.Result += "; restart needed for: " + strings.Join(restart, ", ")
		}
		s.log.Info().Str("user", userOf(r)).Str("source", remoteAddr(r).String()).Msg("API: " + res.Result)
		writeJSON(w, http.StatusOK, res)
		return
	}
	s.log.Warn().Err(err).Str("user", userOf(r)).Str("source", remoteAddr(r).String()).Msg("API: reload failed; the running configuration stays")
	var lines interface{ Lines() []string }
	if errors.As(err, &lines) {
		writeJSON(w, http.StatusUnprocessableEntity, ReloadResult{Error: err.Error(), Problems: lines.Lines()})
		return
	}
	writeJSON(w, http.StatusInternalServerError, ReloadResult{Error: err.Error()})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		writeError(w, http.StatusInternalServerError, "encode answer: "+err.Error())
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	w.Write(append(data, '\n'))
}

func writeError(w http.ResponseWriter, status int, msg string) {
	data, _ := json.Marshal(struct {
		Error string `json:"error"`
	}{msg})
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	w.Write(append(data, '\n'))
}

type promLogger struct{ log zerolog.Logger }

func (l promLogger) Println(v ...any) {
	l.log.Error().Msg("API: metrics: " + strings.TrimSpace(fmt.Sprintln(v...)))
}
