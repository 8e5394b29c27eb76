package config

import (
	"strings"
	"testing"
	"time"
)

func TestAlerts(t *testing.T) {
	head := "node:\n  interface: eth0\nalerts:\n"
	tests := []struct {
		name, body string
		want       []string // problems; empty: valid
		check      func(*Alerts) bool
	}{
		{"email and syslog", "  email: {server: \"smtp.example.com:587\", username: lb, password: pw, from: lb@example.com, to: [ops@example.com], batch: 10s}\n  syslog: {address: \"192.0.2.50:514\", protocol: tcp, facility: 16}\n", nil,
			func(a *Alerts) bool {
				return a.Email.StartTLS && a.Email.TLSVerify && a.Email.Batch == 10*time.Second && a.Email.To[0] == "ops@example.com" &&
					a.Syslog.Protocol == "tcp" && a.Syslog.Facility == 16
			}},
		{"defaults", "  email: {server: \"mx:25\", from: a@b.c, to: [d@e.f]}\n  syslog: {address: \"192.0.2.50:514\"}\n", nil,
			func(a *Alerts) bool {
				return a.Email.Batch == DefaultAlertBatch && a.Syslog.Protocol == "udp" && a.Syslog.Facility == 3
			}},
		{"no server", "  email: {from: a@b.c, to: [d@e.f]}\n", []string{"t.yaml:4: alerts.email.server is required"}, nil},
		{"not host:port", "  email: {server: smtp.example.com, from: a@b.c, to: [d@e.f]}\n", []string{`t.yaml:4: alerts.email.server: "smtp.example.com" is not host:port`}, nil},
		{"a password in the clear", "  email: {server: \"mx:25\", starttls: false, username: u, password: p, from: a@b.c, to: [d@e.f]}\n", []string{"t.yaml:4: alerts.email.username: authentication needs starttls: true"}, nil},
		{"bad recipient", "  email: {server: \"mx:25\", from: a@b.c, to: [nobody]}\n", []string{`t.yaml:4: alerts.email.to[0]: "nobody" is not a mail address`}, nil},
		{"syslog protocol", "  syslog: {address: \"192.0.2.50:514\", protocol: tpc}\n", []string{`t.yaml:4: alerts.syslog.protocol: "tpc" is not one of udp, tcp`}, nil},
	}
	for _, tt := range tests {
		cfg, err := Parse("t.yaml", []byte(head+tt.body))
		var got []string
		if err != nil {
			got = err.(Errors).Lines()
		}
		if len(got) != len(tt.want) {
			t.Errorf("%s: problems %q, want %q", tt.name, got, tt.want)
			continue
		}
		for i := range got {
			if !strings.HasPrefix(got[i], tt.want[i]) {
				t.Errorf("%s: problem %q, want %q...", tt.name, got[i], tt.want[i])
			}
		}
		if tt.check != nil && (cfg == nil || cfg.Alerts == nil || !tt.check(cfg.Alerts)) {
			t.Errorf("%s: alerts %+v", tt.name, cfg.Alerts)
		}
	}
}
