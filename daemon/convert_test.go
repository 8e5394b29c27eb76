package daemon

import (
	"testing"

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
