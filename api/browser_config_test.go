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
	"github.com/medialb/medialb/internal/webuitest"
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

	webuitest.Navigate(t, ctx, c, base+"/cluster", "the Cluster Configuration page", `document.querySelectorAll('#l7 tbody, #l4 tbody').length === 2`)
	webuitest.AddGuideServices(t, ctx, c)
	webuitest.Screenshot(t, ctx, c, "cluster.png")
	if now, _ := os.ReadFile(file); string(now) != emptyConfig || f.reloads != 0 {
		t.Fatal("staged changes reached the file before Apply")
	}
	webuitest.Apply(t, ctx, c)
	text, _ := os.ReadFile(file)
	if p := edit.Check(file, text); p != nil || f.reloads != 1 {
		t.Fatalf("after Apply: problems %v, reloads %d\n%s", p, f.reloads, text)
	}
	svcs, _ := edit.Services(text)
	if len(svcs) != 2 || !strings.HasPrefix(string(text), emptyConfig) {
		t.Fatalf("the applied file has %d services or lost its first lines:\n%s", len(svcs), text)
	}

	webuitest.EditInterval(t, ctx, c, "Harmonic_Management", "7s", "2s")
	webuitest.Apply(t, ctx, c)
	text, _ = os.ReadFile(file)
	if !strings.Contains(string(text), "interval: 7s") || f.reloads != 2 {
		t.Fatalf("the new interval is not in the file (reloads %d):\n%s", f.reloads, text)
	}
	// A real server through its own form (the real-servers endpoints): added,
	// then its weight changed.
	webuitest.Click(t, ctx, c, `tr.svc[data-service="Harmonic_Traffic"] button[data-do="add-rs"]`)
	webuitest.WaitFor(t, ctx, c, "the real server form", `document.getElementById('editor-title').textContent.startsWith('Add a Real Server to Harmonic_Traffic')`)
	webuitest.Fill(t, ctx, c, `#form [data-path="name"]`, "HT3")
	webuitest.Fill(t, ctx, c, `#form [data-path="address"]`, "192.168.94.117")
	webuitest.Fill(t, ctx, c, `#form [data-path="weight"]`, "50")
	webuitest.Click(t, ctx, c, "#save")
	webuitest.WaitFor(t, ctx, c, "HT3 staged", `!!document.querySelector('tr.sub[data-server="HT3"]')`)
	webuitest.Click(t, ctx, c, `tr.sub[data-server="HT3"] button[data-do="edit-rs"]`)
	webuitest.WaitFor(t, ctx, c, "HT3's form", `document.querySelector('#form [data-path="weight"]').value === '50'`)
	webuitest.Fill(t, ctx, c, `#form [data-path="weight"]`, "70000")
	webuitest.Click(t, ctx, c, "#save")
	webuitest.WaitFor(t, ctx, c, "the weight's problem next to it", `document.querySelector('#form .field-error[data-for="weight"]').textContent !== ''`)
	webuitest.Fill(t, ctx, c, `#form [data-path="weight"]`, "0")
	webuitest.Click(t, ctx, c, "#save")
	webuitest.WaitFor(t, ctx, c, "HT3's weight staged", `document.querySelector('tr.sub[data-server="HT3"]').textContent.includes('weight 0')`)
	webuitest.Apply(t, ctx, c)
	text, _ = os.ReadFile(file)
	if !strings.Contains(string(text), "name: HT3") || !strings.Contains(string(text), "weight: 0") {
		t.Fatalf("HT3 is not in the file with weight 0:\n%s", text)
	}

	// The less used fields: a layer-7 option and a boolean.
	webuitest.Click(t, ctx, c, `tr.svc[data-service="Harmonic_Management"] button[data-do="edit"]`)
	webuitest.WaitFor(t, ctx, c, "the form", `document.querySelector('#form [data-path="name"]').value === 'Harmonic_Management'`)
	webuitest.Fill(t, ctx, c, `#form [data-path="proxy_protocol"]`, "v2")
	webuitest.Fill(t, ctx, c, `#form [data-path="health_check.tls_verify"]`, "true")
	webuitest.Fill(t, ctx, c, `#form [data-path="connect_timeout"]`, "2s")
	webuitest.Click(t, ctx, c, "#save")
	webuitest.WaitFor(t, ctx, c, "the options staged", `!document.getElementById('staged').hidden && document.getElementById('editor').hidden`)
	webuitest.Apply(t, ctx, c)
	text, _ = os.ReadFile(file)
	for _, want := range []string{"    proxy_protocol: v2\n", "      tls_verify: true\n", "    connect_timeout: 2s\n"} {
		if !strings.Contains(string(text), want) {
			t.Errorf("the file lacks %q:\n%s", want, text)
		}
	}

	// Alerts, in the same page: a server without a port is refused next to
	// its field; a good one is staged and applied like the services.
	webuitest.Fill(t, ctx, c, `#alerts-form [data-path="email.server"]`, "mx.example.com")
	webuitest.Fill(t, ctx, c, `#alerts-form [data-path="email.from"]`, "lb1@example.com")
	webuitest.Fill(t, ctx, c, `#alerts-form [data-path="email.to"]`, "ops@example.com, noc@example.com")
	webuitest.Fill(t, ctx, c, `#alerts-form [data-path="syslog.address"]`, "192.0.2.50:514")
	webuitest.Click(t, ctx, c, "#alerts-save")
	webuitest.WaitFor(t, ctx, c, "the server's problem next to its field", `document.querySelector('#alerts-form .field-error[data-for="email.server"]').textContent.includes('host:port')`)
	webuitest.Fill(t, ctx, c, `#alerts-form [data-path="email.server"]`, "mx.example.com:587")
	webuitest.Click(t, ctx, c, "#alerts-save")
	webuitest.WaitFor(t, ctx, c, "the alerts staged", `!document.getElementById('staged').hidden`)
	webuitest.Apply(t, ctx, c)
	text, _ = os.ReadFile(file)
	if !strings.Contains(string(text), "alerts:\n  email:\n    server: mx.example.com:587\n    from: lb1@example.com\n    to:\n      - ops@example.com\n      - noc@example.com\n    batch: 30s\n  syslog:\n    address: 192.0.2.50:514\n    protocol: udp\n    facility: 3\n") {
		t.Fatalf("the alerts are not in the file as set:\n%s", text)
	}
	ev.check(t, "status of 400 () https://"+s.Addr().String()+"/api/v1/config/")
}
