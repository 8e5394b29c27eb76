package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// pairFile is one node of a pair; the services use an anchor defined outside
// virtual_services and a merge key, which the services document must expand.
const pairFile = `
x-check: &check { type: tcp-connect, port: 8443, interval: 1s }
node:
  name: NAME
  interface: eth0
  state_dir: STATE
api:
  listen: 192.0.2.2:9443
  users:
    - name: loadbalancer
      password_hash: "$2a$10$u0cqovdTwUFe8GZsu.3X/OU4fJQhpx.weaiGm3.Z4VcxMEaEsc/Pm"
ha:
  peer: 192.0.2.3
  priority: PRIO
  router_id: 51
  secret: "pair secret 0123456789"
virtual_services:
  - &mgmt
    name: Harmonic_Management
    address: 192.0.2.100
    ports: "8080,8443"
    layer: 7
    protocol: tcp
    health_check: *check
    real_servers:
      - { name: HM1, address: 192.0.2.105 }
      - { name: HM2, address: 192.0.2.106, weight: WEIGHT }
  - <<: *mgmt
    name: Harmonic_Traffic
    address: 192.0.2.110
    ports: "1935,554,50000-65535"
    layer: 4
    protocol: tcp+udp
    real_servers:
      - { name: HT1, address: 192.0.2.115 }
`

