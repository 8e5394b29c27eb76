package probe

import (
	"errors"
	"net/netip"
	"testing"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    Reply
		wantErr bool
	}{
		{"server=HT1 client=192.168.95.3:40000\n", Reply{"HT1", netip.MustParseAddrPort("192.168.95.3:40000")}, false},
		{"server=HT2 client=[fd95::1]:1234", Reply{"HT2", netip.MustParseAddrPort("[fd95::1]:1234")}, false},
		{"server=HT2 client=[::ffff:192.168.95.3]:1", Reply{"HT2", netip.MustParseAddrPort("192.168.95.3:1")}, false},
		{"server=HT1", Reply{}, true},
		{"client=1.2.3.4:5", Reply{}, true},
		{"server=HT1 client=nonsense", Reply{}, true},
		{"HTTP/1.1 200 OK", Reply{}, true},
	} {
		got, err := Parse(tc.in)
		if (err != nil) != tc.wantErr || (!tc.wantErr && got != tc.want) {
			t.Errorf("Parse(%q) = %v, %v; want %v, error %v", tc.in, got, err, tc.want, tc.wantErr)
		}
	}
}

func TestSummarize(t *testing.T) {
	a, b := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2")
	lb := netip.MustParseAddr("10.0.0.254")
	tcp := Target{Proto: "tcp"}
	rs := []Result{
		{Src: a, Target: tcp, Reply: Reply{"S1", netip.AddrPortFrom(a, 1)}},
		{Src: a, Target: tcp, Reply: Reply{"S1", netip.AddrPortFrom(a, 2)}},
		{Src: b, Target: tcp, Reply: Reply{"S1", netip.AddrPortFrom(lb, 3)}},
		{Src: b, Target: tcp, Reply: Reply{"S2", netip.AddrPortFrom(b, 4)}},
		{Src: b, Target: tcp, Err: errors.New("timeout")},
	}
	s := Summarize(rs)
	if s.Answered != 4 || s.Failed != 1 || s.SawClient != 3 || s.SawOther[lb] != 1 {
		t.Errorf("counts wrong: %+v", s)
	}
	if s.Sticky != 1 || len(s.Split) != 1 || s.Split[0] != b || s.ClientsOf["S1"] != 1 {
		t.Errorf("stickiness wrong: sticky %d split %v clients %v", s.Sticky, s.Split, s.ClientsOf)
	}
}
