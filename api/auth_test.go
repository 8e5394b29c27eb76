package api

import (
	"bytes"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/crypto/bcrypt"
)

func testLogger() zerolog.Logger { return zerolog.Nop() }

func TestAuthRequired(t *testing.T) {
	s := newTestServer(t, newFake(), nil)
	tests := []struct {
		name string
		mod  func(*http.Request)
	}{
		{"no credentials", func(*http.Request) {}},
		{"wrong password", func(r *http.Request) { r.SetBasicAuth(testUser, "wrong") }},
		{"unknown user", func(r *http.Request) { r.SetBasicAuth("admin", testPass) }},
		{"empty password", func(r *http.Request) { r.SetBasicAuth(testUser, "") }},
		{"not basic", func(r *http.Request) { r.Header.Set("Authorization", "Bearer abc") }},
	}
	for _, tt := range tests {
		for _, path := range []string{"/api/v1/overview", "/metrics", "/", "/ui/app.js", "/no/such/page"} {
			t.Run(tt.name+path, func(t *testing.T) {
				w := serve(s, "GET", path, false, tt.mod, func(r *http.Request) { r.RemoteAddr = "198.51.100.1:4000" })
				if w.Code != http.StatusUnauthorized {
					t.Fatalf("status %d, want 401", w.Code)
				}
				if got := w.Header().Get("WWW-Authenticate"); !strings.HasPrefix(got, `Basic realm="medialb"`) {
					t.Errorf("WWW-Authenticate %q", got)
				}
				jsonError(t, w)
			})
		}
		// Each failure above counts against 198.51.100.1; start afresh.
		s.lim = newLimiter(loginBurst, loginInterval, testLogger())
	}
	// A POST without credentials changes nothing.
	f := newFake()
	s = newTestServer(t, f, nil)
	if w := serve(s, "POST", "/api/v1/services/Harmonic_Management/real-servers/HM1/halt", false); w.Code != 401 {
		t.Errorf("POST without credentials: %d", w.Code)
	}
	if c := f.Calls(); len(c) != 0 {
		t.Errorf("unauthenticated POST applied: %v", c)
	}
}

func TestAuthCacheOnlyRemembersGoodPasswords(t *testing.T) {
	a, err := newAuthenticator(testUsers(t))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	for i, tt := range []struct {
		user, pass string
		want       bool
	}{
		{testUser, testPass, true},
		{testUser, testPass, true}, // cached
		{testUser, testPass + "x", false},
		{testUser, "", false},
		{"other", testPass, false},
		{testUser + "\x00", testPass, false},
	} {
		if got := a.check(tt.user, tt.pass, now); got != tt.want {
			t.Errorf("%d: check(%q, %q) = %v, want %v", i, tt.user, tt.pass, got, tt.want)
		}
	}
	if !a.check(testUser, testPass, now.Add(goodTTL+time.Second)) {
		t.Error("good password refused after the cache entry expired")
	}
}

