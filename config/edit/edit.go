// Package edit changes the virtual_services of a configuration file's text the
// way an operator would by hand: only the virtual service that changes is
// rewritten; every other line of the file (comments, blank lines, layout, the
// other services) stays byte for byte as it was.
//
// A change is a pure function from one text to the next: [AddService],
// [ReplaceService], [DeleteService] and their real-server counterparts parse the
// text into YAML nodes (go.yaml.in/yaml/v3), merge the change into the service's
// node (so that comments inside the service survive where their keys do),
// encode that one service and splice it over its old lines. [Check] validates a
// text with the same code as `medialb check` and names each problem's field.
package edit

import (
	"bytes"
	"errors"
	"fmt"
	"strings"

	"go.yaml.in/yaml/v3"
)

// document is a configuration text with its YAML tree.
type document struct {
	text  []byte
	lines []string // text split after each '\n'
	root  *yaml.Node
}

func parse(text []byte) (*document, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(text, &doc); err != nil {
		return nil, fmt.Errorf("read the configuration: %w", err)
	}
	d := &document{text: text, lines: splitLines(text)}
	if doc.Kind == yaml.DocumentNode && len(doc.Content) > 0 {
		d.root = doc.Content[0]
	}
	if d.root == nil || d.root.Kind != yaml.MappingNode {
		return nil, errors.New("read the configuration: it is not a mapping of sections (node:, api:, virtual_services:)")
	}
	return d, nil
}

func splitLines(text []byte) []string {
	s := string(text)
	var out []string
	for len(s) > 0 {
		i := strings.IndexByte(s, '\n')
		if i < 0 {
			out = append(out, s+"\n")
			break
		}
		out = append(out, s[:i+1])
		s = s[i+1:]
	}
	return out
}

// services returns the virtual_services key and value nodes, nil when absent.
func (d *document) services() (key, seq *yaml.Node) {
	for i := 0; i+1 < len(d.root.Content); i += 2 {
		if d.root.Content[i].Value == "virtual_services" {
			return d.root.Content[i], d.root.Content[i+1]
		}
	}
	return nil, nil
}

// items returns the services' nodes; an absent or empty section has none.
func (d *document) items() []*yaml.Node {
	_, seq := d.services()
	if seq == nil || seq.Kind != yaml.SequenceNode {
		return nil
	}
	return seq.Content
}

// find returns the index of the service called name, or -1.
func (d *document) find(name string) int {
	for i, it := range d.items() {
		if v := mapValue(it, "name"); v != nil && v.Value == name {
			return i
		}
	}
	return -1
}

func mapValue(n *yaml.Node, key string) *yaml.Node {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}

// lastLine is the last line (1-based) n's text occupies.
func lastLine(n *yaml.Node) int {
	last := n.Line
	if n.Kind == yaml.ScalarNode && (n.Style&(yaml.LiteralStyle|yaml.FoldedStyle)) != 0 {
		last += strings.Count(strings.TrimRight(n.Value, "\n"), "\n") + 1
	} else if n.Kind == yaml.ScalarNode {
		last += strings.Count(n.Value, "\n") // multi-line quoted or plain scalars
	}
	for _, c := range n.Content {
		last = max(last, lastLine(c))
	}
	return last
}

// span returns the lines [first, last] (1-based) the i-th service's text
// occupies: from its dash to its last value. Comments above it and after it
// are not part of it.
func (d *document) span(i int) (first, last int) {
	it := d.items()[i]
	return it.Line, lastLine(it)
}

// Service returns the services of text as JSON-ready values (maps, lists,
// strings, numbers), the YAML's own values without defaults.
func Services(text []byte) ([]any, error) {
	d, err := parse(text)
	if err != nil {
		return nil, err
	}
	out := []any{}
	for _, it := range d.items() {
		var v any
		if err := it.Decode(&v); err != nil {
			return nil, fmt.Errorf("read virtual service on line %d: %w", it.Line, err)
		}
		out = append(out, jsonReady(v))
	}
	return out, nil
}

