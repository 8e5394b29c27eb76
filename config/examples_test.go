package config

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// TestExamples loads every file in examples/: each must be valid.
func TestExamples(t *testing.T) {
	files, err := filepath.Glob("../examples/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no examples found: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			cfg, err := Load(f)
			if err != nil {
				t.Fatalf("%v", err)
			}
			t.Log(cfg.Summary())
		})
	}
}

// TestHarmonicVOSExample checks that the main example is the guide's deployment.
func TestHarmonicVOSExample(t *testing.T) {
	cfg, err := Load("../examples/harmonic-vos.yaml")
	if err != nil {
		t.Fatal(err)
	}
	m, tr := cfg.Service("Harmonic_Management"), cfg.Service("Harmonic_Traffic")
	if m == nil || tr == nil {
		t.Fatal("services missing")
	}
	if m.Address.String() != "192.168.94.100" || m.Ports.String() != "8080,8443" || m.Layer != Layer7 || m.Protocol != TCP ||
		m.Persistence.Mode != PersistSourceIP || m.HealthCheck.Type != CheckHTTPSGet || m.HealthCheck.Path != "/admin/status" ||
		m.HealthCheck.Expect != "Healthy" || len(m.RealServers) != 2 || m.RealServers[0].Address.String() != "192.168.94.105" {
		t.Errorf("Harmonic_Management: %+v", m)
	}
	if tr.Address.String() != "192.168.94.110" || tr.Ports.String() != "1935,554,50000-65535" || tr.Layer != Layer4 ||
		tr.Forwarding != DirectRouting || tr.Protocol != TCPAndUDP || tr.Persistence.Timeout.String() != "5m0s" ||
		tr.HealthCheck.Port != 8443 || len(tr.RealServers) != 2 || tr.RealServers[1].Name != "HT2" {
		t.Errorf("Harmonic_Traffic: %+v", tr)
	}
	want := "../examples/harmonic-vos.yaml: ok: 2 virtual services (1 layer-4, 1 layer-7), 4 real servers, 15540 ports"
	if got := cfg.Summary(); got != want {
		t.Errorf("Summary() = %q, want %q", got, want)
	}
	for _, pair := range [][2]string{{"primary", "secondary"}} {
		a, err1 := Load("../examples/harmonic-vos-ha-" + pair[0] + ".yaml")
		b, err2 := Load("../examples/harmonic-vos-ha-" + pair[1] + ".yaml")
		if err1 != nil || err2 != nil {
			t.Fatal(err1, err2)
		}
		if a.HA == nil || b.HA == nil || a.HA.Priority <= b.HA.Priority || a.HA.RouterID != b.HA.RouterID ||
			a.HA.Secret != b.HA.Secret || a.Node.HashSeed != b.Node.HashSeed || a.Node.Name == b.Node.Name {
			t.Errorf("HA pair: %+v / %+v", a.HA, b.HA)
		}
		if !sameServices(a.Services, b.Services) {
			t.Error("the HA pair's virtual_services differ")
		}
	}
}

func sameServices(a, b []Service) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		x, y := a[i], b[i]
		if x.Name != y.Name || x.Address != y.Address || x.Ports.String() != y.Ports.String() || x.HealthCheck != y.HealthCheck ||
			len(x.RealServers) != len(y.RealServers) {
			return false
		}
		for j := range x.RealServers {
			if x.RealServers[j] != y.RealServers[j] {
				return false
			}
		}
	}
	return true
}

var yamlBlockRE = regexp.MustCompile("(?ms)^```ya?ml\n(.*?)^```")

// TestReadmeYAML checks every ```yaml block of the repository's README.md: a
// block with virtual_services is a whole configuration and must be valid; a
// smaller one is a fragment and must at least be YAML whose keys all exist.
func TestReadmeYAML(t *testing.T) {
	for _, doc := range []string{"../README.md", "README.md"} {
		data, err := os.ReadFile(doc)
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		for i, m := range yamlBlockRE.FindAllSubmatch(data, -1) {
			block := m[1]
			name := doc + " block " + strconv.Itoa(i+1)
			_, err := Parse(name, block)
			if regexp.MustCompile(`(?m)^virtual_services:`).Match(block) {
				if err != nil {
					t.Errorf("%v", err)
				}
				continue
			}
			if errs, _ := err.(Errors); len(errs) > 0 {
				for _, e := range errs {
					if e.structural && !strings.Contains(e.Msg, "empty configuration") {
						t.Errorf("%v", e)
					}
				}
			}
		}
	}
}
