package tables

import (
	"cmp"
	"slices"
)

// noServer marks an unfilled Maglev entry during construction.
const noServer = 0xFFFF

// maglevMember is one server taking part in a Maglev table.
type maglevMember struct {
	name   string
	index  uint16 // value stored in the table (index into Service.Servers)
	weight uint32
}

// buildMaglev fills a table of size m (a prime) with the weighted Maglev
// algorithm (Eisenbud et al., NSDI 2016, with the weighting of Katran's
// MaglevV2): each server has a preference list, the permutation
// (offset + j*skip) mod m where offset and skip come from the seeded hash of
// its name; rounds go over the servers in name order, every server earns
// credit equal to its weight each round and, whenever its credit reaches the
// largest weight, spends it to claim its next preferred free entry. Servers
// therefore fill entries in proportion to their weights, and a server
// joining or leaving moves about 1/N of the entries. Members with weight 0
// must not be passed. The result depends only on seed, m and the set of
// (name, index, weight), not on the order of members.
func buildMaglev(seed uint64, m uint32, members []maglevMember) []uint16 {
	if len(members) == 0 {
		return nil
	}
	ms := slices.Clone(members)
	slices.SortFunc(ms, func(a, b maglevMember) int { return cmp.Compare(a.name, b.name) })

	n := len(ms)
	next := make([]uint32, n)   // current permutation value of each member
	skip := make([]uint32, n)   // permutation step
	credit := make([]uint64, n) // accumulated weight
	var maxW uint32
	for i, mb := range ms {
		next[i] = uint32(hashString(seed, mb.name) % uint64(m))
		skip[i] = uint32(hashString(seed^p2, mb.name)%uint64(m-1)) + 1
		maxW = max(maxW, mb.weight)
	}

	table := make([]uint16, m)
	for i := range table {
		table[i] = noServer
	}
	filled := uint32(0)
	for {
		for i := range ms {
			credit[i] += uint64(ms[i].weight)
			if credit[i] < uint64(maxW) {
				continue
			}
			credit[i] -= uint64(maxW)
			// Claim the next free entry of i's preference list. skip < m,
			// so the step is an add and at most one subtract.
			c := next[i]
			for table[c] != noServer {
				c += skip[i]
				if c >= m {
					c -= m
				}
			}
			table[c] = ms[i].index
			c += skip[i]
			if c >= m {
				c -= m
			}
			next[i] = c
			filled++
			if filled == m {
				return table
			}
		}
	}
}

// IsPrime reports whether n is prime (trial division; n is a Maglev table
// size, which must be one).
func IsPrime(n uint64) bool {
	if n < 2 {
		return false
	}
	if n%2 == 0 {
		return n == 2
	}
	for d := uint64(3); d <= n/d; d += 2 {
		if n%d == 0 {
			return false
		}
	}
	return true
}
