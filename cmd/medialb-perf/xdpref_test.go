package main

import (
	"strings"
	"testing"

	"github.com/medialb/medialb/afxdp"
)

func TestParseRef(t *testing.T) {
	for _, tc := range []struct {
		in, err string
	}{
		{"eth0,52:54:00:00:00:02,52:54:00:00:00:01,192.168.94.110,50000-65535", ""},
		{"eth0,52:54:00:00:00:02,52:54:00:00:00:01,192.168.94.110,1935-1935", ""},
		{"eth0,52:54:00:00:00:02,52:54:00:00:00:01,192.168.94.110", "want IFACE"},
		{",52:54:00:00:00:02,52:54:00:00:00:01,192.168.94.110,1-2", "want IFACE"},
		{"eth0,nomac,52:54:00:00:00:01,192.168.94.110,1-2", "destination MAC"},
		{"eth0,52:54:00:00:00:02,00:00:00:00:fe:80:00:00:00:00:00:00:02:00:5e:10:00:00:00:01,192.168.94.110,1-2", "source MAC"},
		{"eth0,52:54:00:00:00:02,52:54:00:00:00:01,192.168.94,1-2", "VIP"},
		{"eth0,52:54:00:00:00:02,52:54:00:00:00:01,192.168.94.110,2-1", "ports"},
		{"eth0,52:54:00:00:00:02,52:54:00:00:00:01,192.168.94.110,0-1", "ports"},
		{"eth0,52:54:00:00:00:02,52:54:00:00:00:01,192.168.94.110,1-65536", "ports"},
		{"eth0,52:54:00:00:00:02,52:54:00:00:00:01,192.168.94.110,80", "ports"},
	} {
		r, err := parseRef(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("parseRef(%q): error %v, want one about %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("parseRef(%q): %v", tc.in, err)
			continue
		}
		if r.ifname != "eth0" || r.dstMAC.String() != "52:54:00:00:00:02" || r.srcMAC.String() != "52:54:00:00:00:01" ||
			len(r.vips) != 2 || r.vips[0].Proto != afxdp.ProtoUDP || r.vips[1].Proto != afxdp.ProtoTCP || r.vips[0].Addr.String() != "192.168.94.110" {
			t.Errorf("parseRef(%q) = %+v", tc.in, r)
		}
	}
}
