package main

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestWaitHealthy: the wait ends when every real server is up, not before, and fails
// with the servers still down, or on a wrong password.
func TestWaitHealthy(t *testing.T) {
	var calls atomic.Int32
	upAfter := int32(3) // the third overview has HT2 up
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != "loadbalancer" || p != "secret" || r.URL.Path != "/api/v1/overview" {
			http.Error(w, "no", http.StatusUnauthorized)
			return
		}
		h := "down"
		if calls.Add(1) >= upAfter {
			h = "up"
		}
		fmt.Fprintf(w, `{"services":[{"name":"Media","real_servers":[{"name":"HT1","health":"up"},{"name":"HT2","health":%q}]}]}`, h)
	}))
	defer srv.Close()
	ctx := context.Background()
	if err := waitHealthy(ctx, srv.URL, "loadbalancer:secret", time.Minute); err != nil || calls.Load() != upAfter {
		t.Errorf("waitHealthy: %v after %d calls, want nil after %d", err, calls.Load(), upAfter)
	}
	calls.Store(0)
	upAfter = 1 << 30
	err := waitHealthy(ctx, srv.URL, "loadbalancer:secret", time.Second)
	if err == nil || !strings.Contains(err.Error(), "Media/HT2=down") {
		t.Errorf("waitHealthy with HT2 down: %v", err)
	}
	if err := waitHealthy(ctx, srv.URL, "loadbalancer:wrong", time.Second); err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("waitHealthy with a wrong password: %v", err)
	}
}
