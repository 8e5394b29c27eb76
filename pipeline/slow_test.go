package pipeline

// A slow, obvious reference decoder: one struct per layer in the style of gopacket
// (DecodeFromBytes, then the payload goes to the next layer), built on encoding/binary
// and net/netip, sharing no code with parse.go. FuzzParse compares the two.

import (
	"encoding/binary"
	"errors"
	"net/netip"
)

var (
	errTruncated = errors.New("truncated")
	errBadField  = errors.New("inconsistent field")
	errNotOurs   = errors.New("not for us")
)

type slowLayerError struct {
	layer Reason // the Malformed reason of the layer that failed, or NotForUs
	err   error
}

func (e *slowLayerError) Error() string { return e.layer.String() + ": " + e.err.Error() }

type slowEthernet struct {
	Dst, Src  [6]byte
	Tags      []uint16 // TCI of each VLAN tag
	EtherType uint16
	Payload   []byte
}

func (e *slowEthernet) DecodeFromBytes(data []byte) error {
	if len(data) < 14 {
		return &slowLayerError{MalformedEthernet, errTruncated}
	}
	copy(e.Dst[:], data[0:6])
	copy(e.Src[:], data[6:12])
	e.EtherType = binary.BigEndian.Uint16(data[12:14])
	rest := data[14:]
	e.Tags = e.Tags[:0]
	for e.EtherType == 0x8100 || e.EtherType == 0x88a8 {
		if len(e.Tags) >= 2 {
			return &slowLayerError{NotForUs, errors.New("too many VLAN tags")}
		}
		if len(rest) < 4 {
			return &slowLayerError{MalformedEthernet, errTruncated}
		}
		e.Tags = append(e.Tags, binary.BigEndian.Uint16(rest[0:2]))
		e.EtherType = binary.BigEndian.Uint16(rest[2:4])
		rest = rest[4:]
	}
	e.Payload = rest
	return nil
}

type slowIPv4 struct {
	Version, IHL   uint8
	TotalLength    uint16
	MoreFragments  bool
	FragmentOffset uint16
	Protocol       uint8
	Src, Dst       netip.Addr
	Options        []byte
	Payload        []byte
}

func (ip *slowIPv4) DecodeFromBytes(data []byte) error {
	fail := func(err error) error { return &slowLayerError{MalformedIPv4, err} }
	if len(data) < 20 {
		return fail(errTruncated)
	}
	ip.Version = data[0] >> 4
	ip.IHL = data[0] & 0x0f
	ip.TotalLength = binary.BigEndian.Uint16(data[2:4])
	flagsFrag := binary.BigEndian.Uint16(data[6:8])
	ip.MoreFragments = flagsFrag&0x2000 != 0
	ip.FragmentOffset = flagsFrag & 0x1fff
	ip.Protocol = data[9]
	ip.Src, _ = netip.AddrFromSlice(data[12:16])
	ip.Dst, _ = netip.AddrFromSlice(data[16:20])
	switch {
	case ip.Version != 4:
		return fail(errBadField)
	case ip.IHL < 5:
		return fail(errBadField)
	case int(ip.TotalLength) < int(ip.IHL)*4:
		return fail(errBadField)
	case int(ip.TotalLength) > len(data):
		return fail(errTruncated)
	}
	hdrLen := int(ip.IHL) * 4
	ip.Options = data[20:hdrLen]
	ip.Payload = data[hdrLen:ip.TotalLength]
	return nil
}

type slowIPv6 struct {
	Version       uint8
	PayloadLength uint16
	NextHeader    uint8 // of the fixed header
	Src, Dst      netip.Addr
	Payload       []byte
}

func (ip *slowIPv6) DecodeFromBytes(data []byte) error {
	if len(data) < 40 {
		return &slowLayerError{MalformedIPv6, errTruncated}
	}
	ip.Version = data[0] >> 4
	if ip.Version != 6 {
		return &slowLayerError{MalformedIPv6, errBadField}
	}
	ip.PayloadLength = binary.BigEndian.Uint16(data[4:6])
	ip.NextHeader = data[6]
	ip.Src = netip.AddrFrom16([16]byte(data[8:24]))
	ip.Dst = netip.AddrFrom16([16]byte(data[24:40]))
	if 40+int(ip.PayloadLength) > len(data) {
		return &slowLayerError{MalformedIPv6, errTruncated}
	}
	ip.Payload = data[40 : 40+int(ip.PayloadLength)]
	return nil
}

// slowIPv6Ext is one extension header (hop-by-hop, routing, destination options, fragment, AH).
type slowIPv6Ext struct {
	Type       uint8
	NextHeader uint8
	// fragment header only
	FragmentOffset uint16
	More           bool
	Payload        []byte
}

func (x *slowIPv6Ext) DecodeFromBytes(typ uint8, data []byte) error {
	x.Type = typ
	if len(data) < 8 {
		return &slowLayerError{MalformedIPv6, errTruncated}
	}
	x.NextHeader = data[0]
	if typ == 44 {
		v := binary.BigEndian.Uint16(data[2:4])
		x.FragmentOffset = v >> 3
		x.More = v&1 == 1
		x.Payload = data[8:]
		return nil
	}
	n := (int(data[1]) + 1) * 8
	if typ == 51 { // AH counts 4-byte units, minus 2
		n = (int(data[1]) + 2) * 4
	}
	if n > len(data) {
		return &slowLayerError{MalformedIPv6, errTruncated}
	}
	x.Payload = data[n:]
	return nil
}

