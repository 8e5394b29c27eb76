package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/crypto/bcrypt"

	"github.com/medialb/medialb/control"
)

const (
	testUser = "loadbalancer"
	testPass = "correct horse battery staple"
)

// call is one SetState the fake received.
type call struct{ Service, Server, State string }

// fakeSource is a node with the guide's two services. It records SetState calls
// and applies them the way the control plane does (halt > down > drain > online).
type fakeSource struct {
	mu        sync.Mutex
	ov        Overview
	calls     []call
	setErr    error    // returned by SetState instead of applying, when set
	restart   []string // returned by Reload
	reloadErr error
	reloads   int
	metrics   Metrics
}

func newFake() *fakeSource {
	f := &fakeSource{ov: Overview{
		Node: "lb1",
		Time: time.Date(2025, 2, 25, 14, 35, 25, 0, time.UTC),
		Services: []Service{
			{
				Name: "Harmonic_Management", Address: "192.168.94.100", Ports: "8080,8443", Layer: 7,
				Protocol: "tcp", Forwarding: "proxy", Persistence: "source-ip 30m0s",
				Connections: 3, ActiveClients: 2, Bytes: 123456,
				RealServers: []RealServer{
					{Name: "HM1", Address: "192.168.94.105", Weight: 100, State: "online", Admin: "online", Health: "up",
						HealthReason: "https-get :8443/admin/status: Healthy", HealthCheckSeconds: 0.012, Connections: 2, ActiveClients: 1, Bytes: 100000},
					{Name: "HM2", Address: "192.168.94.106", Weight: 100, State: "online", Admin: "online", Health: "up",
						HealthCheckSeconds: 0.015, Connections: 1, ActiveClients: 1, Bytes: 23456},
				},
			},
			{
				Name: "Harmonic_Traffic", Address: "192.168.94.110", Ports: "1935,554,50000-65535", Layer: 4,
				Protocol: "tcp+udp", Forwarding: "direct-routing", Persistence: "source-ip 5m0s",
				ActiveClients: 7, Packets: 9000, Bytes: 9000000, PersistEvictions: 12, PersistRefused: 345, Panic: true, Panics: 2,
				RealServers: []RealServer{
					{Name: "HT1", Address: "192.168.94.115", Weight: 100, State: "online", Admin: "online", Health: "up",
						ActiveClients: 4, Packets: 5000, Bytes: 5000000},
					{Name: "HT2", Address: "192.168.94.116", Weight: 100, State: "online", Admin: "online", Health: "up",
						ActiveClients: 3, Packets: 4000, Bytes: 4000000},
				},
			},
		},
	}}
	f.metrics = Metrics{
		Forwarded:         9000,
		Drops:             map[string]uint64{"no_service": 12, "malformed_ipv4": 1},
		FastPathDecisions: map[string]uint64{"recorded": 40, "refused_full": 3, "expired": 7},
		Reloads:           3, ReloadFailures: 1, LastReloadFailed: true,
		LastReloadSuccess: time.Unix(1740494125, 0),
		HealthLocalErrors: 7,
		L7Refused:         map[string]map[string]uint64{"Harmonic_Management": {"max_connections": 2, "max_connections_per_source": 5}},
	}
	return f
}

func (f *fakeSource) Overview() Overview {
	f.mu.Lock()
	defer f.mu.Unlock()
	ov := f.ov
	ov.Services = make([]Service, len(f.ov.Services))
	for i, s := range f.ov.Services {
		s.RealServers = append([]RealServer(nil), s.RealServers...)
		ov.Services[i] = s
	}
	return ov
}

func (f *fakeSource) server(service, server string) (*RealServer, error) {
	for i := range f.ov.Services {
		svc := &f.ov.Services[i]
		if svc.Name != service {
			continue
		}
		for j := range svc.RealServers {
			if svc.RealServers[j].Name == server {
				return &svc.RealServers[j], nil
			}
		}
		return nil, fmt.Errorf("real server %q of %q: %w", server, service, control.ErrUnknown)
	}
	return nil, fmt.Errorf("virtual service %q: %w", service, control.ErrUnknown)
}

func (f *fakeSource) SetState(service, server, state string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.setErr != nil {
		return f.setErr
	}
	rs, err := f.server(service, server)
	if err != nil {
		return err
	}
	f.calls = append(f.calls, call{service, server, state})
	rs.Admin = state
	f.effective(rs)
	return nil
}

func (f *fakeSource) effective(rs *RealServer) {
	switch {
	case rs.Admin == "halt":
		rs.State = "halt"
	case rs.Health == "down":
		rs.State = "down"
	default:
		rs.State = rs.Admin
	}
}

// setHealth changes a server's health as a health check would.
func (f *fakeSource) setHealth(service, server string, up bool, reason string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	rs, err := f.server(service, server)
	if err != nil {
		panic(err)
	}
	rs.Health, rs.HealthReason = "down", reason
	if up {
		rs.Health = "up"
	}
	f.effective(rs)
}

func (f *fakeSource) Reload() ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reloads++
	return f.restart, f.reloadErr
}

func (f *fakeSource) Metrics() Metrics {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.metrics
}

func (f *fakeSource) Calls() []call {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]call(nil), f.calls...)
}

var (
	hashOnce sync.Once
	testHash string
)

// testUsers has one user with a cheap hash (tests check many logins).
func testUsers(t testing.TB) []User {
	hashOnce.Do(func() {
		h, err := bcrypt.GenerateFromPassword([]byte(testPass), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		testHash = string(h)
	})
	return []User{{Name: testUser, PasswordHash: testHash}}
}

// newTestServer builds a server on 127.0.0.1:0 with a state directory of its own.
// logs receives its log lines when not nil.
func newTestServer(t testing.TB, src Source, logs io.Writer) *Server {
	t.Helper()
	if logs == nil {
		logs = io.Discard
	}
	s, err := New(Config{Listen: "127.0.0.1:0", StateDir: t.TempDir(), Users: testUsers(t)}, src, zerolog.New(logs))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return s
}

// serve runs one request through the server's handler.
func serve(s *Server, method, path string, auth bool, mod ...func(*http.Request)) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, path, nil)
	if auth {
		r.SetBasicAuth(testUser, testPass)
	}
	for _, m := range mod {
		m(r)
	}
	w := httptest.NewRecorder()
	s.Handler().ServeHTTP(w, r)
	return w
}

// jsonError decodes {"error": "..."} and fails when the body is not that.
func jsonError(t *testing.T, w *httptest.ResponseRecorder) string {
	t.Helper()
	if ct := w.Header().Get("Content-Type"); ct != "application/json; charset=utf-8" {
		t.Errorf("Content-Type = %q, want JSON", ct)
	}
	var e struct {
		Error string `json:"error"`
	}
	dec := json.NewDecoder(bytes.NewReader(w.Body.Bytes()))
	if err := dec.Decode(&e); err != nil || e.Error == "" {
		t.Errorf("body %q is not a JSON error: %v", w.Body.String(), err)
	}
	return e.Error
}
