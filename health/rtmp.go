package health

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/netip"
	"time"
)

// TypeRTMP checks an RTMP server as a publisher would start: the handshake
// (C0/C1, S0/S1/S2, C2) and a connect command to Spec.App, which must be
// answered with _result.
const TypeRTMP = "rtmp"

// DefaultRTMPApp is the application an rtmp check connects to when the
// Spec names none.
const DefaultRTMPApp = "live"

// rtmpHandshakeSize is the size of C1, C2, S1 and S2.
const rtmpHandshakeSize = 1536

// rtmpAwaitPhase names the wait for connect's answer in reasons.
const rtmpAwaitPhase = "waiting for the answer to connect"

// rtmpMaxMessage bounds a message the check reassembles: the answer to
// connect is small.
const rtmpMaxMessage = 64 << 10

type rtmpChecker struct{ spec Spec }

func (c *rtmpChecker) Check(ctx context.Context, target netip.AddrPort) Result {
	start := time.Now()
	target = resolvePort(target, c.spec.Port)
	app := c.spec.App
	if app == "" {
		app = DefaultRTMPApp
	}
	label := fmt.Sprintf("rtmp %s/%s", target, app)
	ctx, conn, done, r := session(ctx, c.spec, "tcp", target, label, start)
	if conn == nil {
		return r
	}
	defer done()
	phase, err := rtmpConnect(conn, target, app)
	d := time.Since(start)
	if err != nil {
		var rej rtmpRejected
		if errors.As(err, &rej) {
			return Result{Reason: label + ": " + rej.Error(), Duration: d}
		}
		reason := describe(ctx, err, c.spec.Timeout, phase)
		if phase == rtmpAwaitPhase && errors.Is(err, io.EOF) {
			// nginx-rtmp's answer to an unknown application.
			reason += fmt.Sprintf(": no application %q on the server?", app)
		}
		return Result{Reason: label + ": " + reason, Duration: d}
	}
	return Result{OK: true, Reason: label + ": connect answered _result in " + round(d).String(), Duration: d}
}

// rtmpRejected is a connect answered with something other than _result.
type rtmpRejected struct{ name, desc string }

func (e rtmpRejected) Error() string {
	if e.desc != "" {
		return fmt.Sprintf("connect answered %s (%s)", e.name, e.desc)
	}
	return "connect answered " + e.name
}

// rtmpConnect does the handshake and the connect command on conn; on error
// it says in which phase.
func rtmpConnect(conn net.Conn, target netip.AddrPort, app string) (phase string, err error) {
	r := bufio.NewReaderSize(conn, 4096)
	c1 := make([]byte, 1+rtmpHandshakeSize)
	c1[0] = 3 // RTMP version
	rand.Read(c1[9:])
	if _, err := conn.Write(c1); err != nil {
		return "sending C0/C1", err
	}
	s := make([]byte, 1+2*rtmpHandshakeSize)
	if _, err := io.ReadFull(r, s); err != nil {
		return "reading S0/S1/S2 (not an RTMP server?)", err
	}
	if s[0] != 3 {
		return "handshake", fmt.Errorf("S0 version %d, want 3 (not an RTMP server?)", s[0])
	}
	if _, err := conn.Write(s[1 : 1+rtmpHandshakeSize]); err != nil { // C2 echoes S1
		return "sending C2", err
	}
	tcURL := fmt.Sprintf("rtmp://%s/%s", target, app)
	body := amfString(nil, "connect")
	body = amfNumber(body, 1)
	body = append(body, 3) // object
	for _, kv := range [][2]string{{"app", app}, {"type", "nonprivate"}, {"flashVer", "FMLE/3.0 (medialb health check)"}, {"tcUrl", tcURL}} {
		body = amfKey(body, kv[0])
		body = amfString(body, kv[1])
	}
	body = append(body, 0, 0, 9) // object end
	if _, err := conn.Write(rtmpChunks(3, 20, 0, body, 128)); err != nil {
		return "sending connect", err
	}
	return rtmpAwaitResult(r)
}

// rtmpChunks splits a message into chunks of chunk stream csid (2..63): a
// type-0 header, then type-3 headers every size bytes.
func rtmpChunks(csid byte, typ byte, stream uint32, msg []byte, size int) []byte {
	out := []byte{csid, 0, 0, 0, byte(len(msg) >> 16), byte(len(msg) >> 8), byte(len(msg)), typ}
	out = binary.LittleEndian.AppendUint32(out, stream)
	for i := 0; i < len(msg); i += size {
		if i > 0 {
			out = append(out, 0xC0|csid)
		}
		out = append(out, msg[i:min(i+size, len(msg))]...)
	}
	return out
}

