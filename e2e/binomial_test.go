package e2e

import (
	"math"
	"testing"
)

// TestBinomialTail checks the tail the surge test judges ping loss with against
// exact sums (Python's math.comb).
func TestBinomialTail(t *testing.T) {
	tests := []struct {
		n, k int
		p    float64
		want float64
	}{
		{n: 10, k: 0, p: 0.5, want: 1},
		{n: 10, k: 1, p: 0.5, want: 1 - 1.0/1024},
		{n: 10, k: 10, p: 0.5, want: 1.0 / 1024},
		{n: 2, k: 1, p: 0.1, want: 0.19},
		{n: 3, k: 2, p: 0.2, want: 3*0.04*0.8 + 0.008},
		{n: 145, k: 3, p: 0.02, want: 0.5561},   // the failed run: 3 of 145 is well within 2 %
		{n: 580, k: 22, p: 0.02, want: 0.00379}, // 3.8 % lost: passes
		{n: 580, k: 24, p: 0.02, want: 0.00083}, // 4.1 % lost: fails
	}
	for _, tt := range tests {
		got := binomialTail(tt.n, tt.k, tt.p)
		if math.Abs(got-tt.want) > 0.0005*max(tt.want, 0.1) {
			t.Errorf("binomialTail(%d, %d, %v) = %.5f, want %.5f", tt.n, tt.k, tt.p, got, tt.want)
		}
	}
}
