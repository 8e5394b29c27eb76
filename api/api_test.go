package api

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/medialb/medialb/config"
)

func TestOverview(t *testing.T) {
	f := newFake()
	s := newTestServer(t, f, nil)
	w := serve(s, "GET", "/api/v1/overview", true)
	if w.Code != http.StatusOK {
		t.Fatalf("status %d, body %s", w.Code, w.Body)
	}
	// The contract's field names, read without this package's types.
	var raw struct {
		Node     string `json:"node"`
		Time     string `json:"time"`
		Services []map[string]any
	}
	if err := json.Unmarshal(w.Body.Bytes(), &raw); err != nil {
		t.Fatal(err)
	}
	if raw.Node != "lb1" || raw.Time != "2025-02-25T14:35:25Z" {
		t.Errorf("node %q time %q", raw.Node, raw.Time)
	}
	if len(raw.Services) != 2 {
		t.Fatalf("%d services, want 2", len(raw.Services))
	}
	for _, k := range []string{"name", "address", "ports", "layer", "protocol", "state", "connections", "real_servers"} {
		if _, ok := raw.Services[0][k]; !ok {
			t.Errorf("service lacks %q: %v", k, raw.Services[0])
		}
	}
	rs := raw.Services[1]["real_servers"].([]any)[0].(map[string]any)
	for _, k := range []string{"name", "address", "weight", "state", "health", "connections"} {
		if _, ok := rs[k]; !ok {
			t.Errorf("real server lacks %q: %v", k, rs)
		}
	}
	if raw.Services[0]["state"] != "online" || raw.Services[1]["ports"] != "1935,554,50000-65535" {
		t.Errorf("service 0 state %v, service 1 ports %v", raw.Services[0]["state"], raw.Services[1]["ports"])
	}
	if strings.Contains(w.Body.String(), `"ha"`) {
		t.Error("overview without HA has an \"ha\" field")
	}
	if cc := w.Header().Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control %q", cc)
	}

	f.mu.Lock()
	f.ov.HA = &HA{Role: "master", Peer: "192.168.94.3", PeerState: "backup"}
	f.mu.Unlock()
	var withHA struct {
		HA map[string]string `json:"ha"`
	}
	json.Unmarshal(serve(s, "GET", "/api/v1/overview", true).Body.Bytes(), &withHA)
	if withHA.HA["role"] != "master" || withHA.HA["peer"] != "192.168.94.3" || withHA.HA["peer_state"] != "backup" {
		t.Errorf("ha = %v", withHA.HA)
	}

	// The service state follows the servers when the source leaves it empty.
	f.setHealth("Harmonic_Traffic", "HT1", false, "connect: refused")
	var ov Overview
	json.Unmarshal(serve(s, "GET", "/api/v1/overview", true).Body.Bytes(), &ov)
	if got := ov.Services[1].State; got != ServiceDegraded {
		t.Errorf("one server down: service state %q, want degraded", got)
	}
	f.setHealth("Harmonic_Traffic", "HT2", false, "connect: refused")
	json.Unmarshal(serve(s, "GET", "/api/v1/overview", true).Body.Bytes(), &ov)
	if got := ov.Services[1].State; got != ServiceDown {
		t.Errorf("both servers down: service state %q, want down", got)
	}
}

func TestSetState(t *testing.T) {
	const base = "/api/v1/services/"
	tests := []struct {
		path       string
		want       int
		wantCall   *call
		wantState  string // effective state in the answer
		errContain string
	}{
		{base + "Harmonic_Management/real-servers/HM1/drain", 200, &call{"Harmonic_Management", "HM1", "drain"}, "drain", ""},
		{base + "Harmonic_Traffic/real-servers/HT2/halt", 200, &call{"Harmonic_Traffic", "HT2", "halt"}, "halt", ""},
		{base + "Harmonic_Traffic/real-servers/HT2/online", 200, &call{"Harmonic_Traffic", "HT2", "online"}, "online", ""},
		{base + "Nope/real-servers/HM1/drain", 404, nil, "", `virtual service "Nope"`},
		{base + "Harmonic_Management/real-servers/HX9/halt", 404, nil, "", `real server "HX9"`},
		{base + "Harmonic_Management/real-servers/HM1/pause", 404, nil, "", "no such page"},
	}
	for _, tt := range tests {
		t.Run(tt.path[len(base):], func(t *testing.T) {
			f := newFake()
			s := newTestServer(t, f, nil)
			w := serve(s, "POST", tt.path, true)
			if w.Code != tt.want {
				t.Fatalf("status %d, want %d; body %s", w.Code, tt.want, w.Body)
			}
			calls := f.Calls()
			if tt.wantCall == nil {
				if len(calls) != 0 {
					t.Errorf("calls %v, want none", calls)
				}
				if msg := jsonError(t, w); !strings.Contains(msg, tt.errContain) {
					t.Errorf("error %q does not contain %q", msg, tt.errContain)
				}
				return
			}
			if len(calls) != 1 || calls[0] != *tt.wantCall {
				t.Errorf("calls %v, want %v", calls, *tt.wantCall)
			}
			var res StateResult
			if err := json.Unmarshal(w.Body.Bytes(), &res); err != nil {
				t.Fatal(err)
			}
			if res.RealServer.State != tt.wantState || res.Requested != tt.wantCall.State {
				t.Errorf("answer %+v, want state %s", res, tt.wantState)
			}
		})
	}
}

