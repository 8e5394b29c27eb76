package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Limits that keep a hostile or broken file from exhausting the checker.
const (
	maxErrors = 1000   // problems reported before giving up
	maxNodes  = 200000 // YAML nodes visited, aliases expanded
	maxDepth  = 16     // alias and merge-key nesting
)

// Load reads and validates the configuration file at path. On failure the
// error is a [Errors] naming every problem found, each as "FILE:LINE: message".
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, Errors{{File: path, Msg: fmt.Sprintf("read configuration: %v", unwrapPath(err))}}
	}
	return Parse(path, data)
}

func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// Parse validates the configuration in data; name is the file name used in
// messages and [Config.File]. On failure the error is a [Errors] naming every
// problem found, each as "NAME:LINE: message".
func Parse(name string, data []byte) (*Config, error) {
	p := &parser{file: name}
	root := p.document(data)
	cfg := &Config{File: name, ServicesFile: name}
	if root != nil {
		p.config(root, cfg)
	}
	if len(p.errs) > 0 {
		p.errs.sort()
		return nil, p.errs
	}
	return cfg, nil
}

// parser walks a YAML node tree, collecting every problem it finds.
type parser struct {
	file  string
	errs  Errors
	nodes int
	full  bool // maxErrors or maxNodes reached

	apiListen, haPeer *yaml.Node // for problems found in crossChecks
	bgpNode           *yaml.Node // the bgp section, for bgpChecks
	localFile         string     // the file of node, api and ha (see ParseWithServices)
}

var yamlLineRE = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// document parses data into its root node, or reports why it cannot.
func (p *parser) document(data []byte) *yaml.Node {
	if len(bytes.TrimSpace(data)) == 0 {
		p.add(&Error{File: p.file, Line: 1, Msg: "empty configuration", structural: true})
		return nil
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := decodeSafely(dec, &doc); errors.Is(err, io.EOF) {
		p.add(&Error{File: p.file, Line: 1, Msg: "empty configuration", structural: true})
		return nil
	} else if err != nil {
		p.yamlError(err)
		return nil
	}
	var extra yaml.Node
	if err := decodeSafely(dec, &extra); err == nil {
		p.add(&Error{File: p.file, Line: extra.Line, Msg: "a second YAML document (---): put everything in one", structural: true})
	} else if !errors.Is(err, io.EOF) {
		p.yamlError(err)
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		p.add(&Error{File: p.file, Line: 1, Msg: "empty configuration", structural: true})
		return nil
	}
	root := p.resolve(doc.Content[0])
	if isNull(root) {
		p.add(&Error{File: p.file, Line: 1, Msg: "empty configuration", structural: true})
		return nil
	}
	return root
}

// decodeSafely guards against panics inside the YAML library, which parses
// untrusted text: a broken file must give an error, never a crash.
func decodeSafely(dec *yaml.Decoder, n *yaml.Node) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("yaml: internal error: %v", r)
		}
	}()
	return dec.Decode(n)
}

func (p *parser) yamlError(err error) {
	msg := err.Error()
	line := 1
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = m[2]
	} else {
		msg = strings.TrimPrefix(msg, "yaml: ")
	}
	p.add(&Error{File: p.file, Line: line, Msg: "invalid YAML: " + msg, structural: true})
}

func (p *parser) add(e *Error) {
	if p.full {
		return
	}
	if len(p.errs) >= maxErrors {
		p.errs = append(p.errs, &Error{File: p.file, Line: e.Line, Msg: fmt.Sprintf("too many problems, stopped after %d", maxErrors), structural: true})
		p.full = true
		return
	}
	p.errs = append(p.errs, e)
}

// errorf reports a problem at n.
func (p *parser) errorf(n *yaml.Node, format string, args ...any) {
	e := &Error{File: p.file, Msg: fmt.Sprintf(format, args...)}
	if n != nil {
		e.Line, e.Column = n.Line, n.Column
	}
	p.add(e)
}

// localErrorf reports a problem at n, a node of the file that holds the
// node, api and ha sections.
func (p *parser) localErrorf(n *yaml.Node, format string, args ...any) {
	e := &Error{File: p.localFile, Msg: fmt.Sprintf(format, args...)}
	if n != nil {
		e.Line, e.Column = n.Line, n.Column
	}
	p.add(e)
}

// structf reports a structural problem at n (see Error.structural).
func (p *parser) structf(n *yaml.Node, format string, args ...any) {
	e := &Error{File: p.file, Msg: fmt.Sprintf(format, args...), structural: true}
	if n != nil {
		e.Line, e.Column = n.Line, n.Column
	}
	p.add(e)
}

