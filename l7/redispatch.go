package l7

import (
	"math"
	"net/netip"
	"slices"

	"github.com/medialb/medialb/tables"
)

// redispatch chooses the next server for client after the servers in tried
// failed or were full. tables.Service.Pick has no "excluding" form, so this
// is weighted rendezvous hashing (highest random weight) over the servers
// that Pick would consider for a new client (online, weight > 0), minus
// tried: like Maglev's next preference it depends only on the seed, the
// client address and the server names, so every node and every retry of the
// same client makes the same choice, and load spreads by weight. When no such
// server is left it returns the fallback server unless that was tried; nil
// means give up. The choice is not recorded in the persistence table.
func redispatch(svc *tables.Service, client netip.Addr, tried []*tables.Server, seed uint64) *tables.Server {
	var best *tables.Server
	bestScore := -1.0
	for _, s := range svc.Servers {
		if s.State != tables.StateOnline || s.Weight == 0 || slices.Contains(tried, s) {
			continue
		}
		if score := hrwScore(seed, client, s.Name, s.Weight); score > bestScore {
			best, bestScore = s, score
		}
	}
	if best != nil {
		return best
	}
	if fb := svc.Fallback; fb != nil && !slices.Contains(tried, fb) {
		return fb
	}
	return nil
}

// hrwScore is the weighted rendezvous score -w/ln(u), u a hash of (seed,
// client, server) mapped into (0, 1).
func hrwScore(seed uint64, client netip.Addr, server string, weight uint32) float64 {
	h := fnv1a(seed, client, server)
	u := (float64(h>>11) + 0.5) / (1 << 53)
	return -float64(weight) / math.Log(u)
}

// fnv1a hashes seed, the 16-byte form of client and server with FNV-1a and
// a splitmix64 finaliser; it allocates nothing.
func fnv1a(seed uint64, client netip.Addr, server string) uint64 {
	const prime = 1099511628211
	h := uint64(14695981039346656037)
	for i := range 8 {
		h = (h ^ uint64(byte(seed>>(8*i)))) * prime
	}
	a := client.Unmap().As16()
	for _, b := range a {
		h = (h ^ uint64(b)) * prime
	}
	for i := 0; i < len(server); i++ {
		h = (h ^ uint64(server[i])) * prime
	}
	h ^= h >> 30
	h *= 0xbf58476d1ce4e5b9
	h ^= h >> 27
	h *= 0x94d049bb133111eb
	h ^= h >> 31
	return h
}
