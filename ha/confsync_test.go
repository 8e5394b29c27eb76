package ha

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/medialb/medialb/config"
)

// nodeConfig is a running configuration of one node of a pair, as
// config.LoadNode makes it.
func nodeConfig(t *testing.T, name string, prio, weight int, secret string) *config.Config {
	t.Helper()
	data := fmt.Appendf(nil, `
node: {name: %s, interface: eth0}
ha: {peer: 192.0.2.3, priority: %d, router_id: 51, secret: %q}
virtual_services:
  - name: Harmonic_Management
    address: 192.0.2.100
    ports: "8080,8443"
    layer: 7
    real_servers:
      - {name: HM1, address: 192.0.2.105, weight: %d}
`, name, prio, secret, weight)
	cfg, err := config.Parse(name+".yaml", data)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ServicesDoc, err = config.ServicesDocument(data, config.Primary{Node: name, Priority: prio}); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// fakeTarget is a secondary: ApplyServices takes a document the way the
// daemon does (or refuses it with refuse).
type fakeTarget struct {
	mu      sync.Mutex
	cfg     *config.Config
	refuse  error
	applied [][]byte
}

func (f *fakeTarget) Config() *config.Config {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.cfg
}

func (f *fakeTarget) ApplyServices(doc []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.refuse != nil {
		return f.refuse
	}
	c := *f.cfg
	c.ServicesFile, c.ServicesDoc = "pushed.yaml", doc
	f.cfg = &c
	f.applied = append(f.applied, doc)
	return nil
}

func (f *fakeTarget) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.applied)
}

// signed is a request to the handler signed with secret at ts.
func signed(method, path, secret string, ts time.Time, body []byte) *http.Request {
	r := httptest.NewRequest(method, path, bytes.NewReader(body))
	signRequest(r, secret, ts.UnixNano(), body)
	return r
}

func TestConfigHandlerAuth(t *testing.T) {
	const secret = "pair secret 0123456789"
	target := &fakeTarget{cfg: nodeConfig(t, "lb2", 100, 100, secret)}
	h := ConfigHandler(target, filepath.Join(t.TempDir(), "last"), zerolog.New(io.Discard))
	doc := nodeConfig(t, "lb1", 150, 300, secret).ServicesDoc
	now := time.Now()

	tampered := signed("POST", ConfigPath, secret, now, doc)
	tampered.Body = io.NopCloser(bytes.NewReader(bytes.Replace(doc, []byte("300"), []byte("301"), 1)))
	moved := signed("GET", DigestPath, secret, now.Add(time.Millisecond), nil)
	moved.URL.Path = "/api/v1/ha/other"
	valid := func() *http.Request { return signed("GET", DigestPath, secret, now.Add(time.Second), nil) }
	tests := []struct {
		name string
		req  *http.Request
		want int
	}{
		{"unsigned", httptest.NewRequest("POST", ConfigPath, bytes.NewReader(doc)), http.StatusUnauthorized},
		{"wrong secret", signed("POST", ConfigPath, "other secret", now, doc), http.StatusUnauthorized},
		{"body changed", tampered, http.StatusUnauthorized},
		{"path changed", moved, http.StatusUnauthorized},
		{"too old", signed("GET", DigestPath, secret, now.Add(-3*time.Minute), nil), http.StatusUnauthorized},
		{"too far ahead", signed("GET", DigestPath, secret, now.Add(3*time.Minute), nil), http.StatusUnauthorized},
		{"valid", valid(), http.StatusOK},
		{"replayed", valid(), http.StatusUnauthorized},
		{"earlier than the last", signed("GET", DigestPath, secret, now.Add(500*time.Millisecond), nil), http.StatusUnauthorized},
	}
	for _, tt := range tests {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, tt.req)
		if w.Code != tt.want {
			t.Errorf("%s: %d %s, want %d", tt.name, w.Code, w.Body, tt.want)
		}
		if w.Code == http.StatusOK {
			ts := now.Add(time.Second).UnixNano()
			mac, _ := hex.DecodeString(w.Header().Get(hdrMAC))
			if !bytes.Equal(mac, responseMAC(secret, ts, 200, w.Body.Bytes())) {
				t.Errorf("%s: the answer's MAC does not verify", tt.name)
			}
			if !strings.Contains(w.Body.String(), `"priority":100`) || !strings.Contains(w.Body.String(), config.ServicesDigest(target.cfg.ServicesDoc)) {
				t.Errorf("%s: digest answer %s", tt.name, w.Body)
			}
		}
	}
	if target.count() != 0 {
		t.Errorf("%d documents applied through unauthenticated requests", target.count())
	}
}

