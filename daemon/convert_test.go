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

// A layer-7 service without max_connections gets its share of the fd limit;
// one with it keeps it; the per-source limit passes through.
func TestL7OptionsLimits(t *testing.T) {
	cfg := &config.Config{Services: []config.Service{
		{Name: "a", Layer: config.Layer7, MaxConnectionsPerSource: 8},
		{Name: "b", Layer: config.Layer7, MaxConnections: 100},
		{Name: "c", Layer: config.Layer4},
	}}
	got := l7Options(cfg, 10240)
	if a := got["a"]; a.MaxConns != 2304 || a.MaxConnsPerSource != 8 { // (10240 - 1024) / 2 / 2 services
		t.Errorf("a: max %d, per source %d; want 2304, 8", a.MaxConns, a.MaxConnsPerSource)
	}
	if b := got["b"]; b.MaxConns != 100 || b.MaxConnsPerSource != 0 {
		t.Errorf("b: max %d, per source %d; want 100, 0", b.MaxConns, b.MaxConnsPerSource)
	}
	if _, ok := got["c"]; ok {
		t.Error("a layer-4 service has proxy options")
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
