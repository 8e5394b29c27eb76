package edit

import (
	"bytes"
	"regexp"
	"strings"
)

// The encoder writes a changed service in its own layout: one space before a
// comment, "{a: b}" for "{ a: b }". keepLayout puts back each of the old
// lines that says the same as the new one, so that only the lines whose
// content changed differ from the file the operator wrote.

var (
	commentGap = regexp.MustCompile(`\s+#`)
	openGap    = regexp.MustCompile(`([{\[])\s+`)
	closeGap   = regexp.MustCompile(`\s+([}\]])`)
	commaGap   = regexp.MustCompile(`,\s+`)
)

// normal is l with the spacing that does not change its meaning made uniform;
// the indentation is kept (it does).
func normal(l string) string {
	body := strings.TrimLeft(l, " ")
	indent := l[:len(l)-len(body)]
	body = strings.TrimRight(body, " \t\r\n")
	body = commentGap.ReplaceAllString(body, " #")
	body = openGap.ReplaceAllString(body, "$1")
	body = closeGap.ReplaceAllString(body, "$1")
	body = commaGap.ReplaceAllString(body, ", ")
	if strings.HasPrefix(body, "#") {
		return body // a comment line's indentation means nothing to YAML
	}
	return indent + body
}

// keepLayout returns enc with each line replaced by the next old line (in
// order) that is the same but for spacing.
func keepLayout(enc []byte, old []string) []byte {
	var b bytes.Buffer
	next := 0
	for _, l := range splitLines(enc) {
		n := normal(l)
		found := -1
		for j := next; j < len(old); j++ {
			if normal(old[j]) == n {
				found = j
				break
			}
		}
		if found < 0 {
			b.WriteString(l)
			continue
		}
		b.WriteString(old[found])
		next = found + 1
	}
	return b.Bytes()
}
