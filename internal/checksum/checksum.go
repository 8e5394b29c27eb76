// Package checksum computes the Internet checksum (RFC 1071) of IPv4 headers,
// TCP, UDP, ICMP and ICMPv6, for the pipeline's encapsulation and ICMP errors,
// the real-server probes, the neighbour announcements and the lab's generators.
// It allocates nothing.
package checksum

import "encoding/binary"

// Sum adds b to the one's-complement accumulator acc, unfolded; an odd last
// byte counts as the high byte of a 16-bit word.
func Sum(b []byte, acc uint64) uint64 {
	for len(b) >= 8 {
		v := binary.BigEndian.Uint64(b)
		acc += v >> 32
		acc += v & 0xffffffff
		b = b[8:]
	}
	for len(b) >= 2 {
		acc += uint64(binary.BigEndian.Uint16(b))
		b = b[2:]
	}
	if len(b) == 1 {
		acc += uint64(b[0]) << 8
	}
	return acc
}

// Fold folds an accumulator into 16 bits; the checksum field takes ^Fold(acc).
func Fold(acc uint64) uint16 {
	for acc>>16 != 0 {
		acc = acc&0xffff + acc>>16
	}
	return uint16(acc)
}

// Pseudo is the accumulator of the pseudo-header of TCP, UDP and ICMPv6:
// source and destination addresses (4 or 16 bytes each), the upper-layer
// length and the protocol number.
func Pseudo(src, dst []byte, length uint32, proto byte) uint64 {
	return Sum(dst, Sum(src, 0)) + uint64(length>>16) + uint64(length&0xffff) + uint64(proto)
}
