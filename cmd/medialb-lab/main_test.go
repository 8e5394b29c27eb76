package main

import (
	"net/netip"
	"testing"

	"github.com/medialb/medialb/lab"
)

func TestParseProvision(t *testing.T) {
	tests := []struct {
		args    []string
		role    lab.Role
		vips    int
		sources int
		wantErr bool
	}{
		{[]string{"--role", "realserver", "--address", "192.168.94.115/24", "--vip", "192.168.94.100", "--vip", "192.168.94.110"}, lab.RoleRealServer, 2, 0, false},
		{[]string{"--role", "client", "--address", "192.168.94.50/24", "--sources", "192.168.94.51/24-20"}, lab.RoleClient, 0, 20, false},
		{[]string{"--role", "client", "--sources", "192.168.94.250/24-10"}, "", 0, 0, true}, // runs past .255
		{[]string{"--role", "realserver", "--vip", "nope"}, "", 0, 0, true},
		{[]string{"--role", "loadbalancer", "--address", "192.168.94.2"}, "", 0, 0, true}, // no prefix length
		{[]string{"--role", "loadbalancer", "extra"}, "", 0, 0, true},
	}
	for _, tt := range tests {
		p, _, err := parseProvision(tt.args)
		if (err != nil) != tt.wantErr {
			t.Errorf("%v: error %v, want error %v", tt.args, err, tt.wantErr)
			continue
		}
		if err == nil && (p.Role != tt.role || len(p.VIPs) != tt.vips || len(p.Sources) != tt.sources) {
			t.Errorf("%v: got %+v", tt.args, p)
		}
	}
	s, _ := parseSources("192.168.94.51/24-3")
	if s[2] != netip.MustParsePrefix("192.168.94.53/24") {
		t.Errorf("third source %s, want 192.168.94.53/24", s[2])
	}
}
