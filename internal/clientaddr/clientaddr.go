// Package clientaddr says which clients count as one for per-source limits
// (the API's login rate limit, layer-7 connections per source).
package clientaddr

import "net/netip"

// Key is the address client a counts under: the address itself for IPv4
// (IPv4-mapped IPv6 included), its /64 for IPv6, since one host has a whole
// /64 to pick addresses from.
func Key(a netip.Addr) netip.Addr {
	a = a.Unmap()
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.Addr()
	}
	return a
}
