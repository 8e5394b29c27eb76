package config

import (
	"strings"
	"testing"
)

func TestParsePorts(t *testing.T) {
	tests := []struct {
		in      string
		want    string // String() of the result
		count   int
		wantErr string // substring
	}{
		{in: "1935,554,50000-65535", want: "1935,554,50000-65535", count: 15538},
		{in: "1935, 554, 50000- 65535", want: "1935,554,50000-65535", count: 15538}, // as the guide's PDF prints it
		{in: "8080,8443", want: "8080,8443", count: 2},
		{in: "1", want: "1", count: 1},
		{in: "65535", want: "65535", count: 1},
		{in: "1-65535", want: "1-65535", count: 65535},
		{in: "0", wantErr: "port 0 is out of range 1..65535"},
		{in: "65536", wantErr: "port 65536 is out of range 1..65535"},
		{in: "99999999999999999999", wantErr: "out of range"},
		{in: "-5", wantErr: "port range with a missing end"},
		{in: "+5", wantErr: `"+5" is not a port number`},
		{in: "5-3", wantErr: "port range 5-3 is reversed (write 3-5)"},
		{in: "1-10,10", wantErr: "ports 1-10 and 10 overlap"},
		{in: "80,80", wantErr: "port 80 is listed twice"},
		{in: "", wantErr: "no ports given"},
		{in: "80,", wantErr: "empty entry"},
		{in: "1-2-3", wantErr: `"2-3" is not a port number`},
	}
	for _, tt := range tests {
		rs, err := ParsePorts(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ParsePorts(%q) error = %v, want %q", tt.in, err, tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParsePorts(%q): %v", tt.in, err)
			continue
		}
		if rs.String() != tt.want || rs.Count() != tt.count {
			t.Errorf("ParsePorts(%q) = %s (%d ports), want %s (%d)", tt.in, rs, rs.Count(), tt.want, tt.count)
		}
	}
}

func TestPortRangesContains(t *testing.T) {
	rs, err := ParsePorts("1935,554,50000-65535")
	if err != nil {
		t.Fatal(err)
	}
	for port, want := range map[uint16]bool{554: true, 1935: true, 50000: true, 65535: true, 57000: true,
		0: false, 553: false, 555: false, 1934: false, 49999: false, 8080: false} {
		if got := rs.Contains(port); got != want {
			t.Errorf("Contains(%d) = %v, want %v", port, got, want)
		}
	}
	if rs.First() != 1935 || PortRanges(nil).First() != 0 || (PortRange{5, 3}).Count() != 0 {
		t.Error("First/Count edge cases")
	}
	if got := rs.Sorted().String(); got != "554,1935,50000-65535" {
		t.Errorf("Sorted() = %s", got)
	}
}

func TestClosest(t *testing.T) {
	known := []string{"health_check", "real_servers", "interval", "timeout", "ports"}
	for in, want := range map[string]string{
		"helth_check":  "health_check",
		"health-check": "health_check",
		"Real_Servers": "real_servers",
		"intreval":     "interval",
		"port":         "ports",
		"timeuot":      "timeout",
		"banana":       "",
		"x":            "",
	} {
		if got := closest(in, known); got != want {
			t.Errorf("closest(%q) = %q, want %q", in, got, want)
		}
	}
}
