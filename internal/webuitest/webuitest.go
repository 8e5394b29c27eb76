// Package webuitest drives the WebUI's pages in a browser (internal/cdp) the way a
// person does, for the api package's browser tests and the lab tests in e2e.
package webuitest

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/medialb/medialb/internal/cdp"
)

// Click presses the mouse on the element sel.
func Click(t testing.TB, ctx context.Context, c *cdp.Client, sel string) {
	t.Helper()
	if err := c.Click(ctx, sel); err != nil {
		t.Fatal(err)
	}
}

// Fill types text into the form field sel.
func Fill(t testing.TB, ctx context.Context, c *cdp.Client, sel, text string) {
	t.Helper()
	if err := c.Fill(ctx, sel, text); err != nil {
		t.Fatal(err)
	}
}

// WaitFor waits up to 15 s for the JavaScript expression expr to be true.
func WaitFor(t testing.TB, ctx context.Context, c *cdp.Client, what, expr string) {
	t.Helper()
	if err := c.WaitFor(ctx, what, expr, 15*time.Second); err != nil {
		var toast string
		c.Eval(ctx, `(document.getElementById('toast') || {}).textContent || ''`, &toast)
		t.Fatalf("%v (the page's last message: %q)", err, toast)
	}
}

// Navigate opens url and waits until ready is true.
func Navigate(t testing.TB, ctx context.Context, c *cdp.Client, url, what, ready string) {
	t.Helper()
	if err := c.Call(ctx, "Page.navigate", map[string]any{"url": url}, nil); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitFor(ctx, what, ready, 30*time.Second); err != nil {
		t.Fatal(err)
	}
}

