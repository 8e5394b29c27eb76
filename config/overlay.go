package config

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"go.yaml.in/yaml/v3"
)

// An HA pair's configuration sync: the primary (the node with the higher
// ha.priority) pushes its virtual_services to the secondary, which keeps them
// in node.state_dir (OverlayFile) and runs with its own node, api and ha
// sections and the pushed virtual_services. Node-local settings are never part
// of what is pushed.

// OverlayFile is where, under node.state_dir, the secondary of an HA pair keeps
// the services document its primary pushed.
const OverlayFile = "ha/virtual_services.yaml"

// primaryKey is the top-level key of a services document that names the node
// that made it; the parser ignores top-level x- keys.
const primaryKey = "x-medialb-primary"

// Primary names the node a services document comes from.
type Primary struct {
	Node     string `yaml:"node"`
	Priority int    `yaml:"priority"`
}

// ServicesDocument returns the virtual_services section of the configuration
// in data as a YAML document of its own, headed by an x-medialb-primary key
// naming from (the node and its ha.priority). Aliases and merge keys are
// expanded, so the document needs nothing from the rest of the file; node, api
// and ha are left out. data should be a valid configuration.
func ServicesDocument(data []byte, from Primary) ([]byte, error) {
	var doc yaml.Node
	if err := decodeSafely(yaml.NewDecoder(bytes.NewReader(data)), &doc); err != nil {
		return nil, fmt.Errorf("read virtual_services: %w", err)
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, errors.New("read virtual_services: the configuration is not a mapping")
	}
	root := doc.Content[0]
	var svcs *yaml.Node
	for i := 0; i+1 < len(root.Content); i += 2 {
		if root.Content[i].Value == "virtual_services" {
			svcs = root.Content[i+1]
		}
	}
	if svcs == nil {
		return nil, errors.New("read virtual_services: none in the configuration")
	}
	budget := maxNodes
	svcs, err := expand(svcs, 0, &budget)
	if err != nil {
		return nil, err
	}
	out := &yaml.Node{Kind: yaml.MappingNode, Content: []*yaml.Node{
		{Kind: yaml.ScalarNode, Tag: "!!str", Value: "virtual_services"}, svcs,
	}}
	var b bytes.Buffer
	fmt.Fprintf(&b, "# The virtual_services of %s's configuration, pushed by medialb to the other\n", from.Node)
	fmt.Fprintf(&b, "# node of the HA pair. Do not edit: change %s's configuration instead.\n", from.Node)
	fmt.Fprintf(&b, "%s: {node: %q, priority: %d}\n", primaryKey, from.Node, from.Priority)
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(out); err != nil {
		return nil, fmt.Errorf("write virtual_services: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("write virtual_services: %w", err)
	}
	return b.Bytes(), nil
}

// expand copies n with every alias replaced by a copy of what it points to,
// and without anchors or comments.
func expand(n *yaml.Node, depth int, budget *int) (*yaml.Node, error) {
	for i := 0; n.Kind == yaml.AliasNode; i++ {
		if i >= maxDepth || n.Alias == nil {
			return nil, errors.New("read virtual_services: alias nested too deeply")
		}
		n = n.Alias
	}
	if *budget--; *budget < 0 || depth > 64 {
		return nil, fmt.Errorf("read virtual_services: too large (more than %d YAML nodes after expanding aliases)", maxNodes)
	}
	c := &yaml.Node{Kind: n.Kind, Style: n.Style, Tag: n.Tag, Value: n.Value}
	for _, k := range n.Content {
		x, err := expand(k, depth+1, budget)
		if err != nil {
			return nil, err
		}
		c.Content = append(c.Content, x)
	}
	return c, nil
}

// ServicesDigest identifies the virtual_services of a services document: the
// SHA-256 of everything from its virtual_services key on, so that the same
// services pushed by either node have the same digest.
func ServicesDigest(doc []byte) string {
	body := doc
	if i := bytes.Index(doc, []byte("\nvirtual_services:")); i >= 0 {
		body = doc[i+1:]
	}
	sum := sha256.Sum256(body)
	return hex.EncodeToString(sum[:])
}

// ReadPrimary returns the x-medialb-primary key of a services document.
func ReadPrimary(doc []byte) (Primary, error) {
	var v struct {
		P *Primary `yaml:"x-medialb-primary"`
	}
	if err := yaml.Unmarshal(doc, &v); err != nil || v.P == nil || v.P.Node == "" {
		return Primary{}, errors.New("not a services document: no x-medialb-primary: {node: NAME, priority: N} at its top")
	}
	return *v.P, nil
}

// ParseWithServices validates the configuration made of the node, api and ha
// sections of the file in data (named name) and the virtual_services of the
// services document in svcData (named svcName): every problem is reported as
// "NAME:LINE: message" or "SVCNAME:LINE: message", whichever file it is in.
// The virtual_services of data are not read, and svcData may hold nothing
// else but top-level x- keys.
func ParseWithServices(name string, data []byte, svcName string, svcData []byte) (*Config, error) {
	p := &parser{file: name, localFile: name}
	cfg := &Config{File: name, ServicesFile: svcName}
	root := p.document(data)
	var local bool
	if root != nil {
		var f fields
		if f, local = p.mapping(root, topLevel, topKeys); local {
			if n := f.get("node"); n != nil {
				p.node(n, &cfg.Node)
			} else {
				p.errorf(root, "node: missing (node.interface, the NIC that carries the VIPs, is required)")
			}
			if n := f.get("api"); n != nil {
				p.api(n, &cfg.API)
			}
			if n := f.get("ha"); n != nil {
				cfg.HA = p.ha(n)
			}
		}
	}
	p.file = svcName
	if sroot := p.document(svcData); sroot != nil {
		if f, ok := p.mapping(sroot, topLevel, []string{"virtual_services"}); ok {
			p.services(f, cfg)
			if local {
				p.crossChecks(cfg)
			}
		}
	}
	if len(p.errs) > 0 {
		p.errs.sort()
		return nil, p.errs
	}
	return cfg, nil
}

// LoadNode reads the configuration at path as a node runs it. Without an ha
// section, it is [Load]. With one, the file must be valid on its own, and when
// node.state_dir holds services its primary pushed (OverlayFile) from a node
// with a higher ha.priority than this one's, they replace the file's
// virtual_services (the ServicesFile of the result is then that file); a
// pushed file from a node whose priority is not higher is ignored (the nodes
// swapped roles: this file is the pair's reference now). ServicesDoc is set.
func LoadNode(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, Errors{{File: path, Msg: fmt.Sprintf("read configuration: %v", unwrapPath(err))}}
	}
	cfg, err := Parse(path, data)
	if err != nil || cfg.HA == nil {
		return cfg, err
	}
	own, err := ServicesDocument(data, Primary{Node: cfg.Node.Name, Priority: int(cfg.HA.Priority)})
	if err != nil {
		return nil, Errors{{File: path, Msg: err.Error()}}
	}
	cfg.ServicesDoc = own
	ov := filepath.Join(cfg.Node.StateDir, OverlayFile)
	odata, err := os.ReadFile(ov)
	if errors.Is(err, fs.ErrNotExist) {
		return cfg, nil
	}
	hint := fmt.Sprintf("remove %s to run with the virtual_services of %s until the primary pushes again", ov, path)
	if err != nil {
		return nil, Errors{{File: ov, Msg: fmt.Sprintf("read the virtual_services pushed by the HA primary: %v (%s)", unwrapPath(err), hint)}}
	}
	from, err := ReadPrimary(odata)
	if err != nil {
		return nil, Errors{{File: ov, Msg: err.Error() + " (" + hint + ")"}}
	}
	if from.Priority <= int(cfg.HA.Priority) {
		return cfg, nil
	}
	merged, err := ParseWithServices(path, data, ov, odata)
	if err != nil {
		var errs Errors
		if errors.As(err, &errs) {
			errs = append(errs, &Error{File: ov, Msg: fmt.Sprintf("these virtual_services were pushed by %s: %s", from.Node, hint)})
			return nil, errs
		}
		return nil, err
	}
	merged.ServicesDoc = odata
	return merged, nil
}

// PushedBy returns the node that pushed c's virtual_services, "" when they
// come from c's own file.
func (c *Config) PushedBy() string {
	if c.ServicesFile == c.File || c.ServicesFile == "" {
		return ""
	}
	p, err := ReadPrimary(c.ServicesDoc)
	if err != nil {
		return strings.TrimSuffix(filepath.Base(c.ServicesFile), ".yaml")
	}
	return p.Node
}
