package clientaddr

import (
	"net/netip"
	"testing"
)

func TestKey(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.7":             "192.0.2.7",
		"::ffff:192.0.2.7":      "192.0.2.7",
		"2001:db8:1:2:3:4:5:6":  "2001:db8:1:2::",
		"2001:db8:1:2:ffff::99": "2001:db8:1:2::",
	} {
		if got := Key(netip.MustParseAddr(in)); got != netip.MustParseAddr(want) {
			t.Errorf("Key(%s) = %s, want %s", in, got, want)
		}
	}
}