// Screenshot saves the page as name under $MEDIALB_TEST_OUT; without it, nothing.
func Screenshot(t testing.TB, ctx context.Context, c *cdp.Client, name string) {
	t.Helper()
	dir := os.Getenv("MEDIALB_TEST_OUT")
	if dir == "" {
		return
	}
	png, err := c.Screenshot(ctx)
	if err != nil || len(png) < 1000 {
		t.Fatalf("screenshot: %d bytes, %v", len(png), err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", filepath.Join(dir, name))
}

// AddGuideServices adds the guide's VIP 1 and VIP 2 on the open Cluster
// Configuration page, passing on the way through a wrong port range whose
// problem must show next to the Ports field.
func AddGuideServices(t testing.TB, ctx context.Context, c *cdp.Client) {
	t.Helper()
	Click(t, ctx, c, "#add7")
	WaitFor(t, ctx, c, "the form with the guide's defaults", `document.querySelector('#form [data-path="ports"]').value === '8080,8443'`)
	Fill(t, ctx, c, `#form [data-path="name"]`, "Harmonic_Management")
	Fill(t, ctx, c, `#form [data-path="address"]`, "192.168.94.100")
	Fill(t, ctx, c, `#form [data-path="real_servers[0].name"]`, "HM1")
	Fill(t, ctx, c, `#form [data-path="real_servers[0].address"]`, "192.168.94.105")
	Click(t, ctx, c, `#form button[data-do="add-row"]`)
	Fill(t, ctx, c, `#form [data-path="real_servers[1].name"]`, "HM2")
	Fill(t, ctx, c, `#form [data-path="real_servers[1].address"]`, "192.168.94.106")
	Click(t, ctx, c, "#save")
	WaitFor(t, ctx, c, "VIP 1 staged", `!document.getElementById('staged').hidden && !!document.querySelector('#l7 tr.svc[data-service="Harmonic_Management"]')`)

	Click(t, ctx, c, "#add4")
	WaitFor(t, ctx, c, "the layer-4 form", `document.querySelector('#form [data-path="ports"]').value === '1935,554,50000-65535'`)
	Fill(t, ctx, c, `#form [data-path="name"]`, "Harmonic_Traffic")
	Fill(t, ctx, c, `#form [data-path="address"]`, "192.168.94.110")
	Fill(t, ctx, c, `#form [data-path="ports"]`, "1935,554,65535-50000")
	Fill(t, ctx, c, `#form [data-path="real_servers[0].name"]`, "HT1")
	Fill(t, ctx, c, `#form [data-path="real_servers[0].address"]`, "192.168.94.115")
	Click(t, ctx, c, `#form button[data-do="add-row"]`)
	Fill(t, ctx, c, `#form [data-path="real_servers[1].name"]`, "HT2")
	Fill(t, ctx, c, `#form [data-path="real_servers[1].address"]`, "192.168.94.116")
	Click(t, ctx, c, "#save")
	WaitFor(t, ctx, c, "the port range's problem next to Ports",
		`document.querySelector('.field-error[data-for="ports"]').textContent.includes('65535-50000') && document.querySelector('#form [data-path="ports"]').getAttribute('aria-invalid') === 'true'`)
	var n int
	c.Eval(ctx, `document.querySelectorAll('#l4 tr.svc').length`, &n)
	if n != 0 {
		t.Fatal("the refused service shows in the list")
	}
	Screenshot(t, ctx, c, "cluster-error.png")
	Fill(t, ctx, c, `#form [data-path="ports"]`, "1935,554,50000-65535")
	Click(t, ctx, c, "#save")
	WaitFor(t, ctx, c, "VIP 2 staged", `!!document.querySelector('#l4 tr.svc[data-service="Harmonic_Traffic"]') && document.getElementById('editor').hidden`)
}

// Apply clicks Apply changes and waits for the staged banner to go.
func Apply(t testing.TB, ctx context.Context, c *cdp.Client) {
	t.Helper()
	Click(t, ctx, c, "#apply")
	if err := c.WaitFor(ctx, "the changes applied", `document.getElementById('staged').hidden && document.getElementById('toast').textContent.startsWith('Applied')`, 30*time.Second); err != nil {
		var toast string
		c.Eval(ctx, `document.getElementById('toast').textContent`, &toast)
		t.Fatalf("%v (the page says %q)", err, toast)
	}
}

// EditInterval changes one service's health-check interval and timeout on the
// open page.
func EditInterval(t testing.TB, ctx context.Context, c *cdp.Client, service, interval, timeout string) {
	t.Helper()
	Click(t, ctx, c, `tr.svc[data-service="`+service+`"] button[data-do="edit"]`)
	WaitFor(t, ctx, c, "the form of "+service, `document.querySelector('#form [data-path="name"]').value === '`+service+`'`)
	Fill(t, ctx, c, `#form [data-path="health_check.interval"]`, interval)
	Fill(t, ctx, c, `#form [data-path="health_check.timeout"]`, timeout)
	Click(t, ctx, c, "#save")
	WaitFor(t, ctx, c, "the new interval staged", `!document.getElementById('staged').hidden && document.getElementById('editor').hidden`)
}

// Restore chooses the file path in Maintenance's Restore field and restores it
// (two clicks: the second confirms).
func Restore(t testing.TB, ctx context.Context, c *cdp.Client, path string) {
	t.Helper()
	var doc struct{ Root struct{ NodeID int64 } }
	if err := c.Call(ctx, "DOM.getDocument", nil, &doc); err != nil {
		t.Fatal(err)
	}
	var q struct{ NodeID int64 }
	if err := c.Call(ctx, "DOM.querySelector", map[string]any{"nodeId": doc.Root.NodeID, "selector": "#archive"}, &q); err != nil {
		t.Fatal(err)
	}
	if err := c.Call(ctx, "DOM.setFileInputFiles", map[string]any{"nodeId": q.NodeID, "files": []string{path}}, nil); err != nil {
		t.Fatal(err)
	}
	WaitFor(t, ctx, c, "the file chosen", `document.getElementById('archive').files.length === 1`)
	Click(t, ctx, c, "#restore")
	Click(t, ctx, c, "#restore")
}
