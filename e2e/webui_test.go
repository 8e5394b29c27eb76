package e2e

// Issue 17 from outside: the WebUI's Cluster Configuration, Logs and View
// Configuration pages in Chromium (in the client namespace) against a real
// medialb that starts without any virtual service.

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/medialb/medialb/api"
	"github.com/medialb/medialb/config/edit"
	"github.com/medialb/medialb/internal/cdp"
	"github.com/medialb/medialb/internal/webuitest"
	"github.com/medialb/medialb/lab"
	"github.com/medialb/medialb/lab/alertsink"
	"github.com/medialb/medialb/lab/probe"
)

// TestWebUIConfiguresTheGuide adds the guide's two VIPs to an empty
// configuration through the WebUI only (a wrong port range on the way shows its
// problem next to the field and changes nothing), applies, and sends traffic
// through both; then shortens a health check's interval in the WebUI and sees
// it in force (a failing server goes down in a fraction of the old interval x
// fall), sees that state change on the Logs page, and the file on disk against
// what runs on View Configuration.
func TestWebUIConfiguresTheGuide(t *testing.T) {
	if _, ok := cdp.Find(); !ok {
		t.Skip("browser test skipped: chromium is not installed (apt-get install -y chromium)")
	}
	e := newEnv(t, "wu", lab.Options{})
	l := e.lab
	mail, syslog := alertSinks(t, l)
	e.start(nodeSection + apiSection + fmt.Sprintf(alertsSection, l.Client.Addr4, l.Client.Addr4))
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	c, pp := labChromium(t, ctx, l)
	base := "https://" + l.LBs[0].Addr4.String() + ":9443"

	webuitest.Navigate(t, ctx, c, base+"/cluster", "the Cluster Configuration page", `document.querySelectorAll('#l7 tbody, #l4 tbody').length === 2`)
	before, _ := os.ReadFile(e.cfg)
	webuitest.AddGuideServices(t, ctx, c)
	if now, _ := os.ReadFile(e.cfg); string(now) != string(before) {
		t.Fatal("staging changed the file before Apply")
	}
	webuitest.Screenshot(t, ctx, c, "cluster.png")
	webuitest.Apply(t, ctx, c)
	text, _ := os.ReadFile(e.cfg)
	if p := edit.Check(e.cfg, text); p != nil || !strings.HasPrefix(string(text), string(before)) {
		t.Fatalf("applied file: problems %v, or its first lines changed:\n%s", p, text)
	}

	// Both VIPs carry traffic once the servers pass their checks (the guide's
	// 5 s interval, rise 2).
	e.waitChecked(30 * time.Second)
	waitOnline(t, e, 30*time.Second)
	rtmp := probe.Target{Proto: "tcp", Addr: netip.AddrPortFrom(vip4, 1935)}
	l4 := whoAnswers(t, l, l.Client.Sources4[:40], rtmp)
	if count(l4, "HT1") == 0 || count(l4, "HT2") == 0 {
		t.Fatalf("layer-4 VIP: 40 clients reached %v, want both HT1 and HT2", l4)
	}
	web := probe.Target{Proto: "http", Addr: netip.AddrPortFrom(vip7, 8080)}
	l7 := whoAnswers(t, l, l.Client.Sources4[:40], web)
	if count(l7, "HM1") == 0 || count(l7, "HM2") == 0 {
		t.Fatalf("layer-7 VIP: 40 clients reached %v, want both HM1 and HM2", l7)
	}
	t.Logf("traffic through both VIPs: HT1 %d, HT2 %d; HM1 %d, HM2 %d",
		count(l4, "HT1"), count(l4, "HT2"), count(l7, "HM1"), count(l7, "HM2"))

	webuitest.Navigate(t, ctx, c, base+"/", "the System Overview", `document.querySelectorAll('tr.rs').length === 4 && document.getElementById('live').dataset.live === 'ok'`)
	webuitest.Screenshot(t, ctx, c, "overview.png")
	webuitest.Navigate(t, ctx, c, base+"/cluster", "the Cluster Configuration page", `!!document.querySelector('tr.svc[data-service="Harmonic_Traffic"]')`)

	// The new interval in force: with 5 s x fall 3 a failing HT1 needs 10-15 s
	// to go down; with 1 s, about 3 s.
	webuitest.EditInterval(t, ctx, c, svcL4, "1s", "500ms")
	webuitest.Apply(t, ctx, c)
	time.Sleep(1500 * time.Millisecond) // the first check on the new interval
	if err := l.SetStatus("HT1", lab.Unhealthy); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for realServer(t, e.overview(), svcL4, "HT1").State != "down" {
		if time.Since(start) > 9*time.Second {
			t.Fatalf("HT1 not down %s after failing: the 1 s interval is not in force", time.Since(start))
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("HT1 down %s after failing (interval 1s, fall 3)", time.Since(start).Round(100*time.Millisecond))

	// The alert mail arrives (STARTTLS, logged in), and the syslog message.
	want := "real server HT1 (192.168.94.115) of Harmonic_Traffic is down"
	var got string
	for deadline := time.Now().Add(15 * time.Second); got == "" && time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		for _, m := range mail.Mails() {
			if strings.Contains(m.Data, want) && m.TLS && m.AuthUser == "medialb" {
				got = m.Data
			}
		}
	}
	if got == "" {
		t.Fatalf("no alert mail saying %q: %+v", want, mail.Mails())
	}
	t.Logf("alert mail:\n%s", got)
	if msgs := syslog.Messages(); !slices.ContainsFunc(msgs, func(m string) bool { return strings.Contains(m, want) && strings.HasPrefix(m, "<28>1 ") }) {
		t.Errorf("no syslog message saying %q: %q", want, msgs)
	}

	// The Logs page shows that state change.
	webuitest.Navigate(t, ctx, c, base+"/logs", "the Logs page", `document.querySelectorAll('#logs tbody tr').length > 0`)
	webuitest.WaitFor(t, ctx, c, "HT1's state change on the Logs page",
		`[...document.querySelectorAll('#logs tbody tr.lvl-warn')].some(r => r.textContent.includes('real server state') && r.textContent.includes('server=HT1') && r.textContent.includes('state=down'))`)
	webuitest.Screenshot(t, ctx, c, "logs.png")

	// View Configuration: what runs is the file; a hand edit shows as a difference.
	webuitest.Navigate(t, ctx, c, base+"/view", "View Configuration", `document.getElementById('running').textContent.includes('Harmonic_Traffic')`)
	var changed string
	c.Eval(ctx, `document.getElementById('changed').textContent`, &changed)
	if !strings.Contains(changed, "is what runs") {
		t.Errorf("View Configuration says %q right after Apply", changed)
	}
	text, _ = os.ReadFile(e.cfg)
	os.WriteFile(e.cfg, append(text, "# edited by hand, not reloaded\n"...), 0o600)
	webuitest.Navigate(t, ctx, c, base+"/view", "View Configuration", `document.querySelector('#diff .add') && document.querySelector('#diff .add').textContent.includes('edited by hand')`)
	webuitest.Screenshot(t, ctx, c, "view.png")
	os.WriteFile(e.cfg, text, 0o600)

	// Reports: the traffic sent above shows as the layer-7 service's bits/s and
	// the layer-4 service's clients and bits/s.
	graphed := func(chart string, names ...string) string {
		return `[` + "'" + strings.Join(names, "','") + "'" + `].every(n => {
			const line = document.querySelector('section[data-chart="` + chart + `"] polyline[data-series="' + n + '"]');
			return line && line.getAttribute('points').split(' ').some(p => Number(p.split(',')[1]) < 150);
		})`
	}
	webuitest.Navigate(t, ctx, c, base+"/reports", "Reports", `document.querySelectorAll('#charts svg polyline').length >= 3`)
	webuitest.Fill(t, ctx, c, "#service", svcL7)
	webuitest.WaitFor(t, ctx, c, "traffic in the Bits/s graph of HM1 and HM2", graphed("Bits/s", "HM1", "HM2"))
	webuitest.Fill(t, ctx, c, "#service", svcL4)
	webuitest.WaitFor(t, ctx, c, "clients in the Clients graph of HT1 and HT2", graphed("Clients", "HT1", "HT2"))
	webuitest.WaitFor(t, ctx, c, "traffic in the Bits/s graph of HT1 and HT2", graphed("Bits/s", "HT1", "HT2"))
	webuitest.Screenshot(t, ctx, c, "reports.png")

	// Backup, change, restore.
	code, archive := e.apiDo("GET", "/api/v1/backup")
	if code != 200 {
		t.Fatalf("backup: %d", code)
	}
	backupFile := filepath.Join(t.TempDir(), "medialb-backup.tar.gz")
	os.WriteFile(backupFile, archive, 0o600)
	beforeChange, _ := os.ReadFile(e.cfg)
	webuitest.Navigate(t, ctx, c, base+"/cluster", "the Cluster Configuration page", `!!document.querySelector('tr.sub[data-server="HT2"]')`)
	del := `tr.sub[data-server="HT2"] button[data-do="delete-rs"]`
	webuitest.Click(t, ctx, c, del)
	webuitest.WaitFor(t, ctx, c, "the delete's confirmation", `document.querySelector('`+del+`').classList.contains('confirm')`)
	webuitest.Click(t, ctx, c, del)
	webuitest.WaitFor(t, ctx, c, "HT2 deleted (staged)", `!document.querySelector('tr.sub[data-server="HT2"]') && !document.getElementById('staged').hidden`)
	webuitest.Apply(t, ctx, c)
	if servers(e.overview(), svcL4) != "HT1" {
		t.Fatalf("after the change %s has %s, want HT1 only", svcL4, servers(e.overview(), svcL4))
	}
	webuitest.Navigate(t, ctx, c, base+"/maintenance", "Maintenance", `document.body.dataset.ready === 'true'`)
	webuitest.Restore(t, ctx, c, backupFile)
	webuitest.WaitFor(t, ctx, c, "the restore", `document.getElementById('toast').textContent.startsWith('Restored')`)
	webuitest.Screenshot(t, ctx, c, "maintenance.png")
	if now, _ := os.ReadFile(e.cfg); string(now) != string(beforeChange) {
		t.Fatal("after the restore the file is not the backed-up one")
	}
	if servers(e.overview(), svcL4) != "HT1,HT2" {
		t.Fatalf("after the restore %s has %s, want HT1,HT2", svcL4, servers(e.overview(), svcL4))
	}

	// Maintenance without a pair: no keepalived to restart (409); the layer-7
	// listeners restart and take clients again.
	if code, body := e.apiDo("POST", "/api/v1/maintenance/restart-keepalived"); code != 409 || !strings.Contains(string(body), "no ha section") {
		t.Errorf("restart keepalived on a single node: %d %s", code, body)
	}
	if code, body := e.apiDo("POST", "/api/v1/maintenance/restart-l7"); code != 200 || !strings.Contains(string(body), "2 layer-7 listeners open again") {
		t.Fatalf("restart layer 7: %d %s", code, body)
	}
	if again := whoAnswers(t, l, l.Client.Sources4[:10], web); len(again) != 10 {
		t.Errorf("after the listeners' restart %d of 10 clients were answered", len(again))
	}

	pp.mu.Lock()
	defer pp.mu.Unlock()
	for _, p := range pp.problems {
		if !strings.Contains(p, "status of 400") {
			t.Errorf("page error: %s", p)
		}
	}
}

// alertsSection sends alerts to the sinks alertSinks runs in the client namespace.
const alertsSection = `
alerts:
  email:
    server: "%s:2525"
    tls_verify: false           # the sink's certificate is self-signed
    username: medialb
    password: s3cret
    from: lb1@example.com
    to: [ops@example.com]
    batch: 2s
  syslog: { address: "%s:5514", protocol: udp }
`

// alertSinks runs an SMTP server (port 2525) and a syslog receiver (UDP 5514)
// in the lab's client namespace until the test ends.
func alertSinks(t *testing.T, l *lab.Lab) (*alertsink.SMTP, *alertsink.Syslog) {
	t.Helper()
	mail, err := alertsink.NewSMTP("medialb", "s3cret")
	if err != nil {
		t.Fatal(err)
	}
	var syslog alertsink.Syslog
	var ln net.Listener
	var pc net.PacketConn
	err = lab.Do(l.Client.NS, func() error {
		var err error
		if ln, err = net.Listen("tcp", ":2525"); err != nil {
			return err
		}
		pc, err = net.ListenPacket("udp", ":5514")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close(); pc.Close() })
	go mail.Serve(ln)
	go syslog.ServeUDP(pc)
	return mail, &syslog
}

// servers lists a service's real servers in the overview, comma-separated.
func servers(ov api.Overview, service string) string {
	var out []string
	for _, s := range ov.Services {
		if s.Name == service {
			for _, rs := range s.RealServers {
				out = append(out, rs.Name)
			}
		}
	}
	return strings.Join(out, ",")
}

// waitOnline waits until every real server of the overview is online.
func waitOnline(t *testing.T, e *env, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ov := e.overview()
		var out []string
		for _, s := range ov.Services {
			for _, rs := range s.RealServers {
				if rs.State != "online" {
					out = append(out, rs.Name+"="+rs.State)
				}
			}
		}
		if len(out) == 0 && len(ov.Services) > 0 {
			return
		}
		if time.Now().After(deadline) {
			b, _ := json.Marshal(ov)
			t.Fatalf("real servers not online after %s: %v\n%s", timeout, out, b)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