// resolve follows aliases and counts visited nodes.
func (p *parser) resolve(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode; i++ {
		if i >= maxDepth {
			p.structf(n, "alias nested too deeply")
			return nil
		}
		n = n.Alias
	}
	p.nodes++
	if p.nodes > maxNodes {
		if !p.full {
			p.structf(n, "configuration too large (more than %d YAML nodes after expanding aliases)", maxNodes)
			p.full = true
		}
		return nil
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n == nil || (n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null")
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!int":
			return "the number " + n.Value
		case "!!float":
			return "the number " + n.Value
		case "!!bool":
			return "the boolean " + n.Value
		case "!!null":
			return "nothing"
		}
		return strconv.Quote(n.Value)
	}
	return "something else"
}

// fields is a mapping's values by key, with the mapping node itself for
// reporting missing keys.
type fields struct {
	node *yaml.Node
	m    map[string]*yaml.Node
	keys map[string]*yaml.Node
}

// get returns the value of key, or nil when it is absent or null.
func (f fields) get(key string) *yaml.Node {
	v := f.m[key]
	if isNull(v) {
		return nil
	}
	return v
}

// has reports whether key is given a non-null value.
func (f fields) has(key string) bool { return f.get(key) != nil }

// line returns the line of key (or of the mapping when key is absent).
func (f fields) at(key string) *yaml.Node {
	if k := f.keys[key]; k != nil {
		return k
	}
	return f.node
}

// mapping reads mapping n (at path) and reports unknown and duplicate keys.
// It returns ok == false when n is not a mapping; a null n gives an empty
// fields with ok == true.
func (p *parser) mapping(n *yaml.Node, path string, known []string) (fields, bool) {
	f := fields{node: n, m: map[string]*yaml.Node{}, keys: map[string]*yaml.Node{}}
	if isNull(n) {
		return f, true
	}
	if n.Kind != yaml.MappingNode {
		p.structf(n, "%s: want a mapping (key: value lines), got %s", path, kindName(n))
		return f, false
	}
	p.collect(n, path, known, f, []*yaml.Node{n})
	return f, true
}

// collect adds the keys of mapping n to f; stack holds the mappings whose
// merge keys led here, to stop at cycles.
func (p *parser) collect(n *yaml.Node, path string, known []string, f fields, stack []*yaml.Node) {
	depth := len(stack) - 1
	var merges []*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := p.resolve(n.Content[i]), p.resolve(n.Content[i+1])
		if k == nil {
			continue
		}
		if k.Kind != yaml.ScalarNode {
			p.structf(k, "%s: a key must be a plain word, got %s", path, kindName(k))
			continue
		}
		if k.Value == "<<" && k.ShortTag() == "!!merge" {
			merges = append(merges, v)
			continue
		}
		if first, dup := f.keys[k.Value]; dup {
			if depth == 0 {
				p.structf(k, "%s: key %q given twice (first on line %d)", path, k.Value, first.Line)
			}
			continue
		}
		if path == topLevel && strings.HasPrefix(k.Value, "x-") {
			continue // x-anything: room for anchors, as in Compose files
		}
		if !contains(known, k.Value) {
			p.structf(k, "%s", unknownKey(path, k.Value, known))
			continue
		}
		f.keys[k.Value] = k
		f.m[k.Value] = v
	}
	// Merge keys (<<: *anchor) fill in keys not given explicitly.
	for _, m := range merges {
		if m == nil {
			continue
		}
		if depth >= maxDepth {
			p.structf(n, "%s: merge keys nested too deeply", path)
			return
		}
		items := []*yaml.Node{m}
		if m.Kind == yaml.SequenceNode {
			items = m.Content
		}
		for _, it := range items {
			it = p.resolve(it)
			if it == nil {
				continue
			}
			if it.Kind != yaml.MappingNode {
				p.structf(it, "%s: << must merge a mapping, got %s", path, kindName(it))
				continue
			}
			if slices.Contains(stack, it) {
				p.structf(m, "%s: << merges a mapping into itself", path)
				return
			}
			p.collect(it, path, known, f, append(stack[:len(stack):len(stack)], it))
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// sequence reads list n (at path); a null n is an empty list.
func (p *parser) sequence(n *yaml.Node, path string) ([]*yaml.Node, bool) {
	if isNull(n) {
		return nil, true
	}
	if n.Kind != yaml.SequenceNode {
		p.structf(n, "%s: want a list (lines starting with -), got %s", path, kindName(n))
		return nil, false
	}
	out := make([]*yaml.Node, 0, len(n.Content))
	for _, c := range n.Content {
		if c = p.resolve(c); c != nil {
			out = append(out, c)
		}
	}
	return out, true
}

// str reads a scalar as text. Numbers and booleans are taken as written.
func (p *parser) str(n *yaml.Node, path string) (string, bool) {
	if n.Kind != yaml.ScalarNode {
		p.structf(n, "%s: want text, got %s", path, kindName(n))
		return "", false
	}
	return n.Value, true
}

// integer reads an integer in lo..hi.
func (p *parser) integer(n *yaml.Node, path string, lo, hi int64) (int64, bool) {
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" {
		p.structf(n, "%s: want a whole number, got %s", path, kindName(n))
		return 0, false
	}
	var v int64
	if err := n.Decode(&v); err != nil {
		p.errorf(n, "%s: %s is out of range %d..%d", path, n.Value, lo, hi)
		return 0, false
	}
	if v < lo || v > hi {
		p.errorf(n, "%s: %d is out of range %d..%d", path, v, lo, hi)
		return 0, false
	}
	return v, true
}

// uint64Value reads an unsigned 64-bit integer.
func (p *parser) uint64Value(n *yaml.Node, path string) (uint64, bool) {
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" {
		p.structf(n, "%s: want a whole number, got %s", path, kindName(n))
		return 0, false
	}
	var v uint64
	if err := n.Decode(&v); err != nil {
		p.errorf(n, "%s: %s is out of range 0..%d", path, n.Value, uint64(1<<64-1))
		return 0, false
	}
	return v, true
}

