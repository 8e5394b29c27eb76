package api

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/medialb/medialb/config/edit"
	"github.com/medialb/medialb/internal/cdp"
)

// openUI starts Chromium, logged in as the test user, with page errors collected.
func openUI(t *testing.T, ctx context.Context) (*cdp.Client, *browserEvents) {
	t.Helper()
	c := chromium(t, ctx)
	ev := &browserEvents{login: true}
	go ev.run(ctx, c)
	for _, m := range []string{"Page.enable", "Runtime.enable", "Log.enable"} {
		if err := c.Call(ctx, m, nil, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Call(ctx, "Fetch.enable", map[string]any{"handleAuthRequests": true, "patterns": []map[string]any{{"urlPattern": "*"}}}, nil); err != nil {
		t.Fatal(err)
	}
	if err := c.Call(ctx, "Emulation.setDeviceMetricsOverride", map[string]any{"width": 1280, "height": 900, "deviceScaleFactor": 1, "mobile": false}, nil); err != nil {
		t.Fatal(err)
	}
	return c, ev
}

func navigate(t *testing.T, ctx context.Context, c *cdp.Client, url, what, ready string) {
	t.Helper()
	if err := c.Call(ctx, "Page.navigate", map[string]any{"url": url}, nil); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitFor(ctx, what, ready, 20*time.Second); err != nil {
		t.Fatal(err)
	}
}

func fill(t *testing.T, ctx context.Context, c *cdp.Client, sel, text string) {
	t.Helper()
	if err := c.Fill(ctx, sel, text); err != nil {
		t.Fatal(err)
	}
}

func waitFor(t *testing.T, ctx context.Context, c *cdp.Client, what, expr string) {
	t.Helper()
	if err := c.WaitFor(ctx, what, expr, 10*time.Second); err != nil {
		t.Fatal(err)
	}
}

// check fails the test for every page error but those containing one of expected
// (the browser logs the 400 answers a test provokes on purpose).
func (b *browserEvents) check(t *testing.T, expected ...string) {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
next:
	for _, p := range b.problems {
		for _, e := range expected {
			if strings.Contains(p, e) {
				continue next
			}
		}
		t.Errorf("page error: %s", p)
	}
}

const emptyConfig = `# lb1: nothing to balance yet; the services come from the WebUI
node:
  name: lb1
  interface: eth0     # the VIP NIC
`

// TestBrowserCluster adds the guide's two virtual services to a file without any,
// through the Cluster Configuration page only: a wrong port range shows its
// problem next to the field and stages nothing; Apply writes the file and
// reloads; a health check's interval is then changed the same way.
func TestBrowserCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test skipped in -short mode")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	f := newFake()
	file := filepath.Join(t.TempDir(), "medialb.yaml")
	os.WriteFile(file, []byte(emptyConfig), 0o640)
	s, err := New(Config{Listen: "127.0.0.1:0", StateDir: t.TempDir(), Users: testUsers(t), ConfigFile: file}, f, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	base := "https://" + s.Addr().String()
	c, ev := openUI(t, ctx)
	out := testOutDir(t)

	navigate(t, ctx, c, base+"/cluster", "the Cluster Configuration page", `document.querySelectorAll('#l7 tbody, #l4 tbody').length === 2`)
	AddGuideServices(t, ctx, c)
	screenshot(t, ctx, c, filepath.Join(out, "cluster.png"))
	if now, _ := os.ReadFile(file); string(now) != emptyConfig || f.reloads != 0 {
		t.Fatal("staged changes reached the file before Apply")
	}
	ApplyInBrowser(t, ctx, c)
	text, _ := os.ReadFile(file)
	if p := edit.Check(file, text); p != nil || f.reloads != 1 {
		t.Fatalf("after Apply: problems %v, reloads %d\n%s", p, f.reloads, text)
	}
	svcs, _ := edit.Services(text)
	if len(svcs) != 2 || !strings.HasPrefix(string(text), emptyConfig) {
		t.Fatalf("the applied file has %d services or lost its first lines:\n%s", len(svcs), text)
	}

	EditInterval(t, ctx, c, "Harmonic_Management", "7s")
	ApplyInBrowser(t, ctx, c)
	text, _ = os.ReadFile(file)
	if !strings.Contains(string(text), "interval: 7s") || f.reloads != 2 {
		t.Fatalf("the new interval is not in the file (reloads %d):\n%s", f.reloads, text)
	}
	ev.check(t, "status of 400 () https://"+s.Addr().String()+"/api/v1/config/services")
}

// AddGuideServices adds the guide's VIP 1 and VIP 2 on the open Cluster
// Configuration page, passing on the way through a wrong port range whose
// problem must show next to the Ports field.
func AddGuideServices(t *testing.T, ctx context.Context, c *cdp.Client) {
	t.Helper()
	click(t, ctx, c, "#add7")
	waitFor(t, ctx, c, "the form with the guide's defaults", `document.querySelector('#form [data-path="ports"]').value === '8080,8443'`)
	fill(t, ctx, c, `#form [data-path="name"]`, "Harmonic_Management")
	fill(t, ctx, c, `#form [data-path="address"]`, "192.168.94.100")
	fill(t, ctx, c, `#form [data-path="real_servers[0].name"]`, "HM1")
	fill(t, ctx, c, `#form [data-path="real_servers[0].address"]`, "192.168.94.105")
	click(t, ctx, c, `#form button[data-do="add-row"]`)
	fill(t, ctx, c, `#form [data-path="real_servers[1].name"]`, "HM2")
	fill(t, ctx, c, `#form [data-path="real_servers[1].address"]`, "192.168.94.106")
	click(t, ctx, c, "#save")
	waitFor(t, ctx, c, "VIP 1 staged", `!document.getElementById('staged').hidden && !!document.querySelector('#l7 tr.svc[data-service="Harmonic_Management"]')`)

	click(t, ctx, c, "#add4")
	waitFor(t, ctx, c, "the layer-4 form", `document.querySelector('#form [data-path="ports"]').value === '1935,554,50000-65535'`)
	fill(t, ctx, c, `#form [data-path="name"]`, "Harmonic_Traffic")
	fill(t, ctx, c, `#form [data-path="address"]`, "192.168.94.110")
	fill(t, ctx, c, `#form [data-path="ports"]`, "1935,554,65535-50000")
	fill(t, ctx, c, `#form [data-path="real_servers[0].name"]`, "HT1")
	fill(t, ctx, c, `#form [data-path="real_servers[0].address"]`, "192.168.94.115")
	click(t, ctx, c, `#form button[data-do="add-row"]`)
	fill(t, ctx, c, `#form [data-path="real_servers[1].name"]`, "HT2")
	fill(t, ctx, c, `#form [data-path="real_servers[1].address"]`, "192.168.94.116")
	click(t, ctx, c, "#save")
	waitFor(t, ctx, c, "the port range's problem next to Ports",
		`document.querySelector('.field-error[data-for="ports"]').textContent.includes('65535-50000') && document.querySelector('#form [data-path="ports"]').getAttribute('aria-invalid') === 'true'`)
	var n int
	c.Eval(ctx, `document.querySelectorAll('#l4 tr.svc').length`, &n)
	if n != 0 {
		t.Fatal("the refused service shows in the list")
	}
	if d := os.Getenv("MEDIALB_TEST_OUT"); d != "" {
		screenshot(t, ctx, c, filepath.Join(d, "cluster-error.png"))
	}
	fill(t, ctx, c, `#form [data-path="ports"]`, "1935,554,50000-65535")
	click(t, ctx, c, "#save")
	waitFor(t, ctx, c, "VIP 2 staged", `!!document.querySelector('#l4 tr.svc[data-service="Harmonic_Traffic"]') && document.getElementById('editor').hidden`)
}

// ApplyInBrowser clicks Apply changes and waits for the staged banner to go.
func ApplyInBrowser(t *testing.T, ctx context.Context, c *cdp.Client) {
	t.Helper()
	click(t, ctx, c, "#apply")
	if err := c.WaitFor(ctx, "the changes applied", `document.getElementById('staged').hidden && document.getElementById('toast').textContent.startsWith('Applied')`, 30*time.Second); err != nil {
		var toast string
		c.Eval(ctx, `document.getElementById('toast').textContent`, &toast)
		t.Fatalf("%v (the page says %q)", err, toast)
	}
}

// EditInterval changes one service's health-check interval on the open page.
func EditInterval(t *testing.T, ctx context.Context, c *cdp.Client, service, interval string) {
	t.Helper()
	click(t, ctx, c, `tr.svc[data-service="`+service+`"] button[data-do="edit"]`)
	waitFor(t, ctx, c, "the form of "+service, `document.querySelector('#form [data-path="name"]').value === '`+service+`'`)
	fill(t, ctx, c, `#form [data-path="health_check.interval"]`, interval)
	click(t, ctx, c, "#save")
	waitFor(t, ctx, c, "the new interval staged", `!document.getElementById('staged').hidden && document.getElementById('editor').hidden`)
}
