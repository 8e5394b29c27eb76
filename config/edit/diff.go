package edit

import "strings"

// Line is one line of a [Diff]: Op is ' ' (in both), '-' (only in the old
// text) or '+' (only in the new one).
type Line struct {
	Op   string `json:"op"`
	Text string `json:"text"`
}

// maxDiffCells bounds the work of Diff (old lines x new lines); beyond it the
// texts are shown as all removed and all added.
const maxDiffCells = 4 << 20

// Diff returns the lines of old and new in order, marked by where they are
// (a longest-common-subsequence line diff). Equal texts give only ' ' lines.
func Diff(old, new []byte) []Line {
	a, b := strings.Split(strings.TrimSuffix(string(old), "\n"), "\n"), strings.Split(strings.TrimSuffix(string(new), "\n"), "\n")
	if len(old) == 0 {
		a = nil
	}
	if len(new) == 0 {
		b = nil
	}
	var out []Line
	if len(a)*len(b) > maxDiffCells {
		for _, l := range a {
			out = append(out, Line{"-", l})
		}
		for _, l := range b {
			out = append(out, Line{"+", l})
		}
		return out
	}
	// lcs[i][j]: length of the common subsequence of a[i:] and b[j:].
	lcs := make([][]int32, len(a)+1)
	for i := range lcs {
		lcs[i] = make([]int32, len(b)+1)
	}
	for i := len(a) - 1; i >= 0; i-- {
		for j := len(b) - 1; j >= 0; j-- {
			if a[i] == b[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		switch {
		case i < len(a) && j < len(b) && a[i] == b[j]:
			out = append(out, Line{" ", a[i]})
			i, j = i+1, j+1
		case j < len(b) && (i == len(a) || lcs[i][j+1] >= lcs[i+1][j]):
			out = append(out, Line{"+", b[j]})
			j++
		default:
			out = append(out, Line{"-", a[i]})
			i++
		}
	}
	return out
}

// Changed reports whether a diff has any added or removed line.
func Changed(d []Line) bool {
	for _, l := range d {
		if l.Op != " " {
			return true
		}
	}
	return false
}
