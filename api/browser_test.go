package api

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/medialb/medialb/internal/cdp"
)

// chromium starts a headless Chromium with remote debugging and returns a DevTools
// client attached to its page. Everything is stopped at the end of the test.
func chromium(t *testing.T, ctx context.Context) *cdp.Client {
	t.Helper()
	bin, ok := cdp.Find()
	if !ok {
		t.Skip("browser test skipped: chromium is not installed (apt-get install -y chromium)")
	}
	profile := t.TempDir()
	b, err := cdp.Launch(ctx, exec.Command(bin, cdp.Flags(profile)...), profile, nil, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b.Client
}

// browserEvents answers the Fetch domain's pauses and auth challenges (like a
// person at the login prompt) and collects page errors.
type browserEvents struct {
	mu         sync.Mutex
	login      bool // answer challenges with the test user; else cancel them
	challenges []string
	problems   []string
}

func (b *browserEvents) run(ctx context.Context, c *cdp.Client) {
	for m := range c.Events() {
		switch m.Method {
		case "Fetch.requestPaused":
			var p struct{ RequestID string }
			json.Unmarshal(m.Params, &p)
			go c.Call(ctx, "Fetch.continueRequest", map[string]any{"requestId": p.RequestID}, nil)
		case "Fetch.authRequired":
			var p struct {
				RequestID     string
				AuthChallenge struct{ Scheme, Realm string }
			}
			json.Unmarshal(m.Params, &p)
			b.mu.Lock()
			b.challenges = append(b.challenges, p.AuthChallenge.Scheme+" "+p.AuthChallenge.Realm)
			resp := map[string]any{"response": "CancelAuth"}
			if b.login {
				resp = map[string]any{"response": "ProvideCredentials", "username": testUser, "password": testPass}
			}
			b.mu.Unlock()
			go c.Call(ctx, "Fetch.continueWithAuth", map[string]any{"requestId": p.RequestID, "authChallengeResponse": resp}, nil)
		case "Runtime.exceptionThrown":
			b.add("exception: " + string(m.Params))
		case "Log.entryAdded":
			var p struct {
				Entry struct{ Level, Text, URL string }
			}
			json.Unmarshal(m.Params, &p)
			// The 401 page of the first, refused, visit has no icon link: the
			// browser asks for /favicon.ico and is refused, as it should be.
			if p.Entry.Level == "error" && !(strings.Contains(p.Entry.Text, "401") && strings.HasSuffix(p.Entry.URL, "/favicon.ico")) {
				b.add("log: " + p.Entry.Text + " " + p.Entry.URL)
			}
		}
	}
}

func (b *browserEvents) add(s string) {
	b.mu.Lock()
	b.problems = append(b.problems, s)
	b.mu.Unlock()
}

func (b *browserEvents) setLogin(v bool) {
	b.mu.Lock()
	b.login = v
	b.problems = nil
	b.mu.Unlock()
}

func testOutDir(t *testing.T) string {
	if d := os.Getenv("MEDIALB_TEST_OUT"); d != "" {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		return d
	}
	return t.TempDir()
}

func screenshot(t *testing.T, ctx context.Context, c *cdp.Client, path string) {
	t.Helper()
	png, err := c.Screenshot(ctx)
	if err != nil || len(png) < 1000 {
		t.Fatalf("screenshot: %d bytes, %v", len(png), err)
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", path)
}

// click presses the left mouse button on the centre of the element sel, as a user
// would (the element must be visible and on top).
func click(t *testing.T, ctx context.Context, c *cdp.Client, sel string) {
	t.Helper()
	if err := c.Click(ctx, sel); err != nil {
		t.Fatal(err)
	}
}

func button(service, server, action string) string {
	return fmt.Sprintf(`button[data-action=%q][data-service=%q][data-server=%q]`, action, service, server)
}

func rowState(service, server string) string {
	return fmt.Sprintf(`document.querySelector('tr.rs[data-service=%q][data-server=%q]').dataset.state`, service, server)
}

// TestBrowser drives the WebUI in headless Chromium: it must ask for a login, show
// both services and their servers, and drain (and halt, with its confirmation) a
// server by clicking its buttons; the change must reach the Source and the page.
func TestBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test skipped in -short mode")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	f := newFake()
	f.ov.HA = &HA{Role: "master", Peer: "192.168.94.3", PeerState: "backup"}
	hm := f.ov.Services[0].RealServers // HM1's agent says 10%; HM2 has a setup problem
	hm[0].Weight, hm[0].ConfiguredWeight, hm[0].Feedback = 10, 100, &Feedback{Percent: 10, Answer: "10%"}
	hm[1].ConfiguredWeight, hm[1].Problems = 100, []string{"VIP not configured on the real server (192.168.94.100): probe unanswered; fix: ..."}
	s := newTestServer(t, f, nil)
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	url := "https://" + s.Addr().String() + "/"

	c := chromium(t, ctx)
	ev := &browserEvents{}
	go ev.run(ctx, c)
	for _, m := range []string{"Page.enable", "Runtime.enable", "Log.enable"} {
		if err := c.Call(ctx, m, nil, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Call(ctx, "Fetch.enable", map[string]any{"handleAuthRequests": true, "patterns": []map[string]any{{"urlPattern": "*"}}}, nil); err != nil {
		t.Fatal(err)
	}

	// Without a login the browser gets the 401 answer and nothing else.
	if err := c.Call(ctx, "Page.navigate", map[string]any{"url": url}, nil); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitFor(ctx, "the 401 page", `document.body && document.body.innerText.includes('authentication required')`, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	ev.mu.Lock()
	if len(ev.challenges) == 0 || !strings.EqualFold(ev.challenges[0], "Basic medialb") {
		t.Errorf("auth challenges %q, want Basic medialb", ev.challenges)
	}
	ev.mu.Unlock()

	// Log in at the prompt.
	ev.setLogin(true)
	if err := c.Call(ctx, "Page.navigate", map[string]any{"url": url}, nil); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitFor(ctx, "the overview", `document.querySelectorAll('tr.rs').length === 4 && document.getElementById('stamp').textContent.endsWith('UTC')`, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	var cells [3]string
	if err := c.Eval(ctx, `[document.querySelector('tr.rs[data-server="HM1"] td.weight').textContent,
		document.querySelector('tr.rs[data-server="HM1"] td.weight').title,
		document.querySelector('tr.rs[data-server="HM2"] .reason').textContent]`, &cells); err != nil {
		t.Fatal(err)
	}
	if cells[0] != "10 / 100" || cells[1] != "Feedback agent: 10%" || cells[2] != "VIP not configured on the real server (192.168.94.100)" {
		t.Errorf("HM1 weight %q (title %q), HM2 reason %q: want the effective and configured weight, the agent's answer, the problem", cells[0], cells[1], cells[2])
	}
	var shown struct {
		Services []string
		Servers  [][3]string
		Stamp    string
		Node     string
		Live     string
		HA       string
	}
	err := c.Eval(ctx, `({
		services: [...document.querySelectorAll('tr.vs td.name')].map(e => e.textContent),
		servers: [...document.querySelectorAll('tr.rs')].map(r => [r.dataset.service, r.querySelector('td.name').textContent, r.querySelector('td.ip').textContent]),
		stamp: document.getElementById('stamp').textContent,
		node: document.getElementById('node').textContent,
		live: document.getElementById('live').dataset.live,
		ha: document.getElementById('ha').hidden ? '' : document.getElementById('ha').textContent,
	})`, &shown)
	if err != nil {
		t.Fatal(err)
	}
	wantServers := [][3]string{
		{"Harmonic_Management", "HM1", "192.168.94.105"}, {"Harmonic_Management", "HM2", "192.168.94.106"},
		{"Harmonic_Traffic", "HT1", "192.168.94.115"}, {"Harmonic_Traffic", "HT2", "192.168.94.116"},
	}
	if !slices.Equal(shown.Services, []string{"Harmonic_Management", "Harmonic_Traffic"}) || !slices.Equal(shown.Servers, wantServers) {
		t.Errorf("page shows services %q, servers %q", shown.Services, shown.Servers)
	}
	if shown.Stamp != "2025-02-25 14:35:25 UTC" || shown.Node != "lb1" || shown.Live != "ok" || shown.HA != "HA master" {
		t.Errorf("time stamp %q, node %q, live %q, HA %q", shown.Stamp, shown.Node, shown.Live, shown.HA)
	}

	// Drain HM1 with a click.
	click(t, ctx, c, button("Harmonic_Management", "HM1", "drain"))
	if err := c.WaitFor(ctx, "HM1 drained on the page", rowState("Harmonic_Management", "HM1")+` === 'drain' && document.querySelector('`+button("Harmonic_Management", "HM1", "drain")+`').classList.contains('current')`, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if got := f.Calls(); !slices.Equal(got, []call{{"Harmonic_Management", "HM1", "drain"}}) {
		t.Fatalf("source got %v, want one drain of HM1", got)
	}

	// Halt asks for a second click.
	click(t, ctx, c, button("Harmonic_Traffic", "HT2", "halt"))
	if err := c.WaitFor(ctx, "the halt confirmation", `document.querySelector('`+button("Harmonic_Traffic", "HT2", "halt")+`').textContent === 'Confirm'`, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if n := len(f.Calls()); n != 1 {
		t.Fatalf("one click on Halt already called the source: %v", f.Calls())
	}
	click(t, ctx, c, button("Harmonic_Traffic", "HT2", "halt"))
	if err := c.WaitFor(ctx, "HT2 halted on the page", rowState("Harmonic_Traffic", "HT2")+` === 'halt'`, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if got := f.Calls(); len(got) != 2 || got[1] != (call{"Harmonic_Traffic", "HT2", "halt"}) {
		t.Fatalf("source got %v, want a halt of HT2 second", got)
	}

	// Live updates: a failed health check shows without a reload of the page.
	f.setHealth("Harmonic_Traffic", "HT1", false, "https-get :8443/admin/status: connection refused")
	if err := c.WaitFor(ctx, "HT1 down on the page", rowState("Harmonic_Traffic", "HT1")+` === 'down'`, 7*time.Second); err != nil {
		t.Fatal(err)
	}
	var reason string
	c.Eval(ctx, `document.querySelector('tr.rs[data-server="HT1"] .reason').textContent`, &reason)
	if !strings.Contains(reason, "connection refused") {
		t.Errorf("HT1 shows reason %q", reason)
	}

	out := testOutDir(t)
	// Laptop widths show the table, and it fits.
	for _, width := range []int{1280, 1024} {
		err = c.Call(ctx, "Emulation.setDeviceMetricsOverride", map[string]any{"width": width, "height": 800, "deviceScaleFactor": 1, "mobile": false}, nil)
		if err != nil {
			t.Fatal(err)
		}
		var layout struct {
			Display       string
			Scroll, Inner int
		}
		c.Eval(ctx, `({display: getComputedStyle(document.getElementById('overview')).display, scroll: document.documentElement.scrollWidth, inner: window.innerWidth})`, &layout)
		if layout.Display != "table" || layout.Scroll > layout.Inner {
			t.Errorf("%d px: overview displayed as %q, page %d px wide in a %d px window", width, layout.Display, layout.Scroll, layout.Inner)
		}
		screenshot(t, ctx, c, filepath.Join(out, fmt.Sprintf("overview-%d.png", width)))
	}

	// On a phone the table becomes cards and nothing scrolls sideways.
	err = c.Call(ctx, "Emulation.setDeviceMetricsOverride", map[string]any{"width": 390, "height": 844, "deviceScaleFactor": 2, "mobile": true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.WaitFor(ctx, "the card layout", `getComputedStyle(document.querySelector('tr.rs')).display === 'grid' && document.querySelector('thead').offsetParent === null`, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	var widths struct{ Scroll, Inner int }
	c.Eval(ctx, `({scroll: document.documentElement.scrollWidth, inner: window.innerWidth})`, &widths)
	if widths.Scroll > widths.Inner {
		t.Errorf("phone: page is %d px wide in a %d px window", widths.Scroll, widths.Inner)
	}
	click(t, ctx, c, button("Harmonic_Traffic", "HT2", "online"))
	if err := c.WaitFor(ctx, "HT2 online again", rowState("Harmonic_Traffic", "HT2")+` === 'online'`, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	c.Eval(ctx, `window.scrollTo(0, 0), true`, nil)
	screenshot(t, ctx, c, filepath.Join(out, "overview-phone.png"))
	err = c.Call(ctx, "Emulation.setEmulatedMedia", map[string]any{"features": []map[string]string{{"name": "prefers-color-scheme", "value": "dark"}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	screenshot(t, ctx, c, filepath.Join(out, "overview-phone-dark.png"))

	ev.mu.Lock()
	defer ev.mu.Unlock()
	for _, p := range ev.problems {
		t.Errorf("page error: %s", p)
	}
}
