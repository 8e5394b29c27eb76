package afxdp

import "testing"

// TestTXBudget: in copy mode one Transmit of 256 frames takes a sendto or two
// with the ring-sized budget, and at least 256/32 with the kernel's 32 frames
// per sendto (the default).
func TestTXBudget(t *testing.T) {
	for _, tt := range []struct {
		name      string
		budget    int
		minKicks  uint64
		maxKicks  uint64
		wantRaise bool
	}{
		{"ring", TXBudgetRing, 1, 2, true},
		{"kernel default", TXBudgetKernel, 8, 1 << 20, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := newPair(t)
			d := p.open(t, Config{TXBudget: tt.budget})
			s := d.Sockets()[0]
			if s.txBudget != tt.wantRaise {
				t.Fatalf("budget raised: %v, want %v", s.txBudget, tt.wantRaise)
			}
			tmpl := udp4(p.macB, p.macA, ipA4, ipB4, 5000, 9, make([]byte, 22))
			descs := make([]Desc, 256)
			if n := s.Alloc(descs); n != len(descs) {
				t.Fatalf("Alloc: %d frames, want %d", n, len(descs))
			}
			for i := range descs {
				descs[i].Len = uint32(copy(s.Frame(descs[i]), tmpl))
			}
			before := s.Stats()
			if n := s.Transmit(descs); n != len(descs) {
				t.Fatalf("Transmit took %d of %d", n, len(descs))
			}
			after := s.Stats()
			kicks := after.TxKicks - before.TxKicks
			if kicks < tt.minKicks || kicks > tt.maxKicks {
				t.Errorf("%d sendto for 256 frames, want %d..%d", kicks, tt.minKicks, tt.maxKicks)
			}
			t.Logf("256 frames: %d sendto, %d completed", kicks, after.TxCompleted-before.TxCompleted)
		})
	}
}