func TestSetStateFailure(t *testing.T) {
	f := newFake()
	f.setErr = errors.New("compile snapshot: out of memory")
	s := newTestServer(t, f, nil)
	w := serve(s, "POST", "/api/v1/services/Harmonic_Management/real-servers/HM1/halt", true)
	if w.Code != http.StatusInternalServerError {
		t.Fatalf("status %d, want 500", w.Code)
	}
	if msg := jsonError(t, w); !strings.Contains(msg, "out of memory") {
		t.Errorf("error %q", msg)
	}
}

func TestReload(t *testing.T) {
	problems := config.Errors{
		{File: "/etc/medialb.yaml", Line: 12, Msg: "unknown key \"prots\" (did you mean \"ports\"?)"},
		{File: "/etc/medialb.yaml", Line: 30, Msg: "weight 70000 out of range 0..65535"},
	}
	tests := []struct {
		name     string
		err      error
		want     int
		problems []string
		restart  []string
		result   string
	}{
		{"ok", nil, 200, nil, nil, "reloaded"},
		{"restart needed", nil, 200, nil, []string{"node.queues", "node.state_dir"}, "reloaded; restart needed for: node.queues, node.state_dir"},
		{"invalid", fmt.Errorf("reload /etc/medialb.yaml refused, running configuration kept: %w", problems), 422, problems.Lines(), nil, ""},
		{"failed", errors.New("reload: node.interface changed"), 500, nil, nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake()
			f.reloadErr, f.restart = tt.err, tt.restart
			s := newTestServer(t, f, nil)
			w := serve(s, "POST", "/api/v1/reload", true)
			if w.Code != tt.want {
				t.Fatalf("status %d, want %d; body %s", w.Code, tt.want, w.Body)
			}
			if f.reloads != 1 {
				t.Errorf("%d reloads, want 1", f.reloads)
			}
			var res ReloadResult
			if err := json.Unmarshal(w.Body.Bytes(), &res); err != nil {
				t.Fatal(err)
			}
			if tt.err == nil {
				if res.Result != tt.result || res.Error != "" || !reflect.DeepEqual(res.RestartNeeded, tt.restart) {
					t.Errorf("answer %+v", res)
				}
				return
			}
			if !strings.Contains(res.Error, tt.err.Error()) {
				t.Errorf("error %q, want %q", res.Error, tt.err)
			}
			if !reflect.DeepEqual(res.Problems, tt.problems) {
				t.Errorf("problems %q, want %q", res.Problems, tt.problems)
			}
		})
	}
}

func TestRoutingErrors(t *testing.T) {
	tests := []struct {
		method, path string
		want         int
		allow        string
	}{
		{"POST", "/api/v1/overview", 405, "GET, HEAD"},
		{"DELETE", "/api/v1/overview", 405, "GET, HEAD"},
		{"GET", "/api/v1/services/Harmonic_Management/real-servers/HM1/drain", 405, "POST"},
		{"GET", "/api/v1/reload", 405, "POST"},
		{"POST", "/metrics", 405, "GET, HEAD"},
		{"GET", "/api/v1/nothing", 404, ""},
		{"GET", "/api/v2/overview", 404, ""},
		{"GET", "/ui/missing.js", 404, ""},
		{"GET", "/ui/index.html", 404, ""},
	}
	s := newTestServer(t, newFake(), nil)
	for _, tt := range tests {
		t.Run(tt.method+tt.path, func(t *testing.T) {
			w := serve(s, tt.method, tt.path, true)
			if w.Code != tt.want {
				t.Fatalf("status %d, want %d", w.Code, tt.want)
			}
			jsonError(t, w)
			if got := w.Header().Get("Allow"); got != tt.allow {
				t.Errorf("Allow %q, want %q", got, tt.allow)
			}
		})
	}
}

