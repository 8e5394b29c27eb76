package checksum

import (
	"encoding/hex"
	"testing"
)

func TestChecksum(t *testing.T) {
	mustHex := func(s string) []byte {
		b, err := hex.DecodeString(s)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	tests := []struct {
		name string
		acc  func() uint64
		want uint16
	}{
		// RFC 1071's example: 0001 f203 f4f5 f6f7 sums to ddf2 (checksum 220d).
		{"rfc1071", func() uint64 { return Sum(mustHex("0001f203f4f5f6f7"), 0) }, 0x220d},
		// An IPv4 header (Wikipedia's "IPv4 header checksum" example), checksum field zeroed.
		{"ipv4 header", func() uint64 { return Sum(mustHex("450000730000400040110000c0a80001c0a800c7"), 0) }, 0xb861},
		// Odd length: the last byte is a high byte.
		{"odd", func() uint64 { return Sum([]byte{0x01, 0x02, 0x03}, 0) }, ^uint16(0x0102 + 0x0300)},
		// UDP over IPv4: 10.0.0.1:1000 -> 10.0.0.2:2000, payload "hi", checksum field zeroed.
		{"udp4", func() uint64 {
			udp := mustHex("03e807d0000a00006869")
			return Sum(udp, Pseudo(mustHex("0a000001"), mustHex("0a000002"), uint32(len(udp)), 17))
		}, 0x77b6}, // computed apart, word by word
	}
	for _, tt := range tests {
		got := ^Fold(tt.acc())
		if got != tt.want {
			t.Errorf("%s: checksum %#04x, want %#04x", tt.name, got, tt.want)
		}
	}
}

// TestSumWordByWord: the 8-byte loop of Sum gives what adding 16-bit words one
// by one gives, for every length up to 64 and every start accumulator tried.
func TestSumWordByWord(t *testing.T) {
	b := make([]byte, 64)
	for i := range b {
		b[i] = byte(i*37 + 11)
	}
	for n := 0; n <= len(b); n++ {
		for _, acc := range []uint64{0, 1, 0xffff, 0x1_0000_ffff} {
			want := acc
			for i := 0; i+1 < n; i += 2 {
				want += uint64(b[i])<<8 | uint64(b[i+1])
			}
			if n%2 == 1 {
				want += uint64(b[n-1]) << 8
			}
			if got := Sum(b[:n], acc); Fold(got) != Fold(want) {
				t.Errorf("Sum of %d bytes from %#x folds to %#04x, word by word %#04x", n, acc, Fold(got), Fold(want))
			}
		}
	}
}
