package api

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/medialb/medialb/internal/logring"
	"github.com/medialb/medialb/internal/webuitest"
)

// TestBrowserPages opens Maintenance, View Configuration, Reports and Logs in
// Chromium: each loads without a page error and shows what its API answers;
// a restart asks for a confirming second click; a restore of an invalid backup
// lists its problems and changes nothing.
func TestBrowserPages(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test skipped in -short mode")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	f := newFake()
	text, _ := os.ReadFile("../examples/harmonic-vos.yaml")
	file := filepath.Join(t.TempDir(), "medialb.yaml")
	os.WriteFile(file, text, 0o640)
	ring := logring.New(100)
	log := zerolog.New(ring).With().Timestamp().Logger()
	s, err := New(Config{Listen: "127.0.0.1:0", StateDir: t.TempDir(), Users: testUsers(t), ConfigFile: file,
		Logs: ring, SampleEvery: 50 * time.Millisecond}, f, log)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	log.Warn().Str("server", "HT1").Msg("real server state")
	base := "https://" + s.Addr().String()
	c, ev := openUI(t, ctx)

	webuitest.Navigate(t, ctx, c, base+"/maintenance", "Maintenance", `document.body.dataset.ready === 'true'`)
	webuitest.Click(t, ctx, c, "#restart-l7")
	webuitest.WaitFor(t, ctx, c, "the confirmation", `document.getElementById('restart-l7').classList.contains('confirm')`)
	webuitest.Click(t, ctx, c, "#restart-l7")
	webuitest.WaitFor(t, ctx, c, "the restart's answer", `document.getElementById('toast').textContent.includes('listeners open again')`)
	webuitest.Click(t, ctx, c, "#reload")
	webuitest.Click(t, ctx, c, "#reload")
	webuitest.WaitFor(t, ctx, c, "the reload's answer", `document.getElementById('toast').textContent === 'Reloaded'`)
	if f.reloads != 1 {
		t.Errorf("Reload clicked twice (with its confirmation): %d reloads, want 1", f.reloads)
	}
	bad := filepath.Join(t.TempDir(), "bad.tar.gz")
	os.WriteFile(bad, mktar(map[string]string{backupConfig: strings.Replace(string(text), `ports: "8080,8443"`, `ports: "8443-8080"`, 1)}), 0o600)
	webuitest.Restore(t, ctx, c, bad)
	webuitest.WaitFor(t, ctx, c, "the backup's problem listed", `document.getElementById('restore-errors').textContent.includes('virtual_services[0].ports')`)
	if now, _ := os.ReadFile(file); string(now) != string(text) {
		t.Fatal("an invalid backup changed the file")
	}
	webuitest.Screenshot(t, ctx, c, "maintenance.png")

	webuitest.Navigate(t, ctx, c, base+"/reports", "Reports", `document.querySelectorAll('#charts svg polyline').length >= 3`)
	var charts []string
	c.Eval(ctx, `[...document.querySelectorAll('#charts section')].map(s => s.dataset.chart)`, &charts)
	if strings.Join(charts, ",") != "Connections,Packets/s,Bits/s,Health state" {
		t.Errorf("Reports shows charts %q", charts)
	}
	webuitest.Navigate(t, ctx, c, base+"/logs", "Logs", `document.querySelector('#logs tbody tr.lvl-warn') && document.querySelector('#logs tbody tr.lvl-warn').textContent.includes('server=HT1')`)
	log.Error().Msg("a line written while the page is open")
	webuitest.WaitFor(t, ctx, c, "the new line, followed live", `document.querySelector('#logs tbody').textContent.includes('while the page is open')`)
	webuitest.Navigate(t, ctx, c, base+"/view", "View Configuration", `document.getElementById('file').textContent.endsWith('medialb.yaml')`)
	ev.check(t, "status of 400 () "+base+"/api/v1/restore")
}
