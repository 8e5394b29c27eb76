package config

import (
	"strings"
	"testing"
)

func TestMediaHealthChecks(t *testing.T) {
	for _, tc := range []struct {
		name  string
		extra string
		want  string // the error's text, or "" for valid
		check func(t *testing.T, s *Service)
	}{
		{name: "rtmp default application", extra: "    health_check: { type: rtmp, port: 1935 }\n", check: func(t *testing.T, s *Service) {
			if hc := s.HealthCheck; hc.Type != CheckRTMP || hc.Application != "live" || hc.Port != 1935 || hc.Path != "" {
				t.Errorf("check %+v", hc)
			}
		}},
		{name: "rtsp describe", extra: "    health_check: { type: rtsp, port: 554, path: /live/ch1 }\n", check: func(t *testing.T, s *Service) {
			if hc := s.HealthCheck; hc.Type != CheckRTSP || hc.Path != "/live/ch1" {
				t.Errorf("check %+v", hc)
			}
		}},
		{name: "udp", extra: "    health_check: { type: udp, port: 5000, send: ping, expect: server= }\n", check: func(t *testing.T, s *Service) {
			if hc := s.HealthCheck; hc.Type != CheckUDP || hc.Send != "ping" || hc.Expect != "server=" {
				t.Errorf("check %+v", hc)
			}
		}},
		{name: "https and rtmp, any", extra: `    health_mode: any
    health_checks:
      - { type: https-get, port: 8443, path: /admin/status, expect: Healthy, interval: 2s }
      - { type: rtmp, port: 1935, application: ingest }
`, check: func(t *testing.T, s *Service) {
			if s.HealthMode != HealthAny || s.HealthCheck.Type != CheckHTTPSGet || len(s.MoreChecks) != 1 {
				t.Fatalf("service %+v", s)
			}
			m := s.MoreChecks[0]
			if m.Application != "ingest" || m.Port != 1935 || m.Interval != s.HealthCheck.Interval || m.Timeout != s.HealthCheck.Timeout {
				t.Errorf("further check %+v", m)
			}
			if s.RealServers[0].HealthPort != 8443 {
				t.Errorf("health port %d, want the first check's", s.RealServers[0].HealthPort)
			}
		}},
		{name: "srt", extra: "    health_check: { type: srt, port: 9000 }\n", check: func(t *testing.T, s *Service) {
			if hc := s.HealthCheck; hc.Type != CheckSRT || hc.Port != 9000 {
				t.Errorf("check %+v", hc)
			}
		}},
		{name: "send with srt", extra: "    health_check: { type: srt, send: x }\n", want: "health_check.send: has no effect with type srt"},
		{name: "udp without send", extra: "    health_check: { type: udp, port: 5000 }\n", want: "health_check: send is required for type udp"},
		{name: "application with http", extra: "    health_check: { type: http-get, application: live }\n", want: "health_check.application: has no effect with type http-get"},
		{name: "expect with rtmp", extra: "    health_check: { type: rtmp, expect: x }\n", want: "health_check.expect: has no effect with type rtmp"},
		{name: "both forms", extra: "    health_check: { type: rtmp }\n    health_checks: [{ type: rtmp }]\n", want: "give health_check or health_checks, not both"},
		{name: "timing in a further check", extra: "    health_checks: [{ type: rtmp }, { type: rtsp, interval: 1s }]\n", want: "health_checks[1].interval: only the first check of health_checks sets the timing"},
		{name: "mode without list", extra: "    health_mode: any\n", want: "health_mode: has no effect without health_checks"},
		{name: "none in a list", extra: "    health_checks: [{ type: rtmp }, { type: none }]\n", want: "health_checks[1]: type none in a list"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			expectService(t, svc(tc.extra+"    real_servers: [{address: 192.0.2.21}]\n"), tc.want, tc.check)
		})
	}
}

// expectService parses input and, with want empty, runs check on its
// service "s"; else the error must contain want.
func expectService(t *testing.T, input, want string, check func(*testing.T, *Service)) {
	t.Helper()
	cfg, err := Parse("t.yaml", []byte(input))
	if want == "" {
		if err != nil {
			t.Fatal(err)
		}
		check(t, cfg.Service("s"))
		return
	}
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("error %v, want one containing %q", err, want)
	}
}
