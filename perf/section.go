package perf

// UpdateSection replaces the part of the Markdown file at path between the
// markers begin and end (included) with section, which carries the markers
// itself; a file without them gets section appended. For reports of other
// commands (cmd/medialb-ecmp) that keep a section of BENCHMARKS.md.
func UpdateSection(path, section, begin, end string) error {
	return updateFile(path, section, begin, end)
}