func TestConfigPush(t *testing.T) {
	const secret = "pair secret 0123456789"
	ctx := context.Background()
	log := zerolog.New(io.Discard)
	primary := nodeConfig(t, "lb1", 150, 300, secret)
	target := &fakeTarget{cfg: nodeConfig(t, "lb2", 100, 100, secret)}
	srv := httptest.NewTLSServer(ConfigHandler(target, "", log))
	defer srv.Close()
	pusher := func(cfg *config.Config) *Pusher {
		p := newPusher(srv.URL, func() *config.Config { return cfg }, log)
		t.Cleanup(p.client.CloseIdleConnections)
		return p
	}

	// The primary pushes its services once; then the digests agree.
	p := pusher(primary)
	for range 2 {
		if err := p.round(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if target.count() != 1 || !bytes.Equal(target.applied[0], primary.ServicesDoc) {
		t.Fatalf("pushed %d documents, want the primary's once", target.count())
	}
	// The secondary never pushes to the primary.
	lower := nodeConfig(t, "lb0", 50, 1, secret)
	if err := pusher(lower).round(ctx); err != nil || target.count() != 1 {
		t.Errorf("a lower-priority node pushed: %v, %d documents", err, target.count())
	}
	// A push from it is refused even when sent.
	var res PushResult
	if code, err := pusher(lower).do(ctx, secret, "POST", ConfigPath, lower.ServicesDoc, &res); err != nil || code != http.StatusConflict {
		t.Errorf("push from a lower priority: %d %+v %v, want 409", code, res, err)
	}
	// A refused document: the problems come back, nothing is applied.
	changed := nodeConfig(t, "lb1", 150, 400, secret)
	target.mu.Lock()
	target.refuse = config.Errors{{File: "pushed.yaml", Line: 7, Msg: "api.listen: port clash"}}
	target.mu.Unlock()
	cp := pusher(changed)
	if err := cp.round(ctx); err != nil || target.count() != 1 || cp.status != "refused" {
		t.Errorf("refused push: %v, %d documents, status %q", err, target.count(), cp.status)
	}
	if code, err := cp.do(ctx, secret, "POST", ConfigPath, changed.ServicesDoc, &res); code != http.StatusUnprocessableEntity ||
		err != nil || len(res.Problems) != 1 || res.Problems[0] != "pushed.yaml:7: api.listen: port clash" {
		t.Errorf("refused push answer: %d %+v %v", code, res, err)
	}
	// A node still starting: retried soon (an error), not refused.
	target.mu.Lock()
	target.refuse = fmt.Errorf("apply: %w", ErrStarting)
	target.mu.Unlock()
	if err := cp.round(ctx); err == nil || !strings.Contains(err.Error(), "still starting") || target.count() != 1 {
		t.Errorf("push to a starting node: %v, %d documents", err, target.count())
	}
	// A peer with another secret is not trusted, and trusts nothing.
	if err := pusher(nodeConfig(t, "lb1", 150, 500, "another secret 0123456789")).round(ctx); err == nil || !strings.Contains(err.Error(), "not authenticated") {
		t.Errorf("other secret: %v", err)
	}

	// Started, the pusher pushes at once and after a Kick.
	target.mu.Lock()
	target.refuse = nil
	target.mu.Unlock()
	var mu sync.Mutex
	cur := changed
	sp := StartPusher(ctx, srv.URL, func() *config.Config { mu.Lock(); defer mu.Unlock(); return cur }, log)
	defer sp.Close()
	waitFor(t, "first push", func() bool { return target.count() == 2 })
	mu.Lock()
	cur = nodeConfig(t, "lb1", 150, 600, secret)
	mu.Unlock()
	sp.Kick()
	waitFor(t, "push after a kick", func() bool { return target.count() == 3 })
}

// countingReader counts the bytes read from it.
type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

// TestConfigHandlerReadsNothingUnauthenticated: a request whose headers do not
// authenticate it is refused before a byte of its body is read.
func TestConfigHandlerReadsNothingUnauthenticated(t *testing.T) {
	const secret = "pair secret 0123456789"
	target := &fakeTarget{cfg: nodeConfig(t, "lb2", 100, 100, secret)}
	h := ConfigHandler(target, "", zerolog.New(io.Discard))
	big := bytes.Repeat([]byte("x"), 8<<20)
	tests := []struct {
		name string
		sign func(r *http.Request)
		want int
	}{
		{"unsigned", func(r *http.Request) {}, http.StatusUnauthorized},
		{"wrong secret", func(r *http.Request) { signRequest(r, "other secret", time.Now().UnixNano(), big) }, http.StatusUnauthorized},
		{"signed too large", func(r *http.Request) { signRequest(r, secret, time.Now().UnixNano(), append(big, big...)) }, http.StatusRequestEntityTooLarge},
	}
	for _, tt := range tests {
		body := &countingReader{r: bytes.NewReader(big)}
		r := httptest.NewRequest("POST", ConfigPath, body)
		tt.sign(r)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != tt.want || body.n != 0 {
			t.Errorf("%s: %d after reading %d bytes of the body; want %d after none", tt.name, w.Code, body.n, tt.want)
		}
	}
}

// TestConfigHandlerReplayAfterRestart: the last request time taken survives a
// restart of the handler, so a recorded request cannot be played again.
func TestConfigHandlerReplayAfterRestart(t *testing.T) {
	const secret = "pair secret 0123456789"
	target := &fakeTarget{cfg: nodeConfig(t, "lb2", 100, 100, secret)}
	state := filepath.Join(t.TempDir(), "ha", "config-sync-time")
	ts := time.Now()
	for i, want := range []int{http.StatusOK, http.StatusUnauthorized} {
		h := ConfigHandler(target, state, zerolog.New(io.Discard)) // a new process each time
		w := httptest.NewRecorder()
		h.ServeHTTP(w, signed("GET", DigestPath, secret, ts, nil))
		if w.Code != want {
			t.Errorf("run %d: %d %s, want %d", i+1, w.Code, w.Body, want)
		}
	}
}
