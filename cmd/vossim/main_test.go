package main

import (
	"slices"
	"testing"
)

func TestParsePorts(t *testing.T) {
	tests := []struct {
		in      string
		want    []uint16
		wantErr bool
	}{
		{"", []uint16{1935, 554}, false},
		{"50000,50001, 60000", []uint16{1935, 554, 50000, 50001, 60000}, false},
		{"554,1935,7000,7000", []uint16{1935, 554, 7000}, false},
		{"0", nil, true},
		{"65536", nil, true},
		{"12x", nil, true},
	}
	for _, tt := range tests {
		got, err := parsePorts(tt.in)
		if (err != nil) != tt.wantErr || !slices.Equal(got, tt.want) {
			t.Errorf("parsePorts(%q) = %v, %v; want %v, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}
