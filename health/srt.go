package health

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"net/netip"
	"time"
)

// TypeSRT sends an SRT caller's induction handshake (UDP) and expects the
// listener's induction response: what an SRT ingest answers before any
// stream is set up.
const TypeSRT = "srt"

// srtHandshakeSize is an SRT handshake packet without extensions: a 16-byte
// control header and 48 bytes of handshake.
const srtHandshakeSize = 16 + 48

type srtChecker struct{ spec Spec }

// srtInduction builds the caller's induction request (SRT RFC draft,
// section 4.3.1.1): handshake version 4, socket type DGRAM, handshake type
// induction (1), the caller's socket id, no cookie, the peer's address.
func srtInduction(socketID uint32, peer netip.Addr) []byte {
	p := make([]byte, srtHandshakeSize)
	binary.BigEndian.PutUint32(p[0:], 0x80000000) // control packet, type 0: handshake
	h := p[16:]
	binary.BigEndian.PutUint32(h[0:], 4)        // version
	binary.BigEndian.PutUint16(h[6:], 2)        // extension field: socket type DGRAM
	binary.BigEndian.PutUint32(h[8:], socketID) // initial sequence number (any)
	binary.BigEndian.PutUint32(h[12:], 1500)    // MTU
	binary.BigEndian.PutUint32(h[16:], 8192)    // flow window
	binary.BigEndian.PutUint32(h[20:], 1)       // handshake type: induction
	binary.BigEndian.PutUint32(h[24:], socketID)
	a := peer.As16()
	if peer.Is4() {
		a4 := peer.As4()
		a = [16]byte{}
		copy(a[:4], a4[:])
	}
	copy(h[32:48], a[:])
	return p
}

func (c *srtChecker) Check(ctx context.Context, target netip.AddrPort) Result {
	start := time.Now()
	target = resolvePort(target, c.spec.Port)
	label := "srt " + target.String()
	ctx, conn, done, r := session(ctx, c.spec, "udp", target, label, start)
	if conn == nil {
		return r
	}
	defer done()
	var id [4]byte
	rand.Read(id[:])
	socketID := binary.BigEndian.Uint32(id[:]) & 0x7fffffff
	if _, err := conn.Write(srtInduction(socketID, target.Addr())); err != nil {
		return Result{Reason: label + ": " + describe(ctx, err, c.spec.Timeout, "sending the induction"), Duration: time.Since(start)}
	}
	buf := make([]byte, 1500)
	for {
		n, err := conn.Read(buf)
		d := time.Since(start)
		if err != nil {
			return Result{Reason: label + ": " + describe(ctx, err, c.spec.Timeout, "waiting for the induction response"), Duration: d}
		}
		p := buf[:n]
		if n < srtHandshakeSize || binary.BigEndian.Uint32(p[0:]) != 0x80000000 || binary.BigEndian.Uint32(p[12:]) != socketID {
			continue // not the answer to this induction
		}
		h := p[16:]
		version, typ, cookie := binary.BigEndian.Uint32(h[0:]), binary.BigEndian.Uint32(h[20:]), binary.BigEndian.Uint32(h[28:])
		if typ != 1 {
			return Result{Reason: fmt.Sprintf("%s: handshake type %#x, want the induction response (1)", label, typ), Duration: d}
		}
		return Result{OK: true, Reason: fmt.Sprintf("%s: induction answered (SRT handshake version %d, cookie %#x) in %s", label, version, cookie, round(d)), Duration: d}
	}
}
