package edit

import (
	"bytes"
	"fmt"

	"go.yaml.in/yaml/v3"
)

// Section returns the value of the top-level key of text (such as "alerts") as
// JSON-ready values, nil when the file has none.
func Section(text []byte, key string) (any, error) {
	d, err := parse(text)
	if err != nil {
		return nil, err
	}
	_, v := d.section(key)
	if v == nil {
		return nil, nil
	}
	var out any
	if err := v.Decode(&out); err != nil {
		return nil, fmt.Errorf("read %s on line %d: %w", key, v.Line, err)
	}
	return jsonReady(out), nil
}

func (d *document) section(key string) (k, v *yaml.Node) {
	for i := 0; i+1 < len(d.root.Content); i += 2 {
		if d.root.Content[i].Value == key {
			return d.root.Content[i], d.root.Content[i+1]
		}
	}
	return nil, nil
}

// SetSection returns text with the top-level key set to body (a JSON object),
// or removed when body is JSON null. Values that stay keep their comments; the
// rest of the file is not touched.
func SetSection(text []byte, key string, body []byte) ([]byte, error) {
	d, err := parse(text)
	if err != nil {
		return nil, err
	}
	k, v := d.section(key)
	if bytes.Equal(bytes.TrimSpace(body), []byte("null")) {
		if k == nil {
			return text, nil
		}
		return d.splice(k.Line, lastLine(v), nil), nil
	}
	n, err := bodyNode(body, key)
	if err != nil {
		return nil, err
	}
	if k == nil {
		enc, err := encodeMapping(&yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: key}, n)
		if err != nil {
			return nil, err
		}
		out := string(text)
		if out != "" && out[len(out)-1] != '\n' {
			out += "\n"
		}
		return append([]byte(out+"\n"), enc...), nil
	}
	first, last := k.Line, lastLine(v)
	merge(v, n)
	k.HeadComment = ""
	stripTailFoot(v)
	v.FootComment, k.FootComment = "", ""
	enc, err := encodeMapping(k, v)
	if err != nil {
		return nil, err
	}
	return d.splice(first, last, keepLayout(enc, d.lines[first-1:last])), nil
}

// encodeMapping renders "key: value" at column 0.
func encodeMapping(k, v *yaml.Node) ([]byte, error) {
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(&yaml.Node{Kind: yaml.MappingNode, Content: []*yaml.Node{k, v}}); err != nil {
		return nil, fmt.Errorf("write %s: %w", k.Value, err)
	}
	enc.Close()
	return b.Bytes(), nil
}
