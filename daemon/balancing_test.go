package daemon

import (
	"net/netip"
	"testing"
	"time"

	"github.com/medialb/medialb/config"
	"github.com/medialb/medialb/feedback"
	"github.com/medialb/medialb/health"
)

// The configuration's scheduler, feedback and several health checks reach
// the proxy, the feedback poller and the health monitor.
func TestBalancingConversions(t *testing.T) {
	cfg, err := config.Parse("t.yaml", []byte(`node: { interface: eth0 }
virtual_services:
  - name: Web
    address: 192.0.2.10
    ports: "8080"
    layer: 7
    scheduler: wlc
    feedback: { protocol: http, port: 8080, interval: 2s }
    real_servers: [{ name: a, address: 192.0.2.21 }, { name: b, address: 192.0.2.22, feedback_port: 9000 }]
  - name: Media
    address: 192.0.2.11
    ports: "1935"
    layer: 4
    health_mode: any
    health_checks:
      - { type: https-get, port: 8443, path: /admin/status, expect: Healthy }
      - { type: rtmp, port: 1935, application: ingest }
    real_servers: [{ name: c, address: 192.0.2.23 }]
`))
	if err != nil {
		t.Fatal(err)
	}
	if o := l7Options(cfg, 10240)["Web"]; !o.LeastConn {
		t.Error("scheduler wlc does not reach the proxy")
	}
	fb := feedbackTargets(cfg)
	want := []feedback.Target{
		{Addr: netip.MustParseAddrPort("192.0.2.21:8080"), Protocol: "http", Path: "/load", Interval: 2 * time.Second, Timeout: time.Second},
		{Addr: netip.MustParseAddrPort("192.0.2.22:9000"), Protocol: "http", Path: "/load", Interval: 2 * time.Second, Timeout: time.Second},
	}
	if len(fb) != 2 {
		t.Fatalf("feedback targets %+v", fb)
	}
	for i := range want {
		want[i].Key = fb[i].Key
		if fb[i] != want[i] || fb[i].Key.Service != "Web" {
			t.Errorf("feedback target %+v, want %+v", fb[i], want[i])
		}
	}
	var media health.Target
	for _, ht := range healthTargets(cfg) {
		if ht.Key.Service == "Media" {
			media = ht
		}
	}
	if media.Spec.Mode != "any" || media.Spec.More == "" || media.Addr.Port() != 8443 {
		t.Errorf("Media's checks: %+v", media)
	}
	if _, err := health.NewChecker(media.Spec); err != nil {
		t.Errorf("Media's checks do not make a checker: %v", err)
	}
}
