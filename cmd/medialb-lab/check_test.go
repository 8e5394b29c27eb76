package main

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/medialb/medialb/lab/probe"
)

// TestVerify: each way a sweep of the Vagrant lab can go wrong is reported, and a good
// sweep passes, for both VIP kinds.
func TestVerify(t *testing.T) {
	lb := netip.MustParseAddr("192.168.94.2")
	s1, s2 := netip.MustParseAddr("192.168.94.51"), netip.MustParseAddr("192.168.94.52")
	tcp := probe.Target{Proto: "tcp", Addr: netip.MustParseAddrPort("192.168.94.110:1935")}
	udp := probe.Target{Proto: "udp", Addr: netip.MustParseAddrPort("192.168.94.110:554")}
	res := func(src netip.Addr, tg probe.Target, server string, seen netip.Addr) probe.Result {
		return probe.Result{Src: src, Target: tg, Reply: probe.Reply{Server: server, Client: netip.AddrPortFrom(seen, 40000)}}
	}
	good := []probe.Result{res(s1, tcp, "HT1", s1), res(s1, udp, "HT1", s1), res(s2, tcp, "HT2", s2), res(s2, udp, "HT2", s2)}
	snat := []probe.Result{res(s1, tcp, "HT1", lb), res(s1, udp, "HT1", lb), res(s2, tcp, "HT2", lb), res(s2, udp, "HT2", lb)}
	with := func(rs []probe.Result, i int, r probe.Result) []probe.Result {
		out := append([]probe.Result(nil), rs...)
		out[i] = r
		return out
	}
	failed := probe.Result{Src: s2, Target: udp, Err: errTest}
	for _, tc := range []struct {
		name string
		rs   []probe.Result
		snat bool
		want string // "" for no problem
	}{
		{"direct routing good", good, false, ""},
		{"snat good", snat, true, ""},
		{"probe failed", with(good, 3, failed), false, "1 of 4 probes failed"},
		{"no persistence", with(good, 1, res(s1, udp, "HT2", s1)), false, "more than one server"},
		{"one server idle", with(with(good, 2, res(s2, tcp, "HT1", s2)), 3, res(s2, udp, "HT1", s2)), false, "server HT2 got no clients"},
		{"stranger answers", with(good, 3, res(s2, udp, "HT3", s2)), false, "unexpected server HT3"},
		{"client address lost", with(good, 0, res(s1, tcp, "HT1", lb)), false, "client address lost"},
		{"snat from elsewhere", with(snat, 0, res(s1, tcp, "HT1", netip.MustParseAddr("192.168.94.9"))), true, "saw client 192.168.94.9"},
		{"snat leaks client", with(snat, 0, res(s1, tcp, "HT1", s1)), true, "client's own address"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := strings.Join(verify(probe.Summarize(tc.rs), 2, 2, tc.snat, []netip.Addr{lb}, []string{"HT1", "HT2"}), "\n")
			if tc.want == "" && got != "" || tc.want != "" && !strings.Contains(got, tc.want) {
				t.Errorf("verify: %q, want %q", got, tc.want)
			}
		})
	}
}

type testErr struct{}

func (testErr) Error() string { return "timeout" }

var errTest = testErr{}

// TestParseCheck: the flags make a complete check, and a bad one names the flag.
func TestParseCheck(t *testing.T) {
	c, err := parseCheck([]string{"--sources", "192.168.94.51/24-20", "--l7", "192.168.94.100", "--l4", "192.168.94.110", "--lb", "192.168.94.2,192.168.94.3", "--servers", "HT1,HT2"})
	if err != nil {
		t.Fatal(err)
	}
	if len(c.sources) != 20 || len(c.lbs) != 2 || len(c.servers) != 2 || len(c.l4Ports) != 4 || len(c.l7Ports) != 2 {
		t.Errorf("parseCheck: %+v", c)
	}
	for _, bad := range [][]string{
		{"--sources", "192.168.94.51/24-20", "--l7", "x", "--l4", "192.168.94.110", "--lb", "192.168.94.2", "--servers", "HT1"},
		{"--sources", "192.168.94.51/24-20", "--l7", "192.168.94.100", "--l4", "192.168.94.110", "--l4-ports", "1935,0", "--lb", "192.168.94.2", "--servers", "HT1"},
		{"--sources", "192.168.94.51/24-20", "--l7", "192.168.94.100", "--l4", "192.168.94.110", "--lb", "192.168.94.2"},
	} {
		if _, err := parseCheck(bad); err == nil {
			t.Errorf("parseCheck(%q): no error", bad)
		}
	}
}