// TestAuthTiming checks that an unknown user costs as much as a wrong password: both
// run one bcrypt comparison of the same cost.
func TestAuthTiming(t *testing.T) {
	if testing.Short() {
		t.Skip("timing test skipped in -short mode")
	}
	const cost = 8
	h, err := bcrypt.GenerateFromPassword([]byte(testPass), cost)
	if err != nil {
		t.Fatal(err)
	}
	a, err := newAuthenticator([]User{{Name: testUser, PasswordHash: string(h)}})
	if err != nil {
		t.Fatal(err)
	}
	if c, _ := bcrypt.Cost(a.dummy); c != cost {
		t.Fatalf("dummy hash cost %d, want %d", c, cost)
	}
	measure := func(user, pass string) time.Duration {
		var ds []time.Duration
		for range 7 {
			start := time.Now()
			if a.check(user, pass, start) {
				t.Fatalf("check(%q, %q) succeeded", user, pass)
			}
			ds = append(ds, time.Since(start))
		}
		slices.Sort(ds)
		return ds[len(ds)/2]
	}
	wrongPass := measure(testUser, "wrong password")
	unknownUser := measure("nobody", "wrong password")
	ratio := float64(unknownUser) / float64(wrongPass)
	t.Logf("median: wrong password %v, unknown user %v (ratio %.2f)", wrongPass, unknownUser, ratio)
	if ratio < 0.4 || ratio > 2.5 {
		t.Errorf("unknown user takes %v, wrong password %v: ratio %.2f, want about 1", unknownUser, wrongPass, ratio)
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func TestLoginRateLimit(t *testing.T) {
	var logs syncBuffer
	s := newTestServer(t, newFake(), &logs)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s.now = func() time.Time { return now }
	from := func(addr string) func(*http.Request) {
		return func(r *http.Request) { r.RemoteAddr = addr }
	}
	wrong := func(r *http.Request) { r.SetBasicAuth(testUser, "guess") }
	get := func(addr string, auth func(*http.Request)) int {
		return serve(s, "GET", "/api/v1/overview", false, auth, from(addr)).Code
	}
	good := func(r *http.Request) { r.SetBasicAuth(testUser, testPass) }
	const attacker = "203.0.113.9:5555"

	for i := range loginBurst {
		if c := get(attacker, wrong); c != 401 {
			t.Fatalf("failure %d: status %d, want 401", i+1, c)
		}
	}
	for i := range 20 {
		w := serve(s, "GET", "/api/v1/overview", false, wrong, from(attacker))
		if w.Code != http.StatusTooManyRequests {
			t.Fatalf("attempt %d after the burst: status %d, want 429", i, w.Code)
		}
		if w.Header().Get("Retry-After") == "" {
			t.Error("429 without Retry-After")
		}
	}
	// Refused before the password is looked at, even a right one.
	if c := get(attacker, good); c != 429 {
		t.Errorf("right password from a limited address: %d, want 429", c)
	}
	// Other addresses are not affected; another port of the same address is.
	if c := get("203.0.113.10:5555", good); c != 200 {
		t.Errorf("other address: %d, want 200", c)
	}
	if c := get("203.0.113.9:6000", good); c != 429 {
		t.Errorf("same address, other port: %d, want 429", c)
	}
	// One attempt per second.
	now = now.Add(loginInterval)
	if c := get(attacker, wrong); c != 401 {
		t.Errorf("after one interval: %d, want 401", c)
	}
	if c := get(attacker, wrong); c != 429 {
		t.Errorf("second attempt in the same interval: %d, want 429", c)
	}
	now = now.Add(loginInterval)
	if c := get(attacker, good); c != 200 {
		t.Errorf("right password after one interval: %d, want 200", c)
	}
	// IPv6 sources are limited per /64.
	for range loginBurst {
		get("[2001:db8:1:2::1]:4000", wrong)
	}
	if c := get("[2001:db8:1:2::ffff]:4000", good); c != 429 {
		t.Errorf("same /64: %d, want 429", c)
	}
	if c := get("[2001:db8:1:3::1]:4000", good); c != 200 {
		t.Errorf("other /64: %d, want 200", c)
	}

	// Logged once per burst, not per request.
	out := logs.String()
	if n := strings.Count(out, "too many failed logins"); n != 2 { // the IPv4 and the IPv6 source
		t.Errorf("rate-limit logged %d times, want 2:\n%s", n, out)
	}
	if n := strings.Count(out, `"source":"203.0.113.9","user":"loadbalancer","message":"API: failed login`); n != 1 {
		t.Errorf("failed login from 203.0.113.9 logged %d times, want 1:\n%s", n, out)
	}

	// After a quiet period the bucket is full again and a new burst is logged.
	now = now.Add(10 * loginInterval)
	for range loginBurst {
		if c := get(attacker, wrong); c != 401 {
			t.Fatalf("new burst: %d, want 401", c)
		}
	}
	if n := strings.Count(logs.String(), `"source":"203.0.113.9","user":"loadbalancer","message":"API: failed login`); n != 2 {
		t.Errorf("second burst: failed login logged %d times in all, want 2", n)
	}
}

func TestLimiterBounded(t *testing.T) {
	l := newLimiter(loginBurst, loginInterval, testLogger())
	now := time.Now()
	for i := range maxSources + 100 {
		l.fail(netipFrom4(uint32(i)), "x", now)
	}
	if n := len(l.sources); n > maxSources {
		t.Errorf("%d sources kept, want at most %d", n, maxSources)
	}
}

func netipFrom4(i uint32) netip.Addr {
	return netip.AddrFrom4([4]byte{byte(i >> 24), byte(i >> 16), byte(i >> 8), byte(i)})
}
