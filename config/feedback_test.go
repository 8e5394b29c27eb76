package config

import (
	"testing"
	"time"
)

func TestFeedbackSection(t *testing.T) {
	l7svc := func(extra, servers string) string {
		return head + `  - name: s
    address: 192.0.2.10
    ports: "80"
    layer: 7
` + extra + "    real_servers:\n" + servers
	}
	two := "      - { name: a, address: 192.0.2.21 }\n      - { name: b, address: 192.0.2.22, feedback_port: 4444 }\n"
	for _, tc := range []struct {
		name  string
		input string
		want  string // the error's text, or "" for valid
		check func(t *testing.T, s *Service)
	}{
		{name: "defaults", input: l7svc("    feedback: { protocol: agent }\n", two), check: func(t *testing.T, s *Service) {
			want := Feedback{Protocol: FeedbackAgent, Port: 3333, Interval: 5 * time.Second, Timeout: 2 * time.Second, Step: 10}
			if *s.Feedback != want {
				t.Errorf("feedback %+v, want %+v", *s.Feedback, want)
			}
			if s.RealServers[0].FeedbackPort != 3333 || s.RealServers[1].FeedbackPort != 4444 {
				t.Errorf("feedback ports %d %d", s.RealServers[0].FeedbackPort, s.RealServers[1].FeedbackPort)
			}
			if s.Scheduler != SchedulerMaglev || s.SlowStart != 0 {
				t.Errorf("scheduler %q slow start %v", s.Scheduler, s.SlowStart)
			}
		}},
		{name: "http with path, wlc, slow start", input: l7svc("    feedback: { protocol: http, port: 8080, interval: 1s, step: 5 }\n    scheduler: wlc\n    slow_start: 30s\n", two),
			check: func(t *testing.T, s *Service) {
				if s.Feedback.Path != "/load" || s.Feedback.Timeout != 500*time.Millisecond || s.Feedback.Step != 5 || s.Feedback.Port != 8080 {
					t.Errorf("feedback %+v", *s.Feedback)
				}
				if s.Scheduler != SchedulerWLC || s.SlowStart != 30*time.Second || s.RealServers[0].FeedbackPort != 8080 {
					t.Errorf("service %+v", s)
				}
			}},
		{name: "no protocol", input: l7svc("    feedback: { port: 3333 }\n", two), want: "t.yaml:8: virtual_services[0].feedback: protocol is required"},
		{name: "unknown protocol", input: l7svc("    feedback: { protocol: agnet }\n", two), want: `t.yaml:8: virtual_services[0].feedback.protocol: "agnet" is not one of agent, lborg, http (did you mean "agent"?)`},
		{name: "path with agent", input: l7svc("    feedback: { protocol: lborg, path: /x }\n", two), want: "feedback.path: has no effect with protocol lborg"},
		{name: "timeout above interval", input: l7svc("    feedback: { protocol: agent, interval: 1s, timeout: 2s }\n", two), want: "feedback.timeout: 2s must be less than the interval 1s"},
		{name: "step out of range", input: l7svc("    feedback: { protocol: agent, step: 0 }\n", two), want: "feedback.step: 0 is out of range"},
		{name: "feedback_port without feedback", input: l7svc("", two), want: "t.yaml:10: virtual_services[0].real_servers[1].feedback_port: has no effect without the service's feedback section"},
		{name: "wlc at layer 4", input: svc("    scheduler: wlc\n    real_servers: [{address: 192.0.2.21}]\n"), want: "scheduler: wlc applies to layer 7 only"},
	} {
		t.Run(tc.name, func(t *testing.T) { expectService(t, tc.input, tc.want, tc.check) })
	}
}
