package ha

import (
	"testing"
	"time"
)

// TestColdStartGate: the peer's hello opens the start gate of keepalived when the
// peer is master or does not have the higher priority; otherwise only the bound
// does.
func TestColdStartGate(t *testing.T) {
	tests := []struct {
		name string
		peer hello
		open bool
	}{
		{"peer primary, still backup", hello{Role: RoleBackup, Priority: 150, Healthy: true}, false},
		{"peer primary, master", hello{Role: RoleMaster, Priority: 150, Healthy: true}, true},
		{"peer secondary", hello{Role: RoleBackup, Priority: 50, Healthy: true}, true},
		{"same priority", hello{Role: RoleBackup, Priority: 100, Healthy: true}, true},
		{"peer without priority (older medialb)", hello{Role: RoleBackup, Healthy: true}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := testNode(t, "s", RoleBackup, nil, 1, nil)
			defer n.cancel()
			n.settings.Priority = 100
			n.sup = newSupervisor("keepalived", t.TempDir(), n.log)
			n.holdStart(time.Hour)
			n.heardPeer(tt.peer)
			select {
			case <-n.gate.ch:
				if !tt.open {
					t.Error("gate opened")
				}
			case <-time.After(50 * time.Millisecond):
				if tt.open {
					t.Error("gate still closed")
				}
			}
		})
	}
	// A lone node: the bound opens it.
	n := testNode(t, "s", RoleBackup, nil, 1, nil)
	defer n.cancel()
	n.sup = newSupervisor("keepalived", t.TempDir(), n.log)
	n.holdStart(20 * time.Millisecond)
	select {
	case <-n.gate.ch:
	case <-time.After(2 * time.Second):
		t.Error("the bound did not open the gate")
	}
}
