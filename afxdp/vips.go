package afxdp

import (
	"fmt"
	"net/netip"

	"github.com/cilium/ebpf"
)

// IP protocols the steering program matches ports for.
const (
	ProtoTCP = 6
	ProtoUDP = 17
)

// PortRange is an inclusive range of destination ports; Lo == Hi is one port.
type PortRange struct{ Lo, Hi uint16 }

// VIP is one steered destination: frames to Addr with protocol Proto and a
// destination port in Ports go to the AF_XDP sockets, and so do non-first IP
// fragments to Addr with protocol Proto (they carry no port).
//
// Service names the service the VIP belongs to; with FastPath set, the
// steering program forwards the clients of that service whose server the
// pipeline has recorded in the fast-path map itself, with XDP_TX (see
// [FastPath]). VIP entries with the same Service share one fast-path id, so a
// client keeps its decision across the service's ports and protocols.
type VIP struct {
	Addr     netip.Addr
	Proto    uint8 // ProtoTCP or ProtoUDP
	Ports    []PortRange
	Service  string
	FastPath bool
}

// Kinds of steering key (bpf/parse.h's KEY_PORT and KEY_FRAG).
const (
	keyPort = 0
	keyFrag = 1
)

// keyOf builds the map key of a port: IPv4 as the IPv4-mapped IPv6 address, as
// the program does.
func keyOf(addr netip.Addr, proto uint8, port uint16) steerVipKey {
	return steerVipKey{Addr: addr.As16(), Proto: proto, Kind: keyPort, Port: port}
}

// fragKeyOf builds the key of non-first fragments to addr with protocol proto.
// It is a kind of its own, so that TCP or UDP to port 0 matches no key.
func fragKeyOf(addr netip.Addr, proto uint8) steerVipKey {
	return steerVipKey{Addr: addr.As16(), Proto: proto, Kind: keyFrag}
}

// Key is a steering key as bpf/parse.h's struct vip_key lays it out: the
// destination address (IPv4 as the IPv4-mapped IPv6 address), the IP protocol,
// the kind (0: a port, 1: non-first fragments) and the destination port in
// host byte order (0 for fragments).
// Other programs built on parse.h (perf/xdpref) key their maps with it.
type Key = steerVipKey

// Keys expands vips into the set of steering keys, checking them: the keys a
// program built on bpf/parse.h looks up for the frames SetVIPs would steer.
func Keys(vips []VIP) (map[Key]struct{}, error) {
	kv, err := vipKeyValues(vips, nil)
	if err != nil {
		return nil, err
	}
	keys := make(map[Key]struct{}, len(kv))
	for k := range kv {
		keys[k] = struct{}{}
	}
	return keys, nil
}

// vipKeyValues expands vips into map keys and their values: the fast-path
// service id that id gives a VIP (0: no fast path; id nil: 0 for all).
func vipKeyValues(vips []VIP, id func(VIP) uint8) (map[steerVipKey]uint8, error) {
	keys := make(map[steerVipKey]uint8)
	for _, v := range vips {
		var val uint8
		if id != nil {
			val = id(v)
		}
		if !v.Addr.IsValid() {
			return nil, fmt.Errorf("VIP %v: invalid address", v.Addr)
		}
		if v.Proto != ProtoTCP && v.Proto != ProtoUDP {
			return nil, fmt.Errorf("VIP %v: protocol %d is not TCP (6) or UDP (17)", v.Addr, v.Proto)
		}
		if len(v.Ports) == 0 {
			return nil, fmt.Errorf("VIP %v proto %d: no ports", v.Addr, v.Proto)
		}
		keys[fragKeyOf(v.Addr, v.Proto)] = val
		for _, r := range v.Ports {
			if r.Lo == 0 || r.Hi < r.Lo {
				return nil, fmt.Errorf("VIP %v proto %d: bad port range %d-%d (want 1 <= lo <= hi)", v.Addr, v.Proto, r.Lo, r.Hi)
			}
			for p := uint32(r.Lo); p <= uint32(r.Hi); p++ {
				keys[keyOf(v.Addr, v.Proto, uint16(p))] = val
			}
		}
	}
	return keys, nil
}

// diffKeys returns the keys to write (in want, not in have or with another
// value) and to delete.
func diffKeys[V comparable](have, want map[steerVipKey]V) (add, del []steerVipKey) {
	for k, v := range want {
		if hv, ok := have[k]; !ok || hv != v {
			add = append(add, k)
		}
	}
	for k := range have {
		if _, ok := want[k]; !ok {
			del = append(del, k)
		}
	}
	return add, del
}

// applyDiff writes add and then deletes del, so a reload that changes a VIP
// never has a moment with fewer keys than both old and new sets share.
func applyDiff(m *ebpf.Map, want map[steerVipKey]uint8, add, del []steerVipKey) error {
	if len(add) > 0 {
		vals := make([]uint8, len(add))
		for i, k := range add {
			vals[i] = want[k]
		}
		if _, err := m.BatchUpdate(add, vals, nil); err != nil {
			for i, k := range add {
				if err := m.Put(k, vals[i]); err != nil {
					return fmt.Errorf("add VIP key %v: %w", k, err)
				}
			}
		}
	}
	if len(del) > 0 {
		if _, err := m.BatchDelete(del, nil); err != nil {
			for _, k := range del {
				if err := m.Delete(k); err != nil && !isNotExist(err) {
					return fmt.Errorf("delete VIP key %v: %w", k, err)
				}
			}
		}
	}
	return nil
}
