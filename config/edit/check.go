package edit

import (
	"errors"
	"regexp"

	"github.com/medialb/medialb/config"
)

// Problem is one reason a configuration text is not valid, for the API and the
// WebUI: the field (as in "virtual_services[1].ports", or "" for the file as a
// whole), the line of the text and the message without the field.
type Problem struct {
	Path    string `json:"path"`
	Line    int    `json:"line,omitempty"`
	Message string `json:"message"`
}

// fieldRE matches the field config's messages start with:
// "virtual_services[0].real_servers[1].address: ...".
var fieldRE = regexp.MustCompile(`^([a-z_]+(?:\[\d+\])*(?:\.[a-z_]+(?:\[\d+\])*)*): (.*)$`)

// Check validates text with the code `medialb check` runs (config.Parse), under
// the name file. It returns nil for a valid text, else every problem.
func Check(file string, text []byte) []Problem {
	_, err := config.Parse(file, text)
	if err == nil {
		return nil
	}
	var errs config.Errors
	if !errors.As(err, &errs) {
		return []Problem{{Message: err.Error()}}
	}
	out := make([]Problem, 0, len(errs))
	for _, e := range errs {
		p := Problem{Line: e.Line, Message: e.Msg}
		if m := fieldRE.FindStringSubmatch(e.Msg); m != nil {
			p.Path, p.Message = m[1], m[2]
		}
		out = append(out, p)
	}
	return out
}
