package api

import (
	"io"
	"net/http"
	"testing"

	"github.com/rs/zerolog"
)

// TestPeerHandler checks that Config.Peer serves every path under PeerPrefix
// without user authentication (it authenticates requests itself), and that
// nothing else escapes the users' authentication.
func TestPeerHandler(t *testing.T) {
	var got []string
	peer := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = append(got, r.Method+" "+r.URL.Path)
		w.WriteHeader(http.StatusTeapot)
	})
	s, err := New(Config{Listen: "127.0.0.1:0", StateDir: t.TempDir(), Users: testUsers(t), Peer: peer}, newFake(), zerolog.New(io.Discard))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		method, path string
		auth         bool
		want         int
		toPeer       bool
	}{
		{"GET", "/api/v1/ha/config-digest", false, http.StatusTeapot, true},
		{"POST", "/api/v1/ha/config", false, http.StatusTeapot, true},
		{"POST", "/api/v1/ha/config", true, http.StatusTeapot, true},
		{"GET", "/api/v1/ha/../overview", false, http.StatusTeapot, true}, // the peer handler's own 404, never the overview
		{"GET", "/api/v1/overview", false, http.StatusUnauthorized, false},
		{"GET", "/api/v1/overview", true, http.StatusOK, false},
		{"GET", "/api/v1/hax", false, http.StatusUnauthorized, false},
		{"POST", "/api/v1/reload", false, http.StatusUnauthorized, false},
	}
	for _, tt := range tests {
		got = nil
		w := serve(s, tt.method, tt.path, tt.auth)
		if w.Code != tt.want || (len(got) == 1) != tt.toPeer {
			t.Errorf("%s %s (auth %v): %d, peer saw %v; want %d, to the peer %v", tt.method, tt.path, tt.auth, w.Code, got, tt.want, tt.toPeer)
		}
	}

	// Without Peer, the prefix is an ordinary authenticated path.
	plain := newTestServer(t, newFake(), nil)
	if w := serve(plain, "GET", "/api/v1/ha/config-digest", false); w.Code != http.StatusUnauthorized {
		t.Errorf("without Peer: %d, want 401", w.Code)
	}
}

// TestPeerRateLimit: requests the peer's handler refuses (401) count as failed
// logins; past the burst their source is answered 429 without reaching it.
func TestPeerRateLimit(t *testing.T) {
	calls := 0
	peer := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls++
		w.WriteHeader(http.StatusUnauthorized)
	})
	s, err := New(Config{Listen: "127.0.0.1:0", StateDir: t.TempDir(), Users: testUsers(t), Peer: peer}, newFake(), zerolog.New(io.Discard))
	if err != nil {
		t.Fatal(err)
	}
	for i := range loginBurst + 3 {
		w := serve(s, "POST", "/api/v1/ha/config", false)
		want := http.StatusUnauthorized
		if i >= loginBurst {
			want = http.StatusTooManyRequests
		}
		if w.Code != want {
			t.Errorf("request %d: %d, want %d", i+1, w.Code, want)
		}
	}
	if calls != loginBurst {
		t.Errorf("the peer handler saw %d requests, want %d", calls, loginBurst)
	}
}
