package api

import (
	"context"
	"testing"
	"time"
)

// The System Overview shows the node's BGP state and drains and brings back the
// node with its button.
func TestBrowserNodeDrain(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test skipped in -short mode")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	f := newBGPFake()
	s := newTestServer(t, f, nil)
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	c, _ := openUI(t, ctx)
	if err := c.Call(ctx, "Page.navigate", map[string]any{"url": "https://" + s.Addr().String() + "/"}, nil); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitFor(ctx, "the BGP badge", `document.getElementById('bgp').textContent === 'BGP active · 1/2 sessions · 2 routes'`, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	var title string
	if err := c.Eval(ctx, `document.getElementById('bgp').title`, &title); err != nil {
		t.Fatal(err)
	}
	if want := "peer 192.168.94.1 (AS 65000): established\npeer 192.168.94.254 (AS 65000): active\nannounced: 192.168.94.100/32, 192.168.94.110/32"; title != want {
		t.Errorf("badge title %q, want %q", title, want)
	}
	click(t, ctx, c, "#nodeact")
	if err := c.WaitFor(ctx, "the node drained", `document.getElementById('bgp').textContent.startsWith('BGP drain') && document.getElementById('nodeact').textContent === 'Node online'`, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	click(t, ctx, c, "#nodeact")
	if err := c.WaitFor(ctx, "the node online", `document.getElementById('bgp').textContent.startsWith('BGP active')`, 20*time.Second); err != nil {
		t.Fatal(err)
	}
}