// jsonReady turns the map[string]any YAML decodes into (keys may be of any
// type) into values encoding/json accepts.
func jsonReady(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			x[k] = jsonReady(e)
		}
		return x
	case map[any]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[fmt.Sprint(k)] = jsonReady(e)
		}
		return m
	case []any:
		for i, e := range x {
			x[i] = jsonReady(e)
		}
		return x
	}
	return v
}

// bodyNode reads one JSON object (a service or real server as in the YAML) into
// a block-style YAML mapping node. JSON is YAML, so key order is kept; null
// values are dropped (a field left out).
func bodyNode(body []byte, what string) (*yaml.Node, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(body, &doc); err != nil {
		return nil, fmt.Errorf("read the %s: not JSON: %w", what, err)
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, fmt.Errorf("read the %s: want a JSON object", what)
	}
	n := doc.Content[0]
	if err := uniqueKeys(n); err != nil {
		return nil, fmt.Errorf("read the %s: %w", what, err)
	}
	blockStyle(n)
	return n, nil
}

// uniqueKeys checks that every mapping under n has scalar keys, each once.
func uniqueKeys(n *yaml.Node) error {
	if n.Kind == yaml.AliasNode {
		return errors.New("aliases are not allowed here")
	}
	if n.Kind == yaml.MappingNode {
		seen := map[string]bool{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			if k.Kind != yaml.ScalarNode {
				return fmt.Errorf("a key on line %d is not a string", k.Line)
			}
			if seen[k.Value] {
				return fmt.Errorf("key %q given twice", k.Value)
			}
			seen[k.Value] = true
		}
	}
	for _, c := range n.Content {
		if err := uniqueKeys(c); err != nil {
			return err
		}
	}
	return nil
}

func blockStyle(n *yaml.Node) {
	n.Line, n.Column = 0, 0
	switch n.Kind {
	case yaml.MappingNode:
		n.Style = 0
		kept := n.Content[:0]
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i+1].Kind == yaml.ScalarNode && n.Content[i+1].ShortTag() == "!!null" {
				continue
			}
			kept = append(kept, n.Content[i], n.Content[i+1])
		}
		n.Content = kept
	case yaml.SequenceNode:
		n.Style = 0
	case yaml.ScalarNode:
		n.Style = 0 // the encoder quotes what needs it
	}
	for _, c := range n.Content {
		blockStyle(c)
	}
}

// encodeItem renders n as one item of a block sequence whose dashes are at
// column indent (0-based), ending in a newline.
func encodeItem(n *yaml.Node, indent int) ([]byte, error) {
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(&yaml.Node{Kind: yaml.SequenceNode, Content: []*yaml.Node{n}}); err != nil {
		return nil, fmt.Errorf("write the virtual service: %w", err)
	}
	enc.Close()
	pad := strings.Repeat(" ", indent)
	var out bytes.Buffer
	for _, l := range splitLines(b.Bytes()) {
		if strings.TrimSpace(l) != "" {
			out.WriteString(pad)
		}
		out.WriteString(l)
	}
	return out.Bytes(), nil
}

// splice replaces lines [first, last] (1-based, inclusive; last = first-1
// inserts before first) by repl.
func (d *document) splice(first, last int, repl []byte) []byte {
	var b bytes.Buffer
	for _, l := range d.lines[:first-1] {
		b.WriteString(l)
	}
	b.Write(repl)
	for _, l := range d.lines[last:] {
		b.WriteString(l)
	}
	return b.Bytes()
}

// dashColumn is the 0-based column of the services' dashes: that of the
// existing items, else two spaces in.
func (d *document) dashColumn() int {
	if its := d.items(); len(its) > 0 {
		l := d.lines[its[0].Line-1]
		if i := strings.IndexByte(l, '-'); i >= 0 && i < its[0].Column {
			return i
		}
		return max(its[0].Column-3, 0)
	}
	return 2
}
