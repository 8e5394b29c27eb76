package ecmp

import (
	"strings"
	"testing"
	"time"
)

func TestCountsSince(t *testing.T) {
	before := Counts{TCP: 40, TCPBroken: 1, TCPMoved: 2, UDP: 40, UDPMoved: 1, UDPSent: 1000, UDPLost: 10, UDPGap: time.Second}
	now := Counts{TCP: 40, TCPBroken: 3, TCPMoved: 2, UDP: 40, UDPMoved: 4, UDPSent: 1500, UDPLost: 25, UDPGap: 60 * time.Millisecond}
	got := now.Since(before)
	want := Counts{TCP: 40, TCPBroken: 2, TCPMoved: 0, UDP: 40, UDPMoved: 3, UDPSent: 500, UDPLost: 15, UDPGap: 60 * time.Millisecond}
	if got != want {
		t.Errorf("Since: %+v, want %+v", got, want)
	}
}

func TestTables(t *testing.T) {
	sp := SpreadTable(map[string]int{"lb2": 54, "lb1": 46}, 100)
	if want := "| lb1 | 46 | 46% |\n| lb2 | 54 | 54% |\n"; !strings.HasSuffix(sp, want) {
		t.Errorf("spread table:\n%s\nwant rows\n%s", sp, want)
	}
	ev := EventTable([]Event{{What: "lb1 drained", Router: 73400 * time.Microsecond, Moved: 19, Clients: 40,
		Counts: Counts{TCP: 40, UDP: 40, UDPSent: 2388, UDPLost: 3, UDPGap: 61 * time.Millisecond}}})
	if want := "| lb1 drained | 73ms | 19 of 40 | 0 of 40 | 0 of 80 | 3 of 2388 (0.13%) | 61ms |\n"; !strings.HasSuffix(ev, want) {
		t.Errorf("event table:\n%s\nwant the row\n%s", ev, want)
	}
}
