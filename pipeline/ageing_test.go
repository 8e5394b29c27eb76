package pipeline

import (
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/medialb/medialb/afxdp"
	"github.com/medialb/medialb/tables"
)

// memFastPath is a fast-path map in memory: entries with the idle time Walk
// reports for them.
type memFastPath struct {
	gen     uint32
	names   map[uint32]string
	entries map[afxdp.FastPathKey]memEntry
	bumpErr error
}

type memEntry struct {
	v    afxdp.FastPathValue
	idle time.Duration
}

func (m *memFastPath) Generation() uint32           { return m.gen }
func (m *memFastPath) ServiceName(id uint32) string { return m.names[id] }
func (m *memFastPath) Bump() error {
	if m.bumpErr != nil {
		return m.bumpErr
	}
	m.gen++
	return nil
}

func (m *memFastPath) Walk(fn func(k afxdp.FastPathKey, v afxdp.FastPathValue, idle time.Duration) bool) (kept, deleted int, err error) {
	for k, e := range m.entries {
		if fn(k, e.v, e.idle) {
			kept++
		} else {
			delete(m.entries, k)
			deleted++
		}
	}
	return kept, deleted, nil
}

var _ FastPathMap = (*afxdp.FastPath)(nil)

// TestAgeFastPath: the ageing rules, one map entry per case, against a
// snapshot where Harmonic_Traffic (id 1) has a 300 s persistence timeout and
// Traffic6 (id 2) none.
func TestAgeFastPath(t *testing.T) {
	spec := testSpec()
	spec.Services[1].PersistTimeout = 0
	snap, err := tables.Build(spec, nil)
	if err != nil {
		t.Fatal(err)
	}
	const gen, now = 5, 1000
	ht1 := serverMAC(1)
	for _, tc := range []struct {
		name      string
		snap      *tables.Snapshot
		svc       uint32
		gen       uint32
		mac       [6]byte
		idle      time.Duration
		keep      bool
		touchedAt uint32 // persistence entry's time afterwards; 0: none
	}{
		{"current, persistence: kept, entry refreshed", snap, 1, gen, ht1, 3 * time.Second, true, now - 3},
		{"older generation: deleted", snap, 1, gen - 1, ht1, time.Second, false, 0},
		{"unknown service id: deleted", snap, 9, gen, ht1, time.Second, false, 0},
		{"idle beyond the persistence timeout: deleted", snap, 1, gen, ht1, 301 * time.Second, false, 0},
		{"server MAC no longer a server's: kept, not refreshed", snap, 1, gen, [6]byte{2, 9, 9, 9, 9, 9}, time.Second, true, 0},
		{"no persistence, idle within FastPathIdle: kept", snap, 2, gen, ht1, FastPathIdle, true, 0},
		{"no persistence, idle beyond FastPathIdle: deleted", snap, 2, gen, ht1, FastPathIdle + time.Second, false, 0},
		{"no snapshot: deleted", nil, 1, gen, ht1, time.Second, false, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			client := netip.MustParseAddr("10.1.2.3")
			k := afxdp.FastPathKey{Service: tc.svc, Client: client.As16()}
			m := &memFastPath{gen: gen, names: map[uint32]string{1: "Harmonic_Traffic", 2: "Traffic6"},
				entries: map[afxdp.FastPathKey]memEntry{k: {v: afxdp.FastPathValue{DstMAC: tc.mac, Gen: tc.gen}, idle: tc.idle}}}
			// A fresh snapshot per case, so a refreshed entry of one case does not
			// show in the next.
			s := tc.snap
			if s != nil {
				if s, err = tables.Build(spec, nil); err != nil {
					t.Fatal(err)
				}
			}
			kept, deleted, touched, err := AgeFastPath(m, s, now)
			if err != nil {
				t.Fatal(err)
			}
			if _, ok := m.entries[k]; ok != tc.keep || kept+deleted != 1 || (kept == 1) != tc.keep {
				t.Errorf("kept %d deleted %d, entry there %v, want kept %v", kept, deleted, ok, tc.keep)
			}
			if (touched == 1) != (tc.touchedAt != 0) {
				t.Errorf("touched %d, want an entry at %d", touched, tc.touchedAt)
			}
			if tc.touchedAt != 0 {
				seen, server, ok := s.Service("Harmonic_Traffic").LastSeen(client, now)
				if !ok || seen != tc.touchedAt || server != "HT1" {
					t.Errorf("persistence entry %d %q %v, want %d HT1", seen, server, ok, tc.touchedAt)
				}
			}
		})
	}
}

// TestFastPathAgerBumps: every snapshot swap starts a new generation; a
// failed bump is survived (and logged).
func TestFastPathAgerBumps(t *testing.T) {
	m := &memFastPath{gen: 1}
	var h tables.Holder
	a := NewFastPathAger(m, &h, nil, zerolog.Nop())
	a.OnSnapshot(nil, nil)
	a.OnSnapshot(nil, nil)
	if m.gen != 3 {
		t.Errorf("generation %d after two swaps, want 3", m.gen)
	}
	m.bumpErr = errors.New("map gone")
	a.OnSnapshot(nil, nil)
	if m.gen != 3 {
		t.Errorf("generation %d after a failed bump, want 3", m.gen)
	}
	a.Walk() // no snapshot: nothing to keep, nothing to crash on
}