// rtmpAwaitResult reads chunks until the answer to connect: a command
// message (AMF0, type 20) named _result or _error. It follows the server's
// Set Chunk Size and skips its other messages.
func rtmpAwaitResult(r *bufio.Reader) (string, error) {
	const phase = rtmpAwaitPhase
	type stream struct {
		length, typ uint32
		delta       uint32
		buf         []byte
	}
	streams := map[uint32]*stream{}
	chunk := 128
	for {
		b0, err := r.ReadByte()
		if err != nil {
			return phase, err
		}
		fmtType, csid := b0>>6, uint32(b0&0x3F)
		switch csid {
		case 0:
			b, err := r.ReadByte()
			if err != nil {
				return phase, err
			}
			csid = 64 + uint32(b)
		case 1:
			var b [2]byte
			if _, err := io.ReadFull(r, b[:]); err != nil {
				return phase, err
			}
			csid = 64 + uint32(b[0]) + 256*uint32(b[1])
		}
		st := streams[csid]
		if st == nil {
			if fmtType != 0 {
				return phase, fmt.Errorf("chunk of stream %d starts with header type %d (not RTMP?)", csid, fmtType)
			}
			st = &stream{}
			streams[csid] = st
		}
		hdr := [...]int{11, 7, 3, 0}[fmtType]
		var h [11]byte
		if _, err := io.ReadFull(r, h[:hdr]); err != nil {
			return phase, err
		}
		ts := uint32(0)
		if hdr >= 3 {
			ts = uint32(h[0])<<16 | uint32(h[1])<<8 | uint32(h[2])
		}
		if hdr >= 7 {
			st.length = uint32(h[3])<<16 | uint32(h[4])<<8 | uint32(h[5])
			st.typ = uint32(h[6])
		}
		if ts == 0xFFFFFF {
			var ext [4]byte
			if _, err := io.ReadFull(r, ext[:]); err != nil {
				return phase, err
			}
		}
		if st.length > rtmpMaxMessage {
			return phase, fmt.Errorf("message of %d bytes (more than %d, not an answer to connect)", st.length, rtmpMaxMessage)
		}
		n := min(chunk, int(st.length)-len(st.buf))
		part := make([]byte, n)
		if _, err := io.ReadFull(r, part); err != nil {
			return phase, err
		}
		st.buf = append(st.buf, part...)
		if len(st.buf) < int(st.length) {
			continue
		}
		msg, typ := st.buf, st.typ
		st.buf = nil
		switch typ {
		case 1: // Set Chunk Size
			if len(msg) >= 4 {
				chunk = int(binary.BigEndian.Uint32(msg) & 0x7FFFFFFF)
				if chunk < 1 {
					return phase, fmt.Errorf("chunk size %d", chunk)
				}
			}
		case 20: // AMF0 command
			name, rest, ok := amfReadString(msg)
			if !ok {
				return phase, errors.New("malformed command message")
			}
			switch name {
			case "_result":
				return "", nil
			case "_error":
				return phase, rtmpRejected{name: name, desc: amfFindString(rest, "description")}
			}
		}
	}
}

func amfString(b []byte, s string) []byte {
	b = append(b, 2, byte(len(s)>>8), byte(len(s)))
	return append(b, s...)
}

func amfKey(b []byte, s string) []byte {
	b = append(b, byte(len(s)>>8), byte(len(s)))
	return append(b, s...)
}

func amfNumber(b []byte, f float64) []byte {
	b = append(b, 0)
	return binary.BigEndian.AppendUint64(b, math.Float64bits(f))
}

// amfReadString reads an AMF0 string value at the start of b.
func amfReadString(b []byte) (s string, rest []byte, ok bool) {
	if len(b) < 3 || b[0] != 2 {
		return "", nil, false
	}
	n := int(b[1])<<8 | int(b[2])
	if len(b) < 3+n {
		return "", nil, false
	}
	return string(b[3 : 3+n]), b[3+n:], true
}

// amfFindString returns the string value that follows the property name key
// in b, "" when there is none: enough to quote an _error's description
// without decoding every AMF0 type.
func amfFindString(b []byte, key string) string {
	pat := amfKey(nil, key)
	for i := 0; i+len(pat) < len(b); i++ {
		if string(b[i:i+len(pat)]) == string(pat) {
			if s, _, ok := amfReadString(b[i+len(pat):]); ok {
				return s
			}
		}
	}
	return ""
}
