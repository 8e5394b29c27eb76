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
type VIP struct {
	Addr  netip.Addr
	Proto uint8 // ProtoTCP or ProtoUDP
	Ports []PortRange
}

// keyOf builds the map key: IPv4 as the IPv4-mapped IPv6 address, as the
// program does; port 0 is the fragment key.
func keyOf(addr netip.Addr, proto uint8, port uint16) steerVipKey {
	return steerVipKey{Addr: addr.As16(), Proto: proto, Port: port}
}

// vipKeys expands vips into the set of map keys, checking them.
func vipKeys(vips []VIP) (map[steerVipKey]struct{}, error) {
	keys := make(map[steerVipKey]struct{})
	for _, v := range vips {
		if !v.Addr.IsValid() {
			return nil, fmt.Errorf("VIP %v: invalid address", v.Addr)
		}
		if v.Proto != ProtoTCP && v.Proto != ProtoUDP {
			return nil, fmt.Errorf("VIP %v: protocol %d is not TCP (6) or UDP (17)", v.Addr, v.Proto)
		}
		if len(v.Ports) == 0 {
			return nil, fmt.Errorf("VIP %v proto %d: no ports", v.Addr, v.Proto)
		}
		keys[keyOf(v.Addr, v.Proto, 0)] = struct{}{}
		for _, r := range v.Ports {
			if r.Lo == 0 || r.Hi < r.Lo {
				return nil, fmt.Errorf("VIP %v proto %d: bad port range %d-%d (want 1 <= lo <= hi)", v.Addr, v.Proto, r.Lo, r.Hi)
			}
			for p := uint32(r.Lo); p <= uint32(r.Hi); p++ {
				keys[keyOf(v.Addr, v.Proto, uint16(p))] = struct{}{}
			}
		}
	}
	return keys, nil
}

// diffKeys returns the keys to add (in want, not in have) and to delete.
func diffKeys(have, want map[steerVipKey]struct{}) (add, del []steerVipKey) {
	for k := range want {
		if _, ok := have[k]; !ok {
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
func applyDiff(m *ebpf.Map, add, del []steerVipKey) error {
	if len(add) > 0 {
		vals := make([]uint8, len(add))
		for i := range vals {
			vals[i] = 1
		}
		if _, err := m.BatchUpdate(add, vals, nil); err != nil {
			for _, k := range add {
				if err := m.Put(k, uint8(1)); err != nil {
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
