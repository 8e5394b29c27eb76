package ha

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/medialb/medialb/config"
)

// Configuration sync. The primary (the node with the higher ha.priority, the
// one whose file is the pair's reference, whatever its VRRP role) pushes its
// virtual_services (a services document, see config.ServicesDocument) to the
// secondary's API: after every successful reload, and whenever the
// secondary's digest differs (asked every ConfigSyncInterval). The secondary
// validates the document with its own node, api and ha sections, keeps it in
// node.state_dir and reloads; an invalid one is refused with every problem.
//
// Both requests are authenticated with ha.secret, which the pair shares
// already, rather than with an API user: the primary would otherwise need a
// password of the secondary's in clear in its file. Each request carries
// X-Medialb-HA-Time (Unix nanoseconds), X-Medialb-HA-Length and
// X-Medialb-HA-Body (the body's length and SHA-256) and X-Medialb-HA-MAC, an
// HMAC-SHA256 keyed with ha.secret of the method, path, time, length and body
// hash. The receiver checks the headers before it reads a byte of the body
// (see verifier), so that nobody without the secret can make it read or hold
// more than a request's headers; failures count in the API's login rate limit.
// It takes a request only within ConfigClockSkew of its own clock and with a
// time later than the last one it took, which it keeps in node.state_dir: no
// replay, also not after a restart. Answers carry an
// X-Medialb-HA-MAC too, over the request's time, the status and the body, so
// that the primary trusts a digest only from its peer. TLS keeps the
// services private on the wire; the peer's certificate (usually self-signed)
// is not verified: the MACs authenticate both ends.
const (
	// ConfigPath takes a services document (POST).
	ConfigPath = "/api/v1/ha/config"
	// DigestPath answers the node's services digest and priority (GET).
	DigestPath = "/api/v1/ha/config-digest"
	// PathPrefix is what the API serves with [ConfigHandler], unauthenticated
	// by user: the handler authenticates requests itself.
	PathPrefix = "/api/v1/ha/"
	// ConfigSyncInterval is how often the primary compares digests.
	ConfigSyncInterval = 10 * time.Second
	// ConfigClockSkew is the largest difference between a request's time and
	// the receiver's clock (the pair should run NTP).
	ConfigClockSkew = 2 * time.Minute

	hdrTime        = "X-Medialb-HA-Time"
	hdrMAC         = "X-Medialb-HA-MAC"
	hdrLength      = "X-Medialb-HA-Length"
	hdrBody        = "X-Medialb-HA-Body"
	maxServicesDoc = 8 << 20
)

// Digest is the answer to GET DigestPath.
type Digest struct {
	Node     string `json:"node"`
	Priority int    `json:"priority"`
	Digest   string `json:"digest"` // config.ServicesDigest of the running services
	PushedBy string `json:"pushed_by,omitempty"`
}

// PushResult is the answer to POST ConfigPath.
type PushResult struct {
	Result   string   `json:"result,omitempty"` // "applied" or "unchanged"
	Error    string   `json:"error,omitempty"`
	Problems []string `json:"problems,omitempty"` // "FILE:LINE: message"
}

// ErrStarting is what ConfigTarget.ApplyServices returns (wrapped) while the
// node is not fully started: the push is answered 503 and sent again soon.
var ErrStarting = errors.New("this node is still starting")

// ConfigTarget is the running node a [ConfigHandler] serves.
type ConfigTarget interface {
	// Config returns the running configuration (with its ServicesDoc).
	Config() *config.Config
	// ApplyServices validates doc with the node's own sections, keeps it and
	// reloads. A config.Errors (or any error with Lines) means doc is refused.
	ApplyServices(doc []byte) error
}

// ConfigHandler serves DigestPath and ConfigPath for t; the API mounts it at
// PathPrefix, outside its user authentication. stateFile keeps the time of
// the last request taken across restarts ("": not kept; tests). A request
// refused for its authentication is answered 401 (the API counts it as a
// failed login).
func ConfigHandler(t ConfigTarget, stateFile string, log zerolog.Logger) http.Handler {
	log = log.With().Str("part", "ha").Logger()
	return &configHandler{t: t, log: log, v: newVerifier(stateFile, time.Now, log)}
}

type configHandler struct {
	t   ConfigTarget
	log zerolog.Logger
	v   *verifier
	mu  sync.Mutex // one push at a time
}

