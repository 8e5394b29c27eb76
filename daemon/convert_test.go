package daemon

import (
	"testing"

	"github.com/medialb/medialb/afxdp"
	"github.com/medialb/medialb/config"
)

// node.xdp_fastpath: auto takes the fast path for services with source-IP persistence
// where XDP_TX works unaided; on and off are what they say.
func TestFastPathDecision(t *testing.T) {
	persist := config.Service{Persistence: config.Persistence{Mode: config.PersistSourceIP}}
	hashOnly := config.Service{Persistence: config.Persistence{Mode: config.PersistNone}}
	tests := []struct {
		mode  config.FastPath
		svc   config.Service
		canTX bool
		want  bool
	}{
		{config.FastPathAuto, persist, true, true},
		{config.FastPathAuto, persist, false, false},
		{config.FastPathAuto, hashOnly, true, false},
		{config.FastPathOn, hashOnly, false, true},
		{config.FastPathOn, persist, true, true},
		{config.FastPathOff, persist, true, false},
		{"", persist, true, true}, // unset means auto
	}
	for _, tt := range tests {
		if got := fastPath(tt.mode, tt.svc, tt.canTX); got != tt.want {
			t.Errorf("fastPath(%q, persistence %s, canTX %v) = %v, want %v", tt.mode, tt.svc.Persistence.Mode, tt.canTX, got, tt.want)
		}
	}
}

// The fast-path map is as large as the persistence tables of the services that may
// take the fast path.
func TestFastPathEntries(t *testing.T) {
	l4 := func(mode config.PersistenceMode, capacity int) config.Service {
		return config.Service{Layer: config.Layer4, Persistence: config.Persistence{Mode: mode, Capacity: capacity}}
	}
	l7 := config.Service{Layer: config.Layer7, Persistence: config.Persistence{Mode: config.PersistSourceIP, Capacity: 1 << 20}}
	tests := []struct {
		name string
		mode config.FastPath
		svcs []config.Service
		want int
	}{
		{"auto: persistent layer-4 services", config.FastPathAuto,
			[]config.Service{l4(config.PersistSourceIP, 300000), l4(config.PersistSourceIP, 1000), l4(config.PersistNone, 0), l7}, 301000},
		{"on: hash-only services count the default", config.FastPathOn,
			[]config.Service{l4(config.PersistSourceIP, 300000), l4(config.PersistNone, 0)}, 300000 + afxdp.DefaultFastPathEntries},
		{"off", config.FastPathOff, []config.Service{l4(config.PersistSourceIP, 300000)}, 0},
		{"bounded", config.FastPathAuto, []config.Service{l4(config.PersistSourceIP, 1<<28)}, maxFastPathEntries},
	}
	for _, tt := range tests {
		cfg := &config.Config{Node: config.Node{XDPFastPath: tt.mode}, Services: tt.svcs}
		if got := fastPathEntries(cfg); got != tt.want {
			t.Errorf("%s: fastPathEntries = %d, want %d", tt.name, got, tt.want)
		}
	}
}
