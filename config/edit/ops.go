package edit

import (
	"errors"
	"fmt"
	"strings"

	"go.yaml.in/yaml/v3"
)

// ErrNotFound is wrapped by the errors of changes to a service or real server
// that the text does not have.
var ErrNotFound = errors.New("not found")

// AddService returns text with one more virtual service at the end of
// virtual_services (created when absent). body is the service as a JSON object
// with the YAML's keys.
func AddService(text, body []byte) ([]byte, error) {
	d, err := parse(text)
	if err != nil {
		return nil, err
	}
	n, err := bodyNode(body, "virtual service")
	if err != nil {
		return nil, err
	}
	return d.appendItem(n)
}

func (d *document) appendItem(n *yaml.Node) ([]byte, error) {
	_, seq := d.services()
	its := d.items()
	if seq != nil && seq.Kind == yaml.SequenceNode && seq.Style&yaml.FlowStyle == 0 && len(its) > 0 {
		enc, err := encodeItem(n, d.dashColumn())
		if err != nil {
			return nil, err
		}
		_, last := d.span(len(its) - 1)
		// Comments indented under the last service (a commented-out key) are its own.
		col := d.dashColumn()
		for last < len(d.lines) {
			l := d.lines[last]
			body := strings.TrimLeft(l, " ")
			if !strings.HasPrefix(body, "#") || len(l)-len(body) <= col {
				break
			}
			last++
		}
		return d.splice(last+1, last, enc), nil
	}
	// No section, an empty one ("virtual_services: []") or a flow-style one:
	// write the whole section in block style.
	return d.writeSection(append(its, n))
}

// writeSection writes virtual_services anew, in block style, with items: for a
// file without the section, or with one in flow style ([...]), whose items
// cannot be rewritten line by line.
func (d *document) writeSection(its []*yaml.Node) ([]byte, error) {
	key, seq := d.services()
	var sec strings.Builder
	sec.WriteString("virtual_services:")
	if key != nil && (key.LineComment != "" || (seq != nil && seq.LineComment != "")) {
		sec.WriteString(" " + strings.TrimSpace(key.LineComment+" "+seq.LineComment))
	}
	sec.WriteString("\n")
	for _, it := range its {
		enc, err := encodeItem(it, 2)
		if err != nil {
			return nil, err
		}
		sec.Write(enc)
	}
	if key == nil {
		text := string(d.text)
		if text != "" && !strings.HasSuffix(text, "\n") {
			text += "\n"
		}
		return []byte(text + "\n" + sec.String()), nil
	}
	return d.splice(key.Line, lastLine(seq), []byte(sec.String())), nil
}

// parseAt parses text and finds the service called name in it.
func parseAt(text []byte, name string) (*document, int, error) {
	d, err := parse(text)
	if err != nil {
		return nil, 0, err
	}
	i := d.find(name)
	if i < 0 {
		return nil, 0, fmt.Errorf("virtual service %q: %w", name, ErrNotFound)
	}
	return d, i, nil
}

// ReplaceService returns text with the virtual service called name replaced by
// body (a whole service, which may carry a new name). Keys whose values stay
// keep their comments and quoting; the rest of the file is not touched.
func ReplaceService(text []byte, name string, body []byte) ([]byte, error) {
	d, i, err := parseAt(text, name)
	if err != nil {
		return nil, err
	}
	n, err := bodyNode(body, "virtual service")
	if err != nil {
		return nil, err
	}
	return d.rewrite(i, func(it *yaml.Node) error { merge(it, n); return nil })
}

// rewrite applies change to the i-th service's node and writes it over its lines.
func (d *document) rewrite(i int, change func(*yaml.Node) error) ([]byte, error) {
	first, last := d.span(i)
	it := d.items()[i]
	if err := change(it); err != nil {
		return nil, err
	}
	if d.flow() {
		return d.writeSection(d.items())
	}
	// Comments above the dash and after the last value stay in the text.
	it.HeadComment = ""
	if len(it.Content) > 0 {
		it.Content[0].HeadComment = ""
	}
	stripTailFoot(it)
	enc, err := encodeItem(it, d.dashColumn())
	if err != nil {
		return nil, err
	}
	return d.splice(first, last, keepLayout(enc, d.lines[first-1:last])), nil
}

