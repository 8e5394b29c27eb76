package main

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"
)

// TestMain serves the simulated servers when the test binary is started as the child.
func TestMain(m *testing.M) {
	if n := os.Getenv(serveEnv); n != "" {
		if err := serve(n, os.Stdin, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestMeasure runs a small measurement of each check type: every target is checked about
// once per interval, every check passes, and both processes' CPU is seen.
func TestMeasure(t *testing.T) {
	// A generous timeout: the test must pass on a loaded machine.
	const targets, interval, timeout, window = 20, 500 * time.Millisecond, 2 * time.Second, 1500 * time.Millisecond
	srv, err := startServers(context.Background(), targets)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.close()
	for _, typ := range []string{"https-get", "http-get", "tcp-connect"} {
		r, err := measure(context.Background(), srv, Options{Type: typ, Interval: interval, Timeout: timeout, Duration: window})
		if err != nil {
			t.Fatal(err)
		}
		t.Log(r.Row())
		want := float64(targets) * r.Window.Seconds() / interval.Seconds()
		// Jitter (up to a tenth of the interval) makes it a little fewer; a loaded
		// machine fewer still.
		if got := float64(r.Checks); got < 0.6*want || got > 1.1*want+float64(targets) {
			t.Errorf("%s: %d checks in %s, want about %.0f", typ, r.Checks, r.Window, want)
		}
		if r.Failed > 0 {
			t.Errorf("%s: %d checks failed: %q", typ, r.Failed, r.FirstFailReasons)
		}
		if r.SelfCPU <= 0 {
			t.Errorf("%s: no CPU time measured for the checker", typ)
		}
		if typ != "tcp-connect" && r.ServersCPU <= 0 {
			t.Errorf("%s: no CPU time measured for the servers", typ)
		}
	}
}

func TestServeRejectsBadCount(t *testing.T) {
	for _, n := range []string{"0", "-3", "many"} {
		if err := serve(n, nil, nil); err == nil {
			t.Errorf("serve(%q) succeeded", n)
		}
	}
}
