package afxdp

import "testing"

// TestVethGRO: Open turns GRO on for a veth it attaches to natively (the
// kernel's traffic then arrives aggregated although the peer lost its TSO), and
// Close, called from another thread as the tests do, turns it off again.
func TestVethGRO(t *testing.T) {
	p := newPair(t)
	const gro = "generic-receive-offload"
	if v := ethtoolFeature(t, p.nsA, "xa", gro); v != "off" {
		t.Fatalf("%s of a new veth: %q, want off (the test cannot tell otherwise)", gro, v)
	}
	d := p.open(t, Config{})
	if v := ethtoolFeature(t, p.nsA, "xa", gro); v != "on" {
		t.Errorf("%s with the steering program attached natively: %q, want on", gro, v)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if v := ethtoolFeature(t, p.nsA, "xa", gro); v != "off" {
		t.Errorf("%s after Close: %q, want off again", gro, v)
	}
}