func (h *configHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	cfg := h.t.Config()
	if cfg.HA == nil {
		http.Error(w, "this node has no ha section", http.StatusNotFound)
		return
	}
	secret := cfg.HA.Secret
	ts, body, err := h.v.verify(r, secret)
	if err != nil {
		h.log.Warn().Err(err).Str("source", r.RemoteAddr).Str("path", r.URL.Path).Msg("HA: configuration sync request refused")
		// The unread body is not drained: the connection closes.
		w.Header().Set("Connection", "close")
		status := http.StatusUnauthorized
		if errors.Is(err, errTooLarge) {
			status = http.StatusRequestEntityTooLarge
		}
		http.Error(w, err.Error(), status)
		return
	}
	answer := func(status int, v any) {
		data, _ := json.Marshal(v)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set(hdrMAC, hex.EncodeToString(responseMAC(secret, ts, status, data)))
		w.WriteHeader(status)
		w.Write(data)
	}
	switch {
	case r.URL.Path == DigestPath && r.Method == http.MethodGet:
		answer(http.StatusOK, Digest{Node: cfg.Node.Name, Priority: int(cfg.HA.Priority),
			Digest: config.ServicesDigest(cfg.ServicesDoc), PushedBy: cfg.PushedBy()})
	case r.URL.Path == ConfigPath && r.Method == http.MethodPost:
		h.push(body, answer)
	default:
		answer(http.StatusNotFound, PushResult{Error: "no such HA request: " + r.Method + " " + r.URL.Path})
	}
}

func (h *configHandler) push(doc []byte, answer func(int, any)) {
	h.mu.Lock()
	defer h.mu.Unlock()
	cfg := h.t.Config()
	from, err := config.ReadPrimary(doc)
	if err != nil {
		answer(http.StatusUnprocessableEntity, PushResult{Error: err.Error()})
		return
	}
	if from.Priority <= int(cfg.HA.Priority) {
		msg := fmt.Sprintf("refused: %s's ha.priority %d is not above this node's %d (only the primary pushes its virtual_services)",
			from.Node, from.Priority, cfg.HA.Priority)
		h.log.Warn().Str("from", from.Node).Msg("HA: pushed virtual_services " + msg)
		answer(http.StatusConflict, PushResult{Error: msg})
		return
	}
	if cfg.PushedBy() != "" && config.ServicesDigest(doc) == config.ServicesDigest(cfg.ServicesDoc) {
		answer(http.StatusOK, PushResult{Result: "unchanged"})
		return
	}
	if err := h.t.ApplyServices(doc); err != nil {
		h.log.Error().Err(err).Str("from", from.Node).Msg("HA: virtual_services pushed by the primary refused; running configuration kept")
		var lines interface{ Lines() []string }
		if errors.Is(err, ErrStarting) {
			answer(http.StatusServiceUnavailable, PushResult{Error: err.Error()})
			return
		}
		if errors.As(err, &lines) {
			answer(http.StatusUnprocessableEntity, PushResult{Error: err.Error(), Problems: lines.Lines()})
			return
		}
		answer(http.StatusInternalServerError, PushResult{Error: err.Error()})
		return
	}
	h.log.Info().Str("from", from.Node).Str("digest", config.ServicesDigest(doc)[:12]).
		Msg("HA: virtual_services pushed by the primary applied")
	answer(http.StatusOK, PushResult{Result: "applied"})
}

// PeerURL returns the base URL of the peer's API: https://ha.peer at the port
// of this node's api.listen (the pair's nodes listen on the same port).
func PeerURL(cfg *config.Config) (string, error) {
	if cfg.HA == nil {
		return "", errors.New("find the peer's API: no ha section")
	}
	_, port, err := net.SplitHostPort(cfg.API.Listen)
	if cfg.API.Listen == "" || err != nil {
		return "", errors.New("find the peer's API: no api section (give both nodes one, on the same port)")
	}
	return "https://" + net.JoinHostPort(cfg.HA.Peer.String(), port), nil
}

// PeerDigest asks the peer of cfg (see PeerURL) for the digest of the
// virtual_services it runs, authenticated with ha.secret.
func PeerDigest(ctx context.Context, cfg *config.Config) (Digest, error) {
	var d Digest
	url, err := PeerURL(cfg)
	if err != nil {
		return d, err
	}
	p := newPusher(url, nil, zerolog.Nop())
	defer p.client.CloseIdleConnections()
	_, err = p.do(ctx, cfg.HA.Secret, http.MethodGet, DigestPath, nil, &d)
	return d, err
}

// Pusher keeps the peer's virtual_services equal to this node's while this
// node is the primary. Its methods are safe for concurrent use.
type Pusher struct {
	url    string // https://peer:port
	cfg    func() *config.Config
	log    zerolog.Logger
	client *http.Client
	kick   chan struct{}
	cancel context.CancelFunc
	done   chan struct{}
	lastTS int64

	mu     sync.Mutex
	status string // what the last round found (see Status); logged only when it changes
}

// StartPusher starts pushing to the API at baseURL ("https://PEER:PORT") the
// services of the running configuration cfg returns.
// It stops when ctx is done or at Close.
func StartPusher(ctx context.Context, baseURL string, cfg func() *config.Config, log zerolog.Logger) *Pusher {
	ctx, cancel := context.WithCancel(ctx)
	p := newPusher(baseURL, cfg, log)
	p.cancel = cancel
	go p.run(ctx)
	return p
}

// Status says what the last sync round found: "in-sync" (the peer runs this node's
// virtual_services), "secondary" (the peer is the primary), "equal" (same priority:
// no sync), "failed" (peer unreachable or answering errors), "refused" (the peer
// rejected the push), or "" before the first round.
func (p *Pusher) Status() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.status
}

