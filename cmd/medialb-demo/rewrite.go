package main

import (
	"fmt"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// rewrite sets scalar values at dotted paths (e.g. "node.interface") of a YAML
// document and returns the new text, comments kept. Missing mapping keys are added;
// a number selects an item of a sequence ("virtual_services.1.name").
func rewrite(src []byte, set map[string]string) ([]byte, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(src, &doc); err != nil {
		return nil, fmt.Errorf("parse YAML: %w", err)
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 {
		return nil, fmt.Errorf("rewrite: not a YAML document")
	}
	for path, val := range set {
		n := doc.Content[0]
		keys := strings.Split(path, ".")
		for i, k := range keys {
			if n.Kind == yaml.SequenceNode {
				idx, err := strconv.Atoi(k)
				if err != nil || idx < 0 || idx >= len(n.Content) {
					return nil, fmt.Errorf("rewrite %s: no item %s in %s", path, k, strings.Join(keys[:i], "."))
				}
				n = n.Content[idx]
				continue
			}
			if n.Kind != yaml.MappingNode {
				return nil, fmt.Errorf("rewrite %s: %s is not a mapping", path, strings.Join(keys[:i], "."))
			}
			var next *yaml.Node
			for j := 0; j+1 < len(n.Content); j += 2 {
				if n.Content[j].Value == k {
					next = n.Content[j+1]
					break
				}
			}
			if next == nil {
				kind := yaml.MappingNode
				if i == len(keys)-1 {
					kind = yaml.ScalarNode
				}
				next = &yaml.Node{Kind: kind}
				n.Content = append(n.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: k}, next)
			}
			n = next
		}
		*n = yaml.Node{Kind: yaml.ScalarNode, Value: val, LineComment: n.LineComment}
	}
	return yaml.Marshal(&doc)
}
