package e2e

import (
	"context"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/medialb/medialb/api"
	"github.com/medialb/medialb/health"
	"github.com/medialb/medialb/lab"
	"github.com/medialb/medialb/lab/media"
)

// TestMediaHealthChecks checks real media servers as the media demo runs
// them: nginx-rtmp on both real servers, but HT2's "live" application is
// gone (renamed) while its /admin/status still says Healthy. The rtmp check
// tells them apart where the guide's HTTPS check cannot; the rtsp check
// talks to ffmpeg's RTSP receiver. Then medialb, with the HTTPS and the
// RTMP check together (mode all), takes HT2 down and keeps HT1.
func TestMediaHealthChecks(t *testing.T) {
	tools, err := media.FindTools()
	if err != nil {
		t.Skip(err)
	}
	e := newEnv(t, "mh", lab.Options{Clients: 2, NoIPv6: true, Servers: []lab.ServerSpec{{Name: "HT1", Host: 115}, {Name: "HT2", Host: 116}}})
	l := e.lab
	apps := map[string]string{"HT1": "live", "HT2": "ingest"}
	for _, s := range l.Servers {
		if err := l.SetVOSMedia(s.Name, false); err != nil {
			t.Fatal(err)
		}
		ms, err := media.StartServer(tools, media.ServerConfig{Name: s.Name, NS: s.NS, Dir: filepath.Join(e.dir, "media-"+s.Name), App: apps[s.Name]})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ms.Close() })
	}

	// One check at a time from the load balancer's namespace.
	check := func(spec health.Spec, server string, port uint16) health.Result {
		t.Helper()
		node, err := l.Server(server)
		if err != nil {
			t.Fatal(err)
		}
		spec.Timeout = 3 * time.Second
		c, err := health.NewChecker(spec)
		if err != nil {
			t.Fatal(err)
		}
		var r health.Result
		if err := lab.Do(l.LBs[0].NS, func() error {
			r = c.Check(context.Background(), netip.AddrPortFrom(node.Addr4, port))
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: %v %s", server, r.OK, r.Reason)
		return r
	}
	status := health.Spec{Type: health.TypeHTTPSGet, Path: "/admin/status", Expect: "Healthy"}
	rtmp := health.Spec{Type: health.TypeRTMP, App: "live"}
	for _, tc := range []struct {
		name   string
		spec   health.Spec
		server string
		port   uint16
		ok     bool
		want   string
	}{
		{"HT1 status", status, "HT1", 8443, true, `body "Healthy"`},
		{"HT2 status says Healthy", status, "HT2", 8443, true, `body "Healthy"`},
		{"HT1 rtmp live", rtmp, "HT1", 1935, true, "connect answered _result"},
		{"HT2 rtmp live gone", rtmp, "HT2", 1935, false, `no application "live" on the server?`},
		{"HT2 rtmp ingest", health.Spec{Type: health.TypeRTMP, App: "ingest"}, "HT2", 1935, true, "connect answered _result"},
		{"HT1 rtsp options", health.Spec{Type: health.TypeRTSP}, "HT1", 554, true, "RTSP/1.0 200"},
	} {
		r := check(tc.spec, tc.server, tc.port)
		if r.OK != tc.ok || !strings.Contains(r.Reason, tc.want) {
			t.Errorf("%s: OK=%v %q, want OK=%v and %q", tc.name, r.OK, r.Reason, tc.ok, tc.want)
		}
	}

	svc := traffic()
	svc.healthCheck = ""
	svc.extraYAML = `    health_mode: all
    health_checks:
      - { type: https-get, port: 8443, path: /admin/status, expect: Healthy, interval: 500ms, timeout: 400ms }
      - { type: rtmp, port: 1935, application: live }
`
	e.start(config(svc))
	e.waitChecked(15 * time.Second)
	ht2 := e.waitServer("Harmonic_Traffic", "HT2", 10*time.Second, "down", func(r api.RealServer) bool { return r.Health == "down" })
	if !strings.Contains(ht2.HealthReason, "1 of 2 checks failed: rtmp") {
		t.Errorf("HT2 down for %q, want the rtmp check named", ht2.HealthReason)
	}
	if ht1 := realServer(t, e.overview(), "Harmonic_Traffic", "HT1"); ht1.Health != "up" || ht1.State != "online" {
		t.Errorf("HT1 %s/%s (%s), want up and online", ht1.Health, ht1.State, ht1.HealthReason)
	}
}

// TestUDPAndSRTHealthChecks: the udp check against vossim's UDP media
// listener (it answers every datagram with the server's name) and a closed
// port; the srt check against ffmpeg's SRT listener (libsrt).
func TestUDPAndSRTHealthChecks(t *testing.T) {
	tools, err := media.FindTools()
	if err != nil {
		t.Skip(err)
	}
	e := newEnv(t, "mu", lab.Options{Clients: 1, NoIPv6: true, Servers: []lab.ServerSpec{{Name: "HT1", Host: 115}}})
	node, err := e.lab.Server("HT1")
	if err != nil {
		t.Fatal(err)
	}
	srt := lab.Exec(node.NS, tools.FFmpeg, "-hide_banner", "-nostdin", "-v", "error", "-i", "srt://0.0.0.0:9000?mode=listener", "-f", "null", "-")
	if err := srt.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srt.Process.Kill(); srt.Wait() })
	udp := health.Spec{Type: health.TypeUDP, Send: "ping\n", Expect: "server=HT1", Timeout: 2 * time.Second}
	for _, tc := range []struct {
		spec health.Spec
		port uint16
		ok   bool
		want string
	}{
		{udp, 1935, true, "byte reply"},
		{udp, 1936, false, "connection refused"},
		{health.Spec{Type: health.TypeSRT, Timeout: 2 * time.Second}, 9000, true, "induction answered (SRT handshake version 5"},
		{health.Spec{Type: health.TypeSRT, Timeout: 2 * time.Second}, 9001, false, "connection refused"},
	} {
		c, err := health.NewChecker(tc.spec)
		if err != nil {
			t.Fatal(err)
		}
		var r health.Result
		// ffmpeg takes a moment to open its SRT listener: a passing case may retry.
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(200 * time.Millisecond) {
			if err := lab.Do(e.lab.LBs[0].NS, func() error {
				r = c.Check(context.Background(), netip.AddrPortFrom(node.Addr4, tc.port))
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			if r.OK || !tc.ok || time.Now().After(deadline) {
				break
			}
		}
		t.Logf("%d: %v %s", tc.port, r.OK, r.Reason)
		if r.OK != tc.ok || !strings.Contains(r.Reason, tc.want) {
			t.Errorf("port %d: OK=%v %q, want OK=%v and %q", tc.port, r.OK, r.Reason, tc.ok, tc.want)
		}
	}
}
