package config

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// PortRange is an inclusive range of TCP or UDP ports, Lo..Hi. A single port
// has Lo == Hi. The zero PortRange is not valid (port 0 is not a port).
type PortRange struct {
	Lo, Hi uint16
}

// Contains reports whether port lies in r.
func (r PortRange) Contains(port uint16) bool { return r.Lo <= port && port <= r.Hi }

// Count returns the number of ports in r (0 if r is reversed).
func (r PortRange) Count() int {
	if r.Hi < r.Lo {
		return 0
	}
	return int(r.Hi) - int(r.Lo) + 1
}

// String returns "554" for a single port and "50000-65535" for a range.
func (r PortRange) String() string {
	if r.Lo == r.Hi {
		return strconv.Itoa(int(r.Lo))
	}
	return strconv.Itoa(int(r.Lo)) + "-" + strconv.Itoa(int(r.Hi))
}

// PortRanges is the set of ports of a virtual service, in the order the
// configuration lists them. A validated PortRanges is non-empty and its ranges
// neither overlap nor are reversed.
type PortRanges []PortRange

// Contains reports whether port lies in any of the ranges.
func (rs PortRanges) Contains(port uint16) bool {
	for _, r := range rs {
		if r.Contains(port) {
			return true
		}
	}
	return false
}

// Count returns the number of ports in all ranges (counting overlaps twice).
func (rs PortRanges) Count() int {
	n := 0
	for _, r := range rs {
		n += r.Count()
	}
	return n
}

// First returns the first port as written in the configuration, or 0 for an
// empty PortRanges.
func (rs PortRanges) First() uint16 {
	if len(rs) == 0 {
		return 0
	}
	return rs[0].Lo
}

// String returns the guide's form, e.g. "1935,554,50000-65535".
func (rs PortRanges) String() string {
	parts := make([]string, len(rs))
	for i, r := range rs {
		parts[i] = r.String()
	}
	return strings.Join(parts, ",")
}

// Sorted returns a copy of rs sorted by Lo.
func (rs PortRanges) Sorted() PortRanges {
	out := slices.Clone(rs)
	slices.SortFunc(out, func(a, b PortRange) int { return int(a.Lo) - int(b.Lo) })
	return out
}

// ParsePorts parses the guide's port list form, e.g. "1935,554,50000-65535"
// (spaces around commas and dashes are allowed), and checks it as the
// configuration does: ports in 1..65535, no reversed or overlapping ranges.
func ParsePorts(s string) (PortRanges, error) {
	rs, probs := parsePortString(s)
	probs = append(probs, checkPortRanges(rs)...)
	if len(probs) > 0 {
		errs := make([]error, len(probs))
		for i, p := range probs {
			errs[i] = errors.New(p)
		}
		return nil, errors.Join(errs...)
	}
	return rs, nil
}

// parsePortString parses a comma-separated port list. Ranges that do not
// parse are left out and described in problems.
func parsePortString(s string) (rs PortRanges, problems []string) {
	if strings.TrimSpace(s) == "" {
		return nil, []string{"no ports given"}
	}
	for tok := range strings.SplitSeq(s, ",") {
		r, err := parsePortToken(tok)
		if err != nil {
			problems = append(problems, err.Error())
			continue
		}
		rs = append(rs, r)
	}
	return rs, problems
}

// parsePortToken parses "554" or "50000-65535". A reversed range is returned
// as written (Lo > Hi) for checkPortRanges to report.
func parsePortToken(tok string) (PortRange, error) {
	t := strings.TrimSpace(tok)
	if t == "" {
		return PortRange{}, errors.New("empty entry in port list (two commas in a row?)")
	}
	lo, hi, isRange := strings.Cut(t, "-")
	l, err := parsePort(strings.TrimSpace(lo))
	if err != nil {
		return PortRange{}, err
	}
	if !isRange {
		return PortRange{l, l}, nil
	}
	h, err := parsePort(strings.TrimSpace(hi))
	if err != nil {
		return PortRange{}, err
	}
	return PortRange{l, h}, nil
}

func parsePort(s string) (uint16, error) {
	if s == "" {
		return 0, errors.New("port range with a missing end")
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("%q is not a port number", s)
		}
	}
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil || n < 1 || n > 65535 {
		return 0, fmt.Errorf("port %s is out of range 1..65535", s)
	}
	return uint16(n), nil
}

// checkPortRanges reports reversed ranges and ranges that overlap each other.
func checkPortRanges(rs PortRanges) (problems []string) {
	var ok PortRanges
	for _, r := range rs {
		if r.Hi < r.Lo {
			problems = append(problems, fmt.Sprintf("port range %d-%d is reversed (write %d-%d)", r.Lo, r.Hi, r.Hi, r.Lo))
			continue
		}
		ok = append(ok, r)
	}
	s := ok.Sorted()
	for i := 1; i < len(s); i++ {
		prev, cur := s[i-1], s[i]
		if cur.Lo > prev.Hi {
			continue
		}
		if prev == cur && prev.Lo == prev.Hi {
			problems = append(problems, fmt.Sprintf("port %d is listed twice", cur.Lo))
		} else {
			problems = append(problems, fmt.Sprintf("ports %s and %s overlap", prev, cur))
		}
		if cur.Hi < prev.Hi {
			s[i] = prev // keep the widest range for the next comparison
		}
	}
	return problems
}
