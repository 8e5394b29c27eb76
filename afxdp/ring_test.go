package afxdp

import (
	"errors"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestRXRingAdvice(t *testing.T) {
	for _, tt := range []struct {
		pending, max uint32
		want         string // substring of the advice; "" = none
	}{
		{256, 4096, "ethtool -G eth0 rx 4096"},
		{512, 8192, "ethtool -G eth0 rx 4096"},
		{1024, 1024, ""}, // as large as the driver allows
		{1024, 2048, "ethtool -G eth0 rx 2048"},
		{4096, 8192, ""},
	} {
		got := RXRingAdvice("eth0", tt.pending, tt.max)
		if (tt.want == "") != (got == "") || !strings.Contains(got, tt.want) {
			t.Errorf("RXRingAdvice(%d, %d) = %q, want %q", tt.pending, tt.max, got, tt.want)
		}
	}
}

// TestRXRingVeth: a veth has no ring to read; RXRing says so (EOPNOTSUPP), and
// the daemon then stays quiet.
func TestRXRingVeth(t *testing.T) {
	p := newPair(t)
	if err := inNS(p.hA, func() error {
		_, _, err := RXRing("xa")
		if !errors.Is(err, unix.EOPNOTSUPP) {
			t.Errorf("RXRing on a veth: %v, want EOPNOTSUPP", err)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}