func TestWebUI(t *testing.T) {
	s := newTestServer(t, newFake(), nil)
	tests := []struct {
		path, contentType, contains string
	}{
		{"/", "text/html; charset=utf-8", "System Overview"},
		{"/ui/app.js", "text/javascript; charset=utf-8", "/api/v1/overview"},
		{"/ui/style.css", "text/css; charset=utf-8", "@media (max-width"},
		{"/ui/icon.svg", "image/svg+xml", "<svg"},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			w := serve(s, "GET", tt.path, true)
			if w.Code != 200 {
				t.Fatalf("status %d", w.Code)
			}
			if ct := w.Header().Get("Content-Type"); ct != tt.contentType {
				t.Errorf("Content-Type %q, want %q", ct, tt.contentType)
			}
			if !strings.Contains(w.Body.String(), tt.contains) {
				t.Errorf("body lacks %q", tt.contains)
			}
			if csp := w.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") {
				t.Errorf("CSP %q", csp)
			}
			// A second load with the ETag is answered 304.
			w2 := serve(s, "GET", tt.path, true, func(r *http.Request) { r.Header.Set("If-None-Match", w.Header().Get("ETag")) })
			if w2.Code != http.StatusNotModified {
				t.Errorf("revalidation: status %d, want 304", w2.Code)
			}
		})
	}
	// Nothing is loaded from elsewhere.
	for _, p := range []string{"/", "/ui/app.js", "/ui/style.css"} {
		body := serve(s, "GET", p, true).Body.String()
		for _, bad := range []string{"http://", "https://", "//cdn", "@import"} {
			if strings.Contains(body, bad) {
				t.Errorf("%s refers to %q", p, bad)
			}
		}
	}
}

func TestCrossOriginRefused(t *testing.T) {
	f := newFake()
	s := newTestServer(t, f, nil)
	w := serve(s, "POST", "/api/v1/services/Harmonic_Management/real-servers/HM1/halt", true,
		func(r *http.Request) { r.Header.Set("Sec-Fetch-Site", "cross-site") })
	if w.Code != http.StatusForbidden {
		t.Fatalf("cross-site POST: status %d, want 403", w.Code)
	}
	jsonError(t, w)
	if c := f.Calls(); len(c) != 0 {
		t.Errorf("cross-site POST applied: %v", c)
	}
	w = serve(s, "POST", "/api/v1/services/Harmonic_Management/real-servers/HM1/halt", true,
		func(r *http.Request) { r.Header.Set("Sec-Fetch-Site", "same-origin") })
	if w.Code != http.StatusOK {
		t.Fatalf("same-origin POST: status %d, want 200", w.Code)
	}
}

func TestNewRefuses(t *testing.T) {
	src := newFake()
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"no users", Config{Listen: "127.0.0.1:0"}, "no api.users"},
		{"bad hash", Config{Listen: "127.0.0.1:0", Users: []User{{Name: "a", PasswordHash: "secret"}}}, "not a bcrypt hash"},
		{"no name", Config{Listen: "127.0.0.1:0", Users: []User{{PasswordHash: testUsers(t)[0].PasswordHash}}}, "no name"},
		{"no listen", Config{Users: testUsers(t)}, "api.listen is empty"},
		{"cert without key", Config{Listen: "127.0.0.1:0", TLSCert: "/x.pem", Users: testUsers(t)}, "must be set together"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.StateDir = t.TempDir()
			_, err := New(tt.cfg, src, testLogger())
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New: %v, want an error with %q", err, tt.want)
			}
		})
	}
}

// TestStartTLS serves over a real listener and checks the certificate names the
// listen address: a client trusting only that certificate connects.
func TestStartTLS(t *testing.T) {
	s := newTestServer(t, newFake(), nil)
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	pool := x509.NewCertPool()
	pool.AddCert(s.Certificate().Leaf)
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	defer client.CloseIdleConnections()
	for _, host := range []string{"127.0.0.1", "localhost"} {
		_, port, _ := strings.Cut(s.Addr().String(), ":")
		req, _ := http.NewRequest("GET", "https://"+host+":"+port+"/api/v1/overview", nil)
		req.SetBasicAuth(testUser, testPass)
		res, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", host, err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if res.StatusCode != 200 {
			t.Errorf("%s: status %d", host, res.StatusCode)
		}
	}

	// A second server on the same address reports the listen error.
	s2, err := New(Config{Listen: s.Addr().String(), StateDir: t.TempDir(), Users: testUsers(t)}, newFake(), testLogger())
	if err != nil {
		t.Fatal(err)
	}
	if err := s2.Start(); err == nil {
		s2.Close()
		t.Fatal("second Start on a busy address succeeded")
	}
	if err := s.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
}
