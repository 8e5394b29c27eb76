package api

import (
	"errors"
	"strings"
	"testing"
)

// bgpFake is a node with a bgp section: drain and online change its overview's bgp.
type bgpFake struct {
	*fakeSource
	fail error
}

func newBGPFake() *bgpFake {
	f := &bgpFake{fakeSource: newFake()}
	f.ov.BGP = &BGP{State: "active", Announced: []string{"192.168.94.100/32", "192.168.94.110/32"},
		Peers: []BGPPeer{{Address: "192.168.94.1", ASN: 65000, State: "established", HoldTime: 9, Flaps: 2},
			{Address: "192.168.94.254", ASN: 65000, State: "active"}}}
	return f
}

func (f *bgpFake) set(state string, announced []string) error {
	if f.fail != nil {
		return f.fail
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	b := *f.ov.BGP
	b.State, b.Announced = state, announced
	f.ov.BGP = &b
	return nil
}

func (f *bgpFake) DrainNode() error { return f.set("drain", []string{}) }
func (f *bgpFake) OnlineNode() error {
	return f.set("active", []string{"192.168.94.100/32", "192.168.94.110/32"})
}

func TestNodeDrain(t *testing.T) {
	f := newBGPFake()
	s := newTestServer(t, f, nil)
	metrics := func() string { return serve(s, "GET", "/metrics", true).Body.String() }
	for _, want := range []string{
		`medialb_bgp_node_state{state="active"} 1`, `medialb_bgp_announced_routes 2`,
		`medialb_bgp_session_established{peer="192.168.94.1"} 1`, `medialb_bgp_session_established{peer="192.168.94.254"} 0`,
		`medialb_bgp_session_flaps_total{peer="192.168.94.1"} 2`,
	} {
		if m := metrics(); !strings.Contains(m, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if w := serve(s, "POST", "/api/v1/node/drain", false); w.Code != 401 {
		t.Errorf("drain without a login: %d", w.Code)
	}
	if w := serve(s, "POST", "/api/v1/node/drain", true); w.Code != 200 || !strings.Contains(w.Body.String(), `"state": "drain"`) {
		t.Fatalf("drain: %d %s", w.Code, w.Body)
	}
	if w := serve(s, "GET", "/api/v1/overview", true); !strings.Contains(w.Body.String(), `"state": "drain"`) ||
		!strings.Contains(w.Body.String(), `"announced": []`) {
		t.Errorf("overview after drain: %s", w.Body)
	}
	if m := metrics(); !strings.Contains(m, `medialb_bgp_node_state{state="drain"} 1`) || !strings.Contains(m, `medialb_bgp_announced_routes 0`) {
		t.Errorf("metrics after drain:\n%s", m)
	}
	if w := serve(s, "POST", "/api/v1/node/online", true); w.Code != 200 || !strings.Contains(w.Body.String(), `"state": "active"`) {
		t.Errorf("online: %d %s", w.Code, w.Body)
	}
	f.fail = errors.New("node drain: this node has no bgp section")
	if w := serve(s, "POST", "/api/v1/node/drain", true); w.Code != 409 || !strings.Contains(jsonError(t, w), "no bgp section") {
		t.Errorf("drain refused by the node: %d %s", w.Code, w.Body)
	}
	// A node that cannot be drained at all (no NodeDrainer): 404, no bgp in the metrics.
	plain := newTestServer(t, newFake(), nil)
	if w := serve(plain, "POST", "/api/v1/node/drain", true); w.Code != 404 {
		t.Errorf("drain on a source without NodeDrainer: %d", w.Code)
	}
	if m := serve(plain, "GET", "/metrics", true).Body.String(); strings.Contains(m, "medialb_bgp_") {
		t.Errorf("metrics without bgp show bgp series")
	}
}