func pairConfig(t *testing.T, dir, name string, prio, weight string) string {
	t.Helper()
	r := strings.NewReplacer("NAME", name, "STATE", filepath.Join(dir, name), "PRIO", prio, "WEIGHT", weight)
	p := filepath.Join(dir, name+".yaml")
	if err := os.WriteFile(p, []byte(r.Replace(pairFile)), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// withoutLines drops what may differ between the same services read from two files.
func withoutLines(ss []Service) []Service {
	out := make([]Service, len(ss))
	for i, s := range ss {
		s.Line = 0
		s.RealServers = append([]RealServer(nil), s.RealServers...)
		for j := range s.RealServers {
			s.RealServers[j].Line = 0
		}
		if s.Fallback != nil {
			fb := *s.Fallback
			fb.Line = 0
			s.Fallback = &fb
		}
		out[i] = s
	}
	return out
}

func TestServicesDocument(t *testing.T) {
	dir := t.TempDir()
	path := pairConfig(t, dir, "lb1", "150", "200")
	data, _ := os.ReadFile(path)
	cfg, err := Parse(path, data)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := ServicesDocument(data, Primary{Node: "lb1", Priority: 150})
	if err != nil {
		t.Fatal(err)
	}
	for _, local := range []string{"\nnode:", "\napi:", "\nha:", "password_hash", "secret", "state_dir", "&", "*"} {
		if strings.Contains(string(doc), local) {
			t.Errorf("services document holds %q:\n%s", local, doc)
		}
	}
	if p, err := ReadPrimary(doc); err != nil || p != (Primary{"lb1", 150}) {
		t.Errorf("ReadPrimary = %+v, %v", p, err)
	}
	merged, err := ParseWithServices(path, data, "pushed.yaml", doc)
	if err != nil {
		t.Fatalf("ParseWithServices of the document: %v\n%s", err, doc)
	}
	if !reflect.DeepEqual(withoutLines(merged.Services), withoutLines(cfg.Services)) {
		t.Errorf("services differ after the round trip:\n%+v\n%+v", merged.Services, cfg.Services)
	}
	if merged.Node != cfg.Node || !reflect.DeepEqual(merged.API, cfg.API) || *merged.HA != *cfg.HA || merged.ServicesFile != "pushed.yaml" {
		t.Errorf("node-local sections differ: %+v %+v %+v", merged.Node, merged.API, merged.HA)
	}
	// The digest covers the services only, not who made the document.
	other, _ := ServicesDocument(data, Primary{Node: "lb2", Priority: 100})
	if ServicesDigest(other) != ServicesDigest(doc) {
		t.Error("the digest depends on the document's header")
	}
	heavier, _ := os.ReadFile(pairConfig(t, dir, "lb3", "150", "300"))
	if d, _ := ServicesDocument(heavier, Primary{Node: "lb1", Priority: 150}); ServicesDigest(d) == ServicesDigest(doc) {
		t.Error("different services have the same digest")
	}
}

func TestParseWithServices(t *testing.T) {
	dir := t.TempDir()
	path := pairConfig(t, dir, "lb2", "100", "100")
	data, _ := os.ReadFile(path)
	svc := func(body string) []byte {
		return []byte("x-medialb-primary: {node: lb1, priority: 150}\nvirtual_services:\n" + body)
	}
	tests := []struct {
		name string
		doc  []byte
		want []string
	}{
		{"bad weight", svc("  - name: A\n    address: 192.0.2.100\n    ports: \"80\"\n    layer: 7\n    real_servers:\n      - { name: S, address: 192.0.2.105, weight: lots }\n"),
			[]string{"pushed.yaml:8: virtual_services[0].real_servers[0].weight"}},
		{"node-local key", []byte("node: {interface: eth9}\nvirtual_services: []\n"),
			[]string{"pushed.yaml:1: top level: unknown key", "pushed.yaml:2: virtual_services: none given"}},
		// Valid on the primary, but this node's API listens there: the problem
		// is named in this node's file, at api.listen.
		{"collides with this node's api.listen", svc("  - name: A\n    address: 192.0.2.2\n    ports: \"9443\"\n    layer: 4\n    real_servers:\n      - { name: S, address: 192.0.2.105 }\n"),
			[]string{path + ":8: api.listen: 192.0.2.2 is the address of virtual service \"A\""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseWithServices(path, data, "pushed.yaml", tt.doc)
			var errs Errors
			if !errors.As(err, &errs) {
				t.Fatalf("err = %v, want Errors", err)
			}
			got := strings.Join(errs.Lines(), "\n")
			for _, w := range tt.want {
				if !strings.Contains(got, w) {
					t.Errorf("problems lack %q:\n%s", w, got)
				}
			}
		})
	}
}

func TestLoadNode(t *testing.T) {
	dir := t.TempDir()
	primary := pairConfig(t, dir, "lb1", "150", "300")
	secondary := pairConfig(t, dir, "lb2", "100", "100")
	pdata, _ := os.ReadFile(primary)
	pushed, err := ServicesDocument(pdata, Primary{Node: "lb1", Priority: 150})
	if err != nil {
		t.Fatal(err)
	}
	overlay := filepath.Join(dir, "lb2", OverlayFile)
	weight := func(c *Config) int { return c.Services[0].RealServers[1].Weight }

	// No pushed file: the node's own services.
	cfg, err := LoadNode(secondary)
	if err != nil || weight(cfg) != 100 || cfg.ServicesFile != secondary || cfg.PushedBy() != "" || len(cfg.ServicesDoc) == 0 {
		t.Fatalf("without a pushed file: %v, %+v", err, cfg)
	}
	own := cfg.ServicesDoc

	if err := os.MkdirAll(filepath.Dir(overlay), 0o750); err != nil {
		t.Fatal(err)
	}
	write := func(data []byte) {
		if err := os.WriteFile(overlay, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(pushed)
	cfg, err = LoadNode(secondary)
	if err != nil {
		t.Fatal(err)
	}
	if weight(cfg) != 300 || cfg.ServicesFile != overlay || cfg.PushedBy() != "lb1" || string(cfg.ServicesDoc) != string(pushed) {
		t.Errorf("with the pushed file: weight %d, from %s, pushed by %q", weight(cfg), cfg.ServicesFile, cfg.PushedBy())
	}
	if cfg.Node.Name != "lb2" || cfg.HA.Priority != 100 || cfg.API.Listen != "192.0.2.2:9443" {
		t.Errorf("node-local settings not this node's: %+v %+v", cfg.Node, cfg.HA)
	}
	if !strings.Contains(cfg.Summary(), "virtual_services pushed by lb1") {
		t.Errorf("summary %q does not say where the services come from", cfg.Summary())
	}

	// Pushed by a node whose priority is not higher: ignored.
	lower, _ := ServicesDocument(pdata, Primary{Node: "lb1", Priority: 100})
	write(lower)
	if cfg, err = LoadNode(secondary); err != nil || weight(cfg) != 100 || string(cfg.ServicesDoc) != string(own) {
		t.Errorf("pushed by an equal priority: %v, weight %d", err, weight(cfg))
	}
	// The primary never takes a pushed file of a lower node.
	if cfg, err = LoadNode(primary); err != nil || weight(cfg) != 300 {
		t.Errorf("the primary: %v", err)
	}

	// A broken pushed file stops the node with the file named and a way out.
	for _, bad := range []string{"virtual_services: []\n", "x-medialb-primary: {node: lb1, priority: 150}\nvirtual_services:\n  - name: [\n"} {
		write([]byte(bad))
		_, err = LoadNode(secondary)
		if err == nil || !strings.Contains(err.Error(), overlay) || !strings.Contains(err.Error(), "remove "+overlay) {
			t.Errorf("broken pushed file %q: %v", bad, err)
		}
	}
}

// FuzzServicesDocument checks the round trip a pair's configuration sync
// makes: for every valid configuration, its services document parses with the
// same file's node-local sections into the same services.
func FuzzServicesDocument(f *testing.F) {
	for _, pat := range []string{"testdata/*.yaml", "../examples/*.yaml"} {
		files, _ := filepath.Glob(pat)
		for _, file := range files {
			data, err := os.ReadFile(file)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(data)
		}
	}
	f.Add([]byte(strings.NewReplacer("NAME", "lb1", "STATE", "/var/lib/medialb", "PRIO", "150", "WEIGHT", "7").Replace(pairFile)))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse("fuzz.yaml", data)
		if err != nil {
			return
		}
		doc, err := ServicesDocument(data, Primary{Node: "lb1", Priority: 150})
		if err != nil {
			t.Fatalf("services document of a valid configuration: %v", err)
		}
		merged, err := ParseWithServices("fuzz.yaml", data, "pushed.yaml", doc)
		if err != nil {
			t.Fatalf("services document does not parse: %v\n%s", err, doc)
		}
		if !reflect.DeepEqual(withoutLines(merged.Services), withoutLines(cfg.Services)) {
			t.Fatalf("services differ after the round trip:\n%s", doc)
		}
	})
}
