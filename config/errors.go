package config

import (
	"fmt"
	"sort"
	"strings"
)

// Error is one problem found in a configuration file, at a line and column of
// that file. Line and Column are 1-based; 0 means the problem concerns the file
// as a whole (it cannot be read, it is empty).
type Error struct {
	File   string
	Line   int
	Column int
	Msg    string

	// structural is set for problems a YAML fragment can have on its own:
	// syntax errors, unknown keys, values of the wrong kind.
	structural bool
}

// Error returns the problem as "FILE:LINE: message", or "FILE: message" when
// the problem has no line.
func (e *Error) Error() string {
	if e.Line <= 0 {
		return fmt.Sprintf("%s: %s", e.File, e.Msg)
	}
	return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
}

// Errors is every problem found in one configuration file (or two, with
// [ParseWithServices]), sorted by file, line and column. [Load] and [Parse]
// return it (never an empty one) when a file is not a valid configuration.
type Errors []*Error

// Error returns one "FILE:LINE: message" line per problem, joined by newlines.
func (es Errors) Error() string {
	var b strings.Builder
	for i, e := range es {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(e.Error())
	}
	return b.String()
}

// Lines returns the problems as "FILE:LINE: message" strings, one per problem.
func (es Errors) Lines() []string {
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = e.Error()
	}
	return out
}

func (es Errors) sort() {
	sort.SliceStable(es, func(i, j int) bool {
		if es[i].File != es[j].File {
			return es[i].File < es[j].File
		}
		if es[i].Line != es[j].Line {
			return es[i].Line < es[j].Line
		}
		return es[i].Column < es[j].Column
	})
}