// newPusher makes a pusher that is not running.
func newPusher(baseURL string, cfg func() *config.Config, log zerolog.Logger) *Pusher {
	return &Pusher{
		url: baseURL, cfg: cfg, log: log.With().Str("part", "ha").Logger(),
		client: &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
			// The MACs authenticate the peer; its certificate is usually self-signed.
			TLSClientConfig: &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}, //nolint:gosec
			MaxIdleConns:    1, IdleConnTimeout: time.Minute,
		}},
		kick: make(chan struct{}, 1), done: make(chan struct{}),
	}
}

// Kick makes the pusher compare digests now (after a reload).
func (p *Pusher) Kick() {
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

// Close stops the pusher.
func (p *Pusher) Close() {
	p.cancel()
	<-p.done
	p.client.CloseIdleConnections()
}

func (p *Pusher) run(ctx context.Context) {
	defer close(p.done)
	for {
		wait := ConfigSyncInterval
		if err := p.round(ctx); err != nil {
			p.report("failed", p.log.Warn().Err(err), "HA: configuration sync with the peer failed; retrying")
			wait = 2 * time.Second
		}
		select {
		case <-ctx.Done():
			return
		case <-p.kick:
		case <-time.After(wait):
		}
	}
}

// report records what this round found and logs ev with msg (if not nil)
// when it differs from the last round's.
func (p *Pusher) report(state string, ev *zerolog.Event, msg string) {
	p.mu.Lock()
	same := p.status == state
	p.status = state
	p.mu.Unlock()
	if !same && ev != nil {
		ev.Msg(msg)
	}
}

// round compares digests and pushes when this node is the primary and the
// peer's services differ.
func (p *Pusher) round(ctx context.Context) error {
	cfg := p.cfg()
	if cfg == nil || cfg.HA == nil || len(cfg.ServicesDoc) == 0 {
		return nil
	}
	var d Digest
	if _, err := p.do(ctx, cfg.HA.Secret, http.MethodGet, DigestPath, nil, &d); err != nil {
		return err
	}
	switch {
	case d.Priority > int(cfg.HA.Priority):
		p.report("secondary", p.log.Info().Str("primary", d.Node), "HA: the peer is the primary (higher ha.priority); this node takes its virtual_services")
		return nil
	case d.Priority == int(cfg.HA.Priority):
		p.report("equal", p.log.Error().Int("priority", d.Priority), "HA: both nodes have the same ha.priority; virtual_services not synced (give the primary the higher one)")
		return nil
	case d.Digest == config.ServicesDigest(cfg.ServicesDoc):
		p.report("in-sync", p.log.Info().Str("peer", d.Node), "HA: the peer runs this node's virtual_services")
		return nil
	}
	var res PushResult
	status, err := p.do(ctx, cfg.HA.Secret, http.MethodPost, ConfigPath, cfg.ServicesDoc, &res)
	if err != nil {
		return err
	}
	if status == http.StatusServiceUnavailable {
		return fmt.Errorf("push virtual_services to %s: %s", p.url, res.Error)
	}
	if status == http.StatusOK {
		p.report("in-sync", nil, "")
		p.log.Info().Str("peer", d.Node).Str("result", res.Result).Str("digest", config.ServicesDigest(cfg.ServicesDoc)[:12]).
			Msg("HA: virtual_services pushed to the peer")
		return nil
	}
	// Pushed again at the next reload or round.
	p.report("refused", p.log.Error().Str("peer", d.Node).Int("status", status).Strs("problems", res.Problems).Str("error", res.Error),
		"HA: the peer refused this node's virtual_services; it keeps its running configuration")
	return nil
}

// do makes one signed request and reads its authenticated JSON answer into v.
func (p *Pusher) do(ctx context.Context, secret, method, path string, body []byte, v any) (int, error) {
	ts := time.Now().UnixNano()
	if ts <= p.lastTS {
		ts = p.lastTS + 1
	}
	p.lastTS = ts
	req, err := http.NewRequestWithContext(ctx, method, p.url+path, bytes.NewReader(body))
	if err != nil {
		return 0, fmt.Errorf("HA request %s: %w", path, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/yaml")
	}
	signRequest(req, secret, ts, body)
	resp, err := p.client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("HA request %s %s: %w (is the peer's API up on the same port as this node's?)", method, p.url+path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return 0, fmt.Errorf("HA request %s: read answer: %w", path, err)
	}
	mac, _ := hex.DecodeString(resp.Header.Get(hdrMAC))
	if !hmac.Equal(mac, responseMAC(secret, ts, resp.StatusCode, data)) {
		return 0, fmt.Errorf("HA request %s %s: answer %d not authenticated (ha.secret differs, or not the peer's medialb): %.200s",
			method, p.url+path, resp.StatusCode, bytes.TrimSpace(data))
	}
	if err := json.Unmarshal(data, v); err != nil {
		return 0, fmt.Errorf("HA request %s: read answer: %w", path, err)
	}
	return resp.StatusCode, nil
}
