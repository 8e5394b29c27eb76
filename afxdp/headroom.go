package afxdp

// Grow returns d extended by n bytes at its front, within the same UMEM frame,
// and the grown frame's bytes (pipeline.Headroom: the tunnel's outer headers go
// there). A received frame starts after the kernel's headroom
// (XDP_PACKET_HEADROOM, 256 bytes), so n up to that always fits; ok is false
// when the frame has less room in front of it. The TX ring takes a descriptor
// anywhere within its frame, and Release and completions find the frame from
// any address in it.
func (s *Socket) Grow(d Desc, n int) (Desc, []byte, bool) {
	base := d.Addr & s.frameMask
	if n < 0 || d.Addr-base < uint64(n) {
		return d, nil, false
	}
	nd := Desc{Addr: d.Addr - uint64(n), Len: d.Len + uint32(n)}
	return nd, s.Frame(nd), true
}
