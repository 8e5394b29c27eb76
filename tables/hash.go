package tables

import (
	"encoding/binary"
	"math/bits"
	"net/netip"
)

// The hashes below are fixed algorithms (multiply-fold mixing in the style of
// wyhash, with constants from wyhash v4), so that the same HashSeed gives the
// same values in every process, on every machine and in every version that
// keeps the golden digest in testdata/ passing. Go's map hash and hash/maphash
// are randomized per process and must not be used here.
const (
	p0 = 0xa0761d6478bd642f
	p1 = 0xe7037ed1a0b428db
	p2 = 0x8ebc6af09c88c6e3
	p3 = 0x589965cc75374cc3
)

// mum multiplies a and b into 128 bits and folds the halves.
func mum(a, b uint64) uint64 {
	hi, lo := bits.Mul64(a, b)
	return hi ^ lo
}

// hashBytes is the seeded 64-bit hash of b: 8-byte little-endian words, the
// tail zero-padded, the length folded in at the end.
func hashBytes(seed uint64, b []byte) uint64 {
	h := seed ^ p0
	n := len(b)
	for len(b) >= 8 {
		h = mum(h^binary.LittleEndian.Uint64(b), p1)
		b = b[8:]
	}
	if len(b) > 0 {
		var t [8]byte
		copy(t[:], b)
		h = mum(h^binary.LittleEndian.Uint64(t[:]), p1)
	}
	return mum(h^uint64(n)^p2, p3)
}

// hashString is hashBytes of s.
func hashString(seed uint64, s string) uint64 { return hashBytes(seed, []byte(s)) }

// hashAddr is the seeded 64-bit client hash of the 16-byte form of a (IPv4
// addresses in their IPv4-mapped IPv6 form, so 1.2.3.4 and ::ffff:1.2.3.4 are
// the same client). It allocates nothing.
func hashAddr(seed uint64, a netip.Addr) uint64 {
	b := a.As16()
	k0 := binary.LittleEndian.Uint64(b[0:8])
	k1 := binary.LittleEndian.Uint64(b[8:16])
	return hash128(seed, k0, k1)
}

// hash128 hashes a 16-byte key given as two little-endian words; it equals
// hashBytes(seed, key).
func hash128(seed, k0, k1 uint64) uint64 {
	h := seed ^ p0
	h = mum(h^k0, p1)
	h = mum(h^k1, p1)
	return mum(h^16^p2, p3)
}

// addrKey returns the 16-byte form of a as two words (the affinity key).
func addrKey(a netip.Addr) (k0, k1 uint64) {
	b := a.As16()
	return binary.LittleEndian.Uint64(b[0:8]), binary.LittleEndian.Uint64(b[8:16])
}
