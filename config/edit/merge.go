package edit

import "go.yaml.in/yaml/v3"

// merge makes old say what n says while keeping what it can of old: the
// comments and quoting of values that stay, the order of keys that stay, the
// flow or block style of mappings and lists. Keys n lacks are removed; list
// items of mappings are matched by name.
func merge(old, n *yaml.Node) {
	if old.Kind != n.Kind || old.Kind == yaml.AliasNode || n.Kind == yaml.AliasNode || old.Tag != n.Tag && old.Kind != yaml.ScalarNode {
		style := old.Style & yaml.FlowStyle
		head, line, foot := old.HeadComment, old.LineComment, old.FootComment
		*old = *n
		if old.Kind != yaml.ScalarNode {
			old.Style |= style
		}
		old.HeadComment, old.LineComment, old.FootComment = head, line, foot
		return
	}
	switch old.Kind {
	case yaml.ScalarNode:
		if old.Value == n.Value && old.ShortTag() == n.ShortTag() {
			return
		}
		quoted := old.Style & (yaml.DoubleQuotedStyle | yaml.SingleQuotedStyle)
		old.Value, old.Tag, old.Style = n.Value, n.Tag, 0
		if n.ShortTag() == "!!str" {
			old.Style = quoted
		}
	case yaml.MappingNode:
		mergeMapping(old, n)
	case yaml.SequenceNode:
		mergeSequence(old, n)
	}
}

func mergeMapping(old, n *yaml.Node) {
	var out []*yaml.Node
	used := map[string]bool{}
	for i := 0; i+1 < len(old.Content); i += 2 {
		k := old.Content[i]
		if nv := mapValue(n, k.Value); nv != nil {
			merge(old.Content[i+1], nv)
			out = append(out, k, old.Content[i+1])
			used[k.Value] = true
		}
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if !used[n.Content[i].Value] {
			out = append(out, n.Content[i], n.Content[i+1])
		}
	}
	old.Content = out
}

func mergeSequence(old, n *yaml.Node) {
	byName := map[string]*yaml.Node{}
	for _, it := range old.Content {
		if v := mapValue(it, "name"); v != nil {
			byName[v.Value] = it
		}
	}
	out := make([]*yaml.Node, 0, len(n.Content))
	for j, it := range n.Content {
		var match *yaml.Node
		if v := mapValue(it, "name"); v != nil {
			match = byName[v.Value]
			delete(byName, v.Value)
		} else if it.Kind != yaml.MappingNode && j < len(old.Content) {
			match = old.Content[j]
		}
		if match == nil {
			if len(old.Content) > 0 && old.Content[0].Style&yaml.FlowStyle != 0 && it.Kind == yaml.MappingNode {
				it.Style = yaml.FlowStyle
			}
			out = append(out, it)
			continue
		}
		merge(match, it)
		out = append(out, match)
	}
	old.Content = out
}