// flow reports whether virtual_services is a flow sequence ([...]).
func (d *document) flow() bool {
	_, seq := d.services()
	return seq != nil && seq.Style&yaml.FlowStyle != 0
}

// stripTailFoot clears the foot comments along n's last children: they sit
// after n's last line, which rewrite leaves in place.
func stripTailFoot(n *yaml.Node) {
	for n != nil {
		n.FootComment = ""
		if len(n.Content) == 0 {
			return
		}
		if n.Kind == yaml.MappingNode && len(n.Content) >= 2 {
			n.Content[len(n.Content)-2].FootComment = ""
		}
		n = n.Content[len(n.Content)-1]
	}
}

// DeleteService returns text without the virtual service called name (and the
// comment lines right above it). Deleting the last one removes the section.
func DeleteService(text []byte, name string) ([]byte, error) {
	d, i, err := parseAt(text, name)
	if err != nil {
		return nil, err
	}
	if len(d.items()) == 1 {
		key, seq := d.services()
		return d.splice(key.Line, lastLine(seq), nil), nil
	}
	if d.flow() {
		its := d.items()
		return d.writeSection(append(its[:i:i], its[i+1:]...))
	}
	first, last := d.span(i)
	for first > 1 && strings.HasPrefix(strings.TrimSpace(d.lines[first-2]), "#") {
		first--
	}
	return d.splice(first, last, nil), nil
}

// AddServer returns text with one more real server (body, a JSON object) at the
// end of the real_servers of the service called service.
func AddServer(text []byte, service string, body []byte) ([]byte, error) {
	return changeServers(text, service, body, func(list *yaml.Node, n *yaml.Node) error {
		list.Content = append(list.Content, n)
		return nil
	})
}

// ReplaceServer returns text with the real server called server of service
// replaced by body.
func ReplaceServer(text []byte, service, server string, body []byte) ([]byte, error) {
	return changeServers(text, service, body, func(list *yaml.Node, n *yaml.Node) error {
		j := indexByName(list, server)
		if j < 0 {
			return fmt.Errorf("real server %q of virtual service %q: %w", server, service, ErrNotFound)
		}
		merge(list.Content[j], n)
		return nil
	})
}

// DeleteServer returns text without the real server called server of service.
func DeleteServer(text []byte, service, server string) ([]byte, error) {
	return changeServers(text, service, nil, func(list *yaml.Node, _ *yaml.Node) error {
		j := indexByName(list, server)
		if j < 0 {
			return fmt.Errorf("real server %q of virtual service %q: %w", server, service, ErrNotFound)
		}
		list.Content = append(list.Content[:j], list.Content[j+1:]...)
		return nil
	})
}

func changeServers(text []byte, service string, body []byte, change func(list, n *yaml.Node) error) ([]byte, error) {
	d, i, err := parseAt(text, service)
	if err != nil {
		return nil, err
	}
	var n *yaml.Node
	if body != nil {
		if n, err = bodyNode(body, "real server"); err != nil {
			return nil, err
		}
	}
	return d.rewrite(i, func(it *yaml.Node) error {
		list := mapValue(it, "real_servers")
		if list == nil {
			list = &yaml.Node{Kind: yaml.SequenceNode}
			it.Content = append(it.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: "real_servers"}, list)
		}
		if list.Kind != yaml.SequenceNode {
			return fmt.Errorf("virtual service %q: real_servers is not a list", service)
		}
		if n != nil && len(list.Content) > 0 && list.Content[0].Style&yaml.FlowStyle != 0 {
			n.Style = yaml.FlowStyle // like its neighbours: - { name: HT3, address: ... }
		}
		return change(list, n)
	})
}

func indexByName(list *yaml.Node, name string) int {
	for j, it := range list.Content {
		v := mapValue(it, "name")
		if v == nil {
			v = mapValue(it, "address") // a server's name defaults to its address
		}
		if v != nil && v.Value == name {
			return j
		}
	}
	return -1
}
