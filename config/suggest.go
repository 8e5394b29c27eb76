package config

import (
	"fmt"
	"strings"
)

// aliases maps words other load balancers use to ours.
var aliases = map[string]string{
	"vip":           "address",
	"ip":            "address",
	"addr":          "address",
	"port":          "ports",
	"backends":      "real_servers",
	"servers":       "real_servers",
	"rips":          "real_servers",
	"real_server":   "real_servers",
	"realservers":   "real_servers",
	"healthcheck":   "health_check",
	"check":         "health_check",
	"services":      "virtual_services",
	"vips":          "virtual_services",
	"virtualserver": "virtual_services",
	"mode":          "forwarding",
	"method":        "forwarding",
	"proto":         "protocol",
	"label":         "name",
	"password":      "password_hash",
}

// unknownKey describes an unknown key with the known key it most likely meant.
func unknownKey(path, key string, known []string) string {
	msg := fmt.Sprintf("%s: unknown key %q", path, key)
	if best := closest(key, known); best != "" {
		return msg + fmt.Sprintf(" (did you mean %q?)", best)
	}
	if a, ok := aliases[normalizeKey(key)]; ok && contains(known, a) {
		return msg + fmt.Sprintf(" (did you mean %q?)", a)
	}
	return msg + " (known keys: " + strings.Join(known, ", ") + ")"
}

func normalizeKey(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(strings.ToLower(s), "-", "_"), " ", "_")
}

// closest returns the candidate nearest to s if it is near enough to be a
// typo: at most one edit for short words, a third of the length for long ones
// (case, dashes and underscores ignored).
func closest(s string, candidates []string) string {
	ns := normalizeKey(s)
	best, bestD := "", 1<<30
	for _, c := range candidates {
		d := editDistance(ns, normalizeKey(c))
		if d < bestD {
			best, bestD = c, d
		}
	}
	limit := max(1, len(ns)/3)
	if best == "" || bestD > limit {
		return ""
	}
	return best
}

// editDistance is the optimal-string-alignment distance: insertions,
// deletions, substitutions and transpositions of neighbours cost 1.
func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		if a == b {
			return 0
		}
		return 1 << 20
	}
	ra, rb := []rune(a), []rune(b)
	prev2 := make([]int, len(rb)+1)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(rb)]
}