type slowTCP struct {
	SrcPort, DstPort uint16
	DataOffset       uint8
}

func (t *slowTCP) DecodeFromBytes(data []byte) error {
	if len(data) < 20 {
		return &slowLayerError{MalformedL4, errTruncated}
	}
	t.SrcPort = binary.BigEndian.Uint16(data[0:2])
	t.DstPort = binary.BigEndian.Uint16(data[2:4])
	t.DataOffset = data[12] >> 4
	if t.DataOffset < 5 || int(t.DataOffset)*4 > len(data) {
		return &slowLayerError{MalformedL4, errBadField}
	}
	return nil
}

type slowUDP struct {
	SrcPort, DstPort, Length uint16
}

// DecodeFromBytes decodes a UDP header; wholeDatagram says whether data is the whole
// datagram (not a first fragment), so that the length field can be checked against it.
func (u *slowUDP) DecodeFromBytes(data []byte, wholeDatagram bool) error {
	if len(data) < 8 {
		return &slowLayerError{MalformedL4, errTruncated}
	}
	u.SrcPort = binary.BigEndian.Uint16(data[0:2])
	u.DstPort = binary.BigEndian.Uint16(data[2:4])
	u.Length = binary.BigEndian.Uint16(data[4:6])
	if u.Length < 8 {
		return &slowLayerError{MalformedL4, errBadField}
	}
	if wholeDatagram && int(u.Length) > len(data) {
		return &slowLayerError{MalformedL4, errTruncated}
	}
	return nil
}

// slowResult is the reference's view of a frame.
type slowResult struct {
	Reason           Reason
	Src, Dst         netip.Addr
	Proto            uint8
	Frag             Frag
	SrcPort, DstPort uint16
	VLANs            int
}

// slowParse decodes frame layer by layer.
func slowParse(frame []byte) slowResult {
	res, err := slowDecode(frame)
	if err != nil {
		var le *slowLayerError
		if !errors.As(err, &le) {
			panic(err)
		}
		return slowResult{Reason: le.layer}
	}
	res.Reason = OK
	return res
}

func slowDecode(frame []byte) (slowResult, error) {
	var res slowResult
	var eth slowEthernet
	if err := eth.DecodeFromBytes(frame); err != nil {
		return res, err
	}
	res.VLANs = len(eth.Tags)
	var l4 []byte
	switch eth.EtherType {
	case 0x0800:
		var ip slowIPv4
		if err := ip.DecodeFromBytes(eth.Payload); err != nil {
			return res, err
		}
		res.Src, res.Dst, res.Proto = ip.Src, ip.Dst, ip.Protocol
		if ip.Protocol != 6 && ip.Protocol != 17 {
			return res, &slowLayerError{NotForUs, errNotOurs}
		}
		switch {
		case ip.FragmentOffset > 0:
			res.Frag = FragLater
			return res, nil
		case ip.MoreFragments:
			res.Frag = FragFirst
		}
		l4 = ip.Payload
	case 0x86dd:
		var ip slowIPv6
		if err := ip.DecodeFromBytes(eth.Payload); err != nil {
			return res, err
		}
		res.Src, res.Dst = ip.Src, ip.Dst
		next, payload := ip.NextHeader, ip.Payload
		var exts []slowIPv6Ext
		for next == 0 || next == 43 || next == 60 || next == 44 || next == 51 {
			if len(exts) == 8 {
				return res, &slowLayerError{MalformedIPv6, errors.New("extension header chain too long")}
			}
			var x slowIPv6Ext
			if err := x.DecodeFromBytes(next, payload); err != nil {
				return res, err
			}
			if x.Type == 44 {
				for _, prev := range exts {
					if prev.Type == 44 {
						return res, &slowLayerError{MalformedIPv6, errors.New("second fragment header")}
					}
				}
			}
			exts = append(exts, x)
			next, payload = x.NextHeader, x.Payload
			if x.Type == 44 && x.FragmentOffset > 0 {
				res.Proto = next
				if next != 6 && next != 17 {
					return res, &slowLayerError{NotForUs, errNotOurs}
				}
				res.Frag = FragLater
				return res, nil
			}
			if x.Type == 44 && x.More {
				res.Frag = FragFirst
			}
		}
		res.Proto = next
		if next != 6 && next != 17 {
			return res, &slowLayerError{NotForUs, errNotOurs}
		}
		l4 = payload
	default:
		return res, &slowLayerError{NotForUs, errNotOurs}
	}
	if res.Proto == 6 {
		var t slowTCP
		if err := t.DecodeFromBytes(l4); err != nil {
			return res, err
		}
		res.SrcPort, res.DstPort = t.SrcPort, t.DstPort
	} else {
		var u slowUDP
		if err := u.DecodeFromBytes(l4, res.Frag == FragNone); err != nil {
			return res, err
		}
		res.SrcPort, res.DstPort = u.SrcPort, u.DstPort
	}
	return res, nil
}