func (p *parser) boolean(n *yaml.Node, path string) (bool, bool) {
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!bool" {
		p.structf(n, "%s: want true or false, got %s", path, kindName(n))
		return false, false
	}
	var v bool
	if err := n.Decode(&v); err != nil {
		p.structf(n, "%s: want true or false, got %s", path, kindName(n))
		return false, false
	}
	return v, true
}

// duration reads a Go duration ("300ms", "5s", "30m", "1h30m") in lo..hi.
func (p *parser) duration(n *yaml.Node, path string, lo, hi time.Duration) (time.Duration, bool) {
	if n.Kind != yaml.ScalarNode {
		p.structf(n, "%s: want a duration such as 5s, got %s", path, kindName(n))
		return 0, false
	}
	d, err := time.ParseDuration(n.Value)
	if err != nil {
		if _, numErr := strconv.ParseFloat(n.Value, 64); numErr == nil {
			p.errorf(n, "%s: %q has no unit (write e.g. %ss or %sms)", path, n.Value, n.Value, n.Value)
		} else {
			p.errorf(n, "%s: %q is not a duration (write e.g. 300ms, 5s, 30m, 1h)", path, n.Value)
		}
		return 0, false
	}
	if d < lo || d > hi {
		p.errorf(n, "%s: %v is out of range %v..%v", path, d, lo, hi)
		return 0, false
	}
	return d, true
}

// addr reads an IP address: IPv4 or IPv6, unicast, without zone or prefix.
func (p *parser) addr(n *yaml.Node, path string) (netip.Addr, bool) {
	s, ok := p.str(n, path)
	if !ok {
		return netip.Addr{}, false
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		switch {
		case strings.Contains(s, "/"):
			p.errorf(n, "%s: %q: give an address without a prefix length", path, s)
		case strings.Count(s, ":") == 1 || strings.HasPrefix(s, "["):
			p.errorf(n, "%s: %q: give the address without a port", path, s)
		default:
			p.errorf(n, "%s: %q is not an IP address", path, s)
		}
		return netip.Addr{}, false
	}
	switch {
	case a.Zone() != "":
		p.errorf(n, "%s: %s: an address with a zone is not supported", path, s)
	case a.Is4In6():
		p.errorf(n, "%s: %s is an IPv4-mapped IPv6 address (write %s)", path, s, a.Unmap())
	case a.IsUnspecified():
		p.errorf(n, "%s: %s is the unspecified address, not a host", path, s)
	case a.IsMulticast():
		p.errorf(n, "%s: %s is a multicast address", path, s)
	case a == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		p.errorf(n, "%s: %s is the broadcast address", path, s)
	default:
		return a, true
	}
	return netip.Addr{}, false
}

// oneOf reads a word from a fixed set, case-insensitively.
func (p *parser) oneOf(n *yaml.Node, path string, allowed []string) (string, bool) {
	s, ok := p.str(n, path)
	if !ok {
		return "", false
	}
	l := strings.ToLower(strings.TrimSpace(s))
	if contains(allowed, l) {
		return l, true
	}
	msg := fmt.Sprintf("%s: %q is not one of %s", path, s, strings.Join(allowed, ", "))
	if best := closest(l, allowed); best != "" {
		msg += fmt.Sprintf(" (did you mean %q?)", best)
	}
	p.errorf(n, "%s", msg)
	return "", false
}
